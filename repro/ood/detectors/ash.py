"""ASH-S: activation shaping of the pre-logit features, scored with the energy.

Dissertation Sec. 8.2 (App. G) (paper 8.2, App. G): "Ash applies activation shaping at inference time by
pruning activations below a certain threshold, and then binarizing (Ash-b) or scaling (Ash-s) the
remaining activations ... we apply ash to the pre-logit feature activations." The tables (M-Tab.2,
4, 6, column "AshS") report ASH-S. The percentile is not printed in the dissertation; the authors'
code (``mueller-mp/maha-norm``) uses 90 for ASH-S, which is the default here.

ASH-S per sample (Djurisic et al. 2023, Alg. 1): keep the ``k = D - round(D * p / 100)`` largest
activations, zero the rest, and multiply the kept ones by ``exp(s1 / s2)`` where ``s1`` / ``s2`` are
the activation sums before / after pruning. The shaped features go through the classifier head and
the score is the energy ``logsumexp(W h + b)``.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from repro.ood.detectors.base import Detector, register


def ash_s(features: np.ndarray, percentile: float) -> np.ndarray:
    """ASH-S shaping of a batch of feature vectors ``[N, D]`` (pure function).

    When the kept activations sum to exactly 0 (all-zero input) the scale ``s1/s2`` is undefined;
    we leave such a row unscaled (factor 1) instead of producing NaN.
    """
    if not 0 <= percentile < 100:
        raise ValueError(f"ASH percentile must be in [0, 100), got {percentile}")
    x = np.asarray(features, dtype=np.float64)
    n, d = x.shape
    k = d - int(np.round(d * percentile / 100.0))
    k = max(k, 1)
    s1 = x.sum(axis=1)
    # argpartition selects the k largest per row without a full sort (ties: any k of them, as topk)
    idx = np.argpartition(-x, k - 1, axis=1)[:, :k]
    out = np.zeros_like(x)
    rows = np.arange(n)[:, None]
    out[rows, idx] = x[rows, idx]
    s2 = out.sum(axis=1)
    scale = np.divide(s1, s2, out=np.zeros_like(s1), where=s2 != 0)
    return out * np.exp(scale)[:, None]


@register("ash_s")
class ASHS(Detector):
    """ASH-S (p = 90) + energy on the pre-logit features (dissertation Sec. 8.2 (App. G), M-Tab.4 "AshS")."""

    uses_features = True
    needs_head = True

    def __init__(self, percentile: float = 90.0):
        self.percentile = percentile

    def _fit(self, features, logits, labels, head):
        if not 0 <= self.percentile < 100:
            raise ValueError(f"ash_s: percentile must be in [0, 100), got {self.percentile}")
        self.W_ = head.W
        self.b_ = head.b

    def needs_training_features(self) -> bool:
        return False

    def _score(self, features, logits):
        if features.shape[1] != self.W_.shape[1]:
            raise ValueError(f"ash_s: features have dimension {features.shape[1]}, head expects {self.W_.shape[1]}")
        h = ash_s(features, self.percentile)
        return logsumexp(h @ self.W_.T + self.b_, axis=1)
