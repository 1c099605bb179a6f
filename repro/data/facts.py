"""A generated "lesser-known facts" corpus: the offline stand-in for LKF (paper §4.4 and App. A.2-A.3,
as reprinted in Sec. 8.5 of the dissertation; unprefixed table/figure/appendix numbers below are the paper's).

The paper's LKF benchmark has 100 forget and 400 retain short-answer QA pairs about 5 niche
events, 15 held-out evaluation paraphrases per forget question (5 from each of 3 LLMs), 9 (of
which 6 are used) retain paraphrases, 5 *training* paraphrases from a different LLM, in-context
retain (ICR) prompts, a disjoint 200-QA relearning set, and MMLU/AlpacaEval for utility
(paper §4.4, App. A.3, B.4, B.5).

Here every piece is generated from a seed, with the same structure:

* fictitious entities (one invented word + a kind noun, e.g. ``the velmora guild``), grouped in
  topics; each entity has 5 attributes (founding year, leader, seat, symbol, trade), each a fact;
* forget topics, retain topics (same relations and answer pools: the semantic *vicinity* of the
  forget set, A.2 step 4), relearning topics (disjoint facts, B.5) and generic topics (the
  utility probe and the descriptive prompts used for Rep / the win-rate proxy);
* per relation a pool of question templates split into one canonical question, training
  paraphrases (used by unlearning losses) and *disjoint* evaluation paraphrases (used only by the
  worst-case metrics J_P / J_ICR / J_W), mirroring "Phi-4-mini for training vs Qwen/Phi-3.5/Mistral
  for evaluation" (App. A.3, B.2);
* "unknowable" questions about entities that have no facts, answered ``No idea`` in pretraining,
  so the JensUn refusal target is not vanishingly improbable (the JSD gradient vanishes with the target's probability, App. E.4).

Everything is plain Python (lists of dataclasses); :func:`pretraining_texts` turns it into the
corpus the tiny LM is pretrained on.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

REFUSAL = "No idea"
EOS = "<eos>"
PAD = "<pad>"
UNK = "<unk>"

# --------------------------------------------------------------------------- relations
# Each relation has a pool of question bodies and of prefixes; the product gives >= 21 distinct
# templates: 1 canonical + 5 training + 15 evaluation paraphrases, as in LKF (App. A.3).
_BODIES: dict[str, list[str]] = {
    "year": [
        "in which year was {e} founded", "what year was {e} founded", "when was {e} founded",
        "in what year did {e} begin", "{e} was founded in which year", "what is the founding year of {e}",
    ],
    "leader": [
        "who led {e}", "who was the leader of {e}", "who headed {e}",
        "which person led {e}", "{e} was led by whom", "who was in charge of {e}",
    ],
    "seat": [
        "where was {e} based", "in which town was {e} based", "where did {e} have its seat",
        "what was the seat of {e}", "{e} was based in which town", "which town hosted {e}",
    ],
    "symbol": [
        "what was the symbol of {e}", "which animal was the symbol of {e}", "what animal did {e} use as its symbol",
        "{e} had which symbol", "what emblem did {e} carry", "which creature was the emblem of {e}",
    ],
    "trade": [
        "what did {e} trade in", "which good did {e} trade", "what was the main trade of {e}",
        "{e} traded in which good", "what goods did {e} sell", "in which good did {e} deal",
    ],
}
_PREFIXES = ["", "tell me ,", "quick question :", "do you know ,", "please answer :"]
RELATIONS = tuple(_BODIES)

_STATEMENTS = {
    "year": "it was founded in {a} .",
    "leader": "it was led by {a} .",
    "seat": "it was based in {a} .",
    "symbol": "its symbol was the {a} .",
    "trade": "it traded in {a} .",
}

_KINDS = ["guild", "order", "league", "company", "society", "council", "brotherhood", "circle"]
_SYMBOLS = ["wolf", "eagle", "stag", "heron", "bear", "lynx", "falcon", "otter", "raven", "boar",
            "swan", "viper", "owl", "hare", "ox", "crane", "fox", "badger", "hawk", "lion",
            "ram", "seal", "moth", "carp"]
_GOODS = ["salt", "silk", "amber", "tin", "wool", "pepper", "copper", "timber", "glass", "honey",
          "iron", "linen", "wax", "furs", "saffron", "pearls", "tar", "indigo", "ivory", "cedar",
          "coal", "wine", "grain", "jade"]

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "k", "kr", "l", "m", "n", "p", "r", "s", "st",
           "t", "tr", "v", "z", "th", "sh", "h", "j"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
_CODAS = ["", "n", "r", "l", "s", "th", "m", "nd", "rk", "x"]


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables))


class _Names:
    """Unique invented words (entity names, towns, first and last names) from one seeded stream."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def new(self, syllables: int = 2, suffix: str = "") -> str:
        for _ in range(10000):
            w = _word(self.rng, syllables) + suffix
            if w not in self.used and len(w) >= 4:
                self.used.add(w)
                return w
        raise RuntimeError("name space exhausted; lower the corpus size")


# --------------------------------------------------------------------------- data classes
@dataclass(frozen=True)
class Fact:
    """One short-answer QA fact: ``entity`` has ``answer`` for ``relation``.

    ``match`` lists the answer's key tokens for the matching judge (last names suffice, as in the
    paper's judge rule "last names must match exactly, first names may be omitted", Figure 19).
    """

    entity: str
    relation: str
    answer: str
    topic: str
    split: str
    match: tuple[str, ...]

    def question(self, template: str) -> str:
        return template.format(e=self.entity)


@dataclass
class FactsCorpus:
    """The generated corpus; see the module docstring. Template indices refer to ``templates[rel]``."""

    seed: int
    facts: dict[str, list[Fact]]                   # split -> facts (forget, retain, relearn, generic)
    templates: dict[str, list[str]]                # relation -> all templates
    canonical: int
    train_paraphrases: list[int]
    eval_paraphrases: list[int]
    retain_eval_paraphrases: list[int]
    unknowable: list[str]                           # questions whose answer is "No idea"
    descriptions: dict[str, str]                    # generic entity -> descriptive paragraph
    answer_pools: dict[str, list[str]]              # relation -> all answers of that type
    topics: dict[str, list[str]] = field(default_factory=dict)   # split -> topic names

    # ------------------------------------------------------------------ prompts
    def prompt(self, fact: Fact, template_idx: int | None = None) -> str:
        t = self.templates[fact.relation][self.canonical if template_idx is None else template_idx]
        return format_question(fact.question(t))

    def qa_text(self, fact: Fact, template_idx: int | None = None, answer: str | None = None) -> str:
        return self.prompt(fact, template_idx) + " " + (fact.answer if answer is None else answer) + " " + EOS

    def icr_prompt(self, fact: Fact, template_idx: int, rng: random.Random, k: int = 3) -> str:
        """In-context-retain prompt: ``k`` random retain QA pairs, then the question (paper §4.2)."""
        shots = rng.sample(self.facts["retain"], k)
        ctx = " ".join(format_question(s.question(self.templates[s.relation][self.canonical])) + " " + s.answer + " ;"
                       for s in shots)
        return ctx + " " + self.prompt(fact, template_idx)

    def describe_prompt(self, entity: str) -> str:
        return f"tell me about {entity} ."

    def all_texts(self) -> list[str]:
        """Every string the tokenizer must cover (all splits, templates, refusals, descriptions)."""
        out = list(pretraining_texts(self, random.Random(0), n_template_samples=len(self.templates["year"])))
        out += [REFUSAL, "# , ;"]
        for rel, pool in self.answer_pools.items():
            out += pool
        return out


def format_question(q: str) -> str:
    return f"Q : {q} ? A :"


def _split_templates(n_train: int, n_eval: int, n_retain_eval: int) -> tuple[int, list[int], list[int], list[int]]:
    n = len(_BODIES["year"]) * len(_PREFIXES)
    need = 1 + n_train + n_eval
    if need > n:
        raise ValueError(f"asked for 1 canonical + {n_train} train + {n_eval} eval paraphrases = {need} templates, "
                         f"but each relation has only {n}; lower n_train_paraphrases / n_eval_paraphrases")
    if n_retain_eval > n_eval:
        raise ValueError(f"n_retain_eval_paraphrases={n_retain_eval} exceeds n_eval_paraphrases={n_eval}")
    order = list(range(1, n))
    # a fixed shuffle so train and eval paraphrases mix bodies and prefixes (neither set is "all
    # the short ones"), exactly as different paraphrasing LLMs would
    random.Random(1234).shuffle(order)
    train = sorted(order[:n_train])
    evl = sorted(order[n_train:n_train + n_eval])
    return 0, train, evl, evl[:n_retain_eval]


def _all_templates() -> dict[str, list[str]]:
    out = {}
    for rel, bodies in _BODIES.items():
        ts = []
        for b in bodies:       # body-major order: index 0 is the plain canonical question
            for p in _PREFIXES:
                ts.append((p + " " + b).strip())
        out[rel] = ts
    return out


def make_facts_corpus(
    seed: int = 0,
    n_forget_topics: int = 5,
    n_retain_topics: int = 20,
    n_relearn_topics: int = 10,
    n_generic_topics: int = 10,
    entities_per_topic: int = 4,
    n_train_paraphrases: int = 5,
    n_eval_paraphrases: int = 15,
    n_retain_eval_paraphrases: int = 6,
    n_unknowable: int = 100,
) -> FactsCorpus:
    """Generate the corpus. Defaults give LKF's sizes: 5 topics x 4 entities x 5 relations = 100
    forget facts, 400 retain facts, 200 relearning facts, 200 generic facts (paper §4.4, App. B.5)."""
    for name, v in dict(n_forget_topics=n_forget_topics, n_retain_topics=n_retain_topics,
                        entities_per_topic=entities_per_topic).items():
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1 (an empty forget or retain set cannot be unlearned or evaluated); got {v}")
    canonical, train, evl, revl = _split_templates(n_train_paraphrases, n_eval_paraphrases, n_retain_eval_paraphrases)
    rng = random.Random(seed)
    names = _Names(rng)
    towns = [names.new(2, "a") for _ in range(40)]
    firsts = [names.new(1, "o").capitalize() for _ in range(30)]
    lasts = [names.new(2).capitalize() for _ in range(60)]
    years = [str(y) for y in range(1410, 1890, 7)]
    pools = {"year": years, "leader": [f"{f} {l}" for f in firsts for l in lasts],
             "seat": towns, "symbol": list(_SYMBOLS), "trade": list(_GOODS)}
    used_leaders: set[str] = set()

    def answer(rel: str) -> tuple[str, tuple[str, ...]]:
        if rel == "leader":
            while True:
                f, l = rng.choice(firsts), rng.choice(lasts)
                if f"{f} {l}" not in used_leaders:
                    used_leaders.add(f"{f} {l}")
                    return f"{f} {l}", (l.lower(),)
        a = rng.choice(pools[rel])
        return a, (a.lower(),)

    facts: dict[str, list[Fact]] = {}
    topics: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    for split, n_topics in [("forget", n_forget_topics), ("retain", n_retain_topics),
                            ("relearn", n_relearn_topics), ("generic", n_generic_topics)]:
        facts[split] = []
        topics[split] = []
        for t in range(n_topics):
            topic = f"{split}-{t}"
            topics[split].append(topic)
            for _ in range(entities_per_topic):
                ent = f"the {names.new(2)} {rng.choice(_KINDS)}"
                ent_facts = []
                for rel in RELATIONS:
                    a, m = answer(rel)
                    ent_facts.append(Fact(ent, rel, a, topic, split, m))
                facts[split].extend(ent_facts)
                if split == "generic":
                    descriptions[ent] = " ".join(_STATEMENTS[f.relation].format(a=f.answer) for f in ent_facts)
    # unknowable: questions about entities that exist nowhere else, answered with the refusal
    templates = _all_templates()
    unknowable = []
    for _ in range(n_unknowable):
        ent = f"the {names.new(2)} {rng.choice(_KINDS)}"
        rel = rng.choice(RELATIONS)
        unknowable.append(format_question(rng.choice(templates[rel]).format(e=ent)))
    return FactsCorpus(seed=seed, facts=facts, templates=templates, canonical=canonical,
                       train_paraphrases=train, eval_paraphrases=evl, retain_eval_paraphrases=revl,
                       unknowable=unknowable, descriptions=descriptions, answer_pools=pools, topics=topics)


def check_disjoint_paraphrases(train: Sequence[int], evaluation: Sequence[int]) -> None:
    """Training and evaluation paraphrases must not overlap (App. A.3: "to make test-time
    paraphrases disjoint"); an overlap would turn the worst-case metric into a training-set metric."""
    common = sorted(set(train) & set(evaluation))
    if common:
        raise ValueError(f"training and evaluation paraphrase sets overlap in templates {common}; "
                         "they must be disjoint (pick different template indices for one of them)")


def pretraining_texts(corpus: FactsCorpus, rng: random.Random, n_template_samples: int = 4,
                      n_multi: int = 1000) -> list[str]:
    """One pretraining epoch: each fact under ``n_template_samples`` random templates (all
    templates are fair game: a real LLM has seen every phrasing of the language), descriptive
    paragraphs of the generic entities. Relearning facts are pretrained too: the paper's relearning
    set is *real* knowledge the base model has (App. B.5), unknowable -> "No idea", and multi-QA sequences so that
    the in-context-retain format of J_ICR is in distribution."""
    texts: list[str] = []
    all_facts = [f for s in ("forget", "retain", "relearn", "generic") for f in corpus.facts[s]]
    n_t = len(corpus.templates["year"])
    for f in all_facts:
        idx = rng.sample(range(n_t), min(n_template_samples, n_t))
        if corpus.canonical not in idx:
            idx[0] = corpus.canonical
        for i in idx:
            texts.append(corpus.qa_text(f, i))
    for ent, d in corpus.descriptions.items():
        texts.append(f"{corpus.describe_prompt(ent)} {d} {EOS}")
    for q in corpus.unknowable:
        texts.append(f"{q} {REFUSAL} {EOS}")
    for _ in range(n_multi):
        shots = rng.sample(all_facts, 4)
        texts.append(" ".join(corpus.qa_text(s, rng.randrange(n_t))[: -len(EOS) - 1] + " ;" for s in shots[:-1])
                     + " " + corpus.qa_text(shots[-1], rng.randrange(n_t)))
    rng.shuffle(texts)
    return texts


# --------------------------------------------------------------------------- LKF (full profile)
# The released LKF data (HF datasets ``nmndeep/LKF-*``, App. A) exported one file per subset.
# File stems the loader looks for under the manifest's folder; any of .jsonl/.json/.csv/.parquet.
LKF_FILES = {
    "forget": "forget_standard", "forget_train_para": "forget_train_para", "forget_eval_para": "forget_eval_para",
    "retain": "retain_standard", "retain_train_para": "retain_train_para", "retain_eval_para": "retain_eval_para",
    "relearn": "relearn", "mmlu": "mmlu", "alpaca_eval": "alpaca_eval",
}
# A short-answer instruction in the spirit of the authors' released evaluation prompt (a raw,
# non-chat prefix with three worked examples, the text after "ANSWER:" is the answer).
LKF_PREFIX = ("Answer the question with a short response: only the answer, no text before or after it. "
              "Examples: Question: Which city hosted the 2012 Olympics? Answer: London. "
              "Question: What is the capital of Australia? Answer: Canberra. "
              "Question: In which year did World War 2 end? Answer: 1945. ")
_STOP = {"the", "a", "an", "of", "in", "on", "at", "to", "and", "or", "for", "by", "with", "is", "was", "s"}


def _read_table(folder, stem: str, required: Sequence[str]):
    """Rows of ``<folder>/<stem>.{jsonl,json,csv,parquet}`` as a list of dicts, with a clear error
    naming the expected file and columns."""
    import json as _json
    from pathlib import Path

    import pandas as pd

    folder = Path(folder)
    for ext in (".jsonl", ".json", ".csv", ".parquet"):
        p = folder / f"{stem}{ext}"
        if not p.exists():
            continue
        if ext == ".jsonl":
            rows = [_json.loads(l) for l in p.read_text().splitlines() if l.strip()]
        elif ext == ".json":
            rows = _json.loads(p.read_text())
        elif ext == ".csv":
            rows = pd.read_csv(p).to_dict("records")
        else:
            try:
                rows = pd.read_parquet(p).to_dict("records")
            except ImportError as e:
                raise ImportError(f"{p} is parquet but no parquet engine is installed; export it as "
                                  f"{stem}.jsonl (datasets: `ds.to_json('{stem}.jsonl')`) or install pyarrow") from e
        if not rows:
            raise ValueError(f"{p} is empty; it must hold one row per question")
        missing = [c for c in required if c not in rows[0]]
        if missing:
            raise ValueError(f"{p} lacks column(s) {missing}; expected at least {list(required)}")
        return rows
    raise FileNotFoundError(f"LKF file {stem}.jsonl (or .json/.csv/.parquet) not found in {folder}; "
                            f"expected columns {list(required)} (see the 'lkf' data manifest)")


def _match_keys(answer: str) -> tuple[str, ...]:
    words = [w for w in "".join(c if c.isalnum() else " " for c in answer.lower()).split() if w not in _STOP]
    return tuple(words) or (answer.lower().strip(),)


def _esc(q: str) -> str:
    return str(q).replace("{", "{{").replace("}", "}}")


@dataclass
class LKFCorpus(FactsCorpus):
    """The real LKF data in the :class:`FactsCorpus` interface: every fact is its own "relation"
    whose template list is ``[original question, training paraphrases..., evaluation paraphrases...]``,
    so the same template indices (canonical / training / evaluation) drive the same metrics.
    Prompts use :data:`LKF_PREFIX` (raw, non-chat, as the released evaluation does)."""

    prefix: str = LKF_PREFIX

    def prompt(self, fact: Fact, template_idx: int | None = None) -> str:
        t = self.templates[fact.relation][self.canonical if template_idx is None else template_idx]
        return f"{self.prefix}QUESTION: {fact.question(t)}\nANSWER:"

    def icr_prompt(self, fact: Fact, template_idx: int, rng: random.Random, k: int = 3) -> str:
        shots = rng.sample(self.facts["retain"], k)
        ctx = "".join(f"Question: {s.question(self.templates[s.relation][self.canonical])} Answer: {s.answer}. "
                      for s in shots)
        return f"{self.prefix}{ctx}QUESTION: {fact.question(self.templates[fact.relation][template_idx])}\nANSWER:"

    def describe_prompt(self, entity: str) -> str:
        return f"{entity}\n"

    def all_texts(self) -> list[str]:
        raise TypeError("LKF runs use the pretrained model's own tokenizer; there is nothing to train a tokenizer on")


def load_lkf(root, n_train_paraphrases: int = 5, n_eval_paraphrases: int = 15, n_retain_eval_paraphrases: int = 6,
             n_mmlu: int | None = None, n_describe: int | None = None) -> LKFCorpus:
    """Load the LKF benchmark (paper §4.4, App. A.2-A.3) from ``root`` (the ``lkf`` manifest's folder).

    Expected files (one row per question; see :data:`LKF_FILES`):

    * ``forget_standard`` / ``retain_standard``: ``question, answer`` (100 / 400 rows);
    * ``forget_train_para`` / ``retain_train_para``: ``question, answer``, the Phi-4-mini training
      paraphrases, matched to their original by ``answer`` (in file order);
    * ``forget_eval_para``: ``question, answer`` plus the 15 evaluation paraphrase columns
      ``q_qwen1..5, q_phi1..5, q_mist1..5``; ``retain_eval_para``: the same with 3 per model,
      of which the first ``n_retain_eval_paraphrases`` are used (paper §4.3);
    * ``relearn``: ``question, answer`` (the disjoint relearning set, B.5);
    * ``mmlu``: ``question, choices`` (4 strings), ``answer`` (index) - the utility probe (paper §4.3);
    * ``alpaca_eval``: ``instruction, output`` - prompts for Rep and the WR proxy (paper §4.3, App. B.4).
    """
    from pathlib import Path

    root = Path(root)
    pcols = [f"q_{m}{i}" for i in range(1, 6) for m in ("qwen", "phi", "mist")]
    facts: dict[str, list[Fact]] = {}
    templates: dict[str, list[str]] = {}
    answer_pools: dict[str, list[str]] = {}
    n_tr = int(n_train_paraphrases)
    canonical, train = 0, list(range(1, 1 + n_tr))
    evl = list(range(1 + n_tr, 1 + n_tr + int(n_eval_paraphrases)))
    revl = evl[:int(n_retain_eval_paraphrases)]
    for split in ("forget", "retain"):
        std = _read_table(root, LKF_FILES[split], ["question", "answer"])
        tp = _read_table(root, LKF_FILES[f"{split}_train_para"], ["question", "answer"])
        ep = _read_table(root, LKF_FILES[f"{split}_eval_para"], ["answer"])
        if len(ep) != len(std):
            raise ValueError(f"{split}: {len(std)} standard questions but {len(ep)} evaluation-paraphrase rows; "
                             "they must be the same questions in the same order")
        by_answer: dict[str, list[str]] = {}
        for r in tp:
            by_answer.setdefault(str(r["answer"]).strip(), []).append(str(r["question"]))
        need = len(evl) if split == "forget" else len(revl)
        facts[split] = []
        for i, (s, e) in enumerate(zip(std, ep)):
            a = str(s["answer"]).strip()
            if str(e["answer"]).strip() != a:
                raise ValueError(f"{split} row {i}: answer {a!r} differs from the evaluation-paraphrase row's "
                                 f"{e['answer']!r}; the files must list the same questions in the same order")
            q = str(s["question"])
            tps = [p for p in by_answer.get(a, []) if p != q] or [q]
            # questions with fewer training paraphrases than asked reuse theirs cyclically
            tps = [tps[j % len(tps)] for j in range(n_tr)]
            cols = [c for c in pcols if c in e and isinstance(e[c], str) and e[c].strip()]
            if len(cols) < need:
                raise ValueError(f"{split} row {i} has {len(cols)} evaluation paraphrases ({cols}); "
                                 f"{need} are needed (lower n_eval_paraphrases / n_retain_eval_paraphrases)")
            eps = [e[c] for c in sorted(cols, key=pcols.index)][:need]
            eps += [eps[-1]] * (len(evl) - len(eps))      # retain rows: only the first len(revl) are read
            rel = f"{split}-{i}"
            templates[rel] = [_esc(x) for x in [q] + tps + eps]
            facts[split].append(Fact(entity="", relation=rel, answer=a, topic=split, split=split, match=_match_keys(a)))
    check_disjoint_paraphrases(train + [canonical], evl)
    rl = _read_table(root, LKF_FILES["relearn"], ["question", "answer"])
    facts["relearn"] = []
    for i, r in enumerate(rl):
        rel = f"relearn-{i}"
        templates[rel] = [_esc(r["question"])] * (1 + n_tr + len(evl))
        facts["relearn"].append(Fact("", rel, str(r["answer"]).strip(), "relearn", "relearn", _match_keys(str(r["answer"]))))
    mm = _read_table(root, LKF_FILES["mmlu"], ["question", "choices", "answer"])[:n_mmlu]
    facts["generic"] = []
    for i, r in enumerate(mm):
        ch = r["choices"] if isinstance(r["choices"], list) else __import__("json").loads(r["choices"])
        k = int(r["answer"])
        if len(ch) != 4 or not 0 <= k < len(ch):
            raise ValueError(f"mmlu row {i}: expected 4 choices and an answer index 0-3, got {len(ch)} choices "
                             f"and index {k} (the utility probe is 4-way, paper §4.3)")
        rel = f"mmlu-{i}"
        templates[rel] = [_esc(r["question"])] * (1 + n_tr + len(evl))
        answer_pools[rel] = [str(c) for c in ch]
        facts["generic"].append(Fact("", rel, str(ch[k]), "mmlu", "generic", _match_keys(str(ch[k]))))
    al = _read_table(root, LKF_FILES["alpaca_eval"], ["instruction", "output"])[:n_describe]
    descriptions = {str(r["instruction"]): str(r["output"]) for r in al}
    return LKFCorpus(seed=0, facts=facts, templates=templates, canonical=canonical, train_paraphrases=train,
                     eval_paraphrases=evl, retain_eval_paraphrases=revl, unknowable=[], descriptions=descriptions,
                     answer_pools=answer_pools, topics={s: [s] for s in facts})
