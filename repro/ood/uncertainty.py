"""Uncertainty of OOD metrics: how much a detector comparison depends on which images the test sets hold.

Kept apart from :mod:`repro.ood.evaluate` (the metrics tables) because only verdicts use it. Like the evaluator,
it knows nothing about how a score is computed: it takes score arrays (higher = ID).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from repro.ood.metrics import check_scores, fpr_at_95tpr

__all__ = ["paired_fpr_bootstrap"]


def _fpr_resampled(scores_id: np.ndarray, scores_ood: np.ndarray, id_idx: np.ndarray, ood_idx: np.ndarray,
                   tpr: float) -> np.ndarray:
    """FPR@``tpr`` (ID positive, the convention of :func:`repro.ood.metrics.fpr_at_95tpr`) for each row of
    resampling indices: threshold = the (1 - tpr) quantile (linear interpolation) of the resampled ID scores,
    FPR = share of resampled OOD scores at or above it."""
    tau = np.quantile(scores_id[id_idx], 1.0 - tpr, axis=1)
    return (scores_ood[ood_idx] >= tau[:, None]).mean(axis=1)


def paired_fpr_bootstrap(id_a, ood_a: Mapping[str, np.ndarray], id_b, ood_b: Mapping[str, np.ndarray],
                         n_boot: int = 2000, level: float = 0.95, tpr: float = 0.95, seed: int = 0) -> dict:
    """Difference of the average FPR@95 %TPR over OOD sets, detector b minus detector a, with a percentile
    bootstrap interval over images.

    Both detectors score the *same* images (``id_a[i]`` and ``id_b[i]`` are one ID image), so the resampling is
    paired: one draw of ID indices and one per OOD set serve both, and the interval measures how much the
    difference depends on which images the test sets happen to hold. Returns fractions:
    ``{"delta", "lo", "hi", "n_boot"}``; ``delta`` is the plain difference on the full sets."""
    sets = list(ood_a)
    if not sets or set(sets) != set(ood_b):
        raise ValueError(f"both detectors need scores on the same non-empty OOD sets; got {sorted(ood_a)} and "
                         f"{sorted(ood_b)}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if int(n_boot) < 100:
        raise ValueError(f"n_boot must be >= 100 for a {100 * level:g} % interval, got {n_boot}")
    ia, ib = check_scores(id_a, "id_a"), check_scores(id_b, "id_b")
    if ia.shape != ib.shape:
        raise ValueError(f"paired scores: id_a has {ia.size} images, id_b {ib.size}; score the same ID images")
    rng = np.random.default_rng(seed)
    id_idx = rng.integers(0, ia.size, size=(int(n_boot), ia.size))
    diff, point = np.zeros(int(n_boot)), 0.0
    for k in sets:
        oa, ob = check_scores(ood_a[k], f"ood_a[{k!r}]"), check_scores(ood_b[k], f"ood_b[{k!r}]")
        if oa.shape != ob.shape:
            raise ValueError(f"paired scores: OOD set {k!r} has {oa.size} images for a and {ob.size} for b")
        ood_idx = rng.integers(0, oa.size, size=(int(n_boot), oa.size))
        diff += _fpr_resampled(ib, ob, id_idx, ood_idx, tpr) - _fpr_resampled(ia, oa, id_idx, ood_idx, tpr)
        point += fpr_at_95tpr(ib, ob, tpr) - fpr_at_95tpr(ia, oa, tpr)
    diff /= len(sets)
    a = (1.0 - level) / 2
    lo, hi = np.quantile(diff, [a, 1.0 - a])
    return {"delta": point / len(sets), "lo": float(lo), "hi": float(hi), "n_boot": int(n_boot)}
