"""The shared unlearning step and the relearning attack (dissertation Sec. 8.5, B.2, B.5).

``unlearn`` runs AdamW (weight decay 0.01) with linear warmup and cosine decay (B.2: "cosine
schedule peaking at 10 steps") on batches that pair a forget batch with a random retain batch
(the released code anchors an epoch on the forget set and draws retain samples at random,
the ch. 7 implementation notes). The frozen reference model is a separate deep copy: it shares no parameter, buffer or
optimizer state with the trained model.

``relearn`` is the benign relearning attack: cross-entropy on disjoint QA pairs (B.5: 600 steps,
effective batch 16, LR 1e-5 at 3B scale).

Low-precision models (bf16/fp16 weights, e.g. the ``full`` profile's Llama in bf16) are optimised
through fp32 master weights (:class:`MasterWeightOptimizer`, ``master_weights="auto"``): AdamW's
step at lr ~1e-5 is ~1e-5 per weight, below half a bf16 ulp for any weight above ~0.004 in
magnitude, so applied directly to bf16 weights most updates round away and the model barely moves.
Mixed-precision training (as the released code's HF Trainer / DeepSpeed setups do) keeps fp32
weights and optimizer state for exactly this reason.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable, Sequence

import torch

from repro.unlearning.data import Encoded, UnlearnSets, encode_qa
from repro.unlearning.losses import JensUn, UnlearningLoss, nll


class MasterWeightOptimizer(torch.optim.Optimizer):
    """``optimizer_cls`` (default AdamW) stepping fp32 copies of low-precision parameters.

    Its ``param_groups`` hold the model's own (bf16) parameters, so LR schedulers, ``zero_grad``
    and :class:`repro.sam.SAM` (which checks that the base optimizer owns the perturbed parameters)
    work unchanged; ``step`` copies the gradients to the fp32 masters, steps them with the current
    group hyperparameters and writes the rounded masters back into the model.
    """

    def __init__(self, params, optimizer_cls=torch.optim.AdamW, **kw):
        params = [p for p in params if p.requires_grad]
        if not params:
            raise ValueError("MasterWeightOptimizer got no trainable parameters")
        super().__init__(params, dict(kw))
        self.master = [p.detach().float().clone() for p in params]
        self.inner = optimizer_cls(self.master, **kw)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group, inner = self.param_groups[0], self.inner.param_groups[0]
        for k, v in group.items():   # schedulers change the outer group: forward lr etc.
            if k != "params" and k in inner:
                inner[k] = v
        for p, m in zip(group["params"], self.master):
            m.grad = None if p.grad is None else p.grad.detach().float()
        self.inner.step()
        for p, m in zip(group["params"], self.master):
            p.copy_(m)
        return loss


def make_adamw(model: torch.nn.Module, lr: float, weight_decay: float, master_weights="auto") -> torch.optim.Optimizer:
    """AdamW, on fp32 master weights when the model's trainable weights are bf16/fp16 (``"auto"``),
    always (``True``) or never (``False``, the plain AdamW of earlier versions)."""
    if master_weights not in ("auto", True, False):
        raise ValueError(f"master_weights must be 'auto', True or False, got {master_weights!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    low = any(p.dtype in (torch.bfloat16, torch.float16) for p in params)
    if master_weights is True or (master_weights == "auto" and low):
        return MasterWeightOptimizer(params, torch.optim.AdamW, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def _schedule(opt, steps: int, warmup: int, kind: str):
    if kind not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {kind!r}")

    def f(s: int) -> float:
        w = min(1.0, (s + 1) / max(1, warmup))
        if kind == "constant":
            return w
        return w * 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(1, steps)))
    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def unlearn(model: torch.nn.Module, loss: UnlearningLoss, sets: UnlearnSets, *, steps: int, lr: float,
            batch_size: int = 8, weight_decay: float = 0.01, warmup: int = 10, schedule: str = "cosine",
            seed: int = 0, ref: torch.nn.Module | None = None, device=None,
            callback: Callable[[int, torch.nn.Module], dict] | None = None, callback_every: int = 0,
            checkpoints: Sequence[int] = (), master_weights="auto") -> dict:
    """Unlearn ``model`` in place with ``loss`` for ``steps`` optimiser steps.

    Returns ``{"history": [per-step logs], "evals": [callback results], "checkpoints": {step: state_dict},
    "seconds": float, "tokens": int}``. ``callback(step, model)`` runs every ``callback_every``
    steps (and at step 0 and the end) for training-dynamics plots (Figure 16). ``master_weights``:
    see :func:`make_adamw` (fp32 masters for bf16/fp16 models by default)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device = device or next(model.parameters()).device
    model.to(device).train()
    if loss.needs_ref and ref is None:
        ref = frozen_copy(model)
    if ref is not None:
        ref.to(device).eval()
    if isinstance(loss, JensUn):
        loss.set_target(sets.target_ids)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    base = make_adamw(model, lr, weight_decay, master_weights)
    opt = base
    if getattr(loss, "uses_sam", False):
        from repro.sam import SAM  # chapter 6's optimizer; NPO+SAM is its only user here
        opt = SAM(model, base, rho=loss.rho, variant="sam", params="all")
    sched = _schedule(base, steps, warmup, schedule)
    nf, nr = len(sets.forget), len(sets.retain)
    perm = torch.randperm(nf, generator=g)
    pos = 0
    history, evals, ckpts = [], [], {}
    tokens = 0
    t0 = time.perf_counter()
    if callback is not None:
        evals.append({"step": 0, **callback(0, model)})
    for step in range(1, steps + 1):
        if pos + batch_size > nf:
            perm = torch.randperm(nf, generator=g)
            pos = 0
        fi = perm[pos:pos + min(batch_size, nf)]
        pos += batch_size
        ri = torch.randint(0, nr, (len(fi),), generator=g)
        fb, ftb, rb = sets.forget.take(fi, device), sets.forget_target.take(fi, device), sets.retain.take(ri, device)
        tokens += int(fb.attention_mask.sum() + rb.attention_mask.sum())

        first_logs: list[dict] = []

        def closure():
            opt.zero_grad(set_to_none=True)
            total, logs = loss(model, ref, fb, ftb, rb)
            total.backward()
            first_logs.append(logs)   # SAM calls twice; log the unperturbed pass
            return total

        if opt is base:
            closure()
            base.step()
        else:
            opt.step(closure)
        sched.step()
        logs = dict(first_logs[0])
        logs["step"] = step
        logs["lr"] = sched.get_last_lr()[0]
        history.append(logs)
        if not all(math.isfinite(v) for k, v in logs.items() if isinstance(v, float)):
            raise FloatingPointError(f"{loss.name}: non-finite loss at step {step} ({logs}); lower the learning rate")
        if step in set(checkpoints):
            ckpts[step] = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
        if callback is not None and callback_every and (step % callback_every == 0 or step == steps):
            model.eval()
            evals.append({"step": step, **callback(step, model)})
            model.train()
    model.eval()
    return {"history": history, "evals": evals, "checkpoints": ckpts,
            "seconds": time.perf_counter() - t0, "tokens": tokens}


def relearn(model: torch.nn.Module, tokenizer, qa: Sequence[tuple[str, str]], *, steps: int, lr: float,
            batch_size: int = 16, seed: int = 0, device=None, warmup: int = 10, master_weights="auto") -> list[float]:
    """Benign relearning (B.5, Sec. 8.5 (App. B.5)): cross-entropy on answer tokens of disjoint QA pairs with
    AdamW, linear warmup then constant LR. Returns the per-step loss."""
    if len(qa) == 0:
        raise ValueError("the relearning set is empty")
    device = device or next(model.parameters()).device
    enc: Encoded = encode_qa(tokenizer, [p for p, _ in qa], [a for _, a in qa])
    model.to(device).train()
    g = torch.Generator().manual_seed(seed)
    opt = make_adamw(model, lr, 0.01, master_weights)
    sched = _schedule(opt, steps, warmup, "constant")
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(enc), (min(batch_size, len(enc)),), generator=g)
        b = enc.take(idx, device)
        opt.zero_grad(set_to_none=True)
        l = nll(model, b)
        l.backward()
        opt.step()
        sched.step()
        losses.append(float(l.detach()))
    model.eval()
    return losses
