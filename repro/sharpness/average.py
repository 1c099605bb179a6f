"""Average-case (adaptive) sharpness: E_δ L_S(w + δ) − L_S(w) (paper Eq. 1, Sec. 8.3 (Sec. 3.1); App. H.4).

ℓ2 means Gaussian δ = ρ c ⊙ ξ, ξ ~ N(0, I); ℓ∞ means uniform δ = ρ c ⊙ ξ, ξ ~ U[−1, 1]^P
(per-coordinate scale ρ c_i, no 1/√P factor, as ``random_init_lw`` of the released code).
The expectation is estimated with ``n_samples`` draws (100 in the seed, Sec. 8.3 (App. B); Sec. 8.3 (App. H); 20 in the
released CIFAR script, the ch. 5 implementation notes).  Draws are evaluated ``chunk`` at a time with
``torch.func.vmap`` over the flat weight vector, so one batched forward replaces ``chunk`` forwards.
"""
from __future__ import annotations

import math

import torch
from torch.func import vmap


def noise(shape, norm: str, generator: torch.Generator, device, dtype) -> torch.Tensor:
    if norm == "l2":
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if norm == "linf":
        return torch.rand(shape, generator=generator, device=device, dtype=dtype).mul_(2).sub_(1)
    raise ValueError(f"norm must be 'l2' or 'linf', got {norm!r}")


@torch.no_grad()
def average_loss(flat, x, y, c, rho, norm, *, n_samples=100, chunk=None, batched=True, generator=None):
    """Mean over ``n_samples`` noise draws of L_S(w0 + ρ c ⊙ ξ) for one batch (x, y)."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    w0 = flat.w0
    chunk = chunk or (min(n_samples, 10) if batched else 1)
    total, done = 0.0, 0
    loss_b = vmap(lambda w: flat.loss(w, x, y)) if batched else None
    while done < n_samples:
        k = min(chunk, n_samples - done)
        xi = noise((k, w0.numel()), norm, generator, w0.device, w0.dtype)
        W = w0 + rho * c * xi
        if batched:
            ls = loss_b(W)
        else:
            ls = torch.stack([flat.loss_value(W[i], x, y) for i in range(k)])
        s = float(ls.sum())
        if not math.isfinite(s):
            raise FloatingPointError(
                f"non-finite loss under random weight noise (rho={rho}, norm={norm}); use a smaller rho"
            )
        total += s
        done += k
    return total / n_samples
