"""NNGuide: the energy score guided by a nearest-neighbour score in normalised feature space.

Dissertation Sec. 8.2 (App. G) (paper 8.2, App. G): ``s = s_Energy * s_KNN`` "where s_KNN is a KNN score
in the normalized feature space, estimated on a subset of the train features. Like suggested by
the authors, we use 1% of the train features and K = 10 neighbors" (M-Tab.4/6 column "NNG").

Following Park et al. (2023a) and the authors' code, the bank holds the l2-normalised features of a
random ``bank_fraction`` of the training set, each multiplied by its own energy (confidence); the
KNN score of a test sample is the mean of its top-``k`` inner products with the bank, and the final
score multiplies this by the test sample's energy.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from repro.core.registry import warn_inert
from repro.ood.detectors.base import Detector, l2_normalize_strict, register





def topk_inner_product_mean(queries: np.ndarray, bank: np.ndarray, k: int, chunk: int = 4096) -> np.ndarray:
    """Mean of the ``k`` largest inner products of each query with the bank (exact, chunked)."""
    out = np.empty(len(queries))
    for s in range(0, len(queries), chunk):
        sims = queries[s:s + chunk] @ bank.T
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        out[s:s + chunk] = top.mean(axis=1)
    return out


@register("nnguide")
class NNGuide(Detector):
    """NNGuide (K = 10, 1 % bank) -- dissertation Sec. 8.2 (App. G), M-Tab.4 column "NNG"."""

    uses_features = True
    uses_logits = True

    def __init__(self, k: int = 10, bank_fraction: float = 0.01, seed: int = 0):
        if int(k) < 1:
            raise ValueError(f"nnguide: k must be >= 1, got {k}")
        if not 0 < bank_fraction <= 1:
            raise ValueError(f"nnguide: bank_fraction must be in (0, 1], got {bank_fraction}")
        self.k = k
        self.bank_fraction = bank_fraction
        self.seed = seed

    def _fit(self, features, logits, labels, head):
        if logits is None:
            raise ValueError("nnguide: fit needs train_logits [N, C] (the bank is weighted by the train energy)")
        if len(logits) != len(features):
            raise ValueError(f"nnguide: {len(features)} train feature rows but {len(logits)} train logit rows")
        if not 0 < self.bank_fraction <= 1:
            raise ValueError(f"nnguide: bank_fraction must be in (0, 1], got {self.bank_fraction}")
        n = len(features)
        size = int(np.ceil(self.bank_fraction * n))
        if self.k < 1 or self.k > n:
            raise ValueError(f"nnguide: k must be in [1, {n}] (number of train samples), got {self.k}")
        # a bank smaller than k would make the top-k undefined; grow it to k rather than fail on
        # small training sets (documented deviation, only active when fraction * N < k, and then
        # bank_fraction no longer matters: say so)
        if size < self.k:
            warn_inert("nnguide", "bank_fraction", f"bank_fraction * {n} train samples = {size} < k={self.k}; "
                       f"the bank is grown to k={self.k} samples")
        size = max(size, self.k)
        rng = np.random.default_rng(self.seed)
        idx = np.sort(rng.choice(n, size=size, replace=False))
        z = l2_normalize_strict(features[idx], "train_features")
        self.bank_ = z * logsumexp(logits[idx], axis=1)[:, None]
        self.bank_index_ = idx

    def _score(self, features, logits):
        z = l2_normalize_strict(features)
        return topk_inner_product_mean(z, self.bank_, self.k) * logsumexp(logits, axis=1)
