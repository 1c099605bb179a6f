"""Evaluation of unlearned LMs (dissertation Sec. 8.5 Sec. 4, Appendix A-C, E.1).

* A **judge** decides whether an output contains the ground-truth answer. The paper uses
  Gemini-2.5-Flash with the Figure 19 prompt; the default judge here is normalised answer
  matching (:class:`MatchJudge`): lower-case, strip punctuation, and require every key token of
  the answer (for a person, the last name: "last names must match exactly, first names may be
  omitted", Figure 19) among the output's words. Synthetic answers are single words, the regime
  where the paper's judge rules reduce to containment. ``full`` takes :class:`OpenAIJudge`
  (any OpenAI-compatible endpoint) or :class:`HFJudge` (a local HF model), configured by the user.
* **Forget quality** (lower is better): single-query accuracy, J_P (worst case over paraphrases),
  J_ICR (worst case over in-context-retain prompts), J_W (worst case over both) - Eq. 7, Sec. 8.5 (Sec. 4.2).
* **Retain** J_Avg: mean accuracy over retain questions and their paraphrases (Sec. 8.5 (Sec. 4.3)).
* **Utility**: a 4-way argmax multiple-choice probe on generic facts (the MMLU analogue, Sec. 8.5 (Sec. 4.3)),
  Rep (weighted 2/3-gram entropy × 100 of greedy generations, Meng et al. 2022, Sec. 8.5 (Sec. 4.3)), and a
  *win-rate proxy* (NOT the paper's LLM-judged WR, Sec. 8.5 (Sec. 4.3)): base vs unlearned generations compared
  by token-F1 against the reference description, ties counted 1/2.
"""
from __future__ import annotations

import json
import math
import random
import re
import unicodedata
import urllib.request
from collections import Counter
from typing import Callable, Sequence

import numpy as np
import torch

from repro.core.registry import Registry
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
    """Greedy continuations (the released code decodes greedily, the ch. 7 implementation notes), cut at eos."""
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
#: name -> judge class; ``JUDGES.get("openai", base_url=..., model=...)``
JUDGES = Registry("judge")


def register_judge(name: str):
    return JUDGES.register(name)


def get_judge(name: str = "match", **kw):
    return JUDGES.get(name, **kw)


_ACRONYM = re.compile(r"\b(?:[^\W\d_]\.){2,}")
_DIGIT_GROUPS = re.compile(r"\b\d{1,3}(?:[,\u202f\u00a0 ]\d{3})+\b")
_POSSESSIVE = re.compile(r"(\w)['\u2019]s\b")


def normalize(text: str) -> list[str]:
    """The tokens both sides of :class:`MatchJudge` are reduced to (the same function for both).

    In order: Unicode NFKD with accents dropped ("Gödel" -> "godel"); lower case; dotted acronyms
    joined ("U.S.A." -> "usa"); digit groups joined ("1,000" and "1 000" -> "1000"; only groups of
    exactly three digits after a 1-3 digit head, so "1655, 300" stays two numbers); possessive 's
    dropped ("Einstein's" -> "einstein"); other apostrophes removed ("O'Brien" -> "obrien"); every
    other non-word character is a separator ("Jean-Paul" -> "jean", "paul")."""
    t = unicodedata.normalize("NFKD", str(text))
    t = "".join(c for c in t if not unicodedata.combining(c)).lower()
    t = _ACRONYM.sub(lambda m: m.group(0).replace(".", "") + " ", t)
    t = _DIGIT_GROUPS.sub(lambda m: re.sub(r"\D", "", m.group(0)), t)
    t = _POSSESSIVE.sub(r"\1", t)
    t = re.sub(r"['\u2019]", "", t)
    return _WORD.sub(" ", t).split()


@register_judge("match")
class MatchJudge:
    """Normalised answer matching (the default judge; Figure 19's rules at the scale a string rule can
    honour). Both the answer keys and the output go through :func:`normalize`. Then:

    * every number of the answer must occur in the output ("all numbers must be present");
    * ``last_name_only=True`` (default): of the answer's words only the last must occur ("last names
      must match exactly, first names may be omitted"): "Albert Einstein" matches "Einstein." This is
      applied to every multi-word answer, since a string rule cannot tell a person from a place:
      "New York" also matches "York" (lenient). ``last_name_only=False`` requires every word;
    * no fuzzy matching: misspellings, synonyms, other languages and paraphrases are NO, negations
      are not detected ("not Einstein" is YES), a word inside another word is NO ("Einsteinium").

    ``answers`` holds, per item, a string (the answer text) or a tuple of key tokens."""

    def __init__(self, last_name_only: bool = True):
        self.last_name_only = bool(last_name_only)

    def identity(self) -> dict:
        """What a cached judged result depends on (for cache keys; no secrets)."""
        return {"name": "match", "last_name_only": self.last_name_only, "rules": "normalize-v2"}

    def _keys(self, keys) -> list[str]:
        return normalize(keys if isinstance(keys, str) else " ".join(map(str, keys)))

    def match(self, keys, output: str) -> bool:
        k = self._keys(keys)
        words = set(normalize(output))
        if not k:
            return False
        nums = [t for t in k if any(c.isdigit() for c in t)]
        alpha = [t for t in k if t not in nums]
        if not all(n in words for n in nums):
            return False
        if not alpha:
            return True
        return alpha[-1] in words if self.last_name_only else all(w in words for w in alpha)

    def judge(self, questions: Sequence[str], answers: Sequence[Sequence[str]], outputs: Sequence[str]) -> np.ndarray:
        if not (len(questions) == len(answers) == len(outputs)):
            raise ValueError("questions, answers and outputs must have the same length")
        return np.array([self.match(k, o) for k, o in zip(answers, outputs)], dtype=bool)


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


class JudgeFailureError(RuntimeError):
    """Too many judge calls failed: the judged numbers would be biased towards NO (= "forgotten")."""


class TransientJudgeError(Exception):
    """A judge call that may succeed when retried (timeouts, connection errors, HTTP 429 / 5xx)."""


#: the paper reports 1.1-1.2 % failed judge calls (Sec. 8.5, App. A.4); 2 % leaves headroom for
#: that rate while bounding the bias of J_W / J_Avg (a failure scores NO) to 2 points
MAX_FAILURE_RATE = 0.02


@register_judge("openai")
class OpenAIJudge:
    """LLM judge through any OpenAI-compatible ``/chat/completions`` endpoint (temperature 0),
    with a condensed Figure 19 prompt.

    * The API key is read from the environment variable named by ``api_key_env`` at call time;
      it is never an argument (so it cannot come from a profile file), never stored on the object,
      and never part of :meth:`identity` (cache keys, provenance) or ``repr``.
    * Transient errors (timeouts, connection errors, HTTP 429/5xx) are retried ``max_retries``
      times with exponential backoff (``backoff`` * 2^attempt seconds).
    * A call that still fails, or a reply that is neither YES nor NO, is counted in ``failures_``
      and scored NO, as the paper does; :attr:`failure_rate` = ``failures_ / calls_``. As soon as a
      ``judge`` batch exceeds ``max_failure_rate`` of its items (default :data:`MAX_FAILURE_RATE`),
      it stops with :class:`JudgeFailureError`: a wrong URL or key must not read as perfect forgetting.
    * ``client``: optional callable ``prompt -> reply text`` replacing the HTTP call (tests, other SDKs);
      it signals retryable errors by raising :class:`TransientJudgeError`.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 max_retries: int = 3, backoff: float = 1.0, max_failure_rate: float = MAX_FAILURE_RATE,
                 client: Callable[[str], str] | None = None):
        if not base_url or not model:
            raise ValueError("OpenAIJudge needs base_url (e.g. http://localhost:8000/v1) and model")
        if not isinstance(api_key_env, str) or not api_key_env:
            raise ValueError("api_key_env must name an environment variable holding the API key")
        if int(max_retries) < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        if not backoff >= 0:
            raise ValueError(f"backoff must be >= 0 seconds, got {backoff!r}")
        if not 0 <= max_failure_rate < 1:
            raise ValueError(f"max_failure_rate must lie in [0, 1), got {max_failure_rate!r}")
        self.base_url, self.model, self.api_key_env, self.timeout = base_url.rstrip("/"), model, api_key_env, timeout
        self.max_retries, self.backoff, self.max_failure_rate = int(max_retries), float(backoff), float(max_failure_rate)
        self.client = client
        self.failures_ = 0
        self.calls_ = 0
        self.last_error_: str | None = None

    def __repr__(self) -> str:
        return f"OpenAIJudge(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def identity(self) -> dict:
        return {"name": "openai", "base_url": self.base_url, "model": self.model, "prompt": JUDGE_PROMPT}

    @property
    def failure_rate(self) -> float:
        """Share of judge calls that failed (scored NO) so far; NaN before the first call."""
        return self.failures_ / self.calls_ if self.calls_ else float("nan")

    def stats(self) -> dict:
        """For every judged table: ``{"judge_calls", "judge_failures", "judge_failure_rate"}``."""
        return {"judge_calls": self.calls_, "judge_failures": self.failures_, "judge_failure_rate": self.failure_rate}

    def _http(self, prompt: str) -> str:
        import os
        import urllib.error

        body = json.dumps({"model": self.model, "temperature": 0,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        key = os.environ.get(self.api_key_env)
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        req = urllib.request.Request(self.base_url + "/chat/completions", data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())["choices"][0]["message"]["content"]
        except urllib.error.HTTPError as e:   # before URLError: HTTPError subclasses it
            if e.code == 429 or e.code >= 500:
                raise TransientJudgeError(f"HTTP {e.code}") from None
            raise RuntimeError(f"HTTP {e.code} from {self.base_url} (check the URL, the model name and "
                               f"${self.api_key_env})") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            raise TransientJudgeError(f"{type(e).__name__}: {e}") from None

    def _ask(self, prompt: str) -> str:
        import time

        ask = self.client or self._http
        for attempt in range(self.max_retries + 1):
            try:
                return ask(prompt)
            except TransientJudgeError:
                if attempt == self.max_retries:
                    raise
                time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def judge(self, questions, answers, outputs) -> np.ndarray:
        n = len(outputs)
        allowed = int(self.max_failure_rate * n)
        res = np.zeros(n, dtype=bool)
        failed = 0
        for i, (q, a, o) in enumerate(zip(questions, answers, outputs)):
            a = a if isinstance(a, str) else " ".join(a)
            self.calls_ += 1
            try:
                res[i] = _verdict(self._ask(JUDGE_PROMPT.format(q=q, a=a, o=o)))
            except Exception as e:   # network / HTTP / parse failure: counted, scored NO (as the paper)
                self.failures_ += 1
                failed += 1
                self.last_error_ = f"{type(e).__name__}: {e}"[:300]
                if failed > allowed:
                    raise JudgeFailureError(
                        f"{failed} of {i + 1} judge calls failed so far in a batch of {n} (limit "
                        f"{self.max_failure_rate:.0%} = {allowed}); last error: {self.last_error_}. Check base_url "
                        f"{self.base_url!r}, model {self.model!r} and the key in ${self.api_key_env}") from None
        return res


@register_judge("hf")
class HFJudge:
    """A local Hugging Face causal LM as judge: YES iff P("YES") > P("NO") as the next token after
    the condensed Figure 19 prompt. ``model``/``tokenizer`` are user-provided (e.g. via load_lm)."""

    def __init__(self, model, tokenizer):
        self.model, self.tok = model, tokenizer
        self._yes = tokenizer(" YES", add_special_tokens=False)["input_ids"][-1]
        self._no = tokenizer(" NO", add_special_tokens=False)["input_ids"][-1]

    def identity(self) -> dict:
        from repro.core.cache import fingerprint

        return {"name": "hf", "model": getattr(getattr(self.model, "config", None), "_name_or_path", None),
                "weights": fingerprint({k: v for k, v in self.model.state_dict().items()}), "prompt": JUDGE_PROMPT}

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
    with its own random draw of 3 retain QA pairs (Sec. 8.5 (Sec. 4.2); code: a new draw per query)."""
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
    scoring, never generation, Sec. 8.5 (Sec. 4.3); chance = 25 %)."""
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
    """Weighted n-gram entropy (bits) of one generation, Meng et al. 2022 (the Rep of Sec. 8.5 (Sec. 4.3)):
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
    score is higher than the base model's. The paper's WR (Sec. 8.5 (Sec. 4.3)) is an LLM judge's scores on
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
    vanishes as this goes to −∞ (the saturation of the ch. 7 implementation notes), so it predicts which items resist."""
    from repro.unlearning.data import encode_qa
    from repro.unlearning.losses import seq_logprob

    enc = encode_qa(tokenizer, list(prompts), [target] * len(prompts), add_eos=False).to(next(model.parameters()).device)
    lp, _ = seq_logprob(model(**enc.as_kwargs()).logits, enc.labels)
    return lp.float().cpu().numpy()


# --------------------------------------------------------------------------- ROUGE
# Two ROUGE-L implementations are in use in the unlearning literature and they disagree:
#  * the pypi ``rouge`` 1.0.1 package (RWKU's, and the one the dissertation's Table 5 was computed
#    with, Sec. 8.5, footnote of Table 5): sentences split on '.', words on single spaces,
#    case-sensitive, *distinct* words counted (sets), summary-level union LCS, F1;
#  * Google's ``rouge_score`` (TOFU / open-unlearning: ``RougeScorer(["rougeL"], use_stemmer=True)
#    .score(ground_truth, generation)["rougeL"].recall``): lower-cased alphanumeric tokens, Porter
#    stemming of tokens longer than 3 characters, plain LCS over the token sequences.
# E.g. "Paris" vs "The capital of France is Paris.": both give R = 1/6, F = 0.286; "Paris is the
# capital of France." vs the same reference: pypi rouge R = 0.5 (case-sensitive "The"), rouge_score
# R = 0.667.
def _recon_lcs_pypi(x: list[str], y: list[str]) -> set[str]:
    """The words of one LCS of x and y, with pypi rouge's backtracking tie-break (up unless left is longer)."""
    t = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            t[i][j] = t[i - 1][j - 1] + 1 if x[i - 1] == y[j - 1] else max(t[i - 1][j], t[i][j - 1])
    i, j, out = len(x), len(y), set()
    while i > 0 and j > 0:
        if x[i - 1] == y[j - 1]:
            out.add(x[i - 1])
            i, j = i - 1, j - 1
        elif t[i - 1][j] > t[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return out


def rouge_l(hypothesis: str, reference: str) -> dict:
    """Summary-level ROUGE-L of the pypi ``rouge`` 1.0.1 package (``Rouge().get_scores(hyp, ref)[0]
    ["rouge-l"]``), the implementation behind the dissertation's Table 5 and RWKU: returns r/p/f
    (f = 2PR / (P + R + 1e-8), as the package). Tested against the package on many sentence pairs.
    For the TOFU / open-unlearning ROUGE-L recall use :func:`rouge_l_tofu`. Empty input: zeros
    (the package raises)."""
    hs = [" ".join(s.split()) for s in hypothesis.split(".") if len(s) > 0]
    rs = [" ".join(s.split()) for s in reference.split(".") if len(s) > 0]
    if not hs or not rs:
        return {"r": 0.0, "p": 0.0, "f": 0.0}
    words = lambda sents: [w for s in sents for w in s.split(" ")]
    m, n = len(set(words(rs))), len(set(words(hs)))
    union: set[str] = set()
    hit = 0
    for r in rs:
        before = len(union)
        for h in hs:
            union |= _recon_lcs_pypi(r.split(" "), h.split(" "))
        hit += len(union) - before
    r_, p_ = hit / m, hit / n
    return {"r": r_, "p": p_, "f": 2.0 * ((p_ * r_) / (p_ + r_ + 1e-8))}


_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_VALID_TOKEN = re.compile(r"^[a-z0-9]+$")


def rouge_tokens(text: str, use_stemmer: bool = True) -> list[str]:
    """``rouge_score``'s default tokenizer: lower case, non-alphanumerics -> spaces, Porter stemming
    (nltk's ``PorterStemmer``, as ``rouge_score`` uses) of tokens longer than 3 characters."""
    toks = re.split(r"\s+", _NON_ALNUM.sub(" ", text.lower()))
    if use_stemmer:
        try:
            from nltk.stem import porter
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("rouge_l_tofu(use_stemmer=True) needs nltk's Porter stemmer (pip install nltk), "
                              "the stemmer rouge_score uses; or pass use_stemmer=False") from e
        stem = _porter(porter)
        toks = [stem(t) if len(t) > 3 else t for t in toks]
    return [t for t in toks if _VALID_TOKEN.match(t)]


_STEMMER = None


def _porter(porter):
    global _STEMMER
    if _STEMMER is None:
        _STEMMER = porter.PorterStemmer().stem
    return _STEMMER


def rouge_l_tofu(ground_truth: str, generation: str, use_stemmer: bool = True) -> dict:
    """ROUGE-L as TOFU / open-unlearning compute it (``rouge_score``'s ``RougeScorer(["rougeL"],
    use_stemmer=True).score(ground_truth, generation)["rougeL"]``): r = LCS / |ground truth tokens|
    (the "ROUGE-L recall" they report), p = LCS / |generation tokens|, f = F1."""
    t, g = rouge_tokens(ground_truth, use_stemmer), rouge_tokens(generation, use_stemmer)
    if not t or not g:
        return {"r": 0.0, "p": 0.0, "f": 0.0}
    prev = [0] * (len(g) + 1)
    for a in t:
        cur = [0] * (len(g) + 1)
        for j, b in enumerate(g, 1):
            cur[j] = prev[j - 1] + 1 if a == b else max(prev[j], cur[j - 1])
        prev = cur
    lcs = prev[-1]
    p, r = lcs / len(g), lcs / len(t)
    return {"r": r, "p": p, "f": 2 * p * r / (p + r) if p + r > 0 else 0.0}


def guess_inflation(m: int, p: float = 0.5) -> float:
    """P(at least one of m independent guesses is right) = 1 − (1 − p)^m (the TOFU Yes/No pitfall)."""
    return 1.0 - (1.0 - p) ** m
