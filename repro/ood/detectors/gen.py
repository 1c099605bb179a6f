"""GEN: generalized entropy score on the softmax (Liu et al., 2023).

Cited in the dissertation (Sec. 8.2 (Sec. 5), Sec. 8.2 (Sec. 6), M-Tab.2/4/6 column "GEN") without a formula. We follow
Liu et al. (2023) and the authors' code: with p the softmax of the logits and the ``M`` largest
probabilities p_(1..M),

    s = - sum_{j=1}^{M} p_(j)^gamma (1 - p_(j))^gamma,   gamma = 0.1, M = 100.

With ``M`` >= the number of classes all classes are used, so ``M`` has no effect on such problems:
scoring then warns (:class:`repro.core.registry.InertParameterWarning`) instead of silently ignoring it.
"""
from __future__ import annotations

import numpy as np
from scipy.special import softmax

from repro.core.registry import warn_inert
from repro.ood.detectors.base import Detector, register


@register("gen")
class GEN(Detector):
    """Generalized entropy (gamma = 0.1, M = 100) -- Liu et al. 2023, M-Tab.4 column "GEN"."""

    uses_features = False
    uses_logits = True

    def __init__(self, gamma: float = 0.1, M: int = 100):
        if not gamma > 0:
            raise ValueError(f"gen: gamma must be > 0, got {gamma}")
        if int(M) < 1:
            raise ValueError(f"gen: M must be >= 1, got {M}")
        self.gamma = gamma
        self.M = M

    def needs_training_features(self) -> bool:
        return False

    def _fit(self, features, logits, labels, head):
        if not self.gamma > 0:
            raise ValueError(f"gen: gamma must be > 0, got {self.gamma}")
        if int(self.M) < 1:
            raise ValueError(f"gen: M must be >= 1, got {self.M}")

    def _score(self, features, logits):
        p = softmax(logits, axis=1)
        if int(self.M) >= p.shape[1]:
            warn_inert("gen", "M", f"M={self.M} >= {p.shape[1]} classes, so all classes are used")
        m = min(int(self.M), p.shape[1])
        top = np.sort(p, axis=1)[:, -m:]
        return -np.sum(top ** self.gamma * (1 - top) ** self.gamma, axis=1)
