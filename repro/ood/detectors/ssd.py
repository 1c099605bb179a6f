"""SSC (softmax-scaled cosine) and SSD+ (cluster-conditional Mahalanobis on normalised features).

- **SSC** -- dissertation Sec. 8.2 (App. G) (paper 8.2, App. G; M-Tab.12 column "SSC"):
  cos theta_i = w_i . phi / (||w_i|| ||phi||) with the classifier rows w_i, and
  s = max_i softmax(t * cos theta)_i with t = 1 ("for our post-hoc setup we set s = 1").
- **SSD+** -- M-Tab.18 (NINCO FPR of a SupCon ResNet-50 "SSD+ ... with k-means with 100/500/1000
  clusters"). Following Sehwag et al. (2021) and their code: l2-normalise the features, standardise
  them with the train mean/std, cluster the train features with k-means, fit a mean and a
  (maximum-likelihood, ``bias=True``) covariance per cluster and score
  s = -min_k (phi - mu_k)^T Sigma_k^+ (phi - mu_k) with the pseudo-inverse ``Sigma_k^+``.
  (SSD+'s training-time part, SupCon, is a property of the checkpoint, not of this detector.)
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.special import softmax

from repro.ood.detectors.base import Detector, register
from repro.ood.detectors.base import l2_normalize_strict


@register("ssc")
class SSC(Detector):
    """Softmax-scaled cosine with the classifier weights (t = 1) -- dissertation Sec. 8.2 (App. G)."""

    uses_features = True
    needs_head = True

    def __init__(self, t: float = 1.0):
        if not t > 0:
            raise ValueError(f"ssc: t (the softmax scale) must be > 0, got {t}")
        self.t = t

    def needs_training_features(self) -> bool:
        return False

    def _fit(self, features, logits, labels, head):
        norms = np.linalg.norm(head.W, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("ssc: a classifier weight row is all zeros; its cosine is undefined")
        self.Wn_ = head.W / norms

    def _score(self, features, logits):
        if features.shape[1] != self.Wn_.shape[1]:
            raise ValueError(f"ssc: features have dimension {features.shape[1]}, head expects {self.Wn_.shape[1]}")
        cos = l2_normalize_strict(features) @ self.Wn_.T
        return softmax(self.t * cos, axis=1).max(axis=1)


@register("ssd_plus")
class SSDPlus(Detector):
    """SSD+ scoring: k-means clusters on normalised features, per-cluster Mahalanobis (M-Tab.18)."""

    uses_features = True

    def __init__(self, n_clusters: int = 100, seed: int = 0):
        if int(n_clusters) < 1:
            raise ValueError(f"ssd_plus: n_clusters must be >= 1, got {n_clusters}")
        self.n_clusters = n_clusters
        self.seed = seed

    def _prep(self, x, name):
        return (l2_normalize_strict(x, name) - self.mean_) / self.std_

    def _fit(self, features, logits, labels, head):
        from sklearn.cluster import KMeans

        n = len(features)
        if not 1 <= int(self.n_clusters) <= n:
            raise ValueError(f"ssd_plus: n_clusters must be in [1, {n}] (number of train samples), got {self.n_clusters}")
        z = l2_normalize_strict(features, "train_features")
        self.mean_ = z.mean(axis=0)
        self.std_ = z.std(axis=0) + 1e-10  # as in the SSD code: constant dimensions stay finite
        z = (z - self.mean_) / self.std_
        km = KMeans(n_clusters=int(self.n_clusters), n_init=1, max_iter=100, random_state=self.seed).fit(z)
        centers, precs = [], []
        small = 0
        for k in range(int(self.n_clusters)):
            zk = z[km.labels_ == k]
            if len(zk) == 0:
                continue
            small += len(zk) <= z.shape[1]
            mu = zk.mean(axis=0)
            cov = (zk - mu).T @ (zk - mu) / len(zk)
            centers.append(mu)
            precs.append(np.linalg.pinv(cov, hermitian=True))
        if small:
            warnings.warn(f"ssd_plus: {small} cluster(s) have no more samples than dimensions ({z.shape[1]}); "
                          "their covariance is singular and the pseudo-inverse is used (as in SSD)",
                          RuntimeWarning, stacklevel=3)
        self.centers_ = np.stack(centers)
        self.precisions_ = np.stack(precs)

    def _score(self, features, logits):
        z = self._prep(features, "features")
        best = np.full(len(z), np.inf)
        for mu, P in zip(self.centers_, self.precisions_):
            diff = z - mu
            best = np.minimum(best, np.einsum("nd,nd->n", diff @ P, diff))
        return -best
