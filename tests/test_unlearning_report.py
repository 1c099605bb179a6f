"""Verdict helpers can say both yes and no (no test that cannot fail)."""
import pandas as pd

from repro.unlearning import report as R

BASE = {"J_W": 100.0, "standard": 90.0, "J_Avg": 80.0, "MC": 90.0, "Rep": 400.0, "WR_proxy": 0.5}


def _m(**kw):
    return {**BASE, **kw}


def test_relearning_verdict_both_ways():
    down = pd.DataFrame({"method": "jensun", "multiple": [1, 2, 4, 8], "J_W_relearn": [30, 20, 12, 5]})
    up = down.assign(J_W_relearn=[5, 12, 20, 30])
    assert R.claim_relearning(down)["verdict"] == "reproduced"
    assert R.claim_relearning(up)["verdict"] == "not reproduced"


def test_jensun_and_ga_verdicts():
    assert R.claim_jensun(BASE, _m(J_W=0, J_Avg=79, MC=89, Rep=390, WR_proxy=0.45))["verdict"] == "reproduced"
    assert R.claim_jensun(BASE, _m(J_W=40))["verdict"] != "reproduced"
    assert R.claim_ga_collapse(BASE, _m(J_W=0, J_Avg=0, MC=25, Rep=10))["verdict"] == "reproduced"
    assert R.claim_ga_collapse(BASE, _m(J_W=50))["verdict"] == "not reproduced"


def test_ceiling_makes_retain_claim_untestable():
    rows = {m: _m(J_Avg=100) for m in ("graddiff", "dpo", "simnpo", "jensun")}
    assert R.claim_nll_retain_above_base(_m(J_Avg=100), rows)["verdict"] == "not testable at this scale"
    rows = {m: _m(J_Avg=90) for m in ("graddiff", "dpo", "simnpo")} | {"jensun": _m(J_Avg=80)}
    assert R.claim_nll_retain_above_base(BASE, rows)["verdict"] == "reproduced"


def test_worst_case_and_dynamics():
    wc = pd.DataFrame({"method": ["a", "b"], "standard": [0, 10], "J_W": [0, 30]})
    assert R.claim_worst_case(wc)["verdict"] == "reproduced"
    assert R.claim_worst_case(wc.assign(J_W=[0, 10]))["verdict"] == "not reproduced"
    hist = [{"step": s, "retain_loss": (0.0 if s == 1 else min(s, 40 - s) / 40), "forget_loss": 0.2} for s in range(1, 41)]
    evals = [{"step": 0, "forget_standard": 100}, {"step": 10, "forget_standard": 0}, {"step": 40, "forget_standard": 0}]
    assert R.claim_dynamics(hist, evals)["verdict"] == "reproduced"
    evals[1]["forget_standard"] = 50
    assert R.claim_dynamics(hist, evals)["verdict"] != "reproduced"


def test_guard_marks_claims_untestable_when_base_does_not_know_facts():
    rows = [{"claim": "a", "paper": "p", "reproduced": "r", "verdict": "reproduced", "section": "Table 1"},
            {"claim": "b", "paper": "p", "reproduced": "r", "verdict": "reproduced", "section": "Table 5"}]
    out = R.guard_base_knowledge(rows, _m(J_W=10))
    assert [r["verdict"] for r in out] == ["not testable at this scale", "reproduced"]
    assert R.guard_base_knowledge(rows, _m(J_W=90)) == rows


def test_saturation_claim():
    import numpy as np
    lp = np.array([-30.0, -28.0, -10.0, -12.0])
    assert R.claim_saturation(lp, np.array([1, 1, 0, 0]))["verdict"] == "reproduced"
    assert R.claim_saturation(lp, np.array([0, 0, 1, 1]))["verdict"] == "not reproduced"
    assert R.claim_saturation(lp, np.array([0, 0, 0, 0]))["verdict"] == "not testable at this scale"
