"""Flat-parameter view of a model for sharpness computations without model copies.

All perturbed parameters live in one flat vector.  Two ways to evaluate the loss at a flat weight
vector ``w``, neither of which deep-copies a model or a ``state_dict`` (design note "no state_dict
deep copies inside the APGD loop"):

- :meth:`FlatModel.loss` maps ``w`` back to named views and calls ``torch.func.functional_call``;
  it is pure and works under ``vmap`` (batched noise draws) and for exact Hessians.
- inside ``with flat.bound():`` the model's parameters *are* views of one flat weight buffer and
  their ``.grad`` views of one flat gradient buffer, so :meth:`loss_and_grad` /
  :meth:`loss_value` cost one in-place copy of ``w`` plus the plain ``module(x)`` /
  ``loss.backward()`` -- no per-call reparametrization and no concatenation of per-parameter
  gradients.  This is what keeps worst-case sharpness close to the bare forward+backward passes it
  needs (one forward+backward of the ch5 ResNet, batch 32 at 16 px on CPU: functional_call path
  1.15x, bound path 1.06x the bare module pass, measured once; the whole worst-case evaluation is
  benchmarked in benchmarks/bench_sharpness.py).  The original parameter storage and gradients are
  restored on exit.

All ``model.parameters()`` are perturbed, biases, normalization affine parameters and the head
included, as in the released code (the ch. 5 implementation notes); buffers (BN running statistics) are not.
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
    """Logit normalization, chapter Eq. 5.2 / paper Eq. 5 (Sec. 8.3 (Sec. 3.2)).

    ``"std"`` (default, the dissertation's Eq. 5): centred logits divided by their standard
    deviation over the K classes.  ``"l2"`` (the released code's ``LogitNormalizationWrapper``,
    the ch. 5 implementation notes): centred logits divided by their ℓ2 norm, i.e. Eq. 5 divided by √K.
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
    """Sharpness is evaluated with the model in eval mode (released code, the ch. 5 implementation notes): BN uses its
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
        self._bound = None  # (params, weight buffer, gradient buffer, gradient views) inside bound()

    def params(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, torch.split(w, self.numels), self.shapes)}

    def logits(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out = functional_call(self.model, (self.params(w), self.buffers), (x,))
        if self.logit_norm is not None:
            out = logit_normalize(out, self.logit_norm)
        return out

    def loss(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Batch-mean cross-entropy L_S(w) (the ch. 5 implementation notes)."""
        return F.cross_entropy(self.logits(w, x), y)

    def loss_and_grad(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
        """(L_S(w), ∇_w L_S(w)) as a detached scalar and a fresh flat gradient vector."""
        if self._bound is None:
            w = w.detach().requires_grad_(True)
            L = self.loss(w, x, y)
            (g,) = torch.autograd.grad(L, w)
            return L.detach(), g
        params, wbuf, gbuf, gviews = self._bound
        with torch.no_grad():
            wbuf.copy_(w)
        gbuf.zero_()
        L = F.cross_entropy(self._module_logits(x), y)
        L.backward()
        if any(p.grad is not v for p, v in zip(params, gviews)):
            # autograd replaced a .grad instead of accumulating into our view (it may, e.g. for a
            # gradient of another layout): gather, and put the views back for the next call
            g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
            for p, v in zip(params, gviews):
                p.grad = v
            return L.detach(), g
        return L.detach(), gbuf.clone()

    def loss_value(self, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L_S(w) without a graph (bound path when inside :meth:`bound`)."""
        with torch.no_grad():
            if self._bound is None:
                return self.loss(w, x, y)
            self._bound[1].copy_(w)
            return F.cross_entropy(self._module_logits(x), y)

    def _module_logits(self, x):
        out = self.model(x)
        if self.logit_norm is not None:
            out = logit_normalize(out, self.logit_norm)
        return out

    @contextmanager
    def bound(self):
        """Make the model's perturbed parameters views of one flat weight buffer (initialised to
        ``w0``) and their gradients views of one flat gradient buffer, for fast repeated
        :meth:`loss_and_grad` calls; everything is restored on exit, also on error.

        Falls back to the functional path (a no-op here) when a parameter or buffer is not on
        ``w0``'s device/dtype, since the module would then run on other tensors than ``w``."""
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        tensors = [p for _, p in named] + list(self.buffers.values())
        if (self._bound is not None or [n for n, _ in named] != self.names
                or any(t.device != self.w0.device for t in tensors)
                or any(p.dtype != self.w0.dtype for _, p in named)):
            yield self
            return
        params = [p for _, p in named]
        saved = [(p.data, p.grad) for p in params]
        wbuf = self.w0.detach().clone()
        gbuf = torch.zeros_like(wbuf)
        wviews = [t.view(s) for t, s in zip(torch.split(wbuf, self.numels), self.shapes)]
        gviews = [t.view(s) for t, s in zip(torch.split(gbuf, self.numels), self.shapes)]
        try:
            for p, wv, gv in zip(params, wviews, gviews):
                p.data = wv
                p.grad = gv
            self._bound = (params, wbuf, gbuf, gviews)
            yield self
        finally:
            self._bound = None
            for p, (d, g) in zip(params, saved):
                p.data = d
                p.grad = g
