"""OOD detection metrics (dissertation Ch. 2.4, Sec. 2.4; paper 8.1 Sec. 8.1 (App. D)).

Convention everywhere in this suite: **scores are higher for in-distribution (ID) inputs**; an
input is accepted as ID when ``s >= tau``.

* ``fpr_at_95tpr``: the threshold ``tau`` is the 5 % quantile of the ID scores (so >= 95 % of ID
  inputs are accepted) and the FPR is the share of OOD inputs with ``s >= tau`` (ties accepted).
  This is the NINCO / dissertation convention ("ID positive"; NINCO code:
  ``t = np.quantile(s_id, 0.05); fpr = mean(s_ood >= t)``). OpenOOD v1.5 and pytorch-ood treat
  OOD as the positive class instead: threshold where 95 % of OOD inputs are *flagged*, FPR = share
  of ID inputs flagged (``sklearn.metrics.roc_curve(is_ood, -s)``, first point with TPR >= 0.95).
  Both are available via ``convention=``; they are different numbers, not a sign flip.
* ``auroc``: P(s_id > s_ood) + 1/2 P(s_id = s_ood) (ties count 1/2), equal to
  ``roc_auc_score(is_id, s)``.
* ``aupr_in`` / ``aupr_out``: average precision (sklearn's step-wise definition) with ID resp.
  OOD as the positive class (OOD ranked by ``-s``); the NINCO paper's AUPR-S/AUPR-E tables
  (N-Tab.5/6) presumably use these two [uncertain, the ch. 3-4 implementation notes].

All four come from one O(n log n) pass: both score arrays are sorted once, and every count
("how many ID/OOD scores are >= t") is a ``searchsorted`` into the sorted arrays.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["fpr_at_95tpr", "auroc", "aupr_in", "aupr_out", "ood_metrics", "SortedScores", "check_scores"]

CONVENTIONS = ("id_positive", "ood_positive")


def check_scores(scores, name: str) -> np.ndarray:
    """A finite, non-empty 1-D float64 array, or a ValueError that says what was expected."""
    a = np.asarray(scores)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name} must be numeric scores, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of scores (one per input), got shape {a.shape}; "
                         "flatten it or pass one score per sample")
    if a.size == 0:
        raise ValueError(f"{name} is empty: need at least one score (is the dataset empty?)")
    a = a.astype(np.float64, copy=False)
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"{name} contains {int(bad.sum())} NaN/inf value(s) out of {a.size}; "
                         "check the features/logits the detector was given (np.isfinite)")
    return a


class SortedScores:
    """ID and OOD scores sorted once; every metric reads counts from them.

    Reuse one instance of the ID scores for many OOD sets with :meth:`with_ood`.
    """

    def __init__(self, scores_id, scores_ood=None, *, _id_sorted=None):
        self.id = _id_sorted if _id_sorted is not None else np.sort(check_scores(scores_id, "scores_id"))
        self.ood = None if scores_ood is None else np.sort(check_scores(scores_ood, "scores_ood"))

    def with_ood(self, scores_ood) -> "SortedScores":
        s = SortedScores(None, None, _id_sorted=self.id)
        s.ood = np.sort(check_scores(scores_ood, "scores_ood"))
        return s

    def _need_ood(self):
        if self.ood is None:
            raise ValueError("no OOD scores given")

    # -- metrics ----------------------------------------------------------------------------
    def fpr(self, tpr: float = 0.95, convention: str = "id_positive") -> float:
        self._need_ood()
        if not 0.0 < tpr <= 1.0:
            raise ValueError(f"tpr must lie in (0, 1], got {tpr}")
        if convention == "id_positive":
            tau = np.quantile(self.id, 1.0 - tpr)  # linear interpolation, as the NINCO code
            accepted = self.ood.size - np.searchsorted(self.ood, tau, side="left")
            return float(accepted / self.ood.size)
        if convention == "ood_positive":
            # OOD flagged when -s >= t; t = the k-th largest -s_ood with k = ceil(tpr * n_ood),
            # i.e. s <= the k-th smallest OOD score; FPR = share of ID with s <= that score.
            k = math.ceil(round(tpr * self.ood.size, 9))
            thr = self.ood[k - 1]
            return float(np.searchsorted(self.id, thr, side="right") / self.id.size)
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")

    def auroc(self) -> float:
        self._need_ood()
        left = np.searchsorted(self.id, self.ood, side="left")
        right = np.searchsorted(self.id, self.ood, side="right")
        # for each OOD score: #ID strictly above + 1/2 #ID tied
        greater = self.id.size * self.ood.size - right.sum(dtype=np.float64)
        ties = (right - left).sum(dtype=np.float64)
        return float((greater + 0.5 * ties) / (self.id.size * self.ood.size))

    def aupr_in(self) -> float:
        self._need_ood()
        return _average_precision(self.id, self.ood, positive_high=True)

    def aupr_out(self) -> float:
        self._need_ood()
        return _average_precision(self.ood, self.id, positive_high=False)

    def all(self, tpr: float = 0.95) -> dict:
        return {"fpr": self.fpr(tpr), "auroc": self.auroc(), "aupr_in": self.aupr_in(), "aupr_out": self.aupr_out()}


def _average_precision(pos: np.ndarray, neg: np.ndarray, positive_high: bool) -> float:
    """sklearn's AP = sum_k (R_k - R_{k-1}) P_k over the distinct positive scores (sorted inputs)."""
    first = np.r_[True, pos[1:] != pos[:-1]]
    t = pos[first]
    if positive_high:
        # predicted positive: score >= t
        tp = pos.size - np.searchsorted(pos, t, side="left")
        fp = neg.size - np.searchsorted(neg, t, side="left")
        cnt = np.diff(np.r_[np.flatnonzero(first), pos.size])
    else:
        # predicted positive: score <= t (positives are the low scores)
        tp = np.searchsorted(pos, t, side="right")
        fp = np.searchsorted(neg, t, side="right")
        cnt = np.diff(np.r_[np.flatnonzero(first), pos.size])
    return float(np.sum(cnt * (tp / (tp + fp))) / pos.size)


def fpr_at_95tpr(scores_id, scores_ood, tpr: float = 0.95, convention: str = "id_positive") -> float:
    """FPR at 95 % TPR (paper 8.1 Sec. 8.1 (App. D)): share of OOD inputs accepted at the threshold that
    accepts 95 % of ID inputs (``convention="id_positive"``, the dissertation's). With
    ``convention="ood_positive"`` (OpenOOD v1.5): share of ID inputs flagged as OOD at the
    threshold that flags 95 % of OOD inputs. Returns a fraction in [0, 1]."""
    return SortedScores(scores_id, scores_ood).fpr(tpr, convention)


def auroc(scores_id, scores_ood) -> float:
    """Area under the ROC curve, ID positive, ties count 1/2 (Sec. 8.1 (App. D), Sec. 2.4)."""
    return SortedScores(scores_id, scores_ood).auroc()


def aupr_in(scores_id, scores_ood) -> float:
    """Average precision with ID as the positive class (higher score = ID)."""
    return SortedScores(scores_id, scores_ood).aupr_in()


def aupr_out(scores_id, scores_ood) -> float:
    """Average precision with OOD as the positive class (ranked by -score)."""
    return SortedScores(scores_id, scores_ood).aupr_out()


def ood_metrics(scores_id, scores_ood, tpr: float = 0.95) -> dict:
    """All four metrics from one sort: ``{"fpr", "auroc", "aupr_in", "aupr_out"}`` (fractions)."""
    return SortedScores(scores_id, scores_ood).all(tpr)
