"""Verdict rules that account for noise (issue 16, Sec. 3 of the book's conventions).

A claim "X is better than Y for most models" is judged on per-model effects with an interval (e.g. a paired
bootstrap over test images, :func:`repro.ood.uncertainty.paired_fpr_bootstrap`): a model counts as *better* only
when its whole interval has the claimed sign, as *worse* when the whole interval has the other sign, and as a
tie otherwise. A claim about an average across models is judged on a t interval over the models.

* :func:`sign_test_p` -- one-sided exact sign test over the decided models (ties dropped, as the test does).
* :func:`across_models` -- the verdict of a "most" / "almost every" claim from those counts.
* :func:`mean_interval` -- mean and t interval of per-model effects.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: a "most" / "almost every" claim needs its decided majority to be unlikely under a fair coin
SIGN_TEST_ALPHA = 0.05
#: "almost every model": at least this share of all counted models decidedly better
ALMOST_EVERY = 0.8
QUANTIFIERS = ("most", "almost every")


def sign_test_p(better: int, worse: int) -> float:
    """One-sided exact sign test: P(at least ``better`` successes of ``better + worse`` fair coin flips).
    1.0 when no model is decided."""
    better, worse = int(better), int(worse)
    if better < 0 or worse < 0:
        raise ValueError(f"counts must be >= 0, got better={better}, worse={worse}")
    if better + worse == 0:
        return 1.0
    from scipy.stats import binomtest
    return float(binomtest(better, better + worse, 0.5, alternative="greater").pvalue)


def across_models(better: int, worse: int, n: int, quantifier: str) -> tuple[str, str]:
    """Verdict and its evidence for "better for <quantifier> models" over ``n`` counted models, of which
    ``better`` are decidedly better and ``worse`` decidedly worse (interval excludes zero).

    * ``most``: reproduced when more than half of the ``n`` models are decidedly better and the sign test
      over the decided ones gives p <= :data:`SIGN_TEST_ALPHA`;
    * ``almost every``: the same, with at least :data:`ALMOST_EVERY` of the ``n`` models decidedly better;
    * partly reproduced when more models are decidedly better than worse, not reproduced otherwise; not
      testable without counted models.
    """
    from repro.reference import verdict_from

    if quantifier not in QUANTIFIERS:
        raise ValueError(f"quantifier must be one of {QUANTIFIERS}, got {quantifier!r}")
    if n <= 0:
        return verdict_from(None), "no model to count"
    p = sign_test_p(better, worse)
    share = ALMOST_EVERY if quantifier == "almost every" else 0.5
    enough = better >= share * n if quantifier == "almost every" else better > share * n
    text = f"decidedly better on {better}/{n}, worse on {worse}/{n} (sign test p = {p:.2g})"
    return verdict_from(enough and p <= SIGN_TEST_ALPHA, partly=better > worse), text


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of the finite ``values`` and its two-sided t interval at ``level``; the interval is NaN with fewer
    than two values, and collapses to the mean when all values agree."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if v.size < 2:
        return m, float("nan"), float("nan")
    from scipy.stats import t
    half = float(t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def mean_effect(values: Sequence[float], level: float = 0.95) -> tuple[str, str]:
    """Verdict and evidence for "the average effect is negative" (lower is better, e.g. an FPR change):
    reproduced when the whole t interval is below zero, partly when only the mean is."""
    from repro.reference import verdict_from

    m, lo, hi = mean_interval(values, level)
    if not np.isfinite(m):
        return verdict_from(False), "no finite effect"
    text = (f"mean change {m:+.1f} ({100 * level:g} % t interval {lo:+.1f} to {hi:+.1f})" if np.isfinite(hi)
            else f"change {m:+.1f} (one model: no interval)")
    return verdict_from(bool(np.isfinite(hi) and hi < 0), partly=m < 0), text
