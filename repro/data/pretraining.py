"""The pretraining corpus of the generated facts world (chapter 7): which facts the base model sees, how often,
and in which phrasings.

* an *exposure law* (:func:`fact_exposures`): how often each forget / retain fact is seen in
  pretraining. ``uniform`` sees every fact equally often (a model that memorised its
  corpus, knowing 100 % of it); ``zipf`` gives the fact of frequency rank r (a seeded random
  permutation) ``floor(B / (H_{N,s} r^s))`` exposures per pretraining pass (:func:`zipf_counts`), so a few
  facts are seen often, many rarely and the tail never: a base model that, like the paper's,
  knows only part of the "lesser-known facts" (Table 1: 76 % worst case; Figure 13: 46 % single query).
* :func:`pretraining_pass` never asks a forget, retain or relearning fact in an evaluation paraphrase
  (:func:`pretraining_templates`): like the paper's Qwen/Phi-3.5/Mistral paraphrases, the evaluation
  questions are ones the model meets first at evaluation (the phrasings themselves occur in
  pretraining with other entities, as the phrasings of real paraphrases occur in real text).

Kept apart from :mod:`repro.data.facts` (the corpus itself) for a reason of cache keys: ``repro.models.lm``
imports the corpus' special tokens from :mod:`repro.data.facts`, and the model registry puts every model module
into the code fingerprint of every trained model (:mod:`repro.core.fingerprint`), so an edit of
``repro/data/facts.py`` would stale the released vision zoos of chapters 3-5. :func:`repro.data.facts.
pretraining_texts` (every template, uniform exposure) remains the tokenizer's coverage of the corpus.
"""
from __future__ import annotations

import math
import random
from typing import Sequence

from repro.data.facts import EOS, RELATIONS, REFUSAL, FactsCorpus, check_disjoint_paraphrases

__all__ = ["EXPOSURE_LAWS", "LAW_SPLITS", "check_exposure", "zipf_counts", "fact_exposures", "pretraining_templates",
           "pretraining_pass"]


EXPOSURE_LAWS = ("uniform", "zipf")
#: the splits whose facts follow the exposure law: LKF's forget and retain sets are both real,
#: "lesser-known" facts built the same way (App. A.2: retain topics in the vicinity of the forget
#: topics), so they are draws from one frequency distribution. The relearning set is general
#: knowledge the base model knows (App. B.5: QA pairs on history, geography, biology, sports written by
#: another LLM from its own knowledge), and the generic facts stand for the general knowledge of the
#: MMLU-like probe and the descriptive prompts of Rep / the WR proxy: both keep the uniform exposure.
LAW_SPLITS = ("forget", "retain")
_EXPOSURE_KEYS = {"uniform": {"law"}, "zipf": {"law", "s", "mean"}}


def check_exposure(cfg: dict | None) -> dict:
    """Validate an exposure-law config and return it with defaults filled in.

    ``None`` or ``{law: uniform}``: every fact is seen equally often (``templates_per_fact`` times
    per pass). ``{law: zipf, s, mean}``: the fact of rank r is seen ``floor(B / (H_{N,s} r^s))``
    times per pass over the pretraining corpus (:func:`zipf_counts`), with ``B = mean * N`` the budget of the
    ``N`` law facts, ``s > 0`` the Zipf exponent (1: Zipf's law of word and entity frequencies).
    Raises ``ValueError`` naming the bad key or value and the allowed ones."""
    where = "the exposure law (pretrain.exposure in repro/profiles/ch7.yaml)"
    if cfg is None:
        return {"law": "uniform"}
    if not isinstance(cfg, dict):
        raise ValueError(f"{where} must be a mapping like {{law: zipf, s: 1.0, mean: 3.0}}, got {cfg!r}")
    law = cfg.get("law")
    if law not in EXPOSURE_LAWS:
        raise ValueError(f"{where}: law must be one of {', '.join(EXPOSURE_LAWS)}, got {law!r}")
    allowed = _EXPOSURE_KEYS[law]
    bad = sorted(set(cfg) - allowed)
    if bad:
        raise ValueError(f"{where}: unknown key(s) {bad} for law {law!r}; allowed: {sorted(allowed)}")
    if law == "uniform":
        return {"law": "uniform"}
    missing = sorted(allowed - set(cfg))
    if missing:
        raise ValueError(f"{where}: law 'zipf' needs {missing} (state them explicitly: no silent defaults)")
    out = {"law": "zipf"}
    for k in ("s", "mean"):
        v = cfg[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{where}: {k} must be a positive number, got {v!r}")
        out[k] = float(v)
    return out


def zipf_counts(n: int, budget: float, s: float = 1.0) -> list[int]:
    """Exposures of the facts of frequency rank r = 1..n under Zipf's law with exponent ``s``:
    ``floor(budget / (H_{n,s} r^s))`` with ``H_{n,s} = sum_{r<=n} r^-s``, i.e. the budget shared in
    proportion to ``r^-s`` and rounded down, so the tail beyond rank ``(budget / H_{n,s})^(1/s)``
    is never seen. Non-increasing in r; sums to at most ``budget``."""
    if n < 0 or budget < 0 or s <= 0:
        raise ValueError(f"zipf_counts needs n >= 0, budget >= 0, s > 0; got n={n}, budget={budget}, s={s}")
    h = sum(r ** -s for r in range(1, n + 1))
    # the small epsilon keeps an exact product such as 3.0 from rounding down to 2
    return [int(math.floor(budget / (h * r ** s) + 1e-9)) for r in range(1, n + 1)]


def fact_exposures(corpus: FactsCorpus, law: str = "zipf", s: float = 1.0, mean: float = 3.0, seed: int = 0,
                   splits: Sequence[str] = LAW_SPLITS) -> dict[str, list[int]]:
    """Exposures per pretraining pass of every fact of ``splits`` (``{split: [count per fact, in corpus order]}``).

    ``zipf``: the facts of all ``splits`` together (N of them) get the frequency ranks 1..N in a
    random order drawn from ``seed`` (its own stream: the corpus does not change with the law), and
    the fact of rank r is seen :func:`zipf_counts` ``(N, mean * N, s)[r - 1]`` times. Each split is
    thus a random sample of one frequency distribution: its facts are as well known as the others'
    in expectation. (The uniform law needs no counts: it is :func:`pretraining_pass`' default.)"""
    if law != "zipf":
        raise ValueError(f"fact_exposures computes the 'zipf' law, got law={law!r}; the uniform law is "
                         "pretraining_pass' default (exposures=None)")
    check_exposure({"law": law, "s": s, "mean": mean})
    bad = [sp for sp in splits if sp not in corpus.facts]
    if bad:
        raise ValueError(f"unknown split(s) {bad}; the corpus has {sorted(corpus.facts)}")
    facts = [(sp, i) for sp in splits for i in range(len(corpus.facts[sp]))]
    order = list(range(len(facts)))
    random.Random(f"exposure-permutation/{seed}").shuffle(order)
    counts = zipf_counts(len(facts), float(mean) * len(facts), float(s))
    out = {sp: [0] * len(corpus.facts[sp]) for sp in splits}
    for rank, j in enumerate(order):
        sp, i = facts[j]
        out[sp][i] = counts[rank]
    return out


def pretraining_templates(corpus: FactsCorpus) -> list[int]:
    """Template indices pretraining may use for the forget, retain and relearning facts: all but the
    evaluation paraphrases (App. A.3: the evaluation paraphrases come from other LLMs than anything
    the model was trained on), so J_P / J_ICR / J_W and the retain J_Avg ask questions the model
    has never seen. (Generic facts and unknowable questions use every template.)"""
    held_out = set(corpus.eval_paraphrases) | set(corpus.retain_eval_paraphrases)
    pool = [i for i in range(len(corpus.templates[RELATIONS[0]])) if i not in held_out]
    check_disjoint_paraphrases(pool, sorted(held_out))
    return pool


def pretraining_pass(corpus: FactsCorpus, rng: random.Random, n_template_samples: int = 4,
                     n_multi: int = 1000, exposures: dict[str, list[int]] | None = None) -> list[str]:
    """One pretraining pass (epoch) over the corpus; pretraining repeats passes (each resampled).

    Forget, retain and relearning facts are asked only in the phrasings of
    :func:`pretraining_templates`, so no evaluation question (a forget or retain fact under an
    evaluation paraphrase) is ever seen in pretraining; generic facts, unknowable questions and the
    multi-QA sequences use every template, as the text a real LLM is trained on uses every phrasing
    for *other* entities.

    ``exposures=None`` (the uniform law): every fact under ``n_template_samples`` random templates,
    the canonical question always among them. Relearning facts are pretrained too: the paper's
    relearning set is *real* knowledge (App. B.5). Multi-QA sequences (so that the in-context-retain
    format of J_ICR is in distribution) draw their QA pairs from all facts.

    ``exposures`` (from :func:`fact_exposures`): fact ``i`` of split ``sp`` appears exactly
    ``exposures[sp][i]`` times per pass, each time under a different random template while the pool
    lasts (no template is privileged: the canonical question is one phrasing among the others); a
    fact with count 0 never appears (its entity may, through its other facts). Splits absent from
    ``exposures`` (the generic facts) keep the uniform law, and the multi-QA sequences are built from
    them only, so they do not change the law facts' counts.

    Both: the descriptive paragraphs of the generic entities, and the unknowable questions answered
    with the refusal ("No idea", Eq. 4's target) so that it is not vanishingly improbable (App. E.4)."""
    law = exposures or {}
    for sp, counts in law.items():
        if sp not in corpus.facts or len(counts) != len(corpus.facts[sp]):
            raise ValueError(f"exposures[{sp!r}] has {len(counts)} counts but the corpus has "
                             f"{len(corpus.facts.get(sp, []))} {sp} facts; compute them with fact_exposures(corpus)")
        if any(int(k) != k or k < 0 for k in counts):
            raise ValueError(f"exposures[{sp!r}] must be non-negative integers, got {list(counts)[:5]}...")
    held_in = pretraining_templates(corpus)                      # forget / retain / relearn facts
    every = list(range(len(corpus.templates[RELATIONS[0]])))     # everything else
    texts: list[str] = []
    for s in ("forget", "retain", "relearn", "generic"):
        if s in law:
            continue
        pool = every if s == "generic" else held_in
        for f in corpus.facts.get(s, []):
            idx = rng.sample(pool, min(n_template_samples, len(pool)))
            if corpus.canonical not in idx:
                idx[0] = corpus.canonical
            texts += [corpus.qa_text(f, i) for i in idx]
    for sp, counts in law.items():
        pool = every if sp == "generic" else held_in
        for f, k in zip(corpus.facts[sp], counts):
            order: list[int] = []
            while len(order) < k:
                order += rng.sample(pool, len(pool))
            texts += [corpus.qa_text(f, i) for i in order[:int(k)]]
    for ent, d in corpus.descriptions.items():
        texts.append(f"{corpus.describe_prompt(ent)} {d} {EOS}")
    for q in corpus.unknowable:
        texts.append(f"{q} {REFUSAL} {EOS}")
    shot_facts = [f for s in ("forget", "retain", "relearn", "generic") if s not in law for f in corpus.facts.get(s, [])]
    if n_multi and len(shot_facts) < 4:
        raise ValueError(f"multi-QA sequences need >= 4 facts outside the exposure law, found {len(shot_facts)}; "
                         "add generic topics or set n_multi: 0")
    for _ in range(n_multi):
        shots = rng.sample(shot_facts, 4)
        tp = [every if s.split == "generic" else held_in for s in shots]
        texts.append(" ".join(corpus.qa_text(s, rng.choice(t))[: -len(EOS) - 1] + " ;" for s, t in zip(shots[:-1], tp))
                     + " " + corpus.qa_text(shots[-1], rng.choice(tp[-1])))
    rng.shuffle(texts)
    return texts


