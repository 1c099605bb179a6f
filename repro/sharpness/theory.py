"""Theory helpers: exact Hessian of a tiny model, BN↔conv rescaling, the Fig. 1 linear model.

- :func:`flat_hessian`: exact Hessian of the batch loss w.r.t. all parameters (for Props. 1-2,
  Eqs. 2-3, S:3419-3425, 3846-3890);
- :func:`asymptotic_avg`, :func:`asymptotic_worst_l2`: leading terms (ρ²/2) tr(H ⊙ |w||wᵀ|)
  (Gaussian; ρ²/6 for uniform) and (ρ²/2) λ_max(H ⊙ |w||w|ᵀ);
- :func:`rescale_bn_next_conv`: the multiplicative symmetry of the invariance lemma (S:3446);
- :func:`linear_model_sharpness`: Fig. 1 (S:3455) — closed-form worst-case ℓ2 sharpness (m = 1,
  radius ρ‖w‖₂, as the authors' notebook, notes §4.7) of a logistic model scaled by α.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .functional import FlatModel


def flat_hessian(model: nn.Module, x, y, logit_norm=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(w0, ∇L, ∇²L) of the batch cross-entropy over the flat parameter vector (eval mode)."""
    model.eval()
    flat = FlatModel(model, logit_norm=logit_norm)
    f = lambda w: flat.loss(w, x, y)  # noqa: E731
    w0 = flat.w0
    g = torch.func.grad(f)(w0)
    H = torch.func.hessian(f)(w0)
    return w0, g, H


def asymptotic_avg(H: torch.Tensor, w: torch.Tensor, rho: float, noise: str = "gaussian") -> float:
    """Prop. 2 / Eq. 2: S_avg ≈ (ρ²/2) tr(H ⊙ |w||w|ᵀ) (Gaussian); variance ρ²/3 for uniform noise."""
    q = float((torch.diagonal(H) * w * w).sum())
    return (rho ** 2 / 2) * q * (1.0 if noise == "gaussian" else 1.0 / 3.0)


def asymptotic_worst_l2(H: torch.Tensor, w: torch.Tensor, rho: float) -> float:
    """Eq. 3 at a critical point: S_max,ℓ2 ≈ (ρ²/2) λ_max(H ⊙ |w||w|ᵀ)."""
    a = w.abs()
    return (rho ** 2 / 2) * float(torch.linalg.eigvalsh(a[:, None] * H * a[None, :])[-1])


def first_order_worst(g: torch.Tensor, w: torch.Tensor, rho: float, norm: str) -> float:
    """Prop. 1 away from critical points: S_max,p ≈ ρ ‖∇L ⊙ |w|‖_q (q = 1 for ℓ∞, 2 for ℓ2)."""
    v = (g * w.abs())
    return rho * float(v.abs().sum() if norm == "linf" else v.norm())


@torch.no_grad()
def rescale_bn_next_conv(bn: nn.Module, conv: nn.Module, alpha: float) -> None:
    """Multiply BN's γ, β by α and divide the next conv's weight by α (ReLU in between): the network
    function is unchanged (S:3446, invariance (1)); adaptive sharpness is too (S:3409-3413)."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 (positive homogeneity of ReLU), got {alpha}")
    bn.weight.mul_(alpha)
    bn.bias.mul_(alpha)
    conv.weight.div_(alpha)


def linear_task(d: int = 100, n_train: int = 50, std: float = 0.025, seed: int = 0):
    """Two Gaussian classes at ±v (‖v‖ = 1), labels ±1 (authors' notebook, notes §4.7)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=d)
    v /= np.linalg.norm(v)
    yl = rng.choice([-1.0, 1.0], size=n_train)
    X = yl[:, None] * v[None, :] + std * rng.normal(size=(n_train, d))
    return X, yl


def train_logistic(X, y, lr: float = 5.0, iters: int = 100, seed: int = 0):
    """GD on the logistic loss from w ~ N(0, I)/500 (notes §4.7)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=X.shape[1]) / 500
    for _ in range(iters):
        mgn = y * (X @ w)
        w -= lr * (-(y * (1 / (1 + np.exp(mgn))))[:, None] * X).mean(0)
    return w


def linear_model_sharpness(w, X, y, rho: float, alphas, logit_norm: bool = False) -> np.ndarray:
    """Fig. 1: worst-case sharpness of α·w with m = 1 and radius ρ‖αw‖₂ (closed form: the worst
    margin is y xᵀw − ρ‖w‖‖x‖).  With ``logit_norm`` the binary logit is replaced by its sign-scaled
    version of the authors' notebook (f / |f|), so the loss, and sharpness, do not depend on α."""
    out = []
    xn = np.linalg.norm(X, axis=1)
    for a in np.asarray(alphas, float):
        wa = a * w
        m0 = y * (X @ wa)
        m1 = m0 - rho * np.linalg.norm(wa) * xn
        if logit_norm:
            # binary logit normalization f/|f|: only the sign of the (worst) margin is left,
            # and both margins scale linearly in α, so the result does not depend on α
            m0, m1 = np.sign(m0), np.sign(m1)
        out.append(float(np.mean(np.logaddexp(0, -m1) - np.logaddexp(0, -m0))))
    return np.asarray(out)


def invariance_table(model: nn.Module, bn: nn.Module, conv: nn.Module, points, alphas=(0.1, 1.0, 10.0),
                     definitions=(("adaptive_worst_linf", 0.002), ("adaptive_worst_l2", 0.5),
                                  ("adaptive_avg_l2", 0.1), ("standard_worst_linf", 0.0005),
                                  ("standard_worst_l2", 0.25), ("standard_avg_l2", 0.05)),
                     steps: int = 20, n_samples: int = 20, seed: int = 0):
    """Sharpness of the original and of BN↔conv rescaled copies (invariance lemma, S:3409-3413).
    Works on a deep copy of ``model`` per α (outside any APGD loop).  Returns a DataFrame with the
    value per (definition, α), the function change max|Δf|, and the relative deviation from α = 1."""
    import copy

    import pandas as pd

    from .measure import measure

    rows = []
    x, y = points
    with torch.no_grad():
        base_out = model.eval()(x)
    bn_name = [n for n, mm in model.named_modules() if mm is bn][0]
    conv_name = [n for n, mm in model.named_modules() if mm is conv][0]
    for a in alphas:
        m = copy.deepcopy(model).eval()
        rescale_bn_next_conv(m.get_submodule(bn_name), m.get_submodule(conv_name), a)
        with torch.no_grad():
            df_ = float((m(x) - base_out).abs().max())
        for d, rho in definitions:
            rows.append(dict(definition=d, rho=rho, alpha=a, function_change=df_,
                             sharpness=measure(m, [points], d, rho, steps=steps, n_samples=n_samples, seed=seed)))
    df = pd.DataFrame(rows)
    ref = df[df.alpha == 1.0].set_index("definition")["sharpness"]
    df["rel_dev"] = [abs(r.sharpness - ref[r.definition]) / max(abs(ref[r.definition]), 1e-12) for r in df.itertuples()]
    return df
