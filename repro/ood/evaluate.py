"""NINCO-style OOD evaluation (paper 8.1): per-class FPR, class means, unit-test verdicts,
contamination study, method ranking. Results are tidy pandas frames.

This module knows nothing about how a score is computed: it takes score arrays (higher = ID),
or detector *names* plus precomputed features in :func:`score_detectors`.

* Main metric: the **mean over OOD classes of the per-class FPR@95%TPR** (Sec. 8.1 (Sec. 3.3)); the pooled
  FPR over all OOD images is reported beside it because class sizes differ (the ch. 3-4 implementation notes, Sec. 7.3).
* OOD unit tests: a detector fails a test when its FPR on the test exceeds 10 % (Sec. 8.1 (Sec. 3.2)).
  Unit tests are excluded from the summary metrics (Sec. 8.1 (Sec. 3.2)).
* Contamination (N-Fig.3, Sec. 8.1 (Sec. 2.2)): FPR on a set with ID fraction p vs its cleaned version.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from repro.ood.metrics import SortedScores, check_scores

__all__ = ["UNIT_TEST_FAIL_FPR", "per_class_metrics", "ninco_summary", "unit_test_verdicts", "contamination_study",
           "cleaning_effect", "rank_methods", "score_detectors", "evaluate_model"]

UNIT_TEST_FAIL_FPR = 0.10  # Sec. 8.1 (Sec. 3.2): "a user-defined threshold, which we suggest setting at 10%"


def _labels_or_single(scores, labels, class_names, dataset):
    scores = check_scores(scores, f"scores of {dataset!r}")
    if labels is None:
        return scores, np.zeros(len(scores), dtype=np.int64), [dataset]
    labels = np.asarray(labels)
    if labels.shape != scores.shape:
        raise ValueError(f"{dataset!r}: {len(labels)} labels for {len(scores)} scores")
    names = list(class_names) if class_names is not None else [str(c) for c in range(int(labels.max()) + 1)]
    return scores, labels.astype(np.int64), names


def per_class_metrics(scores_id, scores_ood, labels=None, class_names=None, dataset: str = "ood",
                      **keys) -> pd.DataFrame:
    """One row per OOD class: ``[**keys, dataset, ood_class, n, fpr, auroc]`` (FPR/AUROC as fractions).

    ``labels``/``class_names`` split ``scores_ood`` into classes (None: the whole set is one class).
    Extra keyword arguments (e.g. ``model=..., method=...``) become leading columns.
    """
    base = SortedScores(scores_id)
    s, y, names = _labels_or_single(scores_ood, labels, class_names, dataset)
    rows = []
    for c, name in enumerate(names):
        m = y == c
        if not m.any():
            continue
        ss = base.with_ood(s[m])
        rows.append({**keys, "dataset": dataset, "ood_class": name, "n": int(m.sum()), "fpr": ss.fpr(),
                     "auroc": ss.auroc()})
    return pd.DataFrame(rows)


def ninco_summary(per_class: pd.DataFrame, by: Sequence[str] = ("model", "method"),
                  scores_pooled: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Mean over OOD classes of the per-class FPR / AUROC (Sec. 8.1 (Sec. 3.3), Sec. 8.1 (App. D)), plus the worst class and
    the share of classes with FPR <= 50 % (the CDF view of N-Fig.5)."""
    by = [b for b in by if b in per_class.columns]
    if per_class.empty:
        raise ValueError("per_class is empty: no OOD classes were evaluated")
    g = per_class.groupby(by + ["dataset"], sort=False)
    out = g.agg(mean_fpr=("fpr", "mean"), mean_auroc=("auroc", "mean"), max_fpr=("fpr", "max"),
                n_classes=("fpr", "size"), n_images=("n", "sum")).reset_index()
    # pooled FPR is the image-weighted mean of per-class acceptance (same ID threshold for all classes)
    pooled = g.apply(lambda d: float(np.average(d["fpr"], weights=d["n"])), include_groups=False)
    out["pooled_fpr"] = pooled.to_numpy()
    return out


def unit_test_verdicts(scores_id, unit_scores: Mapping[str, np.ndarray], threshold: float = UNIT_TEST_FAIL_FPR,
                       **keys) -> pd.DataFrame:
    """One row per unit test: ``[**keys, test, fpr, failed]``; failed = FPR > ``threshold`` (Sec. 8.1 (Sec. 3.2))."""
    base = SortedScores(scores_id)
    rows = []
    for test, s in unit_scores.items():
        f = base.with_ood(s).fpr()
        rows.append({**keys, "test": test, "fpr": f, "failed": bool(f > threshold)})
    return pd.DataFrame(rows)


def cleaning_effect(scores_id, scores_pop, flags, **keys) -> dict:
    """FPR on a contaminated set vs on its cleaned part (flags == 0), as in N-Fig.3 (Sec. 8.1 (Sec. 2.2)).

    Also reports the share of false positives that are contaminated images (Sec. 8.1 (Sec. 2.2): >85 % for SPECIES).
    """
    base = SortedScores(scores_id)
    s = check_scores(scores_pop, "scores_pop")
    flags = np.asarray(flags)
    if flags.shape != s.shape:
        raise ValueError(f"flags must have one entry per score ({len(s)}), got shape {flags.shape}")
    clean = flags == 0
    if not clean.any():
        raise ValueError("the set has no clean images (flags == 0); cannot compute the cleaned FPR")
    tau = np.quantile(base.id, 0.05)
    fp = s >= tau
    return {**keys, "p": float((~clean).mean()), "fpr_original": base.with_ood(s).fpr(),
            "fpr_cleaned": base.with_ood(s[clean]).fpr(),
            "fp_share_contaminated": float((fp & ~clean).sum() / max(fp.sum(), 1)), "n": int(len(s)),
            "n_clean": int(clean.sum())}


def contamination_study(scores_id, scores_pool, flags, ps: Sequence[float], n: Optional[int] = None,
                        reps: int = 5, seed: int = 0, **keys) -> pd.DataFrame:
    """FPR of sets with a controlled ID fraction p, resampled from one flagged pool, vs the same
    sets cleaned (contaminated images removed). One row per (p, rep).

    ``n`` images per resampled set (default: the largest size feasible for every p).
    """
    s = check_scores(scores_pool, "scores_pool")
    flags = np.asarray(flags)
    cont, clean = np.flatnonzero(flags != 0), np.flatnonzero(flags == 0)
    ps = [float(p) for p in ps]
    if any(not 0 <= p < 1 for p in ps):
        raise ValueError(f"ps must lie in [0, 1), got {ps}")
    feasible = min(int(len(clean) / (1 - p)) if p < 1 else 0 for p in ps)
    pmax = max(ps)
    if pmax > 0:
        feasible = min(feasible, int(len(cont) / pmax))
    n = feasible if n is None else int(n)
    if n < 10 or n > feasible:
        raise ValueError(f"cannot draw sets of {n} images for p up to {pmax:.2f} from a pool with {len(clean)} clean "
                         f"and {len(cont)} contaminated images (at most {feasible}); use a larger pool or fewer images")
    base = SortedScores(scores_id)
    rng = np.random.default_rng(seed)
    rows = []
    for p in ps:
        k = int(round(p * n))
        for r in range(reps):
            ci = rng.choice(cont, k, replace=False) if k else np.array([], dtype=np.int64)
            cl = rng.choice(clean, n - k, replace=False)
            rows.append({**keys, "p": p, "rep": r, "n": n,
                         "fpr_original": base.with_ood(s[np.r_[ci, cl]]).fpr(),
                         "fpr_cleaned": base.with_ood(s[cl]).fpr()})
    return pd.DataFrame(rows)


def rank_methods(summary: pd.DataFrame, value: str = "mean_fpr", by: str = "model", method: str = "method",
                 lower_is_better: bool = True) -> pd.DataFrame:
    """Rank of each method within each model (1 = best), as a ``model x method`` frame."""
    wide = summary.pivot_table(index=by, columns=method, values=value, sort=False)
    return wide.rank(axis=1, ascending=lower_is_better, method="min").astype(int)


def score_detectors(methods: Sequence, train, sets: Mapping[str, object], hparams: Optional[dict] = None) -> dict:
    """Fit each detector (by registry name) on ``train`` features and score every set.

    ``train`` and the values of ``sets`` are :class:`repro.ood.features.Features`. Returns
    ``{method: {set_name: scores}}``.
    """
    from repro.ood.detectors import get_detector

    hparams = hparams or {}
    out = {}
    for m in methods:
        det = get_detector(m, **hparams.get(m, {}))
        det.fit(train.features, train.logits, train.labels, train.head)
        out[m] = {k: det.score(v.features, v.logits) for k, v in sets.items()}
    return out


def evaluate_model(scores: Mapping[str, Mapping[str, np.ndarray]], id_set: str, ood_sets: Mapping[str, tuple],
                   unit_sets: Sequence[str] = (), model: str = "model") -> dict:
    """Tidy frames for one model from ``{method: {set: scores}}``.

    ``ood_sets`` maps a set name to ``(labels or None, class_names or None)``; ``unit_sets`` are the
    unit-test set names. Returns ``{"per_class": df, "unit_tests": df}``.
    """
    pcs, uts = [], []
    for method, d in scores.items():
        for name, (labels, names) in ood_sets.items():
            pcs.append(per_class_metrics(d[id_set], d[name], labels, names, dataset=name, model=model, method=method))
        if unit_sets:
            uts.append(unit_test_verdicts(d[id_set], {u: d[u] for u in unit_sets}, model=model, method=method))
    return {"per_class": pd.concat(pcs, ignore_index=True),
            "unit_tests": pd.concat(uts, ignore_index=True) if uts else pd.DataFrame()}
