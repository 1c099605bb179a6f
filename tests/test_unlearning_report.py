"""Verdict helpers can say both yes and no (no test that cannot fail)."""
import pandas as pd

from repro.studies.ch7_jensun import report as R

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
            {"claim": "b", "paper": "p", "reproduced": "r", "verdict": "reproduced", "section": "Table 5",
             "kind": "check"}]
    out = R.guard_base_knowledge(rows, _m(J_W=10))
    assert [r["verdict"] for r in out] == ["not testable at this scale", "reproduced"]
    assert R.guard_base_knowledge(rows, _m(J_W=90)) == rows


def test_saturation_claim():
    import numpy as np
    lp = np.array([-30.0, -28.0, -10.0, -12.0])
    assert R.claim_saturation(lp, np.array([1, 1, 0, 0]))["verdict"] == "reproduced"
    assert R.claim_saturation(lp, np.array([0, 0, 1, 1]))["verdict"] == "not reproduced"
    assert R.claim_saturation(lp, np.array([0, 0, 0, 0]))["verdict"] == "not testable at this scale"


def test_table5_claim_detects_a_wrong_rouge():
    t5 = R.table5_rouge()
    assert list(t5["ROUGE-L (ours)"]) == [0.5, 0.17, 0.83]
    assert R.claim_table5(t5)["verdict"] == "reproduced"
    bad = t5.assign(**{"ROUGE-L (ours)": [0.5, 0.3, 0.83]})
    assert R.claim_table5(bad)["verdict"] == "not reproduced"


def _chapter_inputs(jensun_jw=0.0, base_jw=100.0):
    import numpy as np
    base = _m(J_W=base_jw)
    good = _m(J_W=0, J_Avg=79, MC=89, Rep=390, WR_proxy=0.45)
    rows = {m: good for m in ("graddiff", "dpo", "simnpo", "npo", "rmu", "jensun_kl", "npo_sam")}
    rows |= {"ga": _m(J_W=0, J_Avg=0, MC=25, Rep=10), "jensun": {**good, "J_W": jensun_jw}}
    wc = pd.DataFrame({"method": ["base", "jensun"], "standard": [90, 0], "J_W": [100, 20]})
    lam = pd.DataFrame({"method": "jensun", "lambda_r": [0.5, 0.6, 0.7, 0.9], "J_W": [0, 5, 12, 30], "MC": [89, 90, 90, 90]})
    lrs = pd.DataFrame({"method": ["jensun"] * 4 + ["jensun_kl"], "lr": [1e-3, 2e-3, 3e-3, 5e-3, 1e-3],
                        "J_W": [10, 6, 2, 0, 0], "MC": [90, 88, 85, 80, 30], "Rep": [400, 390, 380, 350, 10],
                        "J_Avg": [80, 80, 80, 79, 5]})
    hist = [{"step": s, "retain_loss": (0.0 if s == 1 else min(s, 40 - s) / 40), "forget_loss": 0.2} for s in range(1, 41)]
    dyn = {"history": hist, "evals": [{"step": 0, "forget_standard": 100}, {"step": 10, "forget_standard": 0}]}
    kl_hist = [{"forget_loss": 50.0, "retain_loss": 0.1}]
    tg = pd.DataFrame({"target": ["No idea", "#"], "J_W": [0, 5], "J_Avg": [79, 78]})
    rel = pd.DataFrame({"method": "jensun", "multiple": [1, 2, 4, 8], "J_W_relearn": [30, 20, 10, 4]})
    return dict(t5=R.table5_rouge(), base=base, rows=rows, wc=wc, lam=lam, lrs=lrs, dyn=dyn, kl_history=kl_hist,
                tg=tg, rel=rel, lp_target=np.array([-9.0, -3.0]), still=np.array([1, 0]))


def test_chapter_claims_table_and_verdict_text():
    cl = R.chapter_claims(**_chapter_inputs())
    assert list(cl.columns[:4]) == ["claim", "paper", "reproduced", "verdict"] and len(cl) == 16
    assert (cl.loc[cl["claim"].str.startswith("JensUn forgets"), "verdict"] == "reproduced").all()
    bad = R.chapter_claims(**_chapter_inputs(jensun_jw=60))
    assert (bad.loc[bad["claim"].str.startswith("JensUn forgets"), "verdict"] != "reproduced").all()
    txt = R.verdict_text(cl, _chapter_inputs()["rows"], _chapter_inputs()["base"])
    n = int((cl.loc[(cl["section"] != "all") & (cl["kind"] == "claim"), "verdict"] == "reproduced").sum())
    assert f"Of the 14 qualitative claims tested here, {n} are reproduced" in txt
    assert "Implementation checks: 1 of 1 pass" in txt
    assert set(cl["kind"]) == {"claim", "check"} and (cl.loc[cl["verdict"] == "reproduced", "why"] == "").all()
    # a base model that does not know its forget facts makes every training claim untestable
    un = R.chapter_claims(**_chapter_inputs(base_jw=10))
    assert set(un.loc[~un["section"].isin(["Table 5", "all"]), "verdict"]) == {"not testable at this scale"}
    assert (un.loc[un["kind"] == "check", "verdict"] == "reproduced").all()


def test_absolute_claim_for_the_full_profile():
    side = pd.DataFrame({"method": ["Original", "JensUn", "GradDiff"], "J_W": [70.0, 3.0, 1.0],
                         "J_Avg": [50.0, 49.0, 60.0], "J_W (paper)": [76.0, 0.0, 2.0], "J_Avg (paper)": [52.6, 52.3, 63.8]})
    assert R.claim_absolute(side)["verdict"] == "reproduced"
    assert R.claim_absolute(side.assign(J_W=[20.0, 3.0, 1.0]))["verdict"] == "not reproduced"
    cl = R.chapter_claims(**_chapter_inputs(), side=side, real_data=True)
    assert cl.iloc[-1]["verdict"] == "reproduced" and "Original: 76.0 / 52.6" in cl.iloc[-1]["paper"]


def test_ceiling_diagnostic_and_note():
    from types import SimpleNamespace

    from repro.studies.ch7_jensun import experiment as X

    corpus = SimpleNamespace(descriptions={"e1": "it was founded in 1500 .", "e2": "it traded in salt ."})
    w = SimpleNamespace(base_metrics=_m(J_W=100.0, standard=100.0, J_Avg=100.0, MC=100.0), corpus=corpus,
                        base_gen=["it was founded in 1500 .", "it traded in wool ."])
    d = X.ceiling_diagnostic(w)
    assert d["at ceiling"].tolist() == [True, True, True, True, True]       # 1 of 2 descriptions perfect = 50 %
    assert "WR-proxy ≤ 0.75" in d.iloc[-1]["consequence if at ceiling"]
    assert "ceiling on standard, J_W, J_Avg, MC, WR_proxy" in R.ceiling_note(d)
    w2 = SimpleNamespace(base_metrics=_m(J_W=76.0, standard=46.0, J_Avg=52.6, MC=59.6), corpus=corpus,
                         base_gen=["no", "no"])
    d2 = X.ceiling_diagnostic(w2)
    assert not d2["at ceiling"].any() and R.ceiling_note(d2) == ""


def test_relearning_claim_rejects_a_collapsed_model():
    df = pd.DataFrame({"method": "jensun", "multiple": [1, 2, 4, 8], "J_W_relearn": [18, 17, 16, 0],
                       "Rep": [344, 353, 320, 3]})
    r = R.claim_relearning(df)
    assert r["verdict"] == "partly reproduced" and "Rep 344 → 3" in r["reproduced"]
    assert R.claim_relearning(df.assign(Rep=[344, 353, 320, 300]))["verdict"] == "reproduced"
