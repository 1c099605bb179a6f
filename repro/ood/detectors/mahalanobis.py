"""Mahalanobis-family detectors: Maha, Maha++, relative Maha, relative Maha++.

* Maha (Sec. 8.1 (App. C), Sec. 8.2 (Sec. 3.1)): class means mu_c and one *shared* covariance
  Sigma = 1/N sum_c sum_{y_i=c} (h_i - mu_c)(h_i - mu_c)^T; s(x) = -min_c (h - mu_c)^T Sigma^+ (h - mu_c).
* Maha++ (Eq. 4.1 / M-Eq. 6, Sec. 4.2, Sec. 8.2 (Sec. 4)): the same on l2-normalised features
  h / ||h||_2 (train and test); class means are *not* re-normalised.
* rMaha (Sec. 8.1 (App. C), Sec. 2.4): s(x) = -min_c [d_c(h) - d_g(h)] with a global Gaussian (mu_g, Sigma_g).
* rMaha++ (Sec. 8.2 (Sec. 5)): rMaha with both Gaussians fitted on normalised features.

Implementation (the ch. 3-4 implementation notes, DESIGN.md "scoring cost"): float64; the precision is the
Moore-Penrose pseudo-inverse (:func:`pinv_psd`, the cutoff of ``scipy.linalg.pinvh`` as in sklearn's
EmpiricalCovariance; a singular covariance warns and still scores); the fit
streams over chunks accumulating per-class sums and one D x D second-moment matrix, so peak
memory beyond the input is O(D^2 + C D); scoring uses one matrix product per block of classes,
d_c(x) = x^T P x - 2 x^T P mu_c + mu_c^T P mu_c, never the N x D x C difference tensor.
"""
from __future__ import annotations

import warnings
from typing import Iterable, Optional

import numpy as np

from repro.ood.detectors.base import Detector, as_2d, l2_normalize_strict, register


def l2_normalize(f: np.ndarray) -> np.ndarray:
    """h / ||h||_2 row-wise (Maha++ Eq. 4.1); zero rows stay zero (KNN/Cosine convention)."""
    n = np.linalg.norm(f, axis=1, keepdims=True)
    return f / np.where(n > 0, n, 1.0)




class SingularCovarianceWarning(UserWarning):
    """The covariance is rank-deficient; the pseudo-inverse is used (as the paper does, the ch. 3-4 implementation notes)."""


def pinv_psd(cov: np.ndarray, what: str = "covariance", n_samples: Optional[int] = None,
             n_classes: Optional[int] = None) -> np.ndarray:
    """Moore-Penrose pseudo-inverse of a symmetric PSD matrix via one eigendecomposition.

    Same cutoff as ``scipy.linalg.pinvh`` / sklearn's ``EmpiricalCovariance`` (eigenvalues below
    ``max|w| * D * eps`` count as 0), so scores equal that reference. A rank-deficient matrix (e.g.
    fewer samples than dimensions) gets a :class:`SingularCovarianceWarning` naming the rank, not a crash.
    """
    w, V = np.linalg.eigh(cov)
    cutoff = np.abs(w).max() * cov.shape[0] * np.finfo(np.float64).eps
    keep = np.abs(w) > cutoff
    D = cov.shape[0]
    if n_samples is not None and 0 <= n_samples - (n_classes or 1) < int(keep.sum()):
        # In exact arithmetic a (class-centred) covariance of n samples has rank <= n - C; eigenvalues
        # beyond that are round-off from the streamed sums, and inverting them would let noise
        # directions dominate the score. Keep only the top n - C eigenvalues.
        bound = n_samples - (n_classes or 1)
        keep = np.zeros_like(keep)
        if bound > 0:
            keep[np.argsort(np.abs(w))[-bound:]] = True
    rank = int(keep.sum())
    if rank < D:
        why = ""
        if n_samples is not None and n_samples - (n_classes or 1) < D:
            why = (f" ({n_samples} training samples{f' in {n_classes} classes' if n_classes else ''} "
                   f"span at most {n_samples - (n_classes or 1)} dimensions)")
        warnings.warn(f"{what} is singular: rank {rank} < dimension {D}{why}; using the pseudo-inverse as the "
                      "paper does", SingularCovarianceWarning, stacklevel=3)
    Vk = V[:, keep]
    return (Vk / w[keep]) @ Vk.T


class GaussianStats:
    """Streaming class-conditional Gaussian statistics with a shared (and a global) covariance.

    ``update(features, labels)`` may be called on any number of chunks; ``finalize()`` returns
    (means [C, D], shared covariance, global mean, global covariance), all ML (1/N) estimates.
    Sums are taken around a fixed shift (the first chunk's mean) to avoid cancellation.
    """

    def __init__(self, num_classes: Optional[int] = None):
        self.num_classes = num_classes
        self.n = 0
        self.shift = None

    def update(self, f: np.ndarray, y: np.ndarray) -> "GaussianStats":
        f = np.asarray(f, dtype=np.float64)
        y = np.asarray(y).astype(np.int64)
        if f.ndim != 2 or y.shape != (len(f),):
            raise ValueError(f"a chunk needs features [n, D] and labels [n], got shapes {f.shape} and {y.shape}")
        if self.shift is not None and f.shape[1] != self.shift.shape[0]:
            raise ValueError(f"chunk has feature dimension {f.shape[1]}, earlier chunks had {self.shift.shape[0]}")
        if self.shift is None:
            self.shift = f.mean(0)
            D = f.shape[1]
            C = int(self.num_classes or (y.max() + 1))
            self.sums = np.zeros((C, D))
            self.counts = np.zeros(C, dtype=np.int64)
            self.second = np.zeros((D, D))
        C = self.sums.shape[0]
        if y.min() < 0 or y.max() >= C:
            raise ValueError(f"labels must lie in [0, {C}); pass num_classes when streaming chunks")
        g = f - self.shift
        # per-class sums by sorting + reduceat: O(n D), unlike np.add.at's unbuffered scatter
        order = np.argsort(y, kind="stable")
        ys = y[order]
        starts = np.flatnonzero(np.r_[True, ys[1:] != ys[:-1]])
        self.sums[ys[starts]] += np.add.reduceat(g[order], starts, axis=0)
        self.counts += np.bincount(y, minlength=C)
        self.second += g.T @ g
        self.n += len(f)
        return self

    def finalize(self, require_all_classes: bool = False):
        """``require_all_classes``: every label in [0, C) must have samples (else a clear error)."""
        if self.n == 0:
            raise ValueError("no training features were given")
        keep = self.counts > 0
        if require_all_classes and not keep.all():
            missing = np.flatnonzero(~keep)
            raise ValueError(f"class label(s) {missing[:10].tolist()}{' ...' if len(missing) > 10 else ''} are "
                             f"missing from train_labels (labels must cover 0..{len(keep) - 1}); a class without "
                             "training samples has no mean. Relabel the classes to 0..C'-1 or add their samples")
        means_s = self.sums[keep] / self.counts[keep, None]
        gmean_s = self.sums.sum(0) / self.n
        # within-class scatter = sum x x^T - sum_c N_c mu_c mu_c^T   (shifted coordinates)
        shared = (self.second - (means_s * self.counts[keep, None]).T @ means_s) / self.n
        glob = self.second / self.n - np.outer(gmean_s, gmean_s)
        return means_s + self.shift, (shared + shared.T) / 2, gmean_s + self.shift, (glob + glob.T) / 2


def _min_maha(f: np.ndarray, means: np.ndarray, prec: np.ndarray, block: int = 1024) -> np.ndarray:
    """min_c (f - mu_c)^T P (f - mu_c), one matrix product per block of classes."""
    fP = f @ prec
    fPf = np.einsum("nd,nd->n", fP, f)
    out = np.full(len(f), np.inf)
    for i in range(0, len(means), block):
        mu = means[i:i + block]
        muP = mu @ prec
        d = fPf[:, None] - 2.0 * (fP @ mu.T) + np.einsum("cd,cd->c", muP, mu)[None, :]
        np.minimum(out, d.min(axis=1), out=out)
    return np.maximum(out, 0.0)


def _quad(f: np.ndarray, mean: np.ndarray, prec: np.ndarray) -> np.ndarray:
    g = f - mean
    return np.einsum("nd,nd->n", g @ prec, g)


class _MahaBase(Detector):
    needs_labels = True
    normalize = False
    relative = False
    #: rows per streamed chunk in ``fit`` (a memory knob, not a hyperparameter: scores do not change)
    chunk_size = 8192

    def _prep(self, f, what="features"):
        return l2_normalize_strict(f, f"{self.name}: {what}") if self.normalize else f

    def _fit(self, features, logits, labels, head):
        st = GaussianStats(int(labels.max()) + 1)
        for i in range(0, len(features), self.chunk_size):
            st.update(self._prep(features[i:i + self.chunk_size], "train_features"), labels[i:i + self.chunk_size])
        self._set_stats(st)

    def fit_stream(self, chunks: Iterable, num_classes: int):
        """Fit from an iterable of (features [n, D], labels [n]) chunks (never all in memory)."""
        st = GaussianStats(num_classes)
        for f, y in chunks:
            st.update(self._prep(as_2d(f, "train_features"), "train_features"), y)
        self._set_stats(st)
        self.feature_dim_ = st.sums.shape[1]
        self.fitted_ = True
        return self

    def _set_stats(self, st):
        means, shared, gmean, glob = st.finalize(require_all_classes=True)
        self.means_ = means
        # Scoring expands d = x'Px - 2x'P mu + mu'P mu; with a large common offset in the features
        # (e.g. 1e6) the three terms cancel catastrophically (relative error 1e-4, ~11 % of ranks
        # changed). Centring features and means by the training mean makes the score invariant to
        # such offsets up to round-off of the centring itself.
        self.center_ = gmean
        self._means_c = means - gmean
        C = len(means)
        self.precision_ = pinv_psd(shared, f"{self.name}: shared covariance", st.n, C)
        if self.relative:
            self.global_mean_ = gmean
            self.global_precision_ = pinv_psd(glob, f"{self.name}: global covariance", st.n, 1)

    def _score(self, features, logits):
        f = self._prep(features) - self.center_
        d = _min_maha(f, self._means_c, self.precision_)
        if self.relative:
            # min_c [d_c - d_g] = min_c d_c - d_g (d_g does not depend on c); the global mean is
            # the centre, so d_g is the quadratic form of the centred features
            d = d - _quad(f, np.zeros_like(self.global_mean_), self.global_precision_)
        return -d


@register("maha")
class Mahalanobis(_MahaBase):
    """Mahalanobis with shared covariance (Sec. 8.1 (App. C))."""


@register("maha_pp")
class MahalanobisPP(_MahaBase):
    """Mahalanobis++: Maha on l2-normalised features (Eq. 4.1, Sec. 4.2)."""

    normalize = True


@register("rmaha")
class RelativeMahalanobis(_MahaBase):
    """Relative Mahalanobis (Sec. 8.1 (App. C))."""

    relative = True


@register("rmaha_pp")
class RelativeMahalanobisPP(_MahaBase):
    """Relative Mahalanobis++: both Gaussians on l2-normalised features (Sec. 8.2 (Sec. 5), the ch. 3-4 implementation notes)."""

    normalize = True
    relative = True
