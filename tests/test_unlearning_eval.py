"""Evaluation metrics (the the chapter implementation notesA.6-8), judge, bad-input errors and a tiny end-to-end unlearning run."""
import random

import numpy as np
import pytest
import torch

from repro.unlearning import evaluation as E


def test_rouge_l_reproduces_table5():
    """Table 5 (Sec. 8.5), pypi rouge 1.0.1 ROUGE-L: 0.5 / 0.17 / 0.83 for r = p = f."""
    ref = "The capital of France is Paris."
    for hyp, v in [("Paris is the capital of France.", 0.5), ("Of France, Paris is the capital.", 1 / 6),
                   ("The capital of France is Marseille.", 5 / 6)]:
        s = E.rouge_l(hyp, ref)
        assert s["r"] == pytest.approx(v) and s["p"] == pytest.approx(v) and s["f"] == pytest.approx(v, abs=1e-6)


def _random_pairs(n, seed=0):
    rng = random.Random(seed)
    vocab = ("the The a of Paris Paris. France capital is was born in 1,655 1655 Einstein Albert city . , "
             "running runs ran U.S.A. it's").split()
    out = [("Paris", "The capital of France is Paris."), ("Paris is the capital of France.", "The capital of France is Paris."),
           ("the the the", "the cat the"), ("A. B. C.", "a b c")]
    for _ in range(n):
        out.append((" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 14))),
                    " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 14)))))
    return out


def test_rouge_l_equals_pypi_rouge_package():
    """Issue 19 Sec. 2: the old implementation differed from pypi rouge 1.0.1 (the package behind
    Table 5) on 215 of 299 random pairs (F with beta = P/R, repeated words counted); now on none."""
    Rouge = pytest.importorskip("rouge").Rouge
    R = Rouge()
    for hyp, ref in _random_pairs(400):
        try:
            want = R.get_scores(hyp, ref)[0]["rouge-l"]
        except ValueError:   # the package rejects inputs that are empty after sentence splitting
            continue
        got = E.rouge_l(hyp, ref)
        assert got == pytest.approx(want, abs=1e-12), (hyp, ref)
    assert E.rouge_l("Paris", "The capital of France is Paris.")["f"] == pytest.approx(0.2857142, abs=1e-6)


def test_rouge_l_tofu_equals_rouge_score_package():
    """TOFU / open-unlearning report rouge_score's ROUGE-L recall (RougeScorer(['rougeL'], use_stemmer=True))."""
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    S = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for gen, gt in _random_pairs(400, seed=1):
        want = S.score(gt, gen)["rougeL"]
        got = E.rouge_l_tofu(gt, gen)
        assert (got["r"], got["p"], got["f"]) == pytest.approx((want.recall, want.precision, want.fmeasure), abs=1e-12)
    assert E.rouge_l_tofu("The capital of France is Paris.", "Paris is the capital of France.")["r"] == pytest.approx(4 / 6)


def test_judge_matches_last_name_and_numbers():
    j = E.MatchJudge()
    out = j.judge(["q"] * 5, [("stendras",), ("stendras",), ("1655",), ("1655",), ("amber",)],
                  ["Maitho Stendras", "Stendras.", "in 1655 ,", "1656", "No idea"])
    assert out.tolist() == [True, True, True, False, False]
    with pytest.raises(ValueError):
        E.get_judge("gemini-magic")


def test_worst_case_monotone_and_jw_dominates():
    """Eq. 7: WorstCaseAvg^(k) is non-decreasing; J_W >= max(J_P, J_ICR) >= standard."""
    rng = np.random.default_rng(0)
    I = rng.random((200, 12)) < 0.15
    curve = E.worst_case_avg(I)
    assert (np.diff(curve) >= 0).all() and curve[0] == pytest.approx(I[:, 0].mean())
    jp, jicr, jw = I[:, :6].max(1).mean(), I[:, 6:].max(1).mean(), I.max(1).mean()
    assert jw >= max(jp, jicr) >= I[:, 0].mean()


def test_guessing_inflation_simulation():
    """A coin-flip guesser is 'correct' on at least one of m paraphrases w.p. 1 − 0.5^m."""
    rng = np.random.default_rng(1)
    for m in [1, 3, 9, 15]:
        sim = (rng.random((20000, m)) < 0.5).any(1).mean()
        assert sim == pytest.approx(E.guess_inflation(m), abs=0.01)


def test_rep_score_closed_forms():
    # 4 distinct bigrams / 3 distinct trigrams: H2 = 2 bits, H3 = log2 3
    s = E.ngram_entropy("a b c d e")
    assert s == pytest.approx(np.mean([2 / 3 * 2.0, 4 / 3 * np.log2(3)]))
    assert E.ngram_entropy("I I I I I I") == 0.0
    assert E.rep_score(["I I I I", "a b c d e"]) == pytest.approx(100 * s / 2)


def test_win_rate_proxy():
    refs = ["it was founded in 1655 .", "it traded in salt ."]
    assert E.win_rate_proxy(["x", "y"], ["x", "y"], refs) == 0.5
    assert E.win_rate_proxy(["no", "no"], ["founded in 1655", "traded in salt"], refs) == 1.0
    assert E.win_rate_proxy(["founded in 1655", "no"], ["no", "no"], refs) == 0.25
    # a one-word change that moves F1 by < 0.05 is a tie at the judge-like 0.1 resolution
    long_ref = ["it was founded in 1655 . it was led by Maitho Stendras . it traded in salt ."]
    a = "it was founded in 1655 . it was led by Maitho Stendras . it traded in salt"
    b = a + " indeed"
    assert E.win_rate_proxy([a], [b], long_ref) == 0.5
    assert E.win_rate_proxy([a], [b], long_ref, resolution=1e-6) == 0.0


@pytest.fixture(scope="module")
def world_bits():
    from repro.data.facts import make_facts_corpus, pretraining_texts
    from repro.models import lm

    torch.set_num_threads(1)
    c = make_facts_corpus(0, n_forget_topics=1, n_retain_topics=2, n_relearn_topics=1, n_generic_topics=1,
                          entities_per_topic=1, n_train_paraphrases=2, n_eval_paraphrases=4,
                          n_retain_eval_paraphrases=2, n_unknowable=5)
    tok = lm.train_tokenizer(c.all_texts())
    m = lm.build_lm(len(tok), d_model=32, n_layers=1, n_heads=2, d_ff=64, seed=0,
                    pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    lm.pretrain_lm(m, tok, lambda e: pretraining_texts(c, random.Random(e), n_multi=5), steps=30,
                   batch_size=8, lr=1e-2, warmup=5)
    return c, tok, m


def test_batched_generation_equals_one_at_a_time(world_bits):
    c, tok, m = world_bits
    prompts = [c.prompt(f, t) for f in c.facts["retain"][:4] for t in (0, c.eval_paraphrases[0])]
    prompts.append(c.icr_prompt(c.facts["forget"][0], 0, random.Random(0)))   # a longer, left-padded row
    assert E.generate(m, tok, prompts, 4) == E.generate_loop(m, tok, prompts, 4)


def test_mc_accuracy_matches_bruteforce(world_bits):
    c, tok, m = world_bits
    items = E.mc_items(c, c.facts["generic"], seed=0)
    acc = E.mc_accuracy(m, tok, items)
    correct = 0
    for p, opts, k in items:
        scores = []
        for o in opts:
            pi = tok(p, add_special_tokens=False)["input_ids"]
            oi = tok(" " + o, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                lp = torch.log_softmax(m(torch.tensor([pi + oi])).logits[0].double(), -1)
            scores.append(sum(float(lp[len(pi) - 1 + i, t]) for i, t in enumerate(oi)))
        correct += int(np.argmax(scores) == k)
    assert acc == pytest.approx(100 * correct / len(items))


def test_bad_inputs_clear_errors(world_bits):
    import copy

    from repro.unlearning.data import make_unlearn_sets

    c, tok, m = world_bits
    pairs = [(c.prompt(f), f.answer) for f in c.facts["forget"]]
    with pytest.raises(ValueError, match="forget set is empty"):
        make_unlearn_sets(tok, [], pairs)
    with pytest.raises(ValueError, match="tokenizes to nothing"):
        make_unlearn_sets(tok, pairs, pairs, target=" ")
    t2 = copy.deepcopy(tok)
    t2.pad_token = None
    with pytest.raises(ValueError, match="pad token"):
        make_unlearn_sets(t2, pairs, pairs)
    c2 = copy.deepcopy(c)
    c2.eval_paraphrases = list(c2.eval_paraphrases) + [c2.train_paraphrases[0]]
    with pytest.raises(ValueError, match="overlap"):
        E.evaluate_forget(m, tok, c2, c2.facts["forget"])


def test_jensun_unlearning_moves_forget_outputs_to_target(world_bits):
    """End to end at toy scale: JensUn raises p('No idea') on forget prompts; the reference model
    is untouched."""
    from repro.unlearning import losses as L
    from repro.unlearning.data import make_unlearn_sets
    from repro.unlearning.trainer import frozen_copy, relearn, unlearn

    c, tok, base = world_bits
    import copy
    m = copy.deepcopy(base)
    ref = frozen_copy(base)
    sets = make_unlearn_sets(tok, [(c.prompt(f), f.answer) for f in c.facts["forget"]],
                             [(c.prompt(f), f.answer) for f in c.facts["retain"]])
    loss = L.get("jensun")

    def target_logprob(model):
        from repro.unlearning.losses import seq_logprob
        b = sets.forget_target
        with torch.no_grad():
            return float(seq_logprob(model(**b.as_kwargs()).logits, b.labels)[0].mean())

    before = target_logprob(m)
    ref_state = {k: v.clone() for k, v in ref.state_dict().items()}
    out = unlearn(m, loss, sets, steps=25, lr=1e-2, batch_size=4, ref=ref, warmup=2)
    assert target_logprob(m) > before + 1.0
    assert out["history"][0]["retain_loss"] == pytest.approx(0.0, abs=1e-6)
    assert all(torch.equal(ref_state[k], v) for k, v in ref.state_dict().items())
    losses = relearn(m, tok, [(c.prompt(f), f.answer) for f in c.facts["relearn"]], steps=5, lr=1e-3, batch_size=2)
    assert len(losses) == 5


def test_npo_sam_uses_repro_sam_and_runs(world_bits):
    """NPO+SAM (Table 3 baseline) goes through chapter 6's repro.sam.SAM: two passes per step."""
    import copy

    from repro.unlearning import losses as L
    from repro.unlearning.data import make_unlearn_sets
    from repro.unlearning.trainer import unlearn

    c, tok, base = world_bits
    sets = make_unlearn_sets(tok, [(c.prompt(f), f.answer) for f in c.facts["forget"]],
                             [(c.prompt(f), f.answer) for f in c.facts["retain"]])
    calls = {"n": 0}
    loss = L.get("npo_sam")
    orig = loss.forget_term

    def counting(*a, **k):
        calls["n"] += 1
        return orig(*a, **k)
    loss.forget_term = counting
    m = copy.deepcopy(base)
    before = [p.detach().clone() for p in m.parameters()]
    out = unlearn(m, loss, sets, steps=2, lr=1e-3, batch_size=2)
    assert calls["n"] == 4 and len(out["history"]) == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))


# ------------------------------------------------------------------ issue 20 item 11: one normalisation for both sides
@pytest.mark.parametrize("answer,output,want", [
    ("Albert Einstein", "Einstein.", True),          # last name suffices (Figure 19)
    (("albert", "einstein"), "It was Einstein", True),
    ("1,000", "1000", True), ("1000", "about 1,000 ships", True), (("1", "000"), "1000", True),
    ("U.S.A.", "the USA", True), ("USA", "the U.S.A.", True),
    ("Gödel", "Godel", True), ("Einstein", "Einstein's theory", True), ("O'Brien", "obrien", True),
    ("Albert Einstein", "Albert", False),             # the last name is required
    ("1655", "1656", False), ("Einstein", "Einsteinium", False),
    ("New York", "York", True),                       # documented leniency: any multi-word answer
])
def test_match_judge_normalises_both_sides(answer, output, want):
    """Before: 'Albert Einstein' vs 'Einstein.' and '1,000' vs '1000' were NO, 'U.S.A.' became ('u',)."""
    assert E.MatchJudge().judge(["q"], [answer], [output]).tolist() == [want]


def test_match_judge_strict_words_option():
    assert not E.MatchJudge(last_name_only=False).match("Albert Einstein", "Einstein")
    assert E.MatchJudge(last_name_only=False).match("Albert Einstein", "albert EINSTEIN!")


# ------------------------------------------------------------------ issue 19 Sec. 2: the LLM judge
class FakeClient:
    def __init__(self, replies):
        self.replies, self.prompts = list(replies), []

    def __call__(self, prompt):
        self.prompts.append(prompt)
        r = self.replies.pop(0) if self.replies else "YES"
        if isinstance(r, Exception):
            raise r
        return r


def test_openai_judge_retries_transient_errors():
    c = FakeClient([E.TransientJudgeError("timeout"), E.TransientJudgeError("503"), "YES", "NO"])
    j = E.OpenAIJudge("http://x/v1", "m", client=c, backoff=0.0)
    assert j.judge(["q1", "q2"], ["a", "b"], ["o", "o"]).tolist() == [True, False]
    assert j.failures_ == 0 and j.failure_rate == 0.0 and len(c.prompts) == 4


def test_openai_judge_stops_when_failures_exceed_threshold():
    """Before: every failure was scored NO silently; a wrong URL/key gave J_W = 0 ("perfect forgetting")."""
    c = FakeClient([RuntimeError("HTTP 401")] * 10)
    j = E.OpenAIJudge("http://x/v1", "m", client=c, backoff=0.0)
    with pytest.raises(E.JudgeFailureError, match="judge calls failed"):
        j.judge(["q"] * 100, ["a"] * 100, ["o"] * 100)
    assert j.failures_ == 3 and j.calls_ == 3      # stopped as soon as 2 % of 100 was exceeded


def test_openai_judge_counts_failures_below_threshold():
    c = FakeClient(["YES"] * 50 + ["maybe"] + ["YES"] * 49)   # one unparseable reply of 100
    j = E.OpenAIJudge("http://x/v1", "m", client=c, backoff=0.0)
    out = j.judge(["q"] * 100, ["a"] * 100, ["o"] * 100)
    assert out.sum() == 99 and j.failures_ == 1 and j.failure_rate == pytest.approx(0.01)
    assert j.stats() == {"judge_calls": 100, "judge_failures": 1, "judge_failure_rate": 0.01}


def test_openai_judge_key_only_from_environment(monkeypatch):
    with pytest.raises(ValueError, match="api_key"):
        E.get_judge("openai", base_url="http://x/v1", model="m", api_key="sk-secret")
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-secret")
    j = E.get_judge("openai", base_url="http://x/v1", model="m", api_key_env="MY_JUDGE_KEY")
    assert "sk-secret" not in repr(j) and "sk-secret" not in repr(vars(j)) and "sk-secret" not in repr(j.identity())
