"""Flat-parameter view of a model for sharpness computations without model copies.

All perturbed parameters live in one flat vector; :meth:`FlatModel.loss` maps a flat weight vector
back to named views and calls ``torch.func.functional_call``, so APGD and the noise sampler never
deep-copy a model or a ``state_dict`` (design note "no state_dict deep copies inside the APGD
loop").  All ``model.parameters()`` are perturbed, biases, normalization affine parameters and the
head included, as in the released code (notes §1.8); buffers (BN running statistics) are not.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

LOGIT_NORMS = ("std", "l2")
DEFAULT_LOGIT_NORM = "std"


def logit_normalize(logits: torch.Tensor, convention: str = DEFAULT_LOGIT_NORM, eps: float = 1e-10) -> torch.Tensor:
    """Logit normalization, chapter Eq. 5.2 / paper Eq. 5 (S:3459).

    ``"std"`` (default, the dissertation's Eq. 5): centred logits divided by their standard
    deviation over the K classes.  ``"l2"`` (the released code's ``LogitNormalizationWrapper``,
    notes D2): centred logits divided by their ℓ2 norm, i.e. Eq. 5 divided by √K.
    Centring does not change the cross-entropy; it is done in both to match the code.
    """
    if convention not in LOGIT_NORMS:
        raise ValueError(f"logit normalization convention must be one of {LOGIT_NORMS}, got {convention!r}")
    z = logits - logits.mean(-1, keepdim=True)
    if convention == "std":
        scale = z.pow(2).mean(-1, keepdim=True).sqrt()
    else:
        scale = z.norm(dim=-1, keepdim=True)
    return z / scale.clamp_min(eps)


@contextmanager
def eval_mode(model: nn.Module):
    """Sharpness is evaluated with the model in eval mode (released code, notes §1.8): BN uses its
    running statistics and dropout is off.  A model in train mode is switched (with a warning when
    it has BatchNorm, because then the result depends on the mode) and restored afterwards."""
    was_training = model.training
    if was_training:
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            warnings.warn(
                "model is in train mode and has BatchNorm; sharpness is measured in eval mode "
                "(running statistics), as in the paper's code. Call model.eval() to silence this.",
                stacklevel=3,
            )
        model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


class FlatModel:
    """A model's parameters as one flat vector ``w0`` with a functional loss ``loss(w, x, y)``."""

    def __init__(self, model: nn.Module, logit_norm: str | None = None):
        self.model = model
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("model has no trainable parameters to perturb")
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.w0 = torch.cat([p.detach().reshape(-1) for _, p in named]).clone()
        self.buffers = {n: b for n, b in model.named_buffers()}
        self.logit_norm = logit_norm

    def params(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, torch.split(w, self.numels), self.shapes)}

    def logits(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out = functional_call(self.model, (self.params(w), self.buffers), (x,))
        if self.logit_norm is not None:
            out = logit_normalize(out, self.logit_norm)
        return out

    def loss(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Batch-mean cross-entropy L_S(w) (notes §1.1)."""
        return F.cross_entropy(self.logits(w, x), y)

    def loss_and_grad(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
        w = w.detach().requires_grad_(True)
        L = self.loss(w, x, y)
        (g,) = torch.autograd.grad(L, w)
        return L.detach(), g
