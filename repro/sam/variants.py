"""Perturbation models of SAM and ASAM (Sec. 6.3, Eq. 6.2-6.4; Table 9 of App. C).

A variant fixes the diagonal operator T_w and the norm p of the ascent constraint
``max_{||T_w^{-1} eps||_p <= rho} L(w + eps)``. Its single-step solutions (paper Eq. 5, Sec. 8.4 (Sec. 3.2)) are

    p = 2:    eps = rho * T_w^2 grad / ||T_w grad||_2
    p = inf:  eps = rho * T_w sign(grad)

With T_w = I and p = 2 this is plain SAM (Foret et al.; Sec. 2.3). SAM-ON multiplies T_w by the
0/1 indicator of the normalization parameters (Eq. 6.4), and the ℓ2 norm in the denominator is
then taken over the perturbed set only, so the whole budget rho goes to γ, β (App. A.3).

``uses_eta`` / ``bias_option`` say whether a variant reads η and ``normalize_bias``: passing either to
a variant that ignores it is a ``ValueError`` naming the parameter (:class:`repro.sam.SAM`), never a
silently inert setting.

Every variant returns the *per-element* T_w for one parameter tensor; :mod:`repro.sam.optimizer`
combines them with the selection mask and computes eps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

import torch

from repro.core.registry import Registry

__all__ = ["Variant", "VARIANTS", "register", "get", "list_variants"]

ScaleFn = Callable[[torch.Tensor, torch.Tensor, bool, float, bool], Union[torch.Tensor, float]]


@dataclass(frozen=True)
class Variant:
    """A perturbation model: ``scale(w, g, is_bias, eta, normalize_bias) -> T_w`` and the norm ``p``.

    ``default_eta`` is the η of Table 9; ``normalize_bias`` the default treatment of biases
    (ASAM as used in the paper normalizes biases too; the original ASAM does not, App. C).
    """

    name: str
    p: float
    scale: ScaleFn
    default_eta: float = 0.0
    normalize_bias: bool = True
    description: str = ""
    uses_eta: bool = True
    bias_option: bool = True

    def T(self, w: torch.Tensor, g: torch.Tensor, is_bias: bool, eta: float, normalize_bias: bool):
        return self.scale(w, g, is_bias, eta, normalize_bias)


#: name -> :class:`Variant` (a value registry: ``VARIANTS.get(name)`` returns the Variant)
VARIANTS = Registry("SAM variant")


def register(name: str, *, p: float, default_eta: float = 0.0, normalize_bias: bool = True, description: str = "",
             uses_eta: bool = True, bias_option: bool = True):
    """Decorator registering a T_w function under ``name`` (timm-style registry)."""
    if p not in (2, math.inf):
        raise ValueError(f"p must be 2 or math.inf, got {p!r}")

    def deco(fn: ScaleFn) -> ScaleFn:
        if name in VARIANTS:
            raise ValueError(f"SAM variant {name!r} registered twice")
        VARIANTS.register(name, Variant(name, p, fn, default_eta, normalize_bias,
                                        description or (fn.__doc__ or "").strip(), uses_eta, bias_option))
        return fn

    return deco


def get(name: Union[str, Variant]) -> Variant:
    if isinstance(name, Variant):
        return name
    return VARIANTS.get(name)


def list_variants() -> list[str]:
    return VARIANTS.list()


# ----------------------------------------------------------------------------- Table 9
@register("sam", p=2, description="SAM (Foret et al.): T_w = I, p = 2 (Table 9 row 1)", uses_eta=False,
          bias_option=False)
def _sam(w, g, is_bias, eta, normalize_bias):
    return 1.0


@register("elementwise_l2", p=2, default_eta=0.0, normalize_bias=True,
          description="ASAM elementwise ℓ2: T_w = |w| + η, η = 0, biases normalized (Table 9)")
def _el_l2(w, g, is_bias, eta, normalize_bias):
    if is_bias and not normalize_bias:
        return 1.0
    return w.detach().abs() + eta


@register("elementwise_l2_orig", p=2, default_eta=0.01, normalize_bias=False,
          description="original ASAM (Kwon et al.): T_w = |w| + η for weights, 1 for biases, η = 0.01 (App. C)")
def _el_l2_orig(w, g, is_bias, eta, normalize_bias):
    # Bias operator: 1 (the App. C text and the SAM-ON code), not 1 + η (the Table 9 entry).
    if is_bias and not normalize_bias:
        return 1.0
    return w.detach().abs() + eta


@register("elementwise_linf", p=math.inf, default_eta=0.0, normalize_bias=True,
          description="ASAM elementwise ℓ∞: T_w = |w|, p = ∞, eps = ρ T sign(g) (Table 9)")
def _el_linf(w, g, is_bias, eta, normalize_bias):
    if is_bias and not normalize_bias:
        return 1.0
    return w.detach().abs() + eta


@register("layerwise_l2", p=2, default_eta=0.0, normalize_bias=True,
          description="layerwise ℓ2: T_w = ||W_tensor||_2 per parameter tensor (App. C; SAM-ON code: norm(p)*ones + η)")
def _layer_l2(w, g, is_bias, eta, normalize_bias):
    if is_bias and not normalize_bias:
        return 1.0
    return float(w.detach().norm()) + eta


@register("fisher", p=2, default_eta=1.0, normalize_bias=True, bias_option=False,
          description="Fisher-SAM (Kim et al. 2022): T_w = (1 + η g²)^{-1/2}, η = 1 (App. C, Table 9)")
def _fisher(w, g, is_bias, eta, normalize_bias):
    return torch.rsqrt(1.0 + eta * g.detach().float().pow(2)).to(g.dtype)
