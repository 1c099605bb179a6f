"""OOD metrics on 10^6 ID + 10^6 OOD scores: repro.ood.metrics vs sklearn (same run).

Target (issue 4): >= 3x faster than ``sklearn.metrics.roc_auc_score`` + ``roc_curve`` for AUROC and
FPR@95, identical values (AUROC within 1e-12 of sklearn; FPR equal to the NINCO reference formula
``mean(s_ood >= quantile(s_id, 0.05))``).
"""
from __future__ import annotations

import time

import numpy as np


def _best(fn, reps=3):
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(n: int = 1_000_000, seed: int = 0) -> list:
    from sklearn.metrics import roc_auc_score, roc_curve

    from repro.ood.metrics import SortedScores

    rng = np.random.default_rng(seed)
    s_id, s_ood = rng.normal(1, 1, n), rng.normal(0, 1, n)
    # ties as in real detectors (float32 scores, saturated MSP): round a share of the scores
    s_id[: n // 10] = np.round(s_id[: n // 10], 2)
    s_ood[: n // 10] = np.round(s_ood[: n // 10], 2)

    def ours():
        ss = SortedScores(s_id, s_ood)
        return ss.auroc(), ss.fpr()

    def sk():
        y = np.r_[np.ones(n), np.zeros(n)]
        s = np.r_[s_id, s_ood]
        a = roc_auc_score(y, s)
        fpr, tpr, _ = roc_curve(y, s)
        return a, fpr[np.argmax(tpr >= 0.95)]

    t_ours, (a1, f1) = _best(ours)
    t_sk, (a2, f2) = _best(sk)
    f_ref = float(np.mean(s_ood >= np.quantile(s_id, 0.05)))
    speedup = t_sk / t_ours
    rows = [
        {"benchmark": "metrics_1e6", "metric": "speedup_vs_sklearn_auroc_plus_roc_curve", "value": speedup,
         "reference": f"sklearn {t_sk:.3f}s vs ours {t_ours:.3f}s", "ratio": speedup, "target": ">= 3",
         "passed": bool(speedup >= 3)},
        {"benchmark": "metrics_1e6", "metric": "abs_diff_auroc_vs_sklearn", "value": abs(a1 - a2),
         "reference": f"sklearn AUROC {a2:.15f}", "ratio": abs(a1 - a2), "target": "<= 1e-12",
         "passed": bool(abs(a1 - a2) <= 1e-12)},
        {"benchmark": "metrics_1e6", "metric": "abs_diff_fpr_vs_ninco_formula", "value": abs(f1 - f_ref),
         "reference": f"NINCO quantile formula {f_ref:.6f}; sklearn roc_curve point {f2:.6f}", "ratio": abs(f1 - f_ref),
         "target": "<= 1e-12", "passed": bool(abs(f1 - f_ref) <= 1e-12)},
    ]
    for r in rows:
        print(r)
    return rows


if __name__ == "__main__":
    main()
