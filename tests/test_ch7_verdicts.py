"""Chapter 7 verdict edge cases (issue 20, item 1 and 10): flat, tied, NaN, empty or constant
inputs never read "reproduced"; trends need a rank test over enough points."""
import math

import numpy as np
import pandas as pd
import pytest

from repro.reference import VERDICTS
from repro.studies.ch7_jensun import report as R

BASE = {"J_W": 100.0, "standard": 90.0, "J_Avg": 80.0, "MC": 90.0, "Rep": 400.0, "WR_proxy": 0.5}
NAN = float("nan")


def test_trend_test_rules():
    up = R.trend_test([1, 2, 3, 4], [1, 2, 3, 4], +1)
    assert up["ok"] is True and math.isclose(up["p"], 1 / 24)
    assert R.trend_test([1, 2, 3, 4], [1, 2, 3, 4], -1)["ok"] is False
    # too few points: not testable, however perfect the order
    few = R.trend_test([1, 2, 3], [1, 2, 3], +1)
    assert few["ok"] is None and "needs ≥ 4" in few["why"]
    # flat: no trend; NaN: not testable
    assert R.trend_test([1, 2, 3, 4], [0, 0, 0, 0], +1)["ok"] is False
    assert R.trend_test([1, 2, 3, 4], [1, NAN, 3, 4], +1)["ok"] is None
    # ties weaken the evidence: the right sign alone is only "partly"
    tied = R.trend_test([1, 2, 3, 4], [0, 0, 0, 5], +1)
    assert tied["ok"] is False and tied["partly"] and tied["p"] > R.TREND_ALPHA
    # larger n goes through scipy's one-sided test
    assert R.trend_test(range(10), range(10), +1)["ok"] is True


def test_flat_lambda_sweep_is_not_reproduced():
    # the old rule (J_W last >= first, NaN Spearman passes) called this "reproduced"
    flat = pd.DataFrame({"method": "jensun", "lambda_r": [0.5, 0.6, 0.7, 0.9], "J_W": [0.0] * 4, "MC": [90.0] * 4})
    assert R.claim_lambda_sweep(flat, BASE)["verdict"] not in ("reproduced",)
    assert R.claim_lambda_sweep(flat.iloc[:3], BASE)["verdict"] == "not testable at this scale"
    rising = flat.assign(J_W=[0.0, 10.0, 30.0, 70.0])
    assert R.claim_lambda_sweep(rising, BASE)["verdict"] == "reproduced"


def test_flat_lr_sweep_is_not_reproduced():
    flat = pd.DataFrame({"method": "jensun", "lr": [1e-3, 2e-3, 3e-3, 5e-3], "J_W": [0.0] * 4, "MC": [90.0] * 4,
                         "Rep": [400.0] * 4})
    assert R.claim_lr_sweep(flat)["verdict"] != "reproduced"
    good = flat.assign(J_W=[20.0, 10.0, 5.0, 0.0], MC=[90.0, 88.0, 85.0, 70.0])
    assert R.claim_lr_sweep(good)["verdict"] == "reproduced"


def test_kl_window_zero_vs_zero_is_not_narrower():
    h = [{"forget_loss": 50.0, "retain_loss": 0.1}]
    none_good = pd.DataFrame({"method": ["jensun", "jensun", "jensun_kl", "jensun_kl"], "lr": [1, 2, 1, 2],
                              "J_W": [50.0] * 4, "MC": [90.0] * 4, "J_Avg": [80.0] * 4})
    # old rule: 0 <= 0 counted as a narrower window -> "reproduced"
    assert R.claim_kl_variant(h, none_good, BASE)["verdict"] == "not testable at this scale"
    tie = none_good.assign(J_W=[0.0, 50.0, 0.0, 50.0])
    assert R.claim_kl_variant(h, tie, BASE)["verdict"] != "reproduced"
    narrower = none_good.assign(J_W=[0.0, 0.0, 0.0, 50.0])
    assert R.claim_kl_variant(h, narrower, BASE)["verdict"] == "reproduced"


def test_relearning_needs_a_trend_not_three_points():
    three = pd.DataFrame({"method": "jensun", "multiple": [1, 2, 4], "J_W_relearn": [30.0, 20.0, 10.0]})
    assert R.claim_relearning(three)["verdict"] == "not testable at this scale"
    flat = pd.DataFrame({"method": "jensun", "multiple": [1, 2, 4, 8], "J_W_relearn": [0.0] * 4})
    assert R.claim_relearning(flat)["verdict"] == "not reproduced"


def test_dynamics_half_window_excludes_the_step0_base_evaluation():
    hist = [{"step": s, "retain_loss": (0.0 if s == 1 else min(s, 40 - s) / 40), "forget_loss": 0.2}
            for s in range(1, 41)]
    # a base model that answers nothing at step 0 and forgets only at the end: not "early"
    evals = [{"step": 0, "forget_standard": 0}, {"step": 10, "forget_standard": 50},
             {"step": 20, "forget_standard": 40}, {"step": 40, "forget_standard": 0}]
    r = R.claim_dynamics(hist, evals)
    assert r["verdict"] != "reproduced" and "early forgetting" in r["why"]
    evals[2]["forget_standard"] = 0      # step 20 = half of 40: inside the window
    assert R.claim_dynamics(hist, evals)["verdict"] == "reproduced"
    # only the step-0 evaluation before half the run: not testable
    assert R.claim_dynamics(hist, [evals[0], evals[-1]])["verdict"] == "not testable at this scale"


# ----------------------------------------------------------------- generic edge cases over the module
def _metrics(v):
    return {k: v for k in ("standard", "J_P", "J_ICR", "J_W", "J_Avg", "MC", "Rep", "WR_proxy")}


def _frames(v, n):
    x = list(range(1, n + 1))
    return dict(
        wc=pd.DataFrame({"method": [f"m{i}" for i in x], "standard": [v] * n, "J_W": [v] * n}),
        lam=pd.DataFrame({"method": "jensun", "lambda_r": [0.1 * i for i in x], "J_W": [v] * n, "MC": [v] * n}),
        lrs=pd.DataFrame({"method": ["jensun"] * n + ["jensun_kl"] * n, "lr": [1e-3 * i for i in x] * 2,
                          "J_W": [v] * 2 * n, "MC": [v] * 2 * n, "Rep": [v] * 2 * n, "J_Avg": [v] * 2 * n}),
        tg=pd.DataFrame({"target": [f"t{i}" for i in x], "J_W": [v] * n, "J_Avg": [v] * n}),
        rel=pd.DataFrame({"method": "jensun", "multiple": x, "J_W_relearn": [v] * n, "J_W_unlearn": [v] * n,
                          "Rep": [v] * n}),
        hist=[{"step": s, "retain_loss": v, "forget_loss": v} for s in x],
        evals=[{"step": s, "forget_standard": v} for s in [0] + x],
    )


def _all_claims(v, n):
    base, m = _metrics(v), _metrics(v)
    rows = {k: m for k in ("ga", "graddiff", "dpo", "simnpo", "npo", "rmu", "jensun")}
    f = _frames(v, n)
    side = pd.DataFrame({"method": ["Original", "JensUn"], "J_W": [v, v], "J_Avg": [v, v],
                         "J_W (paper)": [76.0, 0.0], "J_Avg (paper)": [52.6, 52.3]})
    return {
        "ga": lambda: R.claim_ga_collapse(base, m), "graddiff": lambda: R.claim_graddiff(base, m),
        "jensun": lambda: R.claim_jensun(base, m), "nll": lambda: R.claim_nll_retain_above_base(base, rows),
        "npo": lambda: R.claim_npo_simnpo(rows), "mc": lambda: R.claim_mc_vs_generation(base, rows),
        "wc": lambda: R.claim_worst_case(f["wc"]), "lam": lambda: R.claim_lambda_sweep(f["lam"], base),
        "lr": lambda: R.claim_lr_sweep(f["lrs"]), "dyn": lambda: R.claim_dynamics(f["hist"], f["evals"]),
        "kl": lambda: R.claim_kl_variant(f["hist"], f["lrs"], base), "tg": lambda: R.claim_targets(f["tg"], base),
        "rel": lambda: R.claim_relearning(f["rel"]),
        "sat": lambda: R.claim_saturation(np.full(n, v), np.arange(n) % 2 == 0),
        "abs": lambda: R.claim_absolute(side),
        "t5": lambda: R.claim_table5(pd.DataFrame({"ROUGE-L (ours)": [v] * 3, "paper": [0.5, 0.17, 0.83]})),
    }


@pytest.mark.parametrize("v", [NAN, 0.0, 1.0, 50.0, 100.0])
@pytest.mark.parametrize("n", [0, 1, 4, 6])
def test_nan_empty_and_constant_inputs_never_reproduce(v, n):
    for name, fn in _all_claims(v, n).items():
        if n == 0 and name in ("dyn", "sat"):
            continue    # covered below (no history / no items)
        r = fn()
        assert r["verdict"] in VERDICTS
        assert r["verdict"] != "reproduced", (name, v, n, r)
        assert r["why"], (name, v, n)


def test_empty_history_and_items():
    assert R.claim_dynamics([], [])["verdict"] == "not testable at this scale"
    assert R.claim_saturation(np.array([]), np.array([], dtype=bool))["verdict"] == "not testable at this scale"
    assert R.claim_worst_case(pd.DataFrame(columns=["method", "standard", "J_W"]))["verdict"] == "not testable at this scale"


# ----------------------------------------------------------------- verdicts over world seeds
def _good_rows(jensun_jw=0.0):
    rows = {m: dict(BASE) for m in ("ga", "graddiff", "npo", "simnpo", "dpo", "jensun")}
    rows["jensun"].update(J_W=jensun_jw, J_Avg=BASE["J_Avg"], MC=BASE["MC"], WR_proxy=0.45, Rep=BASE["Rep"])
    return rows


def test_combine_verdicts_never_calls_a_disagreement_reproduced():
    R_, P, N, NT = "reproduced", "partly reproduced", "not reproduced", "not testable at this scale"
    assert R.combine_verdicts([R_, R_, R_]) == R_
    assert R.combine_verdicts([N, N]) == N
    assert R.combine_verdicts([R_, N, R_]) == P
    assert R.combine_verdicts([R_, NT]) == P
    assert R.combine_verdicts([N, NT]) == N
    assert R.combine_verdicts([NT, NT]) == NT
    assert R.combine_verdicts([]) == NT


def test_seed_verdicts_and_their_use_in_the_claim_table():
    base_m = dict(BASE, forget_J_Avg=60.0)
    by_seed = {0: {"base": BASE, "base_metrics": base_m, "rows": _good_rows(0.0)},
               1: {"base": BASE, "base_metrics": base_m, "rows": _good_rows(40.0)},   # JensUn keeps utility but does not forget here
               2: {"base": BASE, "base_metrics": base_m, "rows": _good_rows(0.0)}}
    sv = R.seed_verdicts(by_seed)
    head = sv.set_index("claim").iloc[0]
    assert head.name.startswith("JensUn forgets") and (head["seed 0"], head["seed 1"]) == ("R", "P")
    assert head["combined"] == "partly reproduced"
    own = R.table1_claims(BASE, _good_rows(0.0))       # the chapter's own seed alone says "reproduced"
    assert own[0]["verdict"] == "reproduced"
    out = R.apply_seed_verdicts(own, sv)
    assert out[0]["verdict"] == "partly reproduced" and "seeds disagree" in out[0]["why"]
    assert "seed 1 P" in out[0]["reproduced"]
    assert R.apply_seed_verdicts(own, sv[["claim", "seed 0", "combined"]]) == own   # one seed: unchanged
    t = R.seed_table(by_seed)
    assert list(t.seed) == ["0", "1", "2", "mean", "SE"]
    assert t.set_index("seed").loc["mean", "JensUn J_W"] == pytest.approx(40 / 3)
    assert t.set_index("seed").loc["SE", "JensUn J_W"] == pytest.approx(np.std([0, 40, 0], ddof=1) / math.sqrt(3))


def test_base_knowledge_guard_line():
    assert R.MIN_BASE_JW == 25.0
    low = dict(BASE, J_W=20.0)
    assert all(r["verdict"] == "not testable at this scale" for r in R.table1_claims(low, _good_rows()))
    assert R.table1_claims(dict(BASE, J_W=30.0), _good_rows())[0]["verdict"] == "reproduced"
