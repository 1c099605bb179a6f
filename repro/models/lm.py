"""Small Hugging Face decoder-only language models for chapter 7 (JensUn), built from a config.

The paper unlearns Llama-3.2-3B-Instruct and Phi-3-Mini-4K-Instruct (Sec. 8.5 (App. B.1)). The ``cpu`` profile
cannot, so it pretrains a tiny ``LlamaForCausalLM`` *from scratch* on the generated facts corpus
(:mod:`repro.data.facts`) with a word-level tokenizer trained by ``tokenizers``. The tiny model is
saved with ``save_pretrained`` and reloaded with :func:`load_lm`, which is the same
``AutoModelForCausalLM.from_pretrained`` path the ``full`` profile uses for a Hub id, so that
path is exercised offline.

``transformers`` is imported lazily: :mod:`repro.models` auto-imports this module and the
vision zoo should not pay for it.
"""
from __future__ import annotations

import io
import math
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from repro.data.facts import EOS, PAD, UNK

__all__ = ["train_tokenizer", "build_lm", "pretrain_lm", "save_lm", "load_lm", "check_tokenizer",
           "lm_to_bytes", "lm_from_bytes", "tiny_lm_spec"]


def train_tokenizer(texts: Sequence[str]):
    """A word-level tokenizer (whitespace split) trained on ``texts``, wrapped as a
    ``PreTrainedTokenizerFast`` with pad/eos/unk tokens so it saves and loads like any HF tokenizer.

    Word level keeps every invented name and every answer a single token, which makes answer
    matching and the one-hot targets of Eq. 4 unambiguous at this scale."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not texts:
        raise ValueError("train_tokenizer needs a non-empty list of texts")
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=[PAD, UNK, EOS], min_frequency=1)
    specials = {PAD, UNK, EOS}
    # special tokens appearing in the texts would be counted as words and get a second id
    clean = (" ".join(w for w in t.split() if w not in specials) for t in texts)
    tok.train_from_iterator(clean, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK)
    fast.padding_side = "right"
    return fast


def check_tokenizer(tokenizer) -> None:
    """Unlearning and batched generation pad sequences; a tokenizer without a pad token (e.g.
    Llama-3's) fails deep inside the collator, so say what to do instead."""
    if tokenizer.pad_token_id is None:
        raise ValueError(
            "the tokenizer has no pad token; batching needs one. Set it before unlearning, e.g. "
            "`tokenizer.pad_token = tokenizer.eos_token` (what OpenUnlearning does for Llama-3)")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token; generation cannot stop. Set `tokenizer.eos_token`.")


def build_lm(vocab_size: int, d_model: int = 128, n_layers: int = 2, n_heads: int = 4, d_ff: int = 256,
             max_len: int = 160, seed: int = 0, pad_token_id: int = 0, eos_token_id: int = 2):
    """A randomly initialised ``LlamaForCausalLM`` from a ``LlamaConfig`` (no download)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=d_model, intermediate_size=d_ff,
                      num_hidden_layers=n_layers, num_attention_heads=n_heads, num_key_value_heads=n_heads,
                      max_position_embeddings=max_len, tie_word_embeddings=True,
                      pad_token_id=pad_token_id, eos_token_id=eos_token_id, bos_token_id=None,
                      attn_implementation="sdpa")
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


def _batches(tokenizer, texts: Sequence[str], batch_size: int, rng: random.Random):
    order = list(range(len(texts)))
    while True:
        rng.shuffle(order)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield tokenizer([texts[j] for j in order[i:i + batch_size]], return_tensors="pt", padding=True)


def pretrain_lm(model, tokenizer, texts_fn: Callable[[int], Sequence[str]], steps: int, batch_size: int = 64,
                lr: float = 3e-3, weight_decay: float = 0.01, warmup: int = 100, seed: int = 0,
                device: torch.device | str = "cpu", progress: bool = False) -> list[float]:
    """Next-token pretraining from scratch (AdamW, linear warmup, cosine decay).

    ``texts_fn(epoch)`` returns one epoch of texts, so templates are resampled every epoch.
    Returns the per-step loss."""
    model.to(device).train()
    check_tokenizer(tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, warmup)) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    rng = random.Random(seed)
    torch.manual_seed(seed)
    losses: list[float] = []
    epoch = 0
    it = _batches(tokenizer, texts_fn(epoch), batch_size, rng)
    n_per_epoch = max(1, len(texts_fn(0)) // batch_size)
    for step in range(steps):
        if step and step % n_per_epoch == 0:
            epoch += 1
            it = _batches(tokenizer, texts_fn(epoch), batch_size, rng)
        b = next(it)
        ids, mask = b["input_ids"].to(device), b["attention_mask"].to(device)
        labels = ids.masked_fill(mask == 0, -100)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(out.loss.detach()))
        if progress and step % 200 == 0:
            print(f"pretrain step {step}/{steps} loss {losses[-1]:.3f}")
    model.eval()
    return losses


def save_lm(model, tokenizer, path: str | Path) -> Path:
    """``save_pretrained`` for model and tokenizer into one directory (the HF layout)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def load_lm(name_or_path: str | Path, device: torch.device | str = "cpu", dtype: str | torch.dtype | None = None,
            revision: str | None = None, gradient_checkpointing: bool = False, local_files_only: bool | None = None):
    """Load ``(model, tokenizer)`` with ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained``.

    The same call serves a local directory written by :func:`save_lm` (``cpu`` profile) and a Hub
    id with a pinned ``revision`` in ``full`` (e.g. ``meta-llama/Llama-3.2-3B-Instruct`` in bf16
    with gradient checkpointing, Sec. 8.5 (App. B.1)). A missing local directory raises a clear error instead of
    a Hub lookup."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(name_or_path)
    is_local = p.exists()
    if not is_local and (str(name_or_path).startswith((".", "/")) or os.sep in str(name_or_path).rstrip("/")
                         and str(name_or_path).count("/") != 1):
        raise FileNotFoundError(f"no saved model at {name_or_path}; write one with repro.models.lm.save_lm "
                                "or pass a Hugging Face id like 'meta-llama/Llama-3.2-3B-Instruct'")
    if isinstance(dtype, str):
        dtype = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
                 "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}[dtype]
    kw: dict[str, Any] = {}
    if revision:
        kw["revision"] = revision
    if local_files_only is None:
        local_files_only = is_local
    tok = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_files_only, **kw)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, local_files_only=local_files_only, **kw)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model.to(device).eval(), tok


def lm_to_bytes(model, tokenizer) -> dict[str, bytes]:
    """The ``save_pretrained`` directory as ``{filename: bytes}``, a value :mod:`repro.core.cache` can store."""
    with tempfile.TemporaryDirectory() as d:
        save_lm(model, tokenizer, d)
        return {f.name: f.read_bytes() for f in Path(d).iterdir() if f.is_file()}


def lm_from_bytes(files: dict[str, bytes], device: torch.device | str = "cpu"):
    """Rebuild ``(model, tokenizer)`` from :func:`lm_to_bytes` through :func:`load_lm` (``from_pretrained``)."""
    with tempfile.TemporaryDirectory() as d:
        for name, data in files.items():
            (Path(d) / name).write_bytes(data)
        return load_lm(d, device=device)


def tiny_lm_spec(d_model: int = 128, n_layers: int = 2, n_heads: int = 4, d_ff: int = 256, max_len: int = 160) -> dict:
    return dict(d_model=d_model, n_layers=n_layers, n_heads=n_heads, d_ff=d_ff, max_len=max_len)
