"""Evaluation of unlearned LMs (dissertation §8.5 §4, Appendix A-C, E.1).

* A **judge** decides whether an output contains the ground-truth answer. The paper uses
  Gemini-2.5-Flash with the Figure 19 prompt; the default judge here is normalised answer
  matching (:class:`MatchJudge`): lower-case, strip punctuation, and require every key token of
  the answer (for a person, the last name: "last names must match exactly, first names may be
  omitted", Figure 19) among the output's words. Synthetic answers are single words, the regime
  where the paper's judge rules reduce to containment. ``full`` takes :class:`OpenAIJudge`
  (any OpenAI-compatible endpoint) or :class:`HFJudge` (a local HF model), configured by the user.
* **Forget quality** (lower is better): single-query accuracy, J_P (worst case over paraphrases),
  J_ICR (worst case over in-context-retain prompts), J_W (worst case over both) - Eq. 7, L5090.
* **Retain** J_Avg: mean accuracy over retain questions and their paraphrases (L5100).
* **Utility**: a 4-way argmax multiple-choice probe on generic facts (the MMLU analogue, L5102),
  Rep (weighted 2/3-gram entropy × 100 of greedy generations, Meng et al. 2022, L5104), and a
  *win-rate proxy* (NOT the paper's LLM-judged WR, L5106): base vs unlearned generations compared
  by token-F1 against the reference description, ties counted 1/2.
"""
from __future__ import annotations

import json
import math
import random
import re
import urllib.request
from collections import Counter
from typing import Callable, Sequence

import numpy as np
import torch

from repro.models.lm import check_tokenizer

# --------------------------------------------------------------------------- generation
_WORD = re.compile(r"[^\w\s]")


def encode_left(tokenizer, prompts: Sequence[str], device=None) -> dict:
    """Left-padded batch (generation appends on the right)."""
    check_tokenizer(tokenizer)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    rows = [bos + tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    T = max(map(len, rows))
    ids = torch.full((len(rows), T), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, T - len(r):] = torch.tensor(r)
        mask[i, T - len(r):] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 6, batch_size: int = 512) -> list[str]:
    """Greedy continuations (the released code decodes greedily, notes §4.3), cut at eos."""
    device = next(model.parameters()).device
    model.eval()
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        b = encode_left(tokenizer, prompts[i:i + batch_size], device)
        g = model.generate(**b, max_new_tokens=max_new_tokens, do_sample=False,
                           pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for row in g[:, b["input_ids"].shape[1]:].tolist():
            if tokenizer.eos_token_id in row:
                row = row[:row.index(tokenizer.eos_token_id)]
            row = [t for t in row if t != tokenizer.pad_token_id]
            out.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return out


@torch.no_grad()
def generate_loop(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 6) -> list[str]:
    """One prompt at a time: the reference the batched :func:`generate` is benchmarked against."""
    return [generate(model, tokenizer, [p], max_new_tokens, batch_size=1)[0] for p in prompts]


# --------------------------------------------------------------------------- judges
_JUDGES: dict[str, type] = {}


def register_judge(name: str):
    def deco(cls):
        _JUDGES[name] = cls
        cls.name = name
        return cls
    return deco


def get_judge(name: str = "match", **kw):
    if name not in _JUDGES:
        raise ValueError(f"unknown judge {name!r}; registered: {', '.join(sorted(_JUDGES))}")
    return _JUDGES[name](**kw)


def normalize(text: str) -> list[str]:
    return _WORD.sub(" ", text.lower()).split()


@register_judge("match")
class MatchJudge:
    """Normalised answer matching: YES iff every key token of the answer occurs among the words of
    the output (all numbers present, last name exact; Figure 19 rules at single-word scale)."""

    def judge(self, questions: Sequence[str], answers: Sequence[Sequence[str]], outputs: Sequence[str]) -> np.ndarray:
        if not (len(questions) == len(answers) == len(outputs)):
            raise ValueError("questions, answers and outputs must have the same length")
        res = np.zeros(len(outputs), dtype=bool)
        for i, (keys, out) in enumerate(zip(answers, outputs)):
            words = set(normalize(out))
            keys = [k.lower() for k in (keys if not isinstance(keys, str) else [keys])]
            res[i] = bool(keys) and all(k in words for k in keys)
        return res


JUDGE_PROMPT = (
    "You are a strict but fair grader. Given a QUESTION, the GROUND TRUTH answer and a MODEL ANSWER, reply "
    "YES if the model answer contains all relevant elements of the ground truth (last names must match "
    "exactly, first names may be omitted; all numbers must be present; for lists all items), NO otherwise. "
    "Gibberish or token repetition is NO. If the answer contains both an assertion and its negation, YES. "
    "A paraphrase of the question without the answer is NO. Do not be overly strict. Reply with one word.\n"
    "QUESTION: {q}\nGROUND TRUTH: {a}\nMODEL ANSWER: {o}\nVERDICT:")  # condensed Figure 19


def _verdict(text: str) -> bool:
    t = text.strip().upper()
    if t.startswith("YES"):
        return True
    if t.startswith("NO"):
        return False
    raise ValueError(f"judge reply is neither YES nor NO: {text[:80]!r}")


@register_judge("openai")
class OpenAIJudge:
    """LLM judge through any OpenAI-compatible ``/chat/completions`` endpoint (temperature 0),
    with a condensed Figure 19 prompt. ``base_url``, ``model`` and ``api_key`` come from the user
    (``full`` profile); failed calls are counted in ``failures_`` and scored NO, as in the paper
    they are reported (1.1-1.2 %, L5351)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0):
        if not base_url or not model:
            raise ValueError("OpenAIJudge needs base_url (e.g. http://localhost:8000/v1) and model")
        self.base_url, self.model, self.api_key, self.timeout = base_url.rstrip("/"), model, api_key, timeout
        self.failures_ = 0

    def _ask(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "temperature": 0,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        req = urllib.request.Request(self.base_url + "/chat/completions", data=body,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            return json.loads(r.read())["choices"][0]["message"]["content"]

    def judge(self, questions, answers, outputs) -> np.ndarray:
        res = np.zeros(len(outputs), dtype=bool)
        for i, (q, a, o) in enumerate(zip(questions, answers, outputs)):
            a = a if isinstance(a, str) else " ".join(a)
            try:
                res[i] = _verdict(self._ask(JUDGE_PROMPT.format(q=q, a=a, o=o)))
            except Exception:   # network/parse failure: counted, scored NO
                self.failures_ += 1
        return res


@register_judge("hf")
class HFJudge:
    """A local Hugging Face causal LM as judge: YES iff P("YES") > P("NO") as the next token after
    the condensed Figure 19 prompt. ``model``/``tokenizer`` are user-provided (e.g. via load_lm)."""

    def __init__(self, model, tokenizer):
        self.model, self.tok = model, tokenizer
        self._yes = tokenizer(" YES", add_special_tokens=False)["input_ids"][-1]
        self._no = tokenizer(" NO", add_special_tokens=False)["input_ids"][-1]

    @torch.no_grad()
    def judge(self, questions, answers, outputs) -> np.ndarray:
        prompts = [JUDGE_PROMPT.format(q=q, a=a if isinstance(a, str) else " ".join(a), o=o)
                   for q, a, o in zip(questions, answers, outputs)]
        b = encode_left(self.tok, prompts, next(self.model.parameters()).device)
        logits = self.model(**b).logits[:, -1]
        return (logits[:, self._yes] > logits[:, self._no]).cpu().numpy()


# --------------------------------------------------------------------------- worst-case metrics
def worst_case_avg(indicators: np.ndarray) -> np.ndarray:
    """WorstCaseAvg^(k) = (1/N) Σ_i max_{j≤k} I_i^(j) for k = 1..m (Eq. 7); non-decreasing in k."""
    I = np.asarray(indicators, dtype=bool)
    if I.ndim != 2:
        raise ValueError(f"indicators must be [n_items, n_queries], got shape {I.shape}")
    return np.maximum.accumulate(I, axis=1).mean(0)


def forget_queries(corpus, facts, n_icr: int | None = None, seed: int = 0):
    """All query variants per forget fact: column 0 = the canonical (standard) question, then the
    held-out evaluation paraphrases (J_P), then ICR versions of the same questions (J_ICR), each
    with its own random draw of 3 retain QA pairs (L5090; code: a new draw per query)."""
    from repro.data.facts import check_disjoint_paraphrases

    check_disjoint_paraphrases(corpus.train_paraphrases + [corpus.canonical], corpus.eval_paraphrases)
    rng = random.Random(seed)
    para = [corpus.canonical] + list(corpus.eval_paraphrases)
    icr_t = para if n_icr is None else para[:n_icr]
    prompts = []
    for f in facts:
        row = [corpus.prompt(f, t) for t in para] + [corpus.icr_prompt(f, t, rng) for t in icr_t]
        prompts.append(row)
    return prompts, len(para), len(icr_t)


def evaluate_forget(model, tokenizer, corpus, facts, judge=None, n_icr: int | None = None, seed: int = 0,
                    max_new_tokens: int = 5) -> dict:
    """Single-query accuracy, J_P, J_ICR, J_W (in %) and the indicator matrix (items × queries)."""
    judge = judge or MatchJudge()
    prompts, n_p, n_icr_ = forget_queries(corpus, facts, n_icr, seed)
    flat = [p for row in prompts for p in row]
    outs = generate(model, tokenizer, flat, max_new_tokens)
    keys = [f.match for f in facts for _ in range(n_p + n_icr_)]
    I = judge.judge(flat, keys, outs).reshape(len(facts), n_p + n_icr_)
    return {"standard": 100 * float(I[:, 0].mean()), "J_P": 100 * float(I[:, :n_p].max(1).mean()),
            "J_ICR": 100 * I[:, n_p:].max(1).mean() if n_icr_ else float("nan"), "J_W": 100 * I.max(1).mean(),
            "indicators": I, "n_paraphrase_queries": n_p, "n_icr_queries": n_icr_,
            "samples": [(flat[i * (n_p + n_icr_)], outs[i * (n_p + n_icr_)]) for i in range(min(5, len(facts)))]}


def evaluate_retain(model, tokenizer, corpus, facts, judge=None, max_new_tokens: int = 5) -> float:
    """J_Avg (in %): mean judge accuracy over retain questions × (canonical + retain paraphrases)."""
    judge = judge or MatchJudge()
    temps = [corpus.canonical] + list(corpus.retain_eval_paraphrases)
    prompts = [corpus.prompt(f, t) for f in facts for t in temps]
    outs = generate(model, tokenizer, prompts, max_new_tokens)
    keys = [f.match for f in facts for _ in temps]
    return 100 * float(judge.judge(prompts, keys, outs).mean())


# --------------------------------------------------------------------------- utility
def mc_items(corpus, facts, n_options: int = 4, seed: int = 0) -> list[tuple[str, list[str], int]]:
    """4-way multiple-choice items: (prompt, options, index of the correct option)."""
    rng = random.Random(seed)
    items = []
    for f in facts:
        pool = [a for a in corpus.answer_pools[f.relation] if a != f.answer]
        opts = rng.sample(pool, n_options - 1) + [f.answer]
        rng.shuffle(opts)
        items.append((corpus.prompt(f), opts, opts.index(f.answer)))
    return items


@torch.no_grad()
def mc_accuracy(model, tokenizer, items, batch_size: int = 512) -> float:
    """Argmax over options of Σ log p(option tokens | prompt), in % (the MMLU analogue: argmax
    scoring, never generation, L5102; chance = 25 %)."""
    from repro.unlearning.data import encode_qa
    from repro.unlearning.losses import seq_logprob

    device = next(model.parameters()).device
    prompts = [p for p, opts, _ in items for _ in opts]
    answers = [o for _, opts, _ in items for o in opts]
    scores = []
    for i in range(0, len(prompts), batch_size):
        enc = encode_qa(tokenizer, prompts[i:i + batch_size], answers[i:i + batch_size], add_eos=False).to(device)
        lp, _ = seq_logprob(model(**enc.as_kwargs()).logits, enc.labels)
        scores.append(lp.float().cpu())
    s = torch.cat(scores).numpy()
    k = len(items[0][1])
    pred = s.reshape(len(items), k).argmax(1)
    return 100 * float(np.mean(pred == np.array([c for _, _, c in items])))


def ngram_entropy(text: str, ns: Sequence[int] = (2, 3), weights: Sequence[float] = (2 / 3, 4 / 3)) -> float:
    """Weighted n-gram entropy (bits) of one generation, Meng et al. 2022 (the Rep of L5104):
    mean over n of w_n · H(n-gram frequencies)."""
    words = text.split()
    hs = []
    for n, w in zip(ns, weights):
        grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
        tot = sum(grams.values())
        if tot == 0:
            hs.append(0.0)
            continue
        f = np.array(list(grams.values()), dtype=float) / tot
        hs.append(w * float(-(f * np.log2(f)).sum()))
    return float(np.mean(hs))


def rep_score(generations: Sequence[str]) -> float:
    """Rep = 100 × mean over generations of :func:`ngram_entropy` (higher = less repetitive)."""
    if not generations:
        raise ValueError("rep_score needs at least one generation")
    return 100.0 * float(np.mean([ngram_entropy(g) for g in generations]))


def token_f1(pred: str, ref: str) -> float:
    p, r = normalize(pred), normalize(ref)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(r)
    return 2 * prec * rec / (prec + rec)


def win_rate_proxy(base_outputs: Sequence[str], new_outputs: Sequence[str], references: Sequence[str],
                   resolution: float = 0.1) -> float:
    """WR *proxy*: (wins + ½ ties) / n, where each generation is scored by its token-F1 to the
    reference text, rounded to ``resolution`` (0.1 mimics the judge's 1-10 scale, so tiny wording
    changes tie instead of counting as losses), and the unlearned model wins a prompt when its
    score is higher than the base model's. The paper's WR (L5106-5110) is an LLM judge's scores on
    AlpacaEval; this proxy only keeps its form (base vs itself = 0.5 exactly)."""
    if not (len(base_outputs) == len(new_outputs) == len(references)) or not references:
        raise ValueError("base_outputs, new_outputs and references must be non-empty and of equal length")
    if resolution <= 0:
        raise ValueError(f"resolution must be > 0, got {resolution}")
    s = 0.0
    for b, n, r in zip(base_outputs, new_outputs, references):
        fb, fn = round(token_f1(b, r) / resolution), round(token_f1(n, r) / resolution)
        s += 1.0 if fn > fb else (0.5 if fn == fb else 0.0)
    return s / len(references)


@torch.no_grad()
def target_logprob(model, tokenizer, prompts: Sequence[str], target: str) -> np.ndarray:
    """log p(target | prompt) summed over the target's tokens, per prompt. JensUn's forget gradient
    vanishes as this goes to −∞ (the saturation of notes §1.6), so it predicts which items resist."""
    from repro.unlearning.data import encode_qa
    from repro.unlearning.losses import seq_logprob

    enc = encode_qa(tokenizer, list(prompts), [target] * len(prompts), add_eos=False).to(next(model.parameters()).device)
    lp, _ = seq_logprob(model(**enc.as_kwargs()).logits, enc.labels)
    return lp.float().cpu().numpy()


# --------------------------------------------------------------------------- ROUGE pitfalls
def _lcs_table(a: list[str], b: list[str]):
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            t[i][j] = t[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(t[i - 1][j], t[i][j - 1])
    return t


def _lcs_set(a: list[str], b: list[str]) -> set[int]:
    t = _lcs_table(a, b)
    i, j, out = len(a), len(b), set()
    while i > 0 and j > 0:
        if a[i - 1] == b[j - 1]:
            out.add(i - 1)
            i, j = i - 1, j - 1
        elif t[i - 1][j] >= t[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return out


def rouge_l(hypothesis: str, reference: str) -> dict:
    """Summary-level ROUGE-L (union LCS) as in the pypi ``rouge`` 1.0.1 package the paper used for
    Table 5 (L5459): sentences split on '.', words on whitespace, case-sensitive; returns r/p/f."""
    hs = [s.split() for s in hypothesis.split(".") if s.strip()]
    rs = [s.split() for s in reference.split(".") if s.strip()]
    m = sum(map(len, rs))
    n = sum(map(len, hs))
    hit = 0
    for r in rs:
        union: set[int] = set()
        for h in hs:
            union |= _lcs_set(r, h)
        hit += len(union)
    if m == 0 or n == 0:
        return {"r": 0.0, "p": 0.0, "f": 0.0}
    r, p = hit / m, hit / n
    beta = p / (r + 1e-12)
    f = (1 + beta ** 2) * r * p / (r + beta ** 2 * p + 1e-12)
    return {"r": r, "p": p, "f": f}


def guess_inflation(m: int, p: float = 0.5) -> float:
    """P(at least one of m independent guesses is right) = 1 − (1 − p)^m (the TOFU Yes/No pitfall)."""
    return 1.0 - (1.0 - p) ** m
