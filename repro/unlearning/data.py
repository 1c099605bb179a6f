"""Tokenised forget/retain sets for the unlearning trainer.

A QA pair becomes ``prompt ids + answer ids (+ eos)`` with ``labels = -100`` on the prompt and on
padding, so every loss sums over *answer* tokens only (Eq. 4-5 sum over t = 1..|y|). The forget set
also carries the same prompts followed by the fixed target string (Eq. 4 teacher-forces on
y^target_{<t}); DPO uses the pair (target = preferred, true answer = rejected).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from repro.models.lm import check_tokenizer


@dataclass
class Encoded:
    """Right-padded ids/mask/labels of a whole set; :meth:`take` slices a batch and trims padding."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def take(self, idx: torch.Tensor, device=None) -> "Encoded":
        m = self.attention_mask[idx]
        T = int(m.sum(1).max())
        out = Encoded(self.input_ids[idx, :T], m[:, :T], self.labels[idx, :T])
        return out.to(device) if device is not None else out

    def to(self, device) -> "Encoded":
        return Encoded(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))

    def as_kwargs(self) -> dict:
        return dict(input_ids=self.input_ids, attention_mask=self.attention_mask)


def resolve_target(tokenizer, target: str) -> str:
    """The target with the symbolic end-of-sequence marker ``<eos>`` ('No idea<eos>', Figure 14's
    'No idea <EOT>') replaced by the tokenizer's own eos token (``<|eot_id|>``-style for Llama-3)."""
    from repro.data.facts import EOS

    if EOS in target and tokenizer.eos_token and tokenizer.eos_token != EOS:
        return target.replace(EOS, tokenizer.eos_token)
    return target


def target_ids(tokenizer, target: str) -> list[int]:
    """Token ids of the fixed forget target (e.g. 'No idea'); an empty tokenisation is an error."""
    ids = tokenizer(resolve_target(tokenizer, target), add_special_tokens=False)["input_ids"]
    if len(ids) == 0:
        raise ValueError(
            f"the target string {target!r} tokenizes to nothing with this tokenizer, so the JensUn forget "
            "term (Eq. 4) would be an empty sum; pick a target with at least one token (e.g. 'No idea', '#', ',')")
    return list(ids)


def encode_qa(tokenizer, prompts: Sequence[str], answers: Sequence[str], add_eos: bool = True) -> Encoded:
    """Tokenise ``prompt + ' ' + answer (+ eos)`` with labels on the answer tokens only."""
    check_tokenizer(tokenizer)
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers; they must pair up")
    if len(prompts) == 0:
        raise ValueError("empty QA set: unlearning needs at least one forget (and retain) example")
    rows, labs = [], []
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    for p, a in zip(prompts, answers):
        # Llama-3/Phi-3 are trained with a leading BOS; the tiny word-level tokenizer has none
        pi = bos + tokenizer(p, add_special_tokens=False)["input_ids"]
        ai = tokenizer(" " + a if not a.startswith(" ") else a, add_special_tokens=False)["input_ids"]
        if add_eos:
            ai = ai + [tokenizer.eos_token_id]
        if not ai:
            raise ValueError(f"answer {a!r} tokenizes to nothing")
        rows.append(pi + ai)
        labs.append([-100] * len(pi) + ai)
    T = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    lab = torch.full((len(rows), T), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, (r, l) in enumerate(zip(rows, labs)):
        ids[i, :len(r)] = torch.tensor(r)
        lab[i, :len(l)] = torch.tensor(l)
        mask[i, :len(r)] = 1
    return Encoded(ids, mask, lab)


@dataclass
class UnlearnSets:
    """Everything a loss may need: forget QA (true answers), forget prompts + target, retain QA."""

    forget: Encoded
    forget_target: Encoded
    retain: Encoded
    target: str
    target_ids: list[int]


def make_unlearn_sets(tokenizer, forget: Sequence[tuple[str, str]], retain: Sequence[tuple[str, str]],
                      target: str = "No idea") -> UnlearnSets:
    """Build the tokenised sets from ``(prompt, answer)`` pairs. Raises on an empty forget or
    retain set and on a target that tokenizes to nothing."""
    if len(forget) == 0:
        raise ValueError("the forget set is empty; pass at least one (prompt, answer) pair to unlearn")
    if len(retain) == 0:
        raise ValueError("the retain set is empty; every loss here except GA needs retain data "
                         "(pass retain pairs, or use GA with lambda_r=0 and a dummy retain pair)")
    t_ids = target_ids(tokenizer, target)
    target = resolve_target(tokenizer, target)
    fp, fa = zip(*forget)
    rp, ra = zip(*retain)
    return UnlearnSets(
        forget=encode_qa(tokenizer, fp, fa),
        # no extra eos after the target: Eq. 4 sums over the target's own tokens ('No idea<eos>'
        # is the variant that includes it, Figure 14)
        forget_target=encode_qa(tokenizer, fp, [target] * len(fp), add_eos=False),
        retain=encode_qa(tokenizer, rp, ra),
        target=target, target_ids=t_ids)
