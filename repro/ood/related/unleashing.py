"""Unleashing Mask (Zhu et al., ICML 2023, "Unleashing Mask: Explore the Intrinsic
Out-of-Distribution Detection Capability"; ``reference/related/unleashing_mask.txt``).

Two parts:

1. **The observation** (Sec. 3.1, Fig. 1): along training, an intermediate checkpoint detects OOD
   better (lower Energy FPR95) than the final, well-trained one; the paper attributes the late
   degradation to memorising atypical ID samples. :func:`train_with_checkpoints` trains with the
   ordinary loop and snapshots the weights at every ``every``-th epoch end (through the optimizer
   hook of :func:`repro.train.loop.train_classifier`, so the trajectory is the conventional one).
2. **The method (UM)** (Sec. 3.3, Eq. 3, App. F Algorithm 1): estimate a loss level from the given
   model with a random layer-wise mask (:func:`estimate_loss_constraint`: per layer, a Gaussian
   score per weight, keep the weights whose score is above the layer's quantile), then fine-tune
   the model on ID data with

       L_UM = | l_CE(f) − l̂_CE(m_δ ⊙ f*) | + l̂_CE(m_δ ⊙ f*)        (Eq. 3)

   whose gradient is sign(l_CE − c)·∇l_CE: ordinary descent while the batch loss is above the level
   c, gradient *ascent* (forgetting) when it falls below. :class:`FloodingOptimizer` applies exactly
   that to the closure's gradient (the batch mean loss, as in the paper's mini-batch objective).

Mask ratio convention: the paper's App. G.10 quotes mask ratios of 97-99.6 % with estimated losses
of 0.10 (CIFAR-10) to 1.2 (CIFAR-100); zeroing 97 % of the weights would give chance-level loss, so
the ratio is the share of weights *kept* (as in the hidden-networks ``GetSubnet(scores, k)`` the
authors build on). ``keep`` below is that share.

UMAP (Eq. 4, learning a pruning mask instead of the weights) is not implemented here.
"""
from __future__ import annotations

import copy
import logging
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("repro.ood.related")

__all__ = ["CheckpointRecorder", "FloodingOptimizer", "train_with_checkpoints", "random_layer_masks",
           "masked_loss", "estimate_loss_constraint", "unleashing_mask_finetune", "maskable_weights"]


class _WrappedOptimizer:
    """The minimal optimizer surface :func:`repro.train.loop.train_classifier` uses (``param_groups``
    for the LR schedule, ``zero_grad`` in the closure, ``step(closure)``), around a base optimizer."""

    def __init__(self, base: torch.optim.Optimizer):
        if not isinstance(base, torch.optim.Optimizer):
            raise TypeError(f"expected a constructed torch.optim.Optimizer, got {type(base).__name__}")
        self.base = base

    @property
    def param_groups(self):
        return self.base.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return self.base.state_dict()


class CheckpointRecorder(_WrappedOptimizer):
    """Steps the base optimizer unchanged and copies the model's weights after every
    ``every``-th epoch (``steps_per_epoch`` optimizer steps per epoch)."""

    def __init__(self, base, model: nn.Module, steps_per_epoch: int, every: int = 1):
        super().__init__(base)
        if steps_per_epoch < 1 or every < 1:
            raise ValueError(f"need steps_per_epoch >= 1 and every >= 1, got {steps_per_epoch}, {every}")
        self.model, self.steps_per_epoch, self.every = model, int(steps_per_epoch), int(every)
        self.steps = 0
        self.checkpoints: list[tuple[int, dict]] = []

    def step(self, closure):
        loss = closure()
        self.base.step()
        self.steps += 1
        if self.steps % self.steps_per_epoch == 0:
            epoch = self.steps // self.steps_per_epoch
            if epoch % self.every == 0:
                self.checkpoints.append((epoch, {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}))
        return loss


class FloodingOptimizer(_WrappedOptimizer):
    """Gradient of Eq. 3, |l − c| + c: keep the closure's gradient when the batch loss l ≥ c,
    negate it (gradient ascent) when l < c; then step the base optimizer."""

    def __init__(self, base, level: float):
        super().__init__(base)
        if not np.isfinite(level) or level < 0:
            raise ValueError(f"the loss level c must be a finite non-negative number, got {level}")
        self.level = float(level)
        self.ascent_steps = 0
        self.steps = 0

    def step(self, closure):
        loss = closure()
        if float(loss.detach()) < self.level:
            self.ascent_steps += 1
            for g in self.base.param_groups:
                for p in g["params"]:
                    if p.grad is not None:
                        p.grad.neg_()
        self.base.step()
        self.steps += 1
        return loss


def train_with_checkpoints(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, every: int = 1, seed: int = 0,
                           device=None, progress: bool = False, **recipe) -> dict:
    """Train ``model`` in place with :func:`repro.train.loop.train_classifier` (``recipe``: epochs, lr,
    optimizer, ...) and return ``{"history", "checkpoints": [(epoch, state_dict), ...]}`` (epochs
    counted from 1; the last entry is the final model)."""
    import math

    from repro.train.loop import train_classifier

    steps = max(1, math.ceil(len(x) / int(recipe.get("batch_size", 128))))
    holder = {}

    def make(m, base):
        holder["rec"] = CheckpointRecorder(base, m, steps, every)
        return holder["rec"]

    hist = train_classifier(model, x, y, seed=seed, device=device, progress=progress, make_optimizer=make,
                            desc="um-trajectory", **recipe)["history"]
    ckpts = holder["rec"].checkpoints
    if not ckpts or ckpts[-1][0] != recipe["epochs"]:
        ckpts.append((int(recipe["epochs"]), {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}))
    return {"history": hist, "checkpoints": ckpts}


def maskable_weights(model: nn.Module) -> list[str]:
    """Names of the weights the layer-wise mask acts on: every Conv/Linear weight ("a randomly
    initialized layer-wise mask which applied to all layers", Sec. 3.2; hidden-networks masks
    conv and linear weights)."""
    names = [f"{n}.weight" if n else "weight" for n, m in model.named_modules()
             if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and getattr(m, "weight", None) is not None]
    if not names:
        raise ValueError(f"{type(model).__name__} has no Conv/Linear weights to mask")
    return names


def random_layer_masks(model: nn.Module, keep: float, seed: int = 0) -> dict:
    """App. F: a Gaussian score per weight; per layer, keep the weights whose score exceeds the
    layer's (1 − keep)-quantile. Returns ``{weight name: bool tensor}`` (True = kept)."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep (the share of weights the mask keeps, e.g. 0.975) must lie in (0, 1], got {keep}")
    g = torch.Generator().manual_seed(int(seed))
    params = dict(model.named_parameters())
    out = {}
    for name in maskable_weights(model):
        w = params[name]
        s = torch.randn(w.shape, generator=g)
        k = int(round((1 - keep) * s.numel()))  # number of weights removed in this layer
        m = torch.ones(s.numel(), dtype=torch.bool)
        if k > 0:
            m[torch.argsort(s.flatten())[:k]] = False
        out[name] = m.view(w.shape)
    return out


@torch.no_grad()
def masked_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, masks: dict, batch_size: int = 512,
                device=None) -> float:
    """Mean cross-entropy of the masked model m ⊙ f on (x, y), without modifying ``model``."""
    from torch.func import functional_call

    from repro.core.config import device as pick_device
    from repro.models import preprocess

    dev = pick_device("auto") if device is None else torch.device(device)
    model.to(dev).eval()
    params = {k: (v * masks[k].to(dev)) if k in masks else v for k, v in model.named_parameters()}
    params.update(dict(model.named_buffers()))
    tot, n = 0.0, 0
    for i in range(0, len(x), batch_size):
        out = functional_call(model, params, (preprocess(x[i:i + batch_size].to(dev)),))
        tot += float(F.cross_entropy(out.float(), y[i:i + batch_size].to(dev), reduction="sum"))
        n += len(out)
    return tot / n


def estimate_loss_constraint(model: nn.Module, x: torch.Tensor, y: torch.Tensor, keep: float, seed: int = 0,
                             n_masks: int = 1, device=None) -> float:
    """l̂_CE(m_δ ⊙ f*) of Eq. 3: the training loss of the given model under random layer-wise
    masks keeping ``keep`` of each layer's weights, averaged over ``n_masks`` masks."""
    vals = [masked_loss(model, x, y, random_layer_masks(model, keep, seed=seed + i), device=device)
            for i in range(int(n_masks))]
    return float(np.mean(vals))


def unleashing_mask_finetune(model: nn.Module, x: torch.Tensor, y: torch.Tensor, level: float, *, epochs: int,
                             lr: float, optimizer: str = "sgd", weight_decay: float = 5e-4, batch_size: int = 128,
                             augment: bool = False, seed: int = 0, device=None, progress: bool = False):
    """Fine-tune a copy of ``model`` with the UM objective (Eq. 3) at loss level ``level``.

    Returns ``(model_um, info)`` with ``info = {"history", "ascent_share"}`` (the share of steps
    that were gradient ascent). The input model is left untouched.
    """
    from repro.train.loop import train_classifier

    m = copy.deepcopy(model)
    holder = {}

    def make(mod, base):
        holder["opt"] = FloodingOptimizer(base, level)
        return holder["opt"]

    hist = train_classifier(m, x, y, epochs=int(epochs), lr=float(lr), optimizer=optimizer, weight_decay=weight_decay,
                            batch_size=batch_size, augment=augment, schedule="constant", make_optimizer=make,
                            seed=seed, device=device, progress=progress, desc="unleashing-mask")["history"]
    opt = holder["opt"]
    return m.eval(), {"history": hist, "ascent_share": opt.ascent_steps / max(opt.steps, 1)}
