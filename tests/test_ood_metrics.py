"""repro.ood.metrics against sklearn, brute-force O(n^2) references and closed forms."""
import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from repro.ood.metrics import SortedScores, aupr_in, aupr_out, auroc, fpr_at_95tpr, ood_metrics


def brute_auroc(a, b):
    a, b = np.asarray(a, float)[:, None], np.asarray(b, float)[None, :]
    return ((a > b).sum() + 0.5 * (a == b).sum()) / (a.size * b.size)


def brute_fpr_id_positive(a, b):
    return np.mean(np.asarray(b) >= np.quantile(a, 0.05))


def brute_fpr_ood_positive(a, b):
    # OpenOOD v1.5: roc_curve(is_ood, -s), first point with TPR >= 0.95, no dropped points
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    fpr, tpr, _ = roc_curve(y, -np.r_[a, b], drop_intermediate=False)
    return fpr[np.argmax(tpr >= 0.95)]


def _cases():
    rng = np.random.default_rng(0)
    yield rng.normal(1, 1, 300), rng.normal(0, 1, 200)
    # heavy ties (rounded scores)
    yield np.round(rng.normal(1, 1, 257), 1), np.round(rng.normal(0, 1, 143), 1)
    # integers with many duplicates
    yield rng.integers(0, 5, 100).astype(float), rng.integers(0, 5, 77).astype(float)
    # all equal
    yield np.ones(50), np.ones(30)
    # perfectly separated, both ways
    yield np.arange(10, 20.0), np.arange(0, 10.0)
    yield np.arange(0, 10.0), np.arange(10, 20.0)
    # single elements
    yield np.array([0.3]), np.array([0.3])


@pytest.mark.parametrize("case", list(range(7)))
def test_against_sklearn_and_bruteforce(case):
    a, b = list(_cases())[case]
    y = np.r_[np.ones(len(a)), np.zeros(len(b))]
    s = np.r_[a, b]
    m = ood_metrics(a, b)
    assert m["auroc"] == pytest.approx(brute_auroc(a, b), abs=1e-12)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s) if len(set(y)) > 1 else 0.5, abs=1e-12)
    assert m["aupr_in"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert m["aupr_out"] == pytest.approx(average_precision_score(1 - y, -s), abs=1e-12)
    assert m["fpr"] == pytest.approx(brute_fpr_id_positive(a, b), abs=1e-15)
    assert fpr_at_95tpr(a, b, convention="ood_positive") == pytest.approx(brute_fpr_ood_positive(a, b), abs=1e-12)


def test_id_positive_equals_roc_curve_when_quantile_hits_a_sample():
    # n_id = 101 -> the 5 % quantile is exactly the 6th smallest ID score; then the NINCO
    # quantile rule equals the roc_curve rule with ID as the positive class.
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 1, 101), rng.normal(0, 1, 500)
    y = np.r_[np.ones(101), np.zeros(500)]
    fpr, tpr, _ = roc_curve(y, np.r_[a, b], drop_intermediate=False)
    assert fpr_at_95tpr(a, b) == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)


def test_conventions_differ_and_swap_roles():
    rng = np.random.default_rng(2)
    a, b = rng.normal(2, 1, 2000), rng.normal(0, 2, 3000)
    f_id = fpr_at_95tpr(a, b)
    f_ood = fpr_at_95tpr(a, b, convention="ood_positive")
    assert abs(f_id - f_ood) > 0.05  # different quantities, not a relabelling
    # ood_positive is the id_positive rule with the roles of the sets swapped and scores negated
    assert f_ood == pytest.approx(fpr_at_95tpr(-b, -a), abs=0.01)


def test_gaussian_closed_form():
    # ID ~ N(1,1), OOD ~ N(0,1): FPR@95 = 1 - Phi(1 - 1.645), AUROC = Phi(1/sqrt 2) (the the chapter implementation notes)
    rng = np.random.default_rng(3)
    a, b = rng.normal(1, 1, 400_000), rng.normal(0, 1, 400_000)
    assert fpr_at_95tpr(a, b) == pytest.approx(1 - norm.cdf(1 - norm.ppf(0.95)), abs=3e-3)
    assert auroc(a, b) == pytest.approx(norm.cdf(1 / math.sqrt(2)), abs=3e-3)


def test_ties_at_threshold_count_as_accepted():
    a = np.array([0.0] * 6 + [1.0] * 94)  # 5 % quantile (index 4.95) is 0.0
    b = np.zeros(10)
    assert fpr_at_95tpr(a, b) == 1.0
    assert auroc(np.ones(4), np.ones(3)) == 0.5
    assert aupr_in(np.ones(4), np.ones(6)) == pytest.approx(0.4)
    assert aupr_out(np.ones(4), np.ones(6)) == pytest.approx(0.6)


def test_invariant_to_monotone_transform_and_order():
    rng = np.random.default_rng(4)
    a, b = rng.normal(1, 1, 500), rng.normal(0, 1, 300)
    m1 = ood_metrics(a, b)
    m2 = ood_metrics(np.exp(a)[::-1], np.exp(b)[rng.permutation(300)])
    for k in ("auroc", "aupr_in", "aupr_out"):
        assert m1[k] == pytest.approx(m2[k], abs=1e-12)
    # the FPR threshold interpolates, so only ranks at sample points are invariant
    assert abs(m1["fpr"] - m2["fpr"]) <= 1 / 300 + 1e-12


def test_sorted_scores_reuse_matches():
    rng = np.random.default_rng(5)
    a = rng.normal(1, 1, 300)
    base = SortedScores(a)
    for n in (10, 100):
        b = rng.normal(0, 1, n)
        assert base.with_ood(b).all() == ood_metrics(a, b)


@pytest.mark.parametrize("bad,msg", [
    (np.array([]), "empty"),
    (np.array([1.0, np.nan]), "NaN"),
    (np.array([1.0, np.inf]), "NaN/inf"),
    (np.ones((3, 2)), "1-D"),
    (np.array(["a", "b"]), "numeric"),
])
def test_bad_input_is_a_clear_error(bad, msg):
    with pytest.raises(ValueError, match=msg):
        fpr_at_95tpr(bad, np.ones(3))
    with pytest.raises(ValueError, match=msg):
        auroc(np.ones(3), bad)


def test_bad_convention_and_tpr():
    with pytest.raises(ValueError, match="convention"):
        fpr_at_95tpr(np.ones(3), np.ones(3), convention="openood")
    with pytest.raises(ValueError, match="tpr"):
        fpr_at_95tpr(np.ones(3), np.ones(3), tpr=0.0)
