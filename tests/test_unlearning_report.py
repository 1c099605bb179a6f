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


# --------------------------------------------------------------------------- world card
def _card_world(**base):
    import types

    import torch

    model = torch.nn.Linear(4, 3)   # 15 parameters
    model.config = types.SimpleNamespace(num_hidden_layers=2, hidden_size=4)
    corpus = types.SimpleNamespace(
        facts={"forget": [0] * 10, "retain": [0] * 20, "relearn": [0] * 5, "generic": [0] * 8},
        topics={"forget": ["a", "b"]}, train_paraphrases=[1, 2], eval_paraphrases=[3, 4, 5], unknowable=["q"] * 7)
    cfg = {"model": {"d_model": 4, "n_layers": 2}, "unlearn": {"steps": 15, "batch_size": 4},
           "relearn": {"steps": 6, "lr": 0.001, "batch_size": 4}, "methods": {"jensun": {"lr": 0.002}}}
    return types.SimpleNamespace(cfg=cfg, corpus=corpus, tokenizer=list(range(50)), base=model,
                                 base_metrics={**BASE, **base}, pretrain_loss=[3.0, 2.0, 1.234],
                                 judge_id={"class": "repro.unlearning.evaluation.MatchJudge"})


def test_world_card_rows_and_values():
    card = R.world_card(_card_world(J_W=80.0, standard=60.0, J_Avg=70.0, MC=90.0, Rep=400.0))
    assert list(card.columns) == ["aspect", "paper", "this world"]
    assert card["aspect"].iloc[0] == "base model's knowledge of the forget set (precondition)"
    ours, paper = card.set_index("aspect")["this world"], card.set_index("aspect")["paper"]
    assert ours.iloc[0] == ("knows 80 % of the forget facts (worst case J_W); 60 % single query; above the 25 % the "
                            "training claims need")
    assert paper.iloc[0].startswith("76 % worst case (J_W, Table 1)")
    assert ours["base model's knowledge of the retain set"] == "70.0 % (J_Avg)"
    assert paper["base model's knowledge of the retain set"] == "52.6 % (J_Avg, Table 1)"
    assert ours["base model's utility"] == "MC probe 90.0 % (4-way, chance 25 %); Rep 400"
    assert "Llama-3.2-3B-Instruct" in paper["base model"]
    assert ours["base model"] == "Linear trained here from scratch: 2 layers, d = 4, 15 parameters; vocabulary 50 tokens"
    assert ours["pretraining"] == "3 steps from scratch on the corpus (final training loss 1.23)"
    assert ours["facts (forget set)"] == ("generated corpus of fictitious organisations: 10 forget / 20 retain facts on 2 "
                                          "forget topics; 5 relearning facts, 8 generic facts")
    assert "100 forget / 400 retain" in paper["facts (forget set)"]
    assert ours["question forms"] == "1 canonical + 2 training paraphrases, 3 disjoint evaluation paraphrases"
    assert ours["refusal / target string"] == "'No idea', also the answer to 7 unknowable questions in pretraining"
    assert ours["judge"] == "answer matching (MatchJudge), not an LLM judge"
    # 15 steps x batch 4 over 10 facts x 3 question forms = 2 epochs
    assert ours["unlearning"].startswith("15 steps at batch 4 (≈ 2.0 epochs over the 30 forget samples")
    assert "JensUn LR 0.002, λ_F = 0.5, λ_R = 0.5" in ours["unlearning"]
    assert ours["benign relearning"] == "6 steps, LR 0.001, batch 4 on the 5 relearning facts"
    assert "**Before unlearning, the base model knows 80 % of the forget facts**" in R.base_knowledge_text(
        {"J_W": 80.0, "standard": 60.0})


def test_world_card_nan_missing_and_below_precondition():
    import types

    card = R.world_card(_card_world(J_W=float("nan"), standard=float("nan"), J_Avg=float("nan"), MC=float("nan"),
                                    Rep=float("nan")))
    ours = card.set_index("aspect")["this world"]
    for aspect in ("base model's knowledge of the forget set (precondition)", "base model's knowledge of the retain set",
                   "base model's utility"):
        assert ours[aspect] == "not measured"
    low = R.world_card(_card_world(J_W=10.0, standard=5.0)).set_index("aspect")["this world"]
    assert low.iloc[0].endswith("below the 25 % the training claims need")
    assert "below the 25 %" in R.base_knowledge_text({"J_W": 10.0, "standard": 5.0})
    assert "not measured" in R.base_knowledge_text({"J_W": float("nan")})
    # an empty world: no crash, every measured cell but the (fixed) target string reads "not measured"
    empty = R.world_card(types.SimpleNamespace())
    assert len(empty) == 11 and empty["paper"].str.len().gt(10).all()
    rest = empty[empty["aspect"] != "refusal / target string"]["this world"]
    assert (rest == "not measured").all()


def test_world_card_shows_the_seed_spread_of_the_precondition():
    by = {s: {"base": {"J_W": jw}, "base_metrics": {"forget_J_Avg": fj}} for s, jw, fj in
          [(0, 52.0, 51.0), (1, 50.0, 48.4), (2, 54.0, 52.3)]}
    card = R.world_card(_card_world(), by_seed=by).set_index("aspect")["this world"]
    assert card["world seeds"].startswith("Table 1 on 3 world seeds (0, 1, 2;")
    assert "base J_W 50.0-54.0 % (mean 52.0 %, 3 seeds)" in card["world seeds"]
    assert "world seeds" not in R.world_card(_card_world(), by_seed={0: by[0]}).aspect.tolist()
