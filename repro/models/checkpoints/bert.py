"""BERT MNLI classifiers of "BERTs of a feather" (McCoy et al. 2020; Table 2, App. G of Sec. 8.3):
an uncased WordPiece tokenizer from ``vocab.txt``, a ``forward(input_ids) -> logits`` wrapper, and the
one-off conversion of Google-BERT TensorFlow checkpoints to HF ``BertForSequenceClassification`` folders."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

#: Label order of the Google-BERT ``MnliProcessor`` that McCoy et al. fine-tuned with (their README:
#: outputs are "contradiction, entailment, neutral, in that order").
BERT_MNLI_LABELS = ("contradiction", "entailment", "neutral")


def bert_tokenizer(vocab_path):
    """An uncased WordPiece tokenizer from a BERT ``vocab.txt`` (one token per line, id = line number).
    The vocabulary is read here and passed as a mapping: transformers 5 ignores ``vocab_file=``."""
    from transformers import BertTokenizerFast

    vocab = {}
    with open(vocab_path, encoding="utf-8") as f:
        for i, line in enumerate(f):                 # as BERT's load_vocab: id = line number
            vocab[line.rstrip("\n")] = i
    try:
        tok = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    except TypeError:
        tok = None
    if tok is None or len(tok.get_vocab()) != len(vocab):          # transformers 4: vocab_file=
        tok = BertTokenizerFast(vocab_file=str(vocab_path), do_lower_case=True)
    if len(tok.get_vocab()) != len(vocab):
        raise RuntimeError(f"could not build a tokenizer with the {len(vocab)} tokens of {vocab_path}")
    return tok


class TextClassifierLogits(nn.Module):
    """``forward(input_ids) -> logits`` for a HF sequence classifier, so that
    :func:`repro.sharpness.measure_detailed` works unchanged on ``(input_ids, labels)`` batches:
    ``attention_mask = input_ids != pad_token_id`` and, for sentence pairs, ``token_type_ids`` = 1
    after the first ``[SEP]`` up to the second (what the tokenizer produces; padding gets 0)."""

    def __init__(self, model: nn.Module, pad_token_id: int, sep_token_id: int | None):
        super().__init__()
        self.model = model
        self.pad_token_id = int(pad_token_id)
        self.sep_token_id = None if sep_token_id is None else int(sep_token_id)

    def forward(self, input_ids):
        mask = input_ids != self.pad_token_id
        kw = {}
        if self.sep_token_id is not None:
            sep = (input_ids == self.sep_token_id).long()
            kw["token_type_ids"] = (((sep.cumsum(1) - sep) >= 1) & mask).long()
        return self.model(input_ids=input_ids, attention_mask=mask.long(), **kw).logits


_TF_SKIP = ("adam_m", "adam_v", "global_step", "beta1_power", "beta2_power")


def bert_tf_to_hf(variables: dict) -> dict[str, torch.Tensor]:
    """Google-BERT TensorFlow variable names/arrays (``run_classifier.py`` checkpoints) -> the
    ``state_dict`` of a HF ``BertForSequenceClassification`` (dense kernels transposed; the
    classifier's ``output_weights`` are already [labels, hidden])."""
    out = {}
    for name, arr in variables.items():
        if any(s in name for s in _TF_SKIP) or name.startswith("cls/"):
            continue
        a = torch.as_tensor(np.asarray(arr))
        if name == "output_weights":
            out["classifier.weight"] = a
            continue
        if name == "output_bias":
            out["classifier.bias"] = a
            continue
        if not name.startswith("bert/"):
            raise ValueError(f"unexpected TF variable {name!r} in a BERT classifier checkpoint")
        parts = name.split("/")
        leaf = parts[-1]
        mod = []
        for p in parts[:-1]:
            mod.append(p.replace("layer_", "layer.") if p.startswith("layer_") else p)
        key = ".".join(mod)
        if leaf == "kernel":
            out[key + ".weight"] = a.t().contiguous()
        elif leaf in ("gamma", "beta"):
            out[key + (".weight" if leaf == "gamma" else ".bias")] = a
        elif leaf == "bias":
            out[key + ".bias"] = a
        elif key.startswith("bert.embeddings") and leaf.endswith("_embeddings"):
            out[f"{key}.{leaf}.weight"] = a
        else:
            raise ValueError(f"cannot map TF variable {name!r}")
    return out


def _read_tf_checkpoint(path) -> dict:
    try:
        import tensorflow as tf  # noqa: F401  (optional, only for the one-off conversion)
    except ImportError as e:
        raise ImportError(
            f"{path} is a TensorFlow checkpoint (BERTs of a feather, Zenodo 4110593). Converting it once to a "
            "HF folder needs TensorFlow: `pip install tensorflow-cpu`, then rerun (the HF copy is written next to "
            "it under hf/), or convert on another machine with repro.models.checkpoints.bert.convert_bert_tf_checkpoint "
            "and copy $REPRO_DATA/berts_of_a_feather/hf/ here.") from e
    reader = tf.train.load_checkpoint(str(path))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


def convert_bert_tf_checkpoint(ckpt, out_dir, bert_config, read_fn: Callable | None = None,
                               labels=BERT_MNLI_LABELS) -> Path:
    """Write a HF ``BertForSequenceClassification`` folder (config.json + weights) from a Google-BERT
    TF checkpoint ``ckpt`` (folder or prefix) and its ``bert_config.json``; ``read_fn(ckpt) -> {name:
    array}`` defaults to TensorFlow's checkpoint reader."""
    from transformers import BertConfig, BertForSequenceClassification

    gcfg = json.loads(Path(bert_config).read_text())
    conf = BertConfig(**gcfg, num_labels=len(labels), id2label=dict(enumerate(labels)),
                      label2id={n: i for i, n in enumerate(labels)})
    model = BertForSequenceClassification(conf)
    sd = bert_tf_to_hf((read_fn or _read_tf_checkpoint)(ckpt))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise ValueError(f"{ckpt}: TF->HF conversion left missing {missing[:5]} / unexpected {unexpected[:5]} keys")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    return out_dir
