"""KNN detector (paper 8.1 L1555-1559): z = h / ||h||, s(x) = -||z - z_(K)||, the distance to the
K-th nearest normalised train feature; K = 1000 in the paper. Exact search with a faiss
inner-product index (on unit vectors ||z - z_i||^2 = 2 - 2 z.z_i)."""
from __future__ import annotations

import numpy as np

from repro.ood.detectors.base import Detector, register
from repro.ood.detectors.mahalanobis import l2_normalize


@register("knn")
class KNN(Detector):
    def __init__(self, k: int = 1000):
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)

    def _fit(self, features, logits, labels, head):
        import faiss

        bank = np.ascontiguousarray(l2_normalize(features).astype(np.float32))
        self.index_ = faiss.IndexFlatIP(bank.shape[1])
        self.index_.add(bank)
        # a train set smaller than K: use all of it (stated in k_, never silently different)
        self.k_ = min(self.k, len(bank))

    def kneighbors(self, features, k=None) -> tuple[np.ndarray, np.ndarray]:
        """(distances [N, k] ascending, train indices [N, k]) of the k nearest normalised train features."""
        if not getattr(self, "fitted_", False):
            raise RuntimeError("knn: call fit(...) before kneighbors(...)")
        k = self.k_ if k is None else min(int(k), self.index_.ntotal)
        q = np.ascontiguousarray(l2_normalize(np.asarray(features, dtype=np.float64)).astype(np.float32))
        if q.ndim != 2 or q.shape[1] != self.index_.d:
            raise ValueError(f"knn: features must be [N, {self.index_.d}], got shape {q.shape}")
        sims, idx = self.index_.search(q, k)
        return np.sqrt(np.maximum(2.0 - 2.0 * sims.astype(np.float64), 0.0)), idx

    def _score(self, features, logits):
        dist, _ = self.kneighbors(features)
        return -dist[:, -1]
