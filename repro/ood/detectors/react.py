"""Energy + ReAct (paper 8.1 Sec. 8.1 (App. C)): clip pre-logit activations at the value below which
``percentile`` % of all train activations lie (99: 1 % of train activations are truncated),
recompute the logits with the head and take the energy."""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from repro.ood.detectors.base import Detector, register


@register("react")
class ReAct(Detector):
    needs_head = True

    def __init__(self, percentile: float = 99.0):
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
        self.percentile = percentile

    def _fit(self, features, logits, labels, head):
        self.threshold_ = float(np.quantile(features, self.percentile / 100.0))
        self.W_, self.b_ = head.W, head.b

    def _score(self, features, logits):
        h = np.minimum(features, self.threshold_)
        return logsumexp(h @ self.W_.T + self.b_, axis=1)
