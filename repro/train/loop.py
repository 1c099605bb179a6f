"""One supervised training loop for every vision experiment of the book.

The loop always calls ``opt.step(closure)``, where ``closure()`` zeroes the gradients, runs a
forward and backward pass and returns the loss. Plain SGD evaluates the closure once; SAM and
its variants (:mod:`repro.sam`) evaluate it twice (ascent, then descent at the perturbed point).
``make_optimizer(model, base_optimizer)`` is the hook through which SAM wraps the base optimizer.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from repro.core.config import device as pick_device
from repro.models import preprocess


def _check_xy(x: torch.Tensor, y: torch.Tensor, num_classes: Optional[int] = None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be a uint8/float tensor of shape [N, 3, H, W], got "
                         f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.dtype != torch.int64:
        raise ValueError(f"y must be an int64 tensor of shape [N], got {getattr(y, 'dtype', type(y))} "
                         f"{tuple(getattr(y, 'shape', ()))}")
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} images vs {len(y)} labels")
    if len(x) == 0:
        raise ValueError("empty training set: x has no images")
    if num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{int(y.min())}, {int(y.max())}]")


def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with ``pad`` px zero padding + horizontal flip (the CIFAR 'basic' augmentation)."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    # Gather crops with one advanced-indexing op instead of a per-image Python loop.
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).to(x.device)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).to(x.device)
    idx_n = torch.arange(n, device=x.device).view(n, 1, 1)
    out = xp.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    out = torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)
    return out.contiguous()


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


SCHEDULES = ("cosine", "constant", "cyclic")


def cyclic_lr(step: int, total: int, lr: float, peak: float = 0.4) -> float:
    """Triangular schedule of the chapter-5 zoo (App. H): 0 -> ``lr`` linearly over the first
    ``peak`` fraction of ``total`` steps, then linearly back to 0 (released code:
    ``np.interp(t, [0, 2/5 T, T], [0, lr, 0])``); evaluated at the middle of the step so the first
    step does not use lr = 0."""
    t = (step + 0.5) / max(1, total)
    return lr * (t / peak if t < peak else max(0.0, (1 - t) / (1 - peak)))


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    optimizer: str = "sgd",
    schedule: str = "cosine",
    warmup_epochs: float = 0.0,
    augment: bool = False,
    mixup_alpha: float = 0.0,
    label_smoothing: float = 0.0,
    make_optimizer: Optional[Callable[[nn.Module, torch.optim.Optimizer], torch.optim.Optimizer]] = None,
    seed: int = 0,
    device=None,
    progress: bool = True,
    desc: str = "train",
) -> dict:
    """Train ``model`` in place on uint8 images ``x`` and labels ``y``; returns ``{"history": [...]}``.

    ``optimizer`` is ``"sgd"`` (Nesterov-free momentum SGD) or ``"adamw"``; ``schedule`` is
    ``"cosine"``, ``"constant"`` (per step, with optional linear warm-up) or ``"cyclic"`` (the
    chapter-5 zoo schedule of App. H (paper 8.3): linear warm-up over the first 40 % of the steps, then
    linear decay to 0, as ``lr_schedule=cyclic`` of the released code). Augmentation, mixup and
    label smoothing are the knobs the chapter 3/5 zoos sample over.
    """
    _check_xy(x, y)
    if epochs < 1 or lr <= 0 or batch_size < 1:
        raise ValueError(f"need epochs >= 1, lr > 0, batch_size >= 1; got {epochs}, {lr}, {batch_size}")
    if optimizer not in ("sgd", "adamw"):
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    dev = pick_device("auto") if device is None else torch.device(device)
    model.to(dev).train()
    num_classes = model.get_classifier().out_features if hasattr(model, "get_classifier") else None
    if num_classes:
        _check_xy(x, y, num_classes)
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    if optimizer == "sgd":
        base = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        base = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    opt = make_optimizer(model, base) if make_optimizer is not None else base
    n = len(x)
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total = epochs * steps_per_epoch
    warm = int(warmup_epochs * steps_per_epoch)

    def lr_at(step: int) -> float:
        if schedule == "cyclic":
            return cyclic_lr(step, total, lr)
        if step < warm:
            return lr * (step + 1) / warm
        if schedule == "constant":
            return lr
        t = (step - warm) / max(1, total - warm)
        return 0.5 * lr * (1 + math.cos(math.pi * t))

    history = []
    it = range(epochs)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, leave=False)
    step = 0
    for ep in it:
        perm = torch.randperm(n, generator=gen)
        tot_loss, tot_correct, seen = 0.0, 0, 0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            xb = x[idx]
            if augment:
                xb = augment_batch(xb, gen)
            xb = preprocess(xb.to(dev, non_blocking=True))
            yb = y[idx].to(dev, non_blocking=True)
            if mixup_alpha > 0:
                lam = float(np.random.default_rng(int(seed) * 1_000_003 + step).beta(mixup_alpha, mixup_alpha))
                j = torch.randperm(len(idx), generator=gen).to(dev)
                xb = lam * xb + (1 - lam) * xb[j]
                target = F.one_hot(yb, num_classes or int(y.max()) + 1).float()
                target = lam * target + (1 - lam) * target[j]
            else:
                target = None
            if label_smoothing > 0:
                k = num_classes or int(y.max()) + 1
                t = target if target is not None else F.one_hot(yb, k).float()
                target = t * (1 - label_smoothing) + label_smoothing / k
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            last = {}

            def closure():
                opt.zero_grad(set_to_none=True)
                out = model(xb)
                loss = _soft_ce(out, target) if target is not None else F.cross_entropy(out, yb)
                loss.backward()
                if "out" not in last:  # statistics of the unperturbed pass only
                    last["out"], last["loss"] = out.detach(), loss.detach()
                return loss

            opt.step(closure)
            if not torch.isfinite(last["loss"]):
                raise FloatingPointError(
                    f"non-finite training loss at epoch {ep}, step {step} (lr={lr_at(step):.3g}); lower the learning rate"
                )
            tot_loss += float(last["loss"]) * len(idx)
            tot_correct += int((last["out"].argmax(1) == yb).sum())
            seen += len(idx)
            step += 1
            if bar is not None:
                bar.update(1)
        history.append({"epoch": ep, "loss": tot_loss / seen, "train_acc": tot_correct / seen})
    if bar is not None:
        bar.close()
    model.eval()
    return {"history": history}


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512, device=None) -> torch.Tensor:
    """Logits of ``model`` in eval mode on uint8 images ``x`` (returned on CPU)."""
    dev = pick_device("auto") if device is None else torch.device(device)
    model.to(dev).eval()
    outs = [model(preprocess(x[i:i + batch_size].to(dev))).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512, device=None) -> dict:
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)``."""
    _check_xy(x, y)
    logits = predict_logits(model, x, batch_size, device)
    return {"accuracy": float((logits.argmax(1) == y).float().mean()),
            "loss": float(F.cross_entropy(logits, y))}
