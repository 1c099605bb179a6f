"""fDBD: feature distance to the decision boundaries (Liu & Qin, 2024).

Cited in the dissertation (Sec. 8.2 (Sec. 5), Sec. 8.2 (Sec. 6), M-Tab.2/4/6 column "fDBD") without a formula. Following
Liu & Qin (2024) and the authors' code, with predicted class y = argmax_c o_c and the classifier rows
w_c, the distance of phi to the boundary between y and c is |o_c - o_y| / ||w_c - w_y||; the score
is the sum of these distances over c != y, divided by the distance of phi to the train feature mean:

    s = sum_{c != y} |o_c - o_y| / ||w_c - w_y||  /  ||phi - mean_train(phi)||.

No hyperparameters. (The authors' code also divides by C - 1, a constant that does not change ranks;
we keep the mean over c != y so scores are comparable across class counts.)
"""
from __future__ import annotations

import numpy as np

from repro.ood.detectors.base import Detector, register


@register("fdbd")
class FDBD(Detector):
    """fDBD -- Liu & Qin 2024, M-Tab.4 column "fDBD"."""

    uses_features = True
    uses_logits = True
    needs_head = True

    def __init__(self):
        pass

    def _fit(self, features, logits, labels, head):
        W = head.W
        if W.shape[0] < 2:
            raise ValueError("fdbd: needs at least 2 classes (decision boundaries between classes)")
        diff = np.linalg.norm(W[:, None, :] - W[None, :, :], axis=2)
        np.fill_diagonal(diff, 1.0)  # the c == y term has numerator 0; avoid 0/0
        if np.any(diff == 0):
            raise ValueError("fdbd: two classifier rows are identical; their decision boundary is undefined")
        self.wdist_ = diff
        self.train_mean_ = features.mean(axis=0)

    def _score(self, features, logits):
        if len(features) != len(logits):
            raise ValueError(f"fdbd: {len(features)} feature rows but {len(logits)} logit rows")
        if logits.shape[1] != self.wdist_.shape[0]:
            raise ValueError(f"fdbd: logits have {logits.shape[1]} classes, head has {self.wdist_.shape[0]}")
        y = logits.argmax(axis=1)
        top = logits[np.arange(len(y)), y]
        dist = np.abs(logits - top[:, None]) / self.wdist_[y]
        den = np.linalg.norm(features - self.train_mean_, axis=1)
        if np.any(den == 0):
            raise ValueError("fdbd: a test feature equals the train mean exactly; its score is undefined")
        return dist.sum(axis=1) / (logits.shape[1] - 1) / den
