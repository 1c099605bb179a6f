"""Kendall rank correlation exactly as the paper's Eq. 4 (Sec. 8.3 (Sec. 3.1)): τ-a, no tie correction.

τ(t, s) = 2 / (M(M-1)) Σ_{i<j} sign(t_i - t_j) sign(s_i - s_j).  Positive τ: sharper models have
higher error (the "expected" direction).  ``scipy.stats.kendalltau`` defaults to τ-b; the two agree
without ties (tests check both).
"""
from __future__ import annotations

import numpy as np


def kendall_tau(t, s) -> float:
    """Eq. 4 (τ-a) between test errors ``t`` and sharpness values ``s`` (1-D, same length ≥ 2)."""
    t = np.asarray(t, dtype=float).ravel()
    s = np.asarray(s, dtype=float).ravel()
    if t.shape != s.shape:
        raise ValueError(f"t and s must have the same length, got {t.shape[0]} and {s.shape[0]}")
    M = t.shape[0]
    if M < 2:
        raise ValueError(f"Kendall τ needs at least 2 models, got {M}")
    if not (np.isfinite(t).all() and np.isfinite(s).all()):
        raise ValueError("Kendall τ got non-finite values (NaN/inf); drop the failed models first")
    total = 0.0
    for i0 in range(0, M, 2048):  # row blocks keep memory at O(2048·M)
        dt = np.sign(t[i0:i0 + 2048, None] - t[None, :])
        ds = np.sign(s[i0:i0 + 2048, None] - s[None, :])
        total += float((dt * ds).sum())
    # the full matrix counts each unordered pair twice
    return total / (M * (M - 1))


def kendall_tau_by_group(t, s, groups, min_size: int = 3) -> dict:
    """τ within each subgroup (e.g. augment × mixup, Sec. 8.3 (App. A); Sec. 8.3 (App. H.4)); groups smaller than ``min_size``
    are skipped.  Returns {group: τ} plus ``"mean"`` (unweighted mean over groups) when any exist."""
    t, s, g = np.asarray(t, float), np.asarray(s, float), np.asarray(groups)
    out = {}
    for key in sorted(set(g.tolist()), key=str):
        idx = g == key
        if idx.sum() >= min_size:
            out[key] = kendall_tau(t[idx], s[idx])
    if out:
        out["mean"] = float(np.mean(list(out.values())))
    return out
