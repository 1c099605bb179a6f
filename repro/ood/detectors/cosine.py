"""Cosine-similarity detectors with class means as prototypes (Sec. 8.1 (App. C), Cosine and MCM paragraphs).

* ``cosine``: s(x) = max_c mu_c^T h / (||mu_c|| ||h||) (M-Eq. 10; the Sec. 8.1 (App. C) formula omits
  ||h||, which does not change the ranking within one x but does across inputs; the code normalises).
* ``rcos`` (relative cosine; "MCM/RCos" column of N-Tab.3): s(x) = max_c softmax_c(cos(h, mu_c) / T),
  T = 1 (no temperature, Sec. 8.1 (App. C)). With CLIP text embeddings as prototypes this is MCM (full profile
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
        if labels.min() < 0:
            raise ValueError(f"{self.name}: train_labels must be class indices >= 0, got minimum {labels.min()}")
        C = int(labels.max()) + 1
        sums = np.zeros((C, features.shape[1]))
        np.add.at(sums, labels, features)
        counts = np.bincount(labels, minlength=C)
        if not (counts > 0).all():
            missing = np.flatnonzero(counts == 0)
            # the same policy as the Mahalanobis family: a class without samples has no prototype, and
            # dropping it silently would renumber the classes
            raise ValueError(f"{self.name}: class label(s) {missing[:10].tolist()} are missing from train_labels "
                             f"(labels must cover 0..{C - 1}); relabel the classes to "
                             "0..C'-1 or add their samples")
        self.prototypes_ = l2_normalize(sums / counts[:, None])

    def _cos(self, features):
        return l2_normalize(features) @ self.prototypes_.T


@register("cosine")
class Cosine(_CosBase):
    def _score(self, features, logits):
        return self._cos(features).max(axis=1)


@register("rcos")
class RelativeCosine(_CosBase):
    def __init__(self, temperature: float = 1.0):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def _score(self, features, logits):
        return softmax(self._cos(features) / self.temperature, axis=1).max(axis=1)
