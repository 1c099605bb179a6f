"""Noise-aware verdict rules (repro.reference.noise) and the paired FPR bootstrap
(repro.ood.uncertainty.paired_fpr_bootstrap), against closed forms and brute force."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from repro.ood.uncertainty import paired_fpr_bootstrap
from repro.ood.metrics import fpr_at_95tpr
from repro.reference.noise import across_models, mean_effect, mean_interval, sign_test_p


def test_sign_test_closed_form():
    assert sign_test_p(7, 0) == pytest.approx(1 / 128)
    assert sign_test_p(5, 0) == pytest.approx(1 / 32)
    assert sign_test_p(4, 4) == pytest.approx(sum(stats.binom.pmf(k, 8, 0.5) for k in range(4, 9)))
    assert sign_test_p(0, 0) == 1.0
    with pytest.raises(ValueError, match=">= 0"):
        sign_test_p(-1, 2)


@pytest.mark.parametrize("better,worse,n,q,want", [
    (8, 0, 8, "almost every", "reproduced"),
    (6, 0, 8, "almost every", "partly reproduced"),   # 6 < 0.8 * 8
    (6, 0, 8, "most", "reproduced"),                   # p = 1/64
    (2, 0, 2, "most", "partly reproduced"),            # p = 1/4: two models prove nothing
    (4, 3, 8, "most", "partly reproduced"),
    (2, 2, 8, "most", "not reproduced"),
    (0, 0, 8, "most", "not reproduced"),
    (0, 0, 0, "most", "not testable at this scale"),
])
def test_across_models_rules(better, worse, n, q, want):
    verdict, text = across_models(better, worse, n, q)
    assert verdict == want and f"{better}/{n}" in (text if n else f"{better}/{n}")


def test_across_models_bad_quantifier():
    with pytest.raises(ValueError, match="quantifier"):
        across_models(1, 0, 2, "all")


def test_mean_interval_is_scipys_t_interval():
    v = np.array([-3.0, -1.0, 0.5, -2.0, -0.5])
    m, lo, hi = mean_interval(v)
    want = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert m == pytest.approx(v.mean()) and (lo, hi) == pytest.approx(want)
    assert np.isnan(mean_interval([1.0])[1]) and np.isnan(mean_interval([np.nan])[0])
    assert mean_interval([2.0, 2.0, np.nan]) == (2.0, 2.0, 2.0)


def test_mean_effect_verdicts():
    assert mean_effect([-2.0, -3.0, -2.5])[0] == "reproduced"
    assert mean_effect([-5.0, 4.0, -1.0])[0] == "partly reproduced"
    assert mean_effect([1.0, 0.5])[0] == "not reproduced"
    assert mean_effect([-1.0])[0] == "partly reproduced"        # one model: no interval, at most partly
    assert mean_effect([np.nan])[0] == "not reproduced"


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    return dict(id=rng.normal(2.0, 1.0, 400), near=rng.normal(1.0, 1.0, 300), far=rng.normal(0.0, 1.0, 200))


def test_paired_bootstrap_point_estimate_and_identity(scores):
    a_ood = {k: scores[k] for k in ("near", "far")}
    b_id, b_ood = scores["id"] + 0.3 * np.sign(scores["id"] - 2.0), {k: v - 0.4 for k, v in a_ood.items()}
    r = paired_fpr_bootstrap(scores["id"], a_ood, b_id, b_ood, n_boot=300)
    want = np.mean([fpr_at_95tpr(b_id, b_ood[k]) - fpr_at_95tpr(scores["id"], a_ood[k]) for k in a_ood])
    assert r["delta"] == pytest.approx(want) and r["lo"] <= r["delta"] <= r["hi"] and r["hi"] < 0
    # a strictly increasing transform of the same scores changes no FPR in any resample: the interval is {0}
    same = paired_fpr_bootstrap(scores["id"], a_ood, np.exp(scores["id"]), {k: np.exp(v) for k, v in a_ood.items()},
                                n_boot=200)
    assert same == {"delta": 0.0, "lo": 0.0, "hi": 0.0, "n_boot": 200}


def test_paired_bootstrap_matches_a_brute_force_loop(scores):
    a_ood, b_ood = {"near": scores["near"]}, {"near": scores["near"] * 0.5}
    b_id = scores["id"] * 0.5 + 0.2
    r = paired_fpr_bootstrap(scores["id"], a_ood, b_id, b_ood, n_boot=100, seed=3)
    rng = np.random.default_rng(3)
    ii = rng.integers(0, 400, size=(100, 400))
    oi = rng.integers(0, 300, size=(100, 300))
    d = [fpr_at_95tpr(b_id[ii[j]], b_ood["near"][oi[j]]) - fpr_at_95tpr(scores["id"][ii[j]], scores["near"][oi[j]])
         for j in range(100)]
    assert (r["lo"], r["hi"]) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])))


def test_paired_bootstrap_bad_input(scores):
    o = {"near": scores["near"]}
    with pytest.raises(ValueError, match="same non-empty OOD sets"):
        paired_fpr_bootstrap(scores["id"], o, scores["id"], {"far": scores["far"]})
    with pytest.raises(ValueError, match="same ID images"):
        paired_fpr_bootstrap(scores["id"], o, scores["id"][:10], o)
    with pytest.raises(ValueError, match="n_boot"):
        paired_fpr_bootstrap(scores["id"], o, scores["id"], o, n_boot=10)
