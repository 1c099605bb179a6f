import numpy as np
import pytest
from scipy.stats import kendalltau

from repro.sharpness.kendall import kendall_tau, kendall_tau_by_group


def _brute(t, s):
    M = len(t)
    tot = sum(np.sign(t[i] - t[j]) * np.sign(s[i] - s[j]) for i in range(M) for j in range(i + 1, M))
    return 2 * tot / (M * (M - 1))


@pytest.mark.parametrize("seed", range(5))
def test_matches_scipy_without_ties_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    t, s = rng.normal(size=40), rng.normal(size=40)
    assert abs(kendall_tau(t, s) - kendalltau(t, s).statistic) < 1e-12
    assert abs(kendall_tau(t, s) - _brute(t, s)) < 1e-12


def test_tau_a_with_ties_matches_scipy_variant_a():
    rng = np.random.default_rng(0)
    t, s = np.round(rng.normal(size=50), 1), np.round(rng.normal(size=50), 1)
    assert abs(kendall_tau(t, s) - _brute(t, s)) < 1e-12
    # scipy exposes τ-a only through its 'c' / 'b' variants; τ-a = (C - D) / (M(M-1)/2)
    assert abs(kendall_tau(t, s)) <= abs(kendalltau(t, s).statistic) + 1e-12


def test_extremes_and_invariance():
    t = np.arange(10.0)
    assert kendall_tau(t, t) == 1.0 and kendall_tau(t, -t) == -1.0
    rng = np.random.default_rng(1)
    s = rng.normal(size=10)
    assert kendall_tau(t, s) == kendall_tau(np.exp(t), 3 * s + 1)  # rank-based


def test_by_group():
    t = np.array([1, 2, 3, 4, 5, 6.0])
    s = np.array([1, 2, 3, 6, 5, 4.0])
    g = ["a", "a", "a", "b", "b", "b"]
    r = kendall_tau_by_group(t, s, g)
    assert r["a"] == 1.0 and r["b"] == -1.0 and r["mean"] == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        kendall_tau([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        kendall_tau([1], [1])
    with pytest.raises(ValueError, match="non-finite"):
        kendall_tau([1, np.nan], [1, 2])
