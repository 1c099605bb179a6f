"""Auto-PGD in weight space for worst-case (adaptive) sharpness, Algorithm 1 (Sec. 8.3 (App. B)).

Two modes:

``faithful`` (default): Algorithm 1 as printed, run in the rescaled coordinates γ = δ ⊙ c⁻¹ in which
the feasible set is the plain ℓp ball of radius ρ.  The ℓ∞ step is ``sign(∇_γ)``, i.e. a step
``η·sign(∇_w L) ⊙ |w|`` in weight space ("gradient-sign ... proportional to |w|", Sec. 8.3 (Sec. 3.3)); the ℓ2
step is the normalized γ-gradient.  Momentum follows line 8 of Algorithm 1
(z ← P(x + η s); x⁺ ← P(x + α(z − x) + (1 − α)(x − x⁻)), α = 0.75), the step-size halving uses the
two conditions of Croce & Hein (2020) at the checkpoints W and restarts from the best point.
Working in γ makes the iterates exactly equivariant to the elementwise reparametrizations of the
invariance lemma (Sec. 8.3 (Sec. 3.1)), for ℓ2 as well (the ch. 5 implementation notes).

``code_compat``: the released code's deviations (the ch. 5 implementation notes, D3, D5): zero initialisation, steps in
δ space (ℓ2 step ``g/‖g‖₂ ⊙ c`` with the global gradient norm), Euclidean projection onto the
ellipsoid ‖δ ⊙ c⁻¹‖₂ ≤ ρ by bisection, momentum ``x⁺ = 0.75 z + 0.25 x⁻``, condition 1 counting
new-best updates, and on halving the gradient is taken at the best point while δ is not reset.

Initial step size η = 2ρ (in γ units), N_iter = 20 by default (Sec. 8.3 (Sec. 3.3)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

MODES = ("faithful", "code_compat")
INITS = ("zero", "random")


def checkpoints(n_iter: int) -> list[int]:
    """The APGD checkpoints W (Croce & Hein 2020): p0=0, p1=0.22,
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), w_j = ceil(p_j N).  For N=20 this gives
    {5, 9, 12, 15, 16, 18, 19, 20} (float rounding included, as in the released code)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({int(math.ceil(q * n_iter)) for q in p[1:] if math.ceil(q * n_iter) <= n_iter})


@dataclass
class APGDResult:
    f_max: float
    f_clean: float
    n_evals: int
    losses: list


def _project_ball(x: torch.Tensor, rho: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return x.clamp(-rho, rho)
    n = x.norm()
    return x * (rho / n) if n > rho else x


def _project_ellipsoid(d: torch.Tensor, c: torch.Tensor, rho: float, tol: float = 1e-5) -> torch.Tensor:
    """Euclidean projection of δ onto {‖δ ⊙ c⁻¹‖₂ ≤ ρ} (released code: bisection on the Lagrange
    multiplier, δ_λ = δ / (1 + 2λ c⁻²)).  Coordinates with c = 0 are forced to 0."""
    mask = c > 0
    cinv2 = torch.where(mask, 1.0 / c.clamp_min(1e-30) ** 2, torch.zeros_like(c))
    d = torch.where(mask, d, torch.zeros_like(d))

    def nrm(lam):
        return (d / (1 + 2 * lam * cinv2) * torch.sqrt(cinv2)).norm()

    if nrm(0.0) <= rho:
        return d
    lo, hi = 0.0, 0.1
    while nrm(hi) > rho:
        lo, hi = hi, hi * 10
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if nrm(mid) > rho:
            lo = mid
        else:
            hi = mid
        if hi - lo < tol * max(hi, 1e-12):
            break
    return d / (1 + 2 * hi * cinv2)


def _check(val: torch.Tensor, what: str) -> float:
    v = float(val)
    if not math.isfinite(v):
        raise FloatingPointError(
            f"non-finite loss ({v}) during {what}; the model's loss is not finite at (or near) the "
            "weights — check inputs/weights, or use a smaller rho"
        )
    return v


def apgd_sharpness(
    loss_and_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    loss_only: Callable[[torch.Tensor], torch.Tensor],
    w0: torch.Tensor,
    c: torch.Tensor,
    rho: float,
    norm: str,
    *,
    n_iter: int = 20,
    alpha: float = 0.75,
    rho_cond: float = 0.75,
    mode: str = "faithful",
    init: str | None = None,
    generator: torch.Generator | None = None,
) -> APGDResult:
    """Maximize L(w0 + δ) over ‖δ ⊙ c⁻¹‖_p ≤ ρ (Algorithm 1).  Returns the best loss found (at
    least the clean loss, so the sharpness is ≥ 0) and the clean loss.

    ``loss_and_grad(w)`` returns (L(w), ∇_w L(w)); ``loss_only(w)`` returns L(w) without a graph
    (used for the clean loss and the last iterate, whose gradient is never needed).
    ``init``: ``"random"`` (seed Sec. 8.3 (App. B); Sec. 8.3 (App. H): uniform in the ℓ∞ box, a Gaussian direction with a
    uniform radius in the ℓ2 ball) or ``"zero"`` (released script, the ch. 5 implementation notes); default ``random`` in
    ``faithful`` and ``zero`` in ``code_compat`` mode.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm must be 'l2' or 'linf', got {norm!r}")
    init = init or ("random" if mode == "faithful" else "zero")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    W = set(checkpoints(n_iter))
    compat = mode == "code_compat"

    # x is γ (faithful) or δ (code_compat); to_w maps it to weights.
    if compat:
        def to_w(x):
            return w0 + x

        def grad_x(g):
            return g

        def step(g):
            if norm == "linf":
                return torch.sign(g) * c
            return g / g.norm().clamp_min(1e-12) * c

        if norm == "linf":
            def proj(x):
                return torch.maximum(torch.minimum(x, rho * c), -rho * c)
        elif bool((c == 1).all()):
            def proj(x):
                return _project_ball(x, rho, "l2")
        else:
            def proj(x):
                return _project_ellipsoid(x, c, rho)

        def ascent(x, g, eta):
            return proj(x + eta * step(grad_x(g)))

        def momentum(z, x, x_prev):  # released code: x⁺ = α z + (1 − α) x⁻, no projection
            return alpha * z + (1 - alpha) * x_prev
    else:
        # The hot loop works on vectors of all P weights; every step is written with as few
        # full-length passes and fresh allocations as possible (fused addcmul, in-place updates of
        # temporaries), which matters when a forward+backward pass is only ~10x a vector op
        # (the ch5 zoo ResNet; benchmarks/bench_sharpness.py).
        def to_w(x):
            return torch.addcmul(w0, c, x)

        def proj(x):  # in place on a temporary
            if norm == "linf":
                return x.clamp_(-rho, rho)
            n = x.norm()
            return x.mul_(rho / n) if n > rho else x

        def ascent(x, g, eta):  # P(x + η s(∇_γ)) with ∇_γ = c ⊙ ∇_w
            d = torch.mul(c, g)
            if norm == "linf":
                d.sign_()
            else:
                d.div_(d.norm().clamp_min(1e-12))
            return proj(d.mul_(eta).add_(x))

        def momentum(z, x, x_prev):  # P(x + α(z − x) + (1 − α)(x − x⁻)) = P(αz + (2 − 2α)x − (1 − α)x⁻)
            return proj(z.mul_(alpha).add_(x, alpha=2 - 2 * alpha).sub_(x_prev, alpha=1 - alpha))

    f_clean = _check(loss_only(w0), "the clean loss")
    if init == "zero":
        x0 = torch.zeros_like(w0)
    else:
        if norm == "linf":
            x0 = (torch.rand(w0.shape, generator=generator, dtype=w0.dtype, device="cpu") * 2 - 1).to(w0.device) * rho
        else:
            z = torch.randn(w0.shape, generator=generator, dtype=w0.dtype, device="cpu").to(w0.device)
            r = float(torch.rand((), generator=generator))
            x0 = z / z.norm().clamp_min(1e-12) * rho * r
        if compat:
            x0 = x0 * c
    n_evals = 0
    f0, g0 = loss_and_grad(to_w(x0))
    n_evals += 1
    f0 = _check(f0, "APGD")
    eta = 2 * rho
    losses = [f0]

    x1 = ascent(x0, g0, eta)
    if n_iter == 1:
        f1 = _check(loss_only(to_w(x1)), "APGD")
        n_evals += 1
        return APGDResult(max(f_clean, f0, f1), f_clean, n_evals, losses + [f1])
    f1, g1 = loss_and_grad(to_w(x1))
    n_evals += 1
    f1 = _check(f1, "APGD")
    losses.append(f1)
    if f1 > f0:
        f_max, x_max, g_max = f1, x1, g1
    else:
        f_max, x_max, g_max = f0, x0, g0
    f_max = max(f_max, f_clean)

    x_prev, x, g, f_x = x0, x1, g1, f1
    # For the halving conditions: the state at the last checkpoint.
    last_ckpt, eta_at_ckpt, fmax_at_ckpt = 0, eta, f_max
    n_success = 1 if f1 > f0 else 0  # counts since the last checkpoint
    grad_point_g = g  # code_compat: gradient may come from the best point after a restart
    for k in range(1, n_iter):
        x_new = momentum(ascent(x, grad_point_g, eta), x, x_prev)
        last = k == n_iter - 1
        if last:
            f_new = _check(loss_only(to_w(x_new)), "APGD")
            g_new = None
        else:
            f_new, g_new = loss_and_grad(to_w(x_new))
            f_new = _check(f_new, "APGD")
        n_evals += 1
        losses.append(f_new)
        improved_best = f_new > f_max
        if compat:
            n_success += int(improved_best)
        else:
            n_success += int(f_new > f_x)
        if improved_best:
            f_max, x_max, g_max = f_new, x_new, g_new
        x_prev, x, g, f_x = x, x_new, g_new, f_new
        grad_point_g = g
        if k in W and not last:
            cond1 = n_success < rho_cond * (k - last_ckpt)
            cond2 = (eta_at_ckpt == eta) and (fmax_at_ckpt == f_max)
            if cond1 or cond2:
                eta = eta / 2
                if compat:
                    # released code: model reloaded with w_max, δ kept (the ch. 5 implementation notes quirk)
                    grad_point_g = g_max if g_max is not None else g
                else:
                    x, g, f_x = x_max, g_max, f_max
                    grad_point_g = g
                    if g is None:  # best is the clean point (x0 with zero init): recompute
                        _, g = loss_and_grad(to_w(x))
                        grad_point_g = g
            last_ckpt, eta_at_ckpt, fmax_at_ckpt, n_success = k, eta, f_max, 0
    return APGDResult(f_max, f_clean, n_evals, losses)
