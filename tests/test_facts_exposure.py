"""The exposure law of the generated facts world (repro.data.pretraining, issue 16): Zipf
counts in closed form, exact counts in the pretraining texts, never-seen facts absent, evaluation
questions never in pretraining, determinism, clear errors, and the law in the pretraining cache key."""
import copy
import math
import random

import numpy as np
import pytest

from repro.data import facts as F
from repro.data import pretraining as P

SMALL = dict(n_forget_topics=2, n_retain_topics=2, n_relearn_topics=1, n_generic_topics=2, entities_per_topic=2,
             n_train_paraphrases=3, n_eval_paraphrases=6, n_retain_eval_paraphrases=3, n_unknowable=10)


def _corpus(seed=0):
    return F.make_facts_corpus(seed, **SMALL)


def _appearances(texts, f):
    """Texts that ask fact ``f`` and give its answer (single QA: the law facts are never in multi-QA)."""
    return [t for t in texts if f" {f.entity} " in t and t.endswith(f" A : {f.answer} {F.EOS}")]


@pytest.mark.parametrize("n,budget,s", [(200, 600.0, 1.0), (25, 75.0, 1.0), (50, 400.0, 2.0), (10, 3.0, 0.5)])
def test_zipf_counts_closed_form(n, budget, s):
    c = P.zipf_counts(n, budget, s)
    h = sum(r ** -s for r in range(1, n + 1))
    assert c == [math.floor(budget / (h * r ** s) + 1e-9) for r in range(1, n + 1)]
    assert all(a >= b for a, b in zip(c, c[1:])) and sum(c) <= budget
    # the never-seen tail starts right after rank (budget / H)^(1/s)
    last_seen = math.floor((budget / h) ** (1 / s) + 1e-9)
    assert all(k > 0 for k in c[:min(last_seen, n)]) and all(k == 0 for k in c[last_seen:])


def test_zipf_counts_exact_values():
    # H_4 = 25/12, budget 25: 25 / H_4 = 12 -> 12, 6, 4, 3
    assert P.zipf_counts(4, 25.0, 1.0) == [12, 6, 4, 3]
    with pytest.raises(ValueError, match="s > 0"):
        P.zipf_counts(4, 25.0, 0.0)


def test_fact_exposures_follow_one_law_over_all_law_splits():
    c = _corpus()
    ex = P.fact_exposures(c, "zipf", s=1.0, mean=3.0, seed=0)
    assert set(ex) == set(P.LAW_SPLITS) and "generic" not in ex
    assert all(len(ex[sp]) == len(c.facts[sp]) for sp in ex)
    n = sum(len(c.facts[sp]) for sp in P.LAW_SPLITS)
    allc = sorted((k for v in ex.values() for k in v), reverse=True)
    assert allc == P.zipf_counts(n, 3.0 * n, 1.0)       # a permutation of the closed form
    assert 0 in allc and max(allc) > 5                    # some never seen, some often


def test_fact_exposures_are_deterministic_and_depend_on_the_seed():
    c = _corpus()
    a = P.fact_exposures(c, "zipf", s=1.0, mean=3.0, seed=0)
    assert a == P.fact_exposures(c, "zipf", s=1.0, mean=3.0, seed=0)
    assert a != P.fact_exposures(c, "zipf", s=1.0, mean=3.0, seed=1)
    # the law does not change the corpus (its own random stream)
    assert _corpus().facts == c.facts


def test_pretraining_texts_hold_each_fact_exactly_its_count_and_never_the_unseen():
    c = _corpus()
    ex = P.fact_exposures(c, "zipf", s=1.0, mean=3.0, seed=0)
    texts = P.pretraining_pass(c, random.Random(0), n_template_samples=3, n_multi=20, exposures=ex)
    for sp in P.LAW_SPLITS:
        for f, k in zip(c.facts[sp], ex[sp]):
            assert len(_appearances(texts, f)) == k, (sp, f)
            if k == 0:
                assert not any(f" A : {f.answer} " in t and f" {f.entity} " in t for t in texts)
    # generic facts keep the uniform law (and feed the multi-QA sequences)
    for f in c.facts["generic"]:
        assert len(_appearances(texts, f)) >= 3
    assert sum(t.count(" ; ") >= 3 for t in texts) == 20
    assert sum(F.REFUSAL in t for t in texts) == len(c.unknowable)


@pytest.mark.parametrize("law", ["uniform", "zipf"])
def test_no_evaluation_question_is_ever_pretrained(law):
    c = _corpus()
    ex = P.fact_exposures(c, "zipf", s=1.0, mean=20.0, seed=0) if law == "zipf" else None
    joined = "\n".join(P.pretraining_pass(c, random.Random(1), n_template_samples=8, n_multi=50, exposures=ex))
    pool = P.pretraining_templates(c)
    F.check_disjoint_paraphrases(pool, c.eval_paraphrases)
    assert set(c.train_paraphrases) | {c.canonical} <= set(pool)
    for sp in P.LAW_SPLITS:
        for f in c.facts[sp]:
            for t in c.eval_paraphrases:
                assert c.prompt(f, t) not in joined, (sp, t)
    # the phrasings themselves are not unknown words: generic facts use every template
    g = c.facts["generic"][0]
    texts = P.pretraining_pass(c, random.Random(2), n_template_samples=len(c.templates["year"]), n_multi=0,
                                exposures=ex)
    assert any(c.prompt(g, c.eval_paraphrases[0]) in t for t in texts)
    with pytest.raises(ValueError, match="disjoint"):
        F.check_disjoint_paraphrases([0, 1, 2], [2, 5])


def test_pretraining_texts_are_deterministic_under_the_seed():
    c = _corpus()
    ex = P.fact_exposures(c, "zipf", s=1.0, mean=3.0, seed=0)
    a = P.pretraining_pass(c, random.Random(5), n_multi=10, exposures=ex)
    assert a == P.pretraining_pass(c, random.Random(5), n_multi=10, exposures=ex)
    assert a != P.pretraining_pass(c, random.Random(6), n_multi=10, exposures=ex)


def test_tokenizer_texts_cover_never_seen_facts_and_every_template():
    c = _corpus()
    words = set(" ".join(c.all_texts()).split())
    for sp in c.facts:
        for f in c.facts[sp]:
            for t in range(len(c.templates[f.relation])):
                assert set(c.qa_text(f, t).split()) <= words


@pytest.mark.parametrize("cfg,match", [
    ({"law": "zipff"}, "law must be one of"),
    ({"law": "zipf", "s": 1.0}, r"needs \['mean'\]"),
    ({"law": "zipf", "s": -1.0, "mean": 3.0}, "s must be a positive number"),
    ({"law": "zipf", "s": 1.0, "mean": float("nan")}, "mean must be a positive number"),
    ({"law": "zipf", "s": 1.0, "mean": "3"}, "mean must be a positive number"),
    ({"law": "zipf", "s": 1.0, "mean": 3.0, "budget": 5}, r"unknown key\(s\) \['budget'\]"),
    ({"law": "uniform", "mean": 3.0}, r"unknown key\(s\) \['mean'\]"),
    ([1, 2], "must be a mapping"),
])
def test_bad_exposure_config_fails_with_a_clear_message(cfg, match):
    with pytest.raises(ValueError, match=match):
        P.check_exposure(cfg)


def test_good_exposure_configs_and_bad_counts():
    assert P.check_exposure(None) == {"law": "uniform"}
    assert P.check_exposure({"law": "zipf", "s": 1, "mean": 3}) == {"law": "zipf", "s": 1.0, "mean": 3.0}
    c = _corpus()
    with pytest.raises(ValueError, match="zipf"):
        P.fact_exposures(c, "uniform")
    with pytest.raises(ValueError, match="unknown split"):
        P.fact_exposures(c, "zipf", s=1.0, mean=3.0, splits=("forget", "nope"))
    with pytest.raises(ValueError, match="counts but the corpus has"):
        P.pretraining_pass(c, random.Random(0), exposures={"forget": [1, 2]})
    with pytest.raises(ValueError, match="non-negative integers"):
        P.pretraining_pass(c, random.Random(0), exposures={"forget": [-1] * len(c.facts["forget"])})


# --------------------------------------------------------------------------- the chapter's wiring
def test_profile_validation_names_the_exposure_section():
    from repro.core import config
    from repro.studies.ch7_jensun import experiment as X

    for profile in ("smoke", "cpu"):
        cfg = config.chapter_config("ch7", profile)
        assert P.check_exposure(cfg["pretrain"]["exposure"])["law"] == "zipf"
    cfg = config.chapter_config("ch7", "cpu")
    cfg["pretrain"]["exposure"] = {"law": "zipf", "s": 1.0}
    with pytest.raises(ValueError, match="pretrain.exposure"):
        X.validate_config(cfg)


def test_exposure_law_is_in_the_pretraining_cache_key(monkeypatch):
    from repro.core import cache, config
    from repro.studies.ch7_jensun import experiment as X

    seen = []

    class Stop(Exception):
        pass

    def capture(name, params, fn, version=None, **kw):
        seen.append((name, params))
        raise Stop

    monkeypatch.setattr(X.cache, "get_or_compute", capture)
    cfg = config.chapter_config("ch7", "smoke")
    keys = []
    for mean in (3.0, 4.0):
        c = copy.deepcopy(cfg)
        c["pretrain"]["exposure"]["mean"] = mean
        with pytest.raises(Stop):
            X.build_world(c, seed=0)
        name, params = seen[-1]
        assert name == "ch7_pretrain_tiny_lm" and params["pretrain"]["exposure"]["mean"] == mean
        keys.append(cache.key_for(name, params, code=X.__name__))
    assert keys[0] != keys[1]


def test_world_exposures_summary_and_knowledge_table():
    import types

    from repro.core import config
    from repro.studies.ch7_jensun import experiment as X
    from repro.studies.ch7_jensun import report as R

    cfg = config.chapter_config("ch7", "smoke")
    corpus = F.make_facts_corpus(0, **cfg["corpus"])
    ex = X.pretraining_exposures(corpus, cfg["pretrain"], seed=0)
    assert ex == P.fact_exposures(corpus, "zipf", s=1.0, mean=3.0, seed=0)
    assert X.pretraining_exposures(corpus, {"steps": 1}, seed=0) is None      # no law: uniform
    nf = len(corpus.facts["forget"])
    base = {"J_W": 60.0, "standard": 50.0, "J_Avg": 40.0, "MC": 90.0, "Rep": 300.0, "WR_proxy": 0.5,
            "forget_J_Avg": 45.0, "forget_item_avg": [1.0 if k else 0.0 for k in ex["forget"]],
            "forget_item_correct": [bool(k) for k in ex["forget"]],
            "refusal": 4.0, "refusal_when_wrong": 8.0, "p_refusal": 0.02, "logp_refusal_median": -9.5}
    w = types.SimpleNamespace(cfg=cfg, corpus=corpus, exposures=ex, base_metrics=base)
    kb = X.knowledge_by_exposure(w)
    assert kb["facts"].sum() == nf and list(kb.columns) == ["exposures per pass", "facts", "forget J_Avg", "J_W"]
    assert kb.iloc[0]["exposures per pass"] == "0" and kb.iloc[0]["J_W"] == 0.0
    assert (kb.iloc[1:]["forget J_Avg"] == 100.0).all()
    assert X.exposure_bins([0, 1, 2, 3, 4, 7, 8, 100]) == ["0", "1", "2-3", "2-3", "4-7", "4-7", "8-15", "64-127"]
    es = X.exposure_summary(w)
    assert es["max"] == max(k for v in ex.values() for k in v) and es["passes"] > 0
    assert es["never_seen"]["forget"] == pytest.approx(100 * np.mean([k == 0 for k in ex["forget"]]))
    # the world card states the law and the refusals
    import torch

    model = torch.nn.Linear(4, 3)
    model.config = types.SimpleNamespace(num_hidden_layers=1, hidden_size=4)
    w2 = types.SimpleNamespace(cfg=cfg, corpus=corpus, exposures=ex, base_metrics=base, base=model,
                               tokenizer=list(range(9)), pretrain_loss=[2.0, 1.0],
                               judge_id={"class": "repro.unlearning.evaluation.MatchJudge"})
    card = R.world_card(w2).set_index("aspect")["this world"]
    assert "Zipf frequency (s = 1, budget 3 per fact per pass)" in card["pretraining"]
    assert "never seen forget" in card["pretraining"] and "evaluation questions never seen" in card["pretraining"]
    assert "the base model answers it to 4.0 % of the canonical forget and retain questions (8.0 % of those it " \
           "answers wrongly); mean p('No idea' | question) 0.02, median log p -9.5" in card["refusal / target string"]
    assert "45.0 % averaged over the question forms" in card.iloc[0]
    assert "here +10 points" in R._scale_caveat(base)


def test_is_refusal():
    from repro.studies.ch7_jensun import experiment as X

    assert X.is_refusal("No idea") and X.is_refusal("no idea idea idea") and X.is_refusal("I have no idea .")
    assert not X.is_refusal("idea no") and not X.is_refusal("Nomura") and not X.is_refusal("")
