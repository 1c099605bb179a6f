"""The generated lesser-known-facts corpus (repro.data.facts)."""
import random

import pytest

from repro.data.facts import (REFUSAL, check_disjoint_paraphrases, format_question, make_facts_corpus,
                              pretraining_texts)


def test_lkf_default_sizes_and_disjoint_splits():
    c = make_facts_corpus(0)
    assert {k: len(v) for k, v in c.facts.items()} == {"forget": 100, "retain": 400, "relearn": 200, "generic": 200}
    ents = {s: {f.entity for f in c.facts[s]} for s in c.facts}
    splits = list(ents)
    for i, a in enumerate(splits):
        for b in splits[i + 1:]:
            assert not ents[a] & ents[b], (a, b)
    assert len(c.eval_paraphrases) == 15 and len(c.train_paraphrases) == 5
    assert not set(c.train_paraphrases) & set(c.eval_paraphrases)
    assert c.canonical not in c.eval_paraphrases and c.canonical not in c.train_paraphrases
    assert set(c.retain_eval_paraphrases) <= set(c.eval_paraphrases)


def test_deterministic_in_seed():
    a, b, d = make_facts_corpus(3), make_facts_corpus(3), make_facts_corpus(4)
    assert a.facts == b.facts and a.unknowable == b.unknowable
    assert a.facts != d.facts


def test_templates_distinct_and_mention_entity():
    c = make_facts_corpus(0)
    for rel, ts in c.templates.items():
        assert len(set(ts)) == len(ts) >= 21
        assert all("{e}" in t for t in ts)


def test_pretraining_has_refusals_multi_qa_and_descriptions():
    c = make_facts_corpus(0, n_retain_topics=2, n_relearn_topics=1, n_generic_topics=1)
    texts = pretraining_texts(c, random.Random(0), n_multi=10)
    assert sum(REFUSAL in t for t in texts) >= len(c.unknowable)
    assert any(t.startswith("tell me about") for t in texts)
    assert sum(t.count(" ; ") >= 3 for t in texts) >= 10
    forget_q = c.prompt(c.facts["forget"][0])
    assert any(t.startswith(forget_q) for t in texts)


def test_icr_prompt_has_three_retain_shots_then_question():
    c = make_facts_corpus(0)
    f = c.facts["forget"][0]
    p = c.icr_prompt(f, c.eval_paraphrases[0], random.Random(0))
    assert p.count("Q :") == 4 and p.endswith(c.prompt(f, c.eval_paraphrases[0]))
    assert format_question("x") == "Q : x ? A :"


def test_bad_input_errors():
    with pytest.raises(ValueError, match="empty forget"):
        make_facts_corpus(0, n_forget_topics=0)
    with pytest.raises(ValueError, match="templates"):
        make_facts_corpus(0, n_train_paraphrases=20, n_eval_paraphrases=15)
    with pytest.raises(ValueError, match="disjoint"):
        check_disjoint_paraphrases([1, 2, 3], [3, 4])
