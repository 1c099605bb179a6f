"""NeCo: neural-collapse-inspired score, ratio of the principal-subspace norm times the max logit.

Dissertation Sec. 8.2 (App. G) (paper 8.2, App. G, M-Tab.4 column "NEC"):

    s = ||P phi(x)|| / ||phi(x)|| * max_i o_i,

with P the projection onto the top-d eigenvectors of the train covariance, "we standardize data and
select d such that 90% of the train variance are explained". As in the authors' code, the norms are
taken of the *standardised* feature z = (phi - mean) / std, and P comes from a PCA of the
standardised train features; d is the smallest number of components whose cumulative explained
variance reaches ``variance_explained``.
"""
from __future__ import annotations

import numpy as np

from repro.ood.detectors.base import Detector, register


@register("neco")
class NeCo(Detector):
    """NeCo (90 % explained variance) -- dissertation Sec. 8.2 (App. G)."""

    uses_features = True
    uses_logits = True

    def __init__(self, variance_explained: float = 0.90):
        self.variance_explained = variance_explained

    def _fit(self, features, logits, labels, head):
        if not 0 < self.variance_explained <= 1:
            raise ValueError(f"neco: variance_explained must be in (0, 1], got {self.variance_explained}")
        self.mean_ = features.mean(axis=0)
        std = features.std(axis=0)
        # constant feature dimensions: sklearn's StandardScaler leaves them unscaled (scale 1)
        self.scale_ = np.where(std > 0, std, 1.0)
        z = (features - self.mean_) / self.scale_
        zc = z - z.mean(axis=0)
        cov = zc.T @ zc / max(len(z) - 1, 1)
        evals, evecs = np.linalg.eigh(cov)
        order = np.argsort(evals)[::-1]
        evals = np.clip(evals[order], 0, None)
        evecs = evecs[:, order]
        ratio = np.cumsum(evals) / evals.sum()
        # smallest d with cumulative ratio >= target (tolerance for float round-off at exactly 1.0)
        self.n_components_ = int(np.searchsorted(ratio, self.variance_explained - 1e-12) + 1)
        self.components_ = evecs[:, : self.n_components_]
        self.pca_mean_ = z.mean(axis=0)

    def _score(self, features, logits):
        z = (features - self.mean_) / self.scale_
        num = np.linalg.norm((z - self.pca_mean_) @ self.components_, axis=1)
        den = np.linalg.norm(z, axis=1)
        if np.any(den == 0):
            raise ValueError("neco: a test feature equals the train mean exactly (zero standardised norm); "
                             "its principal-subspace ratio is undefined")
        return num / den * logits.max(axis=1)
