"""Diagonal linear networks (paper Sec. 5.2 and App. A.2, Sec. 8.3 (Sec. 5.2); Sec. 8.3 (App. A.2)).

β = u ⊙ v, w = [u; v] ∈ R^{2d}.  We use L(w) = ½‖X(u⊙v) − y‖² with unit-norm columns of X
(diag(XᵀX) = 1); the paper's Eq. 6 has no ½ and its Eq. 7 drops the resulting factor 2, so with
our normalization the identities of Eqs. 8-9 hold without dropped factors:

- Hessian (Eq. 7): [[V G V, V G U + diag(Xᵀr)], [U G V + diag(Xᵀr), U G U]], G = XᵀX, r = Xβ − y;
- rescaled Hessian ∇̃²L = diag(c) ∇²L diag(c) with the *corrected* scaling vector (the ch. 5 implementation notes, D9):
  c = [√(|u|/|v|); √(|v|/|u|)] (the printed assignment is swapped and only right when |u| = |v|);
  then ½ tr ∇̃²L = Σ_i G_ii |u_i v_i| = ‖β‖₁ exactly (any r), and λ_max → 2‖β‖∞ at r = 0, G = I;
- the elementwise adaptive choice c = |w| gives ½ tr = ‖β‖₂² instead (Sec. 8.3 (App. A)).

Unspecified in the paper and chosen here (documented in the book): n, the data distribution, the
initialization and the learning-rate grid; training is full-batch GD, all networks at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SCALINGS = ("corrected", "printed", "elementwise")


def make_task(d: int = 200, n: int = 100, sparsity: float = 0.9, noise: float = 0.0, seed: int = 0):
    """Sparse regression: X with N(0,1) entries and unit-norm columns, β* with (1−sparsity)·d
    non-zero N(0,1) entries, y = Xβ* (+ noise).  Returns (X, y, beta_star) as float64 tensors."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    g = torch.Generator().manual_seed(int(seed))
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    X = X / X.norm(dim=0, keepdim=True)
    k = max(1, int(round((1 - sparsity) * d)))
    beta = torch.zeros(d, dtype=torch.float64)
    idx = torch.randperm(d, generator=g)[:k]
    beta[idx] = torch.randn(k, generator=g, dtype=torch.float64)
    y = X @ beta + noise * torch.randn(n, generator=g, dtype=torch.float64)
    return X, y, beta


def loss(u, v, X, y):
    r = (u * v) @ X.T - y
    return 0.5 * (r * r).sum(-1)


def hessian(u, v, X, y) -> torch.Tensor:
    """Closed-form Hessian of ½‖X(u⊙v) − y‖² w.r.t. w = [u; v] (Eq. 7 with our ½)."""
    G = X.T @ X
    r = X @ (u * v) - y
    D = torch.diag(X.T @ r)
    U, V = torch.diag(u), torch.diag(v)
    top = torch.cat([V @ G @ V, V @ G @ U + D], 1)
    bot = torch.cat([U @ G @ V + D, U @ G @ U], 1)
    return torch.cat([top, bot], 0)


def scaling_vector(u, v, kind: str = "corrected", eps: float = 1e-300) -> torch.Tensor:
    if kind not in SCALINGS:
        raise ValueError(f"kind must be one of {SCALINGS}, got {kind!r}")
    au, av = u.abs().clamp_min(eps), v.abs().clamp_min(eps)
    if kind == "corrected":
        return torch.cat([torch.sqrt(au / av), torch.sqrt(av / au)])
    if kind == "printed":  # Sec. 8.3 (App. A) as printed
        return torch.cat([torch.sqrt(av / au), torch.sqrt(au / av)])
    return torch.cat([u.abs(), v.abs()])


def rescaled_hessian(u, v, X, y, kind: str = "corrected") -> torch.Tensor:
    c = scaling_vector(u, v, kind)
    return c[:, None] * hessian(u, v, X, y) * c[None, :]


@dataclass
class DLNRun:
    u: torch.Tensor  # [R, d]
    v: torch.Tensor
    lr: np.ndarray
    init_scale: np.ndarray
    steps: np.ndarray
    final_loss: np.ndarray
    converged: np.ndarray


def train_many(X, y, lrs, init_scales, *, init_noise: float = 0.5, target_loss: float = 1e-5,
               max_steps: int = 200_000, seed: int = 0) -> DLNRun:
    """Full-batch GD on R networks at once (one row per network) until L ≤ ``target_loss``.

    Initialization u0 = α(1 + ε ξ_u), v0 = α(1 + ε ξ_v) with ξ ~ N(0, 1): small α is the "rich"
    (ℓ1-like, sparse) regime, large α the "kernel" (ℓ2-like) regime, and ε ≠ 0 makes |u| ≠ |v|.
    """
    lrs = np.asarray(lrs, float)
    al = np.asarray(init_scales, float)
    if lrs.shape != al.shape:
        raise ValueError("lrs and init_scales must have the same length")
    R, d = len(lrs), X.shape[1]
    g = torch.Generator().manual_seed(int(seed))
    a = torch.tensor(al)[:, None]
    u = a * (1 + init_noise * torch.randn(R, d, generator=g, dtype=torch.float64))
    v = a * (1 + init_noise * torch.randn(R, d, generator=g, dtype=torch.float64))
    lr = torch.tensor(lrs)[:, None]
    steps = np.zeros(R, dtype=np.int64)
    L = loss(u, v, X, y)
    idx = torch.arange(R)
    # only networks still above the target are updated; the active set is compacted every 100
    # steps so finished networks cost nothing (the run time is dominated by slow small-init ones)
    for t in range(max_steps):
        if t % 100 == 0:
            act = L[idx] > target_loss if len(idx) else torch.zeros(0, dtype=torch.bool)
            idx = idx[act]
            if len(idx) == 0:
                break
            ua, va, lra = u[idx], v[idx], lr[idx]
        r = (ua * va) @ X.T - y
        gb = r @ X
        ua, va = ua - lra * gb * va, va - lra * gb * ua
        steps[idx.numpy()] += 1
        if t % 100 == 99 or t == max_steps - 1:
            u[idx], v[idx] = ua, va
            L = loss(u, v, X, y)
            if not bool(torch.isfinite(L).all()):
                bad = (~torch.isfinite(L)).nonzero().ravel().tolist()
                raise FloatingPointError(f"GD diverged for networks {bad[:5]} (lr too large); lower the learning rates")
    if len(idx):
        u[idx], v[idx] = ua, va
    L = loss(u, v, X, y)
    Lf = L.numpy()
    return DLNRun(u, v, lrs, al, steps, Lf, Lf <= target_loss)


def measures(run: DLNRun, X, y, beta_star) -> dict:
    """Per network: test loss ‖β − β*‖² (isotropic test inputs), ‖β‖₁, ½tr ∇̃²L (corrected c),
    tr ∇²L, λ_max ∇²L, tr and λ_max of ∇̃²L, and ½tr with the printed and elementwise c."""
    rows = {k: [] for k in ("test_loss", "l1", "half_tr_adaptive", "tr_plain", "lmax_plain", "tr_adaptive",
                            "lmax_adaptive", "half_tr_printed", "half_tr_elementwise", "train_loss")}
    for i in range(run.u.shape[0]):
        u, v = run.u[i], run.v[i]
        H = hessian(u, v, X, y)
        Ht = rescaled_hessian(u, v, X, y, "corrected")
        beta = u * v
        rows["test_loss"].append(float(((beta - beta_star) ** 2).sum()))
        rows["l1"].append(float(beta.abs().sum()))
        rows["tr_plain"].append(float(torch.trace(H)))
        rows["lmax_plain"].append(float(torch.linalg.eigvalsh(H)[-1]))
        rows["tr_adaptive"].append(float(torch.trace(Ht)))
        rows["half_tr_adaptive"].append(0.5 * float(torch.trace(Ht)))
        rows["lmax_adaptive"].append(float(torch.linalg.eigvalsh(Ht)[-1]))
        rows["half_tr_printed"].append(0.5 * float(torch.trace(rescaled_hessian(u, v, X, y, "printed"))))
        rows["half_tr_elementwise"].append(0.5 * float(torch.trace(rescaled_hessian(u, v, X, y, "elementwise"))))
        rows["train_loss"].append(float(loss(u, v, X, y)))
    return {k: np.asarray(v) for k, v in rows.items()}


def identity_error(df, col: str = "half_tr_adaptive") -> float:
    """max_i |col_i − ‖β_i‖₁| / ‖β_i‖₁ over the networks of :func:`experiment` (Eq. 8 check)."""
    l1 = np.asarray(df["l1"], float)
    return float(np.max(np.abs(np.asarray(df[col], float) - l1) / l1))


def experiment(n_networks: int = 200, d: int = 200, n: int = 100, sparsity: float = 0.9,
               lr_range=(0.05, 0.9), init_range=(0.03, 1.0), target_loss: float = 1e-5,
               max_steps: int = 200_000, seed: int = 0):
    """Sec. 5.2 experiment (Sec. 8.3 (App. A)): networks with log-uniform LR and init scale, trained to
    ``target_loss``; returns (DataFrame of measures per network, dict of Kendall τ with test loss).
    The LR is relative to the largest eigenvalue of XᵀX (so it is stable for every init scale ≤ 1)."""
    from repro.sharpness.kendall import kendall_tau
    import pandas as pd

    X, y, bs = make_task(d=d, n=n, sparsity=sparsity, seed=seed)
    rng = np.random.default_rng(seed + 1)
    lam = float(torch.linalg.eigvalsh(X.T @ X)[-1])
    lrs = np.exp(rng.uniform(np.log(lr_range[0]), np.log(lr_range[1]), n_networks)) / lam
    inits = np.exp(rng.uniform(np.log(init_range[0]), np.log(init_range[1]), n_networks))
    run = train_many(X, y, lrs, inits, target_loss=target_loss, max_steps=max_steps, seed=seed + 2)
    m = measures(run, X, y, bs)
    df = pd.DataFrame(dict(lr=lrs, init_scale=inits, steps=run.steps, converged=run.converged, **m))
    ok = df[df.converged]
    taus = {k: kendall_tau(ok.test_loss, ok[k]) for k in
            ("l1", "half_tr_adaptive", "tr_plain", "lmax_plain", "lmax_adaptive", "half_tr_elementwise")}
    taus["tr_vs_lmax_adaptive"] = kendall_tau(ok.tr_adaptive, ok.lmax_adaptive)
    taus["n_converged"] = int(len(ok))
    return df, taus
