"""ViM, virtual-logit matching (Sec. 8.1 (App. C), ViM paragraph).

u = -(W^T)^+ b (the point where all logits vanish; the pseudo-inverse uses a rank-aware cutoff,
see :func:`head_origin`); principal subspace P = top-D eigenvectors of the (uncentred) covariance of the
offset train features h - u; residual r(x) = ||(h - u) projected on P-perp||; alpha = sum_i max_c o_ic /
sum_i r(x_i) on the train set; s(x) = -alpha r(x) + logsumexp(o), rank-equivalent to the paper's
-softmax probability of the virtual logit.
D: 1000 if d >= 2048, 512 if 768 <= d < 2048, round(d / 2) otherwise (Sec. 8.1 (App. C), ViM paragraph).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.special import logsumexp

from repro.ood.detectors.base import Detector, register


def vim_dim(d: int) -> int:
    """The dissertation's principal-subspace dimension rule (Sec. 8.1 (App. C), ViM paragraph)."""
    if d >= 2048:
        return 1000
    if d >= 768:
        return 512
    return int(round(d / 2))


def head_origin(W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """u = -W^+ b with a rank-aware cutoff.

    A rank-deficient head (e.g. a softmax head whose rows sum to zero: rank C - 1) has a singular
    value that is pure round-off (~1e-15); ``np.linalg.pinv``'s default cutoff (1e-15 * s_max)
    inverts it, so a 1e-12 perturbation of W, or storing the head in float32, moves u along that
    direction by O(|b| / s_min) and changes the scores. Checkpoints store weights in float32 (or
    less), so singular values below ``max(C, D) * eps_float32 * s_max`` carry no information and are
    treated as zero (the same rule as the Mahalanobis pseudo-inverse, ``pinv_psd``, with the
    precision the weights were stored in).
    """
    U, s, Vt = np.linalg.svd(np.asarray(W, dtype=np.float64), full_matrices=False)
    cutoff = s.max(initial=0.0) * max(W.shape) * np.finfo(np.float32).eps
    keep = s > cutoff
    return -(Vt[keep].T / s[keep]) @ (U[:, keep].T @ np.asarray(b, dtype=np.float64))


@register("vim")
class ViM(Detector):
    uses_logits = True
    needs_head = True

    def __init__(self, dim: Optional[int] = None):
        if dim is not None and dim < 1:
            raise ValueError(f"dim must be >= 1 (or None for the paper's rule), got {dim}")
        self.dim = dim

    def _fit(self, features, logits, labels, head):
        d = features.shape[1]
        D = vim_dim(d) if self.dim is None else int(self.dim)
        if D >= d:
            raise ValueError(f"vim: principal dimension {D} must be smaller than the feature dimension {d}")
        self.u_ = head_origin(head.W, head.b)
        g = features - self.u_
        cov = g.T @ g / len(g)
        eigval, eigvec = np.linalg.eigh(cov)  # ascending
        order = np.argsort(eigval)[::-1]
        self.null_space_ = np.ascontiguousarray(eigvec[:, order[D:]])
        self.dim_ = D
        if logits is None:
            logits = features @ head.W.T + head.b
        r = np.linalg.norm(g @ self.null_space_, axis=1)
        self.alpha_ = float(logits.max(axis=1).sum() / max(r.sum(), 1e-12))

    def _score(self, features, logits):
        r = np.linalg.norm((features - self.u_) @ self.null_space_, axis=1)
        return -self.alpha_ * r + logsumexp(logits, axis=1)
