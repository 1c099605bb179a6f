"""KNN detector (Sec. 8.1 (App. C), KNN paragraph): z = h / ||h||, s(x) = -||z - z_(K)||, the distance to the
K-th nearest normalised train feature; K = 1000 in the paper. Exact search with a faiss
inner-product index (on unit vectors ||z - z_i||^2 = 2 - 2 z.z_i).

K larger than the number of training samples is a ``ValueError`` naming ``k`` (the same policy as
NNGuide's ``k`` and SSD+'s ``n_clusters``): clamping it would report a different detector than the
one asked for."""
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
        if self.k > len(bank):
            raise ValueError(f"knn: k must be in [1, {len(bank)}] (number of train samples), got {self.k}; "
                             "lower k or fit on more training features")
        self.k_ = self.k

    def kneighbors(self, features, k=None) -> tuple[np.ndarray, np.ndarray]:
        """(distances [N, k] ascending, train indices [N, k]) of the k nearest normalised train features."""
        if not getattr(self, "fitted_", False):
            raise RuntimeError("knn: call fit(...) before kneighbors(...)")
        k = self.k_ if k is None else int(k)
        if not 1 <= k <= self.index_.ntotal:
            raise ValueError(f"knn: k must be in [1, {self.index_.ntotal}] (number of train samples), got {k}")
        q = np.ascontiguousarray(l2_normalize(np.asarray(features, dtype=np.float64)).astype(np.float32))
        if q.ndim != 2 or q.shape[1] != self.index_.d:
            raise ValueError(f"knn: features must be [N, {self.index_.d}], got shape {q.shape}")
        sims, idx = self.index_.search(q, k)
        return np.sqrt(np.maximum(2.0 - 2.0 * sims.astype(np.float64), 0.0)), idx

    def _score(self, features, logits):
        dist, _ = self.kneighbors(features)
        return -dist[:, -1]
