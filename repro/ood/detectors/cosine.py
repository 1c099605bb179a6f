"""Cosine-similarity detectors with class means as prototypes (paper 8.1 L1597-1605).

* ``cosine``: s(x) = max_c mu_c^T h / (||mu_c|| ||h||) (M-Eq. 10, L3306-3308; 8.1's Eq. (1) omits
  ||h||, which does not change the ranking within one x but does across inputs; the code normalises).
* ``rcos`` (relative cosine; "MCM/RCos" column of N-Tab.3): s(x) = max_c softmax_c(cos(h, mu_c) / T),
  T = 1 (no temperature, L1605). With CLIP text embeddings as prototypes this is MCM (full profile
  only; no text encoder exists in the generated world).
"""
from __future__ import annotations

import numpy as np
from scipy.special import softmax

from repro.ood.detectors.base import Detector, register
from repro.ood.detectors.mahalanobis import l2_normalize


class _CosBase(Detector):
    needs_labels = True

    def _fit(self, features, logits, labels, head):
        C = int(labels.max()) + 1
        sums = np.zeros((C, features.shape[1]))
        np.add.at(sums, labels, features)
        counts = np.bincount(labels, minlength=C)
        self.prototypes_ = l2_normalize(sums[counts > 0] / counts[counts > 0, None])

    def _cos(self, features):
        return l2_normalize(features) @ self.prototypes_.T


@register("cosine")
class Cosine(_CosBase):
    def _score(self, features, logits):
        return self._cos(features).max(axis=1)


@register("rcos")
class RelativeCosine(_CosBase):
    def __init__(self, temperature: float = 1.0):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def _score(self, features, logits):
        return softmax(self._cos(features) / self.temperature, axis=1).max(axis=1)
