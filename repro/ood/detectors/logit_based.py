"""Logit-based detectors of paper 8.1 (Sec. 8.1 (App. C)): MSP, Max-Logit, Energy, KL-Matching.

They read only the logits o (and for KL-Matching train softmax templates); scores are oriented
higher = more in-distribution.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax, xlogy

from repro.ood.detectors.base import Detector, register


class _LogitDetector(Detector):
    uses_features = False
    uses_logits = True


@register("msp")
class MSP(_LogitDetector):
    """Maximum softmax probability, s = max_c softmax(o)_c (Sec. 8.1 (App. C))."""

    def _score(self, features, logits):
        return softmax(logits, axis=1).max(axis=1)


@register("maxlogit")
class MaxLogit(_LogitDetector):
    """Max-Logit, s = max_c o_c (Sec. 8.1 (App. C))."""

    def _score(self, features, logits):
        return logits.max(axis=1)


@register("energy")
class Energy(_LogitDetector):
    """Energy, s = T log sum_c exp(o_c / T); the paper uses T = 1 (Sec. 8.1 (App. C))."""

    def __init__(self, temperature: float = 1.0):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def _score(self, features, logits):
        return self.temperature * logsumexp(logits / self.temperature, axis=1)


@register("kl_matching")
class KLMatching(_LogitDetector):
    """KL-Matching, s = -min_c KL[p(x) || d_c] (Sec. 8.1 (App. C)).

    d_c is the mean train softmax vector of class c. The paper computes the templates on the
    train set (not an extra validation set, Sec. 8.1 (App. C)); the NINCO code groups the train samples by
    their *predicted* class (``group_by="predicted"``, default); ``group_by="label"`` uses the
    true labels. Classes without any sample get no template.
    """

    def __init__(self, group_by: str = "predicted"):
        if group_by not in ("predicted", "label"):
            raise ValueError(f"group_by must be 'predicted' or 'label', got {group_by!r}")
        self.group_by = group_by
        self.needs_labels = group_by == "label"

    def needs_training_features(self) -> bool:
        return False

    def _fit(self, features, logits, labels, head):
        if logits is None:
            raise ValueError("kl_matching: fit needs train_logits [N, C]")
        p = softmax(logits, axis=1)
        groups = p.argmax(1) if self.group_by == "predicted" else labels
        C = logits.shape[1]
        counts = np.bincount(groups, minlength=C)
        sums = np.zeros((C, C))
        np.add.at(sums, groups, p)
        keep = counts > 0
        self.templates_ = sums[keep] / counts[keep, None]

    def _score(self, features, logits):
        p = softmax(logits, axis=1)
        neg_entropy = xlogy(p, p).sum(axis=1, keepdims=True)
        # floor only against log(0) for templates that underflowed; no smoothing of real values
        kl = neg_entropy - p @ np.log(np.maximum(self.templates_, 1e-300)).T  # [N, C'] = KL(p || d_c)
        return -kl.min(axis=1)
