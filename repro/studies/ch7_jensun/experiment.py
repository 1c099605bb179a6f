"""Chapter 7 experiments as cached library calls (the notebook only calls these).

``build_world(cfg)`` generates the facts corpus, trains the tokenizer, pretrains the tiny LM (or
loads a saved/HF model in ``full``) and evaluates the base model. ``run_unlearning`` unlearns a
fresh copy of the base model with one registered loss and evaluates it (Table 1 row);
``run_relearning`` unlearns for 1x..10x the base length and then relearns on disjoint facts
(Table 3). Every run goes through :mod:`repro.core.cache` keyed on all arguments, the base
model's fingerprint, the profile sections the result depends on, the judge (its identity and
settings, never its API key), the device type and the model's dtype (:func:`eval_params`,
:func:`unlearn_params`), and returns a plain dict with all arguments and results.

:func:`run_plan` lists every unlearning/relearning run of the chapter; the notebook's steps
(:func:`table1`, :func:`worst_case_table`, ...) and the sweep (:mod:`repro.studies.ch7_jensun.jobs`)
both take their runs from it.

References without a prefix (Table 1, Figure 12, App. B.5, Eq. 7) are those of the paper
*Unlearning That Lasts* as reprinted in Sec. 8.5 of the dissertation; Chapter 7 condenses it.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from repro.core import cache
from repro.data.facts import FactsCorpus, REFUSAL, load_lkf, make_facts_corpus
from repro.data.pretraining import check_exposure, fact_exposures, pretraining_pass
from repro.models import lm as lmmod
from repro.unlearning import evaluation as E
from repro.unlearning import losses as L
from repro.unlearning.data import make_unlearn_sets
from repro.unlearning.trainer import frozen_copy, relearn, unlearn

VERSION = "3"   # 3: keys hold judge/device/dtype; answer_tokens in the dynamics evaluations


@dataclass
class World:
    cfg: dict
    corpus: FactsCorpus
    tokenizer: Any
    base: torch.nn.Module
    device: torch.device
    base_fp: str
    base_gen: list[str] = field(default_factory=list)     # base model's descriptive generations (WR proxy)
    base_metrics: dict = field(default_factory=dict)
    pretrain_loss: list[float] = field(default_factory=list)
    judge: Any = None
    judge_id: dict = field(default_factory=dict)
    exposures: dict | None = None     # exposures per pretraining pass of the law facts (None: uniform law)



# --------------------------------------------------------------------------- profile schema
def _params_of(fn, drop=("seed", "root")) -> set[str]:
    return {n for n in inspect.signature(fn).parameters if n not in drop}


SECTION_KEYS: dict[str, set[str] | None] = {
    "torch_threads": None, "dynamics_every": None, "model_alternatives": None, "table1_seeds": None,
    "corpus": _params_of(make_facts_corpus) | _params_of(load_lkf),
    "model": {"d_model", "n_layers", "n_heads", "d_ff", "max_len", "hf_id", "revision", "dtype",
              "gradient_checkpointing"},
    "pretrain": {"steps", "batch_size", "lr", "warmup", "templates_per_fact", "n_multi", "exposure"},
    "unlearn": {"steps", "batch_size", "warmup", "master_weights"},
    "relearn": {"steps", "batch_size", "lr", "separate_runs", "curve_steps", "master_weights"},
    "eval": {"n_icr", "n_describe", "describe_tokens", "answer_tokens"},
    "sweeps": {"lambda_r", "lr", "targets", "relearn_methods", "relearn_multiples"},
    "methods": None, "data": {"source", "manifest", "subdir", "n_mmlu"}, "judge": None,
}
REQUIRED = {"": ("corpus", "model", "unlearn", "relearn", "eval", "sweeps", "methods", "dynamics_every"),
            "eval": ("n_icr", "n_describe", "describe_tokens", "answer_tokens"),
            "unlearn": ("steps", "batch_size")}
METHOD_KEYS = {"lr", "loss", "kwargs"}


def validate_config(cfg: dict) -> dict:
    """Check a ch7 profile section against its allowed keys (a typo would otherwise fall back to a
    default silently, e.g. ``answer_tokens`` to 5 instead of the paper's 50, App. B.2); returns ``cfg``.
    Raises ``ValueError`` naming the section, the bad key(s) and the allowed ones."""
    where = "repro/profiles/ch7.yaml"
    bad = sorted(set(cfg) - set(SECTION_KEYS))
    if bad:
        raise ValueError(f"unknown key(s) {bad} in the ch7 profile ({where}); allowed: {sorted(SECTION_KEYS)}")
    for sec, need in REQUIRED.items():
        d = cfg if not sec else (cfg.get(sec) or {})
        miss = [k for k in need if k not in d]
        if miss:
            raise ValueError(f"the ch7 profile lacks {miss} in section {sec or 'top level'!r} ({where}); "
                             "state them explicitly (no silent defaults)")
    for sec, allowed in SECTION_KEYS.items():
        if allowed is None or not isinstance(cfg.get(sec), dict):
            continue
        bad = sorted(set(cfg[sec]) - allowed)
        if bad:
            raise ValueError(f"unknown key(s) {bad} in the ch7 {sec!r} section ({where}); allowed: {sorted(allowed)}")
    for m, hp in (cfg.get("methods") or {}).items():
        bad = sorted(set(hp or {}) - METHOD_KEYS)
        if bad:
            raise ValueError(f"unknown key(s) {bad} in ch7 methods.{m} ({where}); allowed: {sorted(METHOD_KEYS)}")
    if cfg.get("judge") is not None and "name" not in cfg["judge"]:
        raise ValueError(f"the ch7 'judge' section needs a 'name' (match, openai or hf) ({where})")
    check_exposure((cfg.get("pretrain") or {}).get("exposure"))
    return cfg


SECRET_KEYS = ("api_key", "token", "password", "secret")


def judge_identity(judge, jcfg: dict | None = None) -> dict:
    """Everything a judge's verdicts depend on: its class, its settings (profile section or public
    attributes) and the source of its class; for a local LLM judge built from an object, its
    weights' fingerprint. API keys and tokens are left out: they do not change a verdict and must
    not end up in a cache key."""
    ident: dict[str, Any] = {"class": f"{type(judge).__module__}.{type(judge).__qualname__}"}
    if jcfg:
        ident["settings"] = {k: v for k, v in jcfg.items() if not any(s in k.lower() for s in SECRET_KEYS)}
    else:
        ident["settings"] = {k: v for k, v in vars(judge).items()
                             if not k.startswith("_") and not k.endswith("_")
                             and not any(s in k.lower() for s in SECRET_KEYS)
                             and isinstance(v, (str, int, float, bool, type(None)))}
        if hasattr(judge, "model") and isinstance(judge.model, torch.nn.Module):
            ident["weights"] = cache.fingerprint(judge.model)
    try:
        ident["code"] = cache.fingerprint(inspect.getsource(type(judge)))
    except (OSError, TypeError):
        ident["code"] = None
    return ident


KEY_SECTIONS = ("eval", "corpus", "data", "model")


def _common_params(world: "World") -> dict:
    dt = next(world.base.parameters()).dtype
    return {"base": world.base_fp, "judge": world.judge_id, "device": torch.device(world.device).type,
            "dtype": str(dt), "profile": {k: world.cfg.get(k) for k in KEY_SECTIONS}}


def eval_params(world: "World", seed: int) -> dict:
    """The ``ch7_eval`` cache key's params: base model, judge, device, dtype, the profile sections
    that shape an evaluation and the seed (the evaluation code enters every key through the cache's
    code fingerprint)."""
    return {**_common_params(world), "seed": seed}


def unlearn_params(world: "World", args: dict) -> dict:
    """The ``ch7_unlearn`` cache key's params: :func:`eval_params`' inputs plus the run's arguments
    (method, loss arguments, steps, LR, batch, target, schedule, relearning, master dtype)."""
    return {**_common_params(world), "args": args}


def _corpus_kwargs(cfg: dict) -> dict:
    return dict(cfg.get("corpus", {}))


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run a block with ``n`` intra-op threads (``None``: leave as is). The tiny models of the
    smoke/cpu profiles gain nothing from intra-op parallelism, and on a shared 2-core machine two
    spinning OpenMP threads made a d=64 forward+backward 14x slower than one thread (measured)."""
    if not n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def load_corpus(cfg: dict, seed: int = 0) -> FactsCorpus:
    """The generated facts corpus, or (``data: {source: lkf, manifest: NAME}``, the ``full``
    profile) the real LKF data from its manifest; a missing asset raises
    :class:`repro.data.manifests.MissingAsset` naming the manifest and `repro data fetch NAME`."""
    data = dict(cfg.get("data") or {"source": "generated"})
    src = data.get("source", "generated")
    allowed = _params_of(make_facts_corpus) if src == "generated" else _params_of(load_lkf) - {"n_mmlu", "n_describe"}
    bad = sorted(set(_corpus_kwargs(cfg)) - allowed)
    if bad:
        raise ValueError(f"unknown key(s) {bad} in the ch7 'corpus' section for data source {src!r} "
                         f"(repro/profiles/ch7.yaml); allowed: {sorted(allowed)}")
    if src == "generated":
        return make_facts_corpus(seed=seed, **_corpus_kwargs(cfg))
    if src == "lkf":
        from repro.data import manifests

        root = manifests.require(data.get("manifest", "lkf"))
        sub = data.get("subdir")
        return load_lkf(Path(root) / sub if sub else root, **_corpus_kwargs(cfg),
                        n_mmlu=data.get("n_mmlu"), n_describe=cfg["eval"].get("n_describe"))
    raise ValueError(f"data.source must be 'generated' or 'lkf', got {src!r} (repro/profiles/ch7.yaml)")


def _model_fingerprint(mcfg: dict, model) -> str:
    # a Hub id with a pinned revision names the weights; hashing 6 GB of bf16 tensors would not add anything
    if mcfg.get("revision") and not Path(str(mcfg["hf_id"])).exists():
        return f"{mcfg['hf_id']}@{mcfg['revision']}"
    return cache.fingerprint(model)


def pretraining_exposures(corpus: FactsCorpus, pcfg: dict, seed: int = 0) -> dict | None:
    """Exposures per pretraining pass of the forget and retain facts under the profile's
    law (``pretrain.exposure``; :func:`repro.data.pretraining.fact_exposures`), or ``None`` for the
    uniform law (every fact ``templates_per_fact`` times per pass)."""
    law = check_exposure(pcfg.get("exposure"))
    if law["law"] == "uniform":
        return None
    return fact_exposures(corpus, law="zipf", s=law["s"], mean=law["mean"], seed=seed)


def pretraining_run_texts(corpus: FactsCorpus, pcfg: dict, exposures: dict | None, seed: int = 0,
                          epoch: int = 0) -> list[str]:
    """The texts of pretraining pass ``epoch`` (each pass is resampled; ``pretrain.steps`` decides
    how many passes there are): :func:`repro.data.pretraining.pretraining_pass` with the profile's
    ``templates_per_fact`` / ``n_multi`` and the exposure law's counts."""
    return pretraining_pass(corpus, random.Random(seed * 1000 + epoch),
                             n_template_samples=pcfg.get("templates_per_fact", 4),
                             n_multi=pcfg.get("n_multi", 200), exposures=exposures)


def make_judge(jcfg: dict, device="cpu"):
    """A judge from the profile: ``{name: match}``, ``{name: openai, base_url, model, api_key}`` or
    ``{name: hf, model: <Hub id or saved directory>}`` (the local LLM is loaded with :func:`load_lm`)."""
    jc = dict(jcfg)
    name = jc.pop("name", None)
    if name is None:
        raise ValueError("judge config needs a 'name': one of 'match', 'openai', 'hf'")
    if name == "hf":
        if "model" not in jc:
            raise ValueError("judge 'hf' needs 'model': a Hugging Face id or a save_pretrained directory")
        m, tok = lmmod.load_lm(jc["model"], device=device, dtype=jc.get("dtype"), revision=jc.get("revision"))
        return E.get_judge("hf", model=m, tokenizer=tok)
    return E.get_judge(name, **jc)


def build_world(cfg: dict, seed: int = 0, device: torch.device | str = "cpu", judge=None) -> World:
    """Corpus + tokenizer + pretrained tiny LM (cached) + base-model evaluation (cached).

    ``full``: ``cfg['model']['hf_id']`` (a Hub id or a local ``save_pretrained`` directory) is
    loaded with ``from_pretrained`` and the LKF data come from the manifest (:func:`load_corpus`);
    ``cfg['judge']`` (e.g. ``{name: openai, base_url: ..., model: ...}``) replaces answer matching."""
    validate_config(cfg)
    with torch_threads(cfg.get("torch_threads")):
        return _build_world(cfg, seed, device, judge)


def _build_world(cfg: dict, seed: int, device, judge) -> World:
    mcfg, pcfg = dict(cfg["model"]), dict(cfg.get("pretrain") or {})
    jcfg = None
    if judge is None and cfg.get("judge"):
        jcfg = cfg["judge"]
        judge = make_judge(jcfg, device)
    judge = judge or E.MatchJudge()
    if mcfg.get("hf_id"):   # full profile: a real instruct LLM by HF id (+ revision) on the LKF data
        corpus = load_corpus(cfg, seed)
        base, tok = lmmod.load_lm(mcfg["hf_id"], device=device, dtype=mcfg.get("dtype", "bf16"),
                                  revision=mcfg.get("revision"),
                                  gradient_checkpointing=mcfg.get("gradient_checkpointing", True))
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token   # what OpenUnlearning does for Llama-3
        losses: list[float] = []
        base_fp = _model_fingerprint(mcfg, base)
        exposures = None
    else:
        corpus = load_corpus(cfg, seed)
        exposures = pretraining_exposures(corpus, pcfg, seed)
        # the device type shapes the pretrained weights (kernels differ), so it is part of the key;
        # pcfg holds the exposure law (pretrain.exposure), so the law and its parameters are too
        params = {"corpus": _corpus_kwargs(cfg), "seed": seed, "model": mcfg, "pretrain": pcfg,
                  "device": torch.device(device).type}

        def train():
            torch.set_num_threads(max(1, torch.get_num_threads()))
            tok = lmmod.train_tokenizer(corpus.all_texts())
            model = lmmod.build_lm(len(tok), seed=seed, pad_token_id=tok.pad_token_id,
                                   eos_token_id=tok.eos_token_id, **mcfg)
            losses = lmmod.pretrain_lm(model, tok, lambda e: pretraining_run_texts(corpus, pcfg, exposures, seed, e),
                                       steps=pcfg["steps"], batch_size=pcfg["batch_size"],
                                       lr=pcfg["lr"], warmup=pcfg.get("warmup", 50), seed=seed, device=device)
            return {"files": lmmod.lm_to_bytes(model.cpu(), tok), "losses": losses}

        saved = cache.get_or_compute("ch7_pretrain_tiny_lm", params, train, version=VERSION)
        # reload through from_pretrained: the very path the full profile uses for Hub models
        base, tok = lmmod.lm_from_bytes(saved["files"], device=device)
        losses = saved["losses"]
        base_fp = cache.fingerprint(base)
    w = World(cfg=cfg, corpus=corpus, tokenizer=tok, base=base, device=torch.device(device),
              base_fp=base_fp, pretrain_loss=losses, judge=judge, judge_id=judge_identity(judge, jcfg),
              exposures=exposures)
    w.base_gen = describe(w, base)
    w.base_metrics = cache.get_or_compute("ch7_eval", eval_params(w, seed),
                                          lambda: evaluate_model(w, base), version=VERSION)
    return w


def describe(world: World, model) -> list[str]:
    ents = list(world.corpus.descriptions)[: world.cfg["eval"].get("n_describe", 50)]
    return E.generate(model, world.tokenizer, [world.corpus.describe_prompt(e) for e in ents],
                      max_new_tokens=world.cfg["eval"].get("describe_tokens", 24))


def is_refusal(output: str, refusal: str = REFUSAL) -> bool:
    """Whether a generated answer contains the refusal string (word sequence after
    :func:`repro.unlearning.evaluation.normalize`; "No idea", "no idea no idea" and "I have no idea" are refusals)."""
    r, o = E.normalize(refusal), E.normalize(output)
    return bool(r) and any(o[i:i + len(r)] == r for i in range(len(o) - len(r) + 1))


def refusal_stats(world: World, model, max_new_tokens: int, batch_size: int = 64) -> dict:
    """How often and how probably the model says the refusal (the JensUn target, Eq. 4) on the
    canonical forget and retain questions: ``refusal`` (% of greedy answers that are refusals),
    ``refusal_when_wrong`` (the same among the questions it answers wrongly: does it decline what it
    does not know or make something up?), ``p_refusal`` (mean p(refusal | question), teacher-forced) and
    ``logp_refusal_median`` (the median log p: where the JSD forget gradient of a typical item sits).
    No number in the paper; a base model that never refuses makes the JSD forget gradient vanish (App. E.4)."""
    c = world.corpus
    facts = list(c.facts["forget"]) + list(c.facts["retain"])
    if not facts:
        return {"refusal": float("nan"), "refusal_when_wrong": float("nan"), "p_refusal": float("nan"),
                "logp_refusal_median": float("nan")}
    prompts = [c.prompt(f) for f in facts]
    outs = E.generate(model, world.tokenizer, prompts, max_new_tokens)
    refused = np.array([is_refusal(o) for o in outs])
    wrong = ~np.asarray(world.judge.judge(prompts, [f.match for f in facts], outs), dtype=bool)
    with torch.no_grad():
        lp = np.concatenate([E.target_logprob(model, world.tokenizer, prompts[i:i + batch_size], REFUSAL)
                             for i in range(0, len(prompts), batch_size)])
    return {"refusal": 100 * float(refused.mean()),
            "refusal_when_wrong": 100 * float(refused[wrong].mean()) if wrong.any() else float("nan"),
            "p_refusal": float(np.exp(lp).mean()), "logp_refusal_median": float(np.median(lp))}


def evaluate_model(world: World, model) -> dict:
    """Forget (standard, J_P, J_ICR, J_W), retain J_Avg, MC utility, Rep, WR proxy (in the units of
    paper §4, in %); also the forget set's J_Avg (mean over its canonical question and evaluation
    paraphrases) and the refusal statistics of :func:`refusal_stats`."""
    ec, c = world.cfg["eval"], world.corpus
    t0 = time.perf_counter()
    # the paper generates up to 50 tokens (App. B.2; answer_tokens in full); the generated world's
    # answers are a word or two, so its profiles use 5
    nt = ec["answer_tokens"]
    fr = E.evaluate_forget(model, world.tokenizer, c, c.facts["forget"], world.judge, n_icr=ec.get("n_icr"), seed=0,
                           max_new_tokens=nt)
    ret = E.evaluate_retain(model, world.tokenizer, c, c.facts["retain"], world.judge, max_new_tokens=nt)
    mc = E.mc_accuracy(model, world.tokenizer, E.mc_items(c, c.facts["generic"], seed=0))
    gen = describe(world, model)
    refs = list(c.descriptions.values())[: len(gen)]
    wr = E.win_rate_proxy(world.base_gen, gen, refs) if world.base_gen else 0.5
    para = np.asarray(fr["indicators"])[:, :int(fr["n_paraphrase_queries"])]
    return {"standard": float(fr["standard"]), "J_P": float(fr["J_P"]), "J_ICR": float(fr["J_ICR"]), "J_W": float(fr["J_W"]),
            "J_Avg": ret, "MC": mc, "Rep": E.rep_score(gen), "WR_proxy": wr,
            # the retain metric's definition applied to the forget set: mean over the canonical question
            # and the evaluation paraphrases (no ICR), overall and per item
            "forget_J_Avg": 100 * float(para.mean()), "forget_item_avg": para.mean(1).tolist(),
            **refusal_stats(world, model, nt),
            "worst_case_curve": E.worst_case_avg(fr["indicators"]).tolist(),
            "n_paraphrase_queries": int(fr["n_paraphrase_queries"]),
            "forget_item_correct": fr["indicators"].max(1).tolist(),
            "forget_samples": fr["samples"], "describe_samples": gen[:3],
            "eval_seconds": time.perf_counter() - t0}


def forget_retain_pairs(world: World, split: str, paraphrases: bool = True) -> list[tuple[str, str]]:
    c = world.corpus
    temps = [c.canonical] + (list(c.train_paraphrases) if paraphrases else [])
    return [(c.prompt(f, t), f.answer) for f in c.facts[split] for t in temps]


def default_hparams(world: World, method: str) -> dict:
    m = dict(world.cfg["methods"].get(method, {}))
    if "loss" not in m:
        m["loss"] = method
    return m


def unlearn_args(world: World, method: str, steps: int | None = None, lr: float | None = None,
                 loss_kwargs: dict | None = None, target: str = REFUSAL, paraphrases: bool = True,
                 seed: int = 0, dynamics_every: int = 0, schedule: str = "cosine",
                 checkpoints: tuple[int, ...] = (), relearn_after: dict | None = None) -> dict:
    """The full arguments of one unlearning run (profile defaults filled in): part of its cache key."""
    hp = default_hparams(world, method)
    ucfg = world.cfg["unlearn"]
    lk = dict(hp.get("kwargs", {}))
    lk.update(loss_kwargs or {})
    # the full, defaulted loss arguments: a sweep point equal to the default hits the same cache entry
    lk = L.get(hp["loss"], **lk).params()
    args = {"method": method, "loss": hp["loss"], "loss_kwargs": lk, "steps": steps or ucfg["steps"],
            "lr": lr if lr is not None else hp["lr"], "batch_size": ucfg["batch_size"],
            "warmup": ucfg.get("warmup", 10), "target": target, "paraphrases": paraphrases, "seed": seed,
            "dynamics_every": dynamics_every, "schedule": schedule, "checkpoints": list(checkpoints)}
    if relearn_after is not None:   # only then: keeps the keys of plain runs unchanged
        args["relearn_after"] = {k: relearn_after[k] for k in ("steps", "lr", "batch_size")}
        if relearn_after.get("curve_steps"):
            args["relearn_after"]["curve_steps"] = sorted(int(x) for x in relearn_after["curve_steps"])
        args["relearn_after"].update(_trainer_precision_kwargs(world.cfg.get("relearn") or {}))
    prec = _trainer_precision_kwargs(ucfg)
    if prec:
        args["precision"] = prec

    return args


def run_unlearning(world: World, method: str, steps: int | None = None, lr: float | None = None,
                   loss_kwargs: dict | None = None, target: str = REFUSAL, paraphrases: bool = True,
                   seed: int = 0, dynamics_every: int = 0, schedule: str = "cosine",
                   checkpoints: tuple[int, ...] = (), relearn_after: dict | None = None) -> dict:
    """Unlearn a fresh copy of the base model with ``method`` (a key of ``cfg['methods']``) and
    evaluate it. Cached; returns args, metrics, per-step history and (for ``checkpoints``) state dicts.

    ``relearn_after`` (``{steps, lr, batch_size}``) then runs the benign relearning attack on the
    unlearned model inside the same cache entry and adds ``relearned: {metrics, loss}``, so no
    weights need to be cached (6 GB per run for a 3B model in ``full``). With ``curve_steps`` in
    ``relearn_after`` the forget accuracy is also measured after each of those relearning step
    counts (Figure 11 analogue, ``relearned["curve"]``): relearning uses a constant LR after warmup
    and draws batches from one seeded generator, so an s-step run is exactly the first s steps of
    a longer one.

    ``unlearn.master_weights`` / ``relearn.master_weights`` (``full``: true) choose fp32 master
    weights and optimizer state for a bf16 model (:func:`_trainer_precision_kwargs`)."""
    args = unlearn_args(world, method, steps=steps, lr=lr, loss_kwargs=loss_kwargs, target=target,
                        paraphrases=paraphrases, seed=seed, dynamics_every=dynamics_every, schedule=schedule,
                        checkpoints=checkpoints, relearn_after=relearn_after)
    hp, lk, prec = default_hparams(world, method), args["loss_kwargs"], args.get("precision", {})

    def compute():
        model = copy.deepcopy(world.base).to(world.device)
        sets = make_unlearn_sets(world.tokenizer, forget_retain_pairs(world, "forget", paraphrases),
                                 forget_retain_pairs(world, "retain", paraphrases), target=target)
        loss = L.get(hp["loss"], **lk)
        cb = None
        if dynamics_every:
            c = world.corpus

            nt = world.cfg["eval"]["answer_tokens"]     # the same generation length as every other evaluation

            def cb(step, m):
                fr = E.evaluate_forget(m, world.tokenizer, c, c.facts["forget"], world.judge, n_icr=0,
                                       max_new_tokens=nt)
                return {"forget_standard": fr["standard"], "forget_J_P": fr["J_P"],
                        "retain": E.evaluate_retain(m, world.tokenizer, c, c.facts["retain"], world.judge,
                                                    max_new_tokens=nt)}
        out = unlearn(model, loss, sets, steps=args["steps"], lr=args["lr"], batch_size=args["batch_size"],
                      warmup=args["warmup"], schedule=schedule, seed=seed, device=world.device,
                      callback=cb, callback_every=dynamics_every, checkpoints=checkpoints, **prec)
        metrics = evaluate_model(world, model)
        res = {"args": args, "metrics": metrics, "history": out["history"], "evals": out["evals"],
               "checkpoints": out["checkpoints"], "seconds": out["seconds"], "tokens": out["tokens"],
               "final_state": {k: v.cpu() for k, v in model.state_dict().items()} if checkpoints else None}
        if relearn_after is not None:
            ra = args["relearn_after"]
            qa = forget_retain_pairs(world, "relearn", True)
            curve = [{"relearn_step": 0, "J_W": metrics["J_W"], "standard": metrics["standard"]}]
            for s in [x for x in ra.get("curve_steps", []) if 0 < x < ra["steps"]]:
                m = copy.deepcopy(model)
                relearn(m, world.tokenizer, qa, steps=s, lr=ra["lr"], batch_size=ra["batch_size"], seed=seed,
                        device=world.device, **_trainer_precision_kwargs(ra))
                fr = E.evaluate_forget(m, world.tokenizer, world.corpus, world.corpus.facts["forget"], world.judge,
                                       n_icr=world.cfg["eval"].get("n_icr"), seed=0,
                                       max_new_tokens=world.cfg["eval"]["answer_tokens"])
                curve.append({"relearn_step": s, "J_W": float(fr["J_W"]), "standard": float(fr["standard"])})
                del m
            losses = relearn(model, world.tokenizer, qa, steps=ra["steps"], lr=ra["lr"], batch_size=ra["batch_size"],
                             seed=seed, device=world.device, **_trainer_precision_kwargs(ra))
            after = evaluate_model(world, model)
            curve.append({"relearn_step": ra["steps"], "J_W": after["J_W"], "standard": after["standard"]})
            res["relearned"] = {"metrics": after, "loss": losses, "curve": curve}
        return res

    with torch_threads(world.cfg.get("torch_threads")):
        return cache.get_or_compute("ch7_unlearn", unlearn_params(world, args), compute, version=VERSION)


def _trainer_precision_kwargs(section: dict) -> dict:
    """The trainer's ``master_weights`` option from a profile section (``unlearn`` or ``relearn``):
    ``auto`` (the trainer's default: fp32 master weights and optimizer state for a bf16/fp16 model),
    ``true`` or ``false``. At lr ~1e-5 most AdamW updates of bf16 weights are below half a bf16 ulp
    and vanish without fp32 masters (the authors' released code trains in mixed precision, which keeps them).
    Unset: ``{}`` (the trainer's default)."""
    if "master_weights" not in section:
        return {}
    v = section["master_weights"]
    if v not in ("auto", True, False):
        raise ValueError(f"master_weights must be auto, true or false in repro/profiles/ch7.yaml, got {v!r}")
    return {"master_weights": v}


def _relearn_args(ra: dict, rcfg: dict, multiple) -> dict:
    # the relearning curve (Figure 11) is measured on the base-length run only
    return {**ra, "curve_steps": list(rcfg["curve_steps"])} if rcfg.get("curve_steps") and multiple == 1 else ra


def run_relearning(world: World, method: str, multiples: tuple[int, ...] = (1, 2, 3, 5, 10),
                   relearn_steps: int | None = None, seed: int = 0) -> list[dict]:
    """Table 3 analogue: unlearn for k × the base length (k in ``multiples``), then relearn with
    cross-entropy on the disjoint relearning facts; J_W before and after.

    As in the paper (B.5), each length is its own run with its own warmup + cosine schedule
    (``relearn.separate_runs``, default). ``separate_runs: false`` is a cheaper shortcut: the k×
    models are checkpoints of one constant-LR run, which keeps the LR high for the long runs."""
    ucfg, rcfg = world.cfg["unlearn"], world.cfg["relearn"]
    base_steps = ucfg["steps"]
    steps_list = tuple(int(k * base_steps) for k in multiples)
    if rcfg.get("separate_runs", True):
        ra = {"steps": relearn_steps or rcfg["steps"], "lr": rcfg["lr"], "batch_size": rcfg["batch_size"]}
        rows = []
        for k, s in zip(multiples, steps_list):
            r = run_unlearning(world, method, steps=s, seed=seed, relearn_after=_relearn_args(ra, rcfg, k))
            b, a = r["metrics"], r["relearned"]["metrics"]
            rows.append({"method": method, "multiple": k, "unlearn_steps": s, "J_W_unlearn": b["J_W"],
                         "J_W_relearn": a["J_W"], "WR_proxy": b["WR_proxy"], "Rep": b["Rep"], "J_Avg": b["J_Avg"]})
        return rows
    states = run_unlearning(world, method, steps=max(steps_list), schedule="constant", checkpoints=steps_list,
                            seed=seed)["checkpoints"]
    rows = []
    for k, s in zip(multiples, steps_list):
        params = {**_common_params(world), "run": cache.fingerprint(states[s]), "relearn": rcfg,
                  "seed": seed, "steps": s, "relearn_steps": relearn_steps}

        def compute(s=s):
            model = copy.deepcopy(world.base)
            model.load_state_dict(states[s])
            model.to(world.device)
            before = evaluate_model(world, model)
            losses = relearn(model, world.tokenizer, forget_retain_pairs(world, "relearn", True),
                             steps=relearn_steps or rcfg["steps"], lr=rcfg["lr"], batch_size=rcfg["batch_size"],
                             seed=seed, device=world.device, **_trainer_precision_kwargs(rcfg))
            after = evaluate_model(world, model)
            return {"before": before, "after": after, "relearn_loss": losses}

        with torch_threads(world.cfg.get("torch_threads")):
            r = cache.get_or_compute("ch7_relearn", params, compute, version=VERSION)
        rows.append({"method": method, "multiple": k, "unlearn_steps": s,
                     "J_W_unlearn": r["before"]["J_W"], "J_W_relearn": r["after"]["J_W"],
                     "WR_proxy": r["before"]["WR_proxy"], "Rep": r["before"]["Rep"], "J_Avg": r["before"]["J_Avg"]})
    return rows


# --------------------------------------------------------------------------- the plan
METHOD_NAMES = {"ga": "GradAscent", "graddiff": "GradDiff", "dpo": "DPO", "npo": "NPO", "rmu": "RMU",
                "simnpo": "SimNPO", "jensun": "JensUn", "jensun_code_v2": "JensUn (code_v2, authors' released code)",
                "jensun_kl": "JensUn-KL (E.2)", "npo_sam": "NPO+SAM"}
METRICS = ["standard", "J_P", "J_ICR", "J_W", "J_Avg", "MC", "Rep", "WR_proxy"]
WORST_CASE_METHODS = ["graddiff", "npo", "rmu", "simnpo", "jensun"]


@dataclass(frozen=True)
class PlannedRun:
    """One run of the chapter: ``kind`` "unlearn" (:func:`run_unlearning` with ``options``) or
    "relearn" (:func:`run_relearning` over ``options['multiples']``); ``step`` names the table or
    figure it feeds."""
    step: str
    kind: str
    method: str
    options: dict

    @property
    def label(self) -> str:
        return f"ch7 {self.kind} {self.method}" + "".join(f" {k}={v}" for k, v in self.options.items())


STEPS = ("table1", "fig12", "table9", "table10", "fig16", "fig14", "table3")


def run_plan(cfg: dict) -> list[PlannedRun]:
    """Every run of the chapter, in notebook order (Table 1, Figure 12, Table 9, Table 10,
    Figure 16, Figure 14, Table 3 with its Figure 11 relearning curve). The notebook's steps and the
    sweep (:func:`repro.studies.ch7_jensun.jobs.build`) both take their runs from this list."""
    sw, methods = cfg["sweeps"], cfg["methods"]
    runs = [PlannedRun("table1", "unlearn", m, {}) for m in methods]
    runs += [PlannedRun("fig12", "unlearn", m, {"paraphrases": False}) for m in WORST_CASE_METHODS if m in methods]
    runs += [PlannedRun("table9", "unlearn", m, {"loss_kwargs": {"lambda_r": v}})
             for m, vals in sw["lambda_r"].items() for v in vals]
    runs += [PlannedRun("table10", "unlearn", m, {"lr": v}) for m, vals in lr_sweep_grid(cfg).items() for v in vals]
    runs += [PlannedRun("fig16", "unlearn", "jensun", {"dynamics_every": cfg["dynamics_every"]})]
    runs += [PlannedRun("fig14", "unlearn", "jensun", {"target": t}) for t in sw["targets"]]
    runs += [PlannedRun("table3", "relearn", m, {"multiples": list(sw["relearn_multiples"])})
             for m in sw["relearn_methods"]]
    return runs


def planned(cfg: dict, step: str) -> list[PlannedRun]:
    if step not in STEPS:
        raise ValueError(f"unknown ch7 step {step!r}; steps: {', '.join(STEPS)}")
    return [p for p in run_plan(cfg) if p.step == step]


def execute(world: World, p: PlannedRun, seed: int = 0):
    """Run one planned run (a cache hit when the sweep already ran it)."""
    if p.kind == "unlearn":
        return run_unlearning(world, p.method, seed=seed, **p.options)
    return run_relearning(world, p.method, multiples=tuple(p.options["multiples"]), seed=seed)


def lr_sweep_grid(cfg: dict) -> dict[str, list[float]]:
    """The LR grid per method; the D_KL variant is swept over JensUn's LRs (Table 16 vs Table 10)."""
    g = {m: list(v) for m, v in cfg["sweeps"]["lr"].items()}
    if "jensun_kl" in cfg["methods"]:
        g.setdefault("jensun_kl", list(g.get("jensun", [])))
    return g


# --------------------------------------------------------------------------- the notebook's tables
def world_summary(world: World) -> tuple[pd.DataFrame, str]:
    """Split sizes and a one-line description of the tokenizer, model and paraphrase sets."""
    c = world.corpus
    sizes = pd.DataFrame([{"split": k, "facts": len(v)} for k, v in c.facts.items()]
                         + [{"split": "unknowable ('No idea')", "facts": len(c.unknowable)}])
    line = (f"Vocabulary {len(world.tokenizer)} tokens; model {sum(p.numel() for p in world.base.parameters()):,} "
            f"parameters; {len(c.train_paraphrases)} training / {len(c.eval_paraphrases)} evaluation paraphrases per question.")
    return sizes, line


def real_data(world: World) -> bool:
    """True when the world is the real LKF benchmark (``full``), not the generated corpus."""
    from repro.data.facts import LKFCorpus

    return isinstance(world.corpus, LKFCorpus)


def base_row(world: World) -> dict:
    return {k: world.base_metrics[k] for k in METRICS}


#: base-model quantities shown next to METRICS (not Table 1 columns): the forget set's J_Avg and the refusals
BASE_EXTRA = ["forget_J_Avg", "refusal", "refusal_when_wrong", "p_refusal", "logp_refusal_median"]


def base_table(world: World) -> pd.DataFrame:
    """The base model's metrics as a one-row table (METRICS, then :data:`BASE_EXTRA` where measured)."""
    b = world.base_metrics
    return pd.DataFrame([{"model": "base", **base_row(world), **{k: b[k] for k in BASE_EXTRA if k in b}}])


def exposure_bins(counts) -> list[str]:
    """Bucket labels for exposure counts: 0 (never seen), 1, 2-3, 4-7, 8-15, ... (powers of two)."""
    out = []
    for k in counts:
        k = int(k)
        if k <= 1:
            out.append(str(k))
        else:
            lo = 1 << (k.bit_length() - 1)
            out.append(f"{lo}-{2 * lo - 1}")
    return out


def knowledge_by_exposure(world: World) -> pd.DataFrame:
    """The base model's forget-set knowledge by how often each fact was seen per pretraining pass
    (:func:`pretraining_exposures`): items, mean forget J_Avg and J_W per bucket. Empty for the
    uniform law or a loaded model (no exposure counts)."""
    cols = ["exposures per pass", "facts", "forget J_Avg", "J_W"]
    ex, b = world.exposures, world.base_metrics
    if not ex or "forget" not in ex or "forget_item_avg" not in b:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame({"k": ex["forget"], "avg": b["forget_item_avg"], "w": b["forget_item_correct"]})
    df["bin"] = exposure_bins(df["k"])
    g = df.groupby("bin", sort=False).agg(k=("k", "min"), n=("k", "size"), avg=("avg", "mean"), w=("w", "mean"))
    g = g.sort_values("k").reset_index()
    return pd.DataFrame({"exposures per pass": g["bin"], "facts": g["n"], "forget J_Avg": 100 * g["avg"],
                         "J_W": 100 * g["w"]})


def exposure_summary(world: World) -> dict:
    """Numbers that describe the pretraining exposure of the law facts (empty for the uniform law):
    the law, the number of law facts, the most-seen fact's count per pass and the median, the number
    of passes pretraining makes (a fact seen k times per pass is seen about k x passes times in all),
    the share of facts never seen (all and per split)."""
    ex = world.exposures
    pcfg = dict(world.cfg.get("pretrain") or {})
    pe = check_exposure(pcfg.get("exposure"))
    if not ex:
        return {}
    allc = [k for v in ex.values() for k in v]
    n = len(pretraining_run_texts(world.corpus, pcfg, ex, 0, 0))
    # repro.models.lm.pretrain_lm starts a new pass every len // batch_size steps
    passes = pcfg["steps"] / max(1, n // pcfg["batch_size"]) if pcfg.get("steps") and pcfg.get("batch_size") else float("nan")
    return {**pe, "facts": len(allc), "max": max(allc) if allc else 0,
            "median": float(np.median(allc)) if allc else float("nan"), "passes": passes,
            "never_seen": {sp: 100 * float(np.mean([k == 0 for k in v])) if v else float("nan") for sp, v in ex.items()},
            "never_seen_all": 100 * float(np.mean([k == 0 for k in allc])) if allc else float("nan")}


def table1(world: World, seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """Table 1 analogue: every configured method at its default setting. Returns the raw runs
    (by method key) and the table with the base model as the first row."""
    runs = {p.method: execute(world, p, seed) for p in planned(world.cfg, "table1")}
    t1 = pd.DataFrame([{"method": "Original", **base_row(world)}]
                      + [{"method": METHOD_NAMES.get(m, m), **{k: r["metrics"][k] for k in METRICS}}
                         for m, r in runs.items()])
    return runs, t1


def table1_by_seed(cfg: dict, seed: int = 0, device: torch.device | str = "cpu", judge=None) -> dict[int, dict]:
    """Table 1 on ``cfg["table1_seeds"]`` world seeds (``seed``, ``seed + 1``, ...; default 1): each seed draws
    its own corpus, Zipf exposure and pretraining (:func:`build_world`) and unlearns with that seed. Returns
    ``{seed: {"base": base_row, "base_metrics": ..., "rows": metrics_by_method, "table": Table 1 frame}}``;
    the chapter's verdicts on Table 1 combine the seeds (:func:`repro.studies.ch7_jensun.report.seed_verdicts`),
    because one small world's verdicts move with incidental details (measured: two tokenizer coverage lists gave
    different verdicts)."""
    n = int(cfg.get("table1_seeds", 1))
    if n < 1:
        raise ValueError(f"ch7 profile: table1_seeds must be >= 1 (a number of world seeds), got {n!r}")
    out = {}
    for s in range(seed, seed + n):
        w = build_world(cfg, seed=s, device=device, judge=judge)
        runs, t1 = table1(w, seed=s)
        out[s] = {"base": base_row(w), "base_metrics": dict(w.base_metrics), "rows": metrics_by_method(runs),
                  "table": t1}
    return out


def metrics_by_method(runs: dict) -> dict:
    """``{method key: metrics}`` of the Table 1 runs (the claims' input)."""
    return {m: r["metrics"] for m, r in runs.items()}


def side_by_side(t1: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Our Table 1 next to the printed one (paper columns suffixed ' (paper)')."""
    return t1[["method", "J_W", "J_Avg", "MC", "Rep", "WR_proxy"]].merge(
        paper.rename(columns={c: c + " (paper)" for c in paper.columns if c != "method"}), on="method", how="left")


def sample_outputs(runs: dict) -> pd.DataFrame:
    """What each unlearned model answers to the first forget question and how it describes a generic entity."""
    return pd.DataFrame([{"method": METHOD_NAMES.get(m, m), "forget answer": r["metrics"]["forget_samples"][0][1],
                          "description": r["metrics"]["describe_samples"][0][:90]} for m, r in runs.items()])


def saturation(world: World, run: dict, target: str = REFUSAL) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Base-model log p(target | canonical question) per forget item, whether the item is still
    answered after ``run`` (worst case), and the two group means (JSD saturation: an inference from
    the gradient analysis of App. E.4)."""
    c = world.corpus
    lp = E.target_logprob(world.base, world.tokenizer, [c.prompt(f) for f in c.facts["forget"]], target)
    still = np.array(run["metrics"]["forget_item_correct"], dtype=bool)
    df = pd.DataFrame([{"forget items": "still answered after JensUn", "n": int(still.sum()),
                        "mean base log p('No idea')": lp[still].mean() if still.any() else np.nan},
                       {"forget items": "forgotten", "n": int((~still).sum()),
                        "mean base log p('No idea')": lp[~still].mean() if (~still).any() else np.nan}])
    return lp, still, df


def ceiling_diagnostic(world: World) -> pd.DataFrame:
    """Which base-model metrics sit at their ceiling, so that a claim needing headroom cannot show.

    The paper's base model answers 46 % single-query / 76 % worst-case forget and 52.6 % retain
    (Table 1, Figure 13); a tiny model that memorised its corpus (the uniform exposure law) sits at
    100 %, one whose facts follow the Zipf law (``pretrain.exposure``) below it. At the ceiling (i) the
    base model's own single-query vs worst-case gap is 0 by construction, (ii) NLL-retain methods
    cannot rise above the base on retain, and (iii) the WR proxy, a base-vs-unlearned comparison,
    can only tie or lose on prompts where the base description is already perfect (token-F1 = 1)."""
    b = world.base_metrics
    c = world.corpus
    refs = list(c.descriptions.values())[: len(world.base_gen)]
    f1 = np.array([E.token_f1(g, r) for g, r in zip(world.base_gen, refs)]) if refs else np.array([np.nan])
    rows = [{"metric": k, "base": float(b[k]), "ceiling": 100.0, "at ceiling": bool(b[k] >= 99.5), "consequence if at ceiling": why}
            for k, why in [("standard", "single-query forget accuracy has no room below J_W for the base model"),
                           ("J_W", "the base model's worst-case gap (paper +31) is 0 by construction"),
                           ("J_Avg", "NLL-retain methods cannot rise above the base on retain (Table 1 claim untestable)"),
                           ("MC", "the MC probe cannot separate methods that keep every generic fact")]]
    perfect = float(np.mean(f1 >= 0.999)) * 100
    rows.append({"metric": "WR_proxy (share of prompts with a perfect base description)", "base": perfect,
                 "ceiling": 100.0, "at ceiling": bool(perfect >= 50),
                 "consequence if at ceiling": f"on {perfect:.0f} % of prompts an unlearned model can at best tie the base (WR-proxy ≤ "
                                f"{0.5 * perfect / 100 + (1 - perfect / 100):.2f})"})
    return pd.DataFrame(rows)


def worst_case_runs(world: World, seed: int = 0) -> dict:
    """Figure 12's runs (canonical questions only), by method key."""
    return {p.method: execute(world, p, seed) for p in planned(world.cfg, "fig12")}


def worst_case_table(world: World, seed: int = 0) -> pd.DataFrame:
    """Figure 12 analogue: unlearn on canonical questions only, evaluate single query vs J_P / J_ICR / J_W."""
    keys = ["standard", "J_P", "J_ICR", "J_W"]
    rows = [{"method": "base", **{k: world.base_metrics[k] for k in keys}}]
    rows += [{"method": m, **{k: r["metrics"][k] for k in keys}} for m, r in worst_case_runs(world, seed).items()]
    return pd.DataFrame(rows)


def paraphrase_curves(world: World, seed: int = 0) -> pd.DataFrame:
    """Figure 13 analogue: forget accuracy as the worst case over the first k query formats
    (k = 1: the canonical question, then the held-out evaluation paraphrases), for the base model
    and the Figure 12 runs; ``J_W`` (with the ICR prompts) in its own column."""
    models = {"base": world.base_metrics} | {m: r["metrics"] for m, r in worst_case_runs(world, seed).items()}
    rows = []
    for name, met in models.items():
        n_p = met.get("n_paraphrase_queries", len(world.corpus.eval_paraphrases) + 1)
        for k, v in enumerate(met["worst_case_curve"][:n_p], start=1):
            rows.append({"model": name, "query formats k": k, "accuracy": 100 * float(v), "J_W": met["J_W"]})
    return pd.DataFrame(rows)


def lambda_sweep(world: World, seed: int = 0) -> pd.DataFrame:
    """Table 9 / Figure 3: the retain weight λ_R swept per method (λ_F fixed)."""
    return pd.DataFrame([{"method": p.method, "lambda_r": p.options["loss_kwargs"]["lambda_r"],
                          **{k: execute(world, p, seed)["metrics"][k] for k in METRICS}}
                         for p in planned(world.cfg, "table9")])


def lr_sweep(world: World, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Table 10 / Table 16: the learning rate swept per method, with the mean forget and retain
    losses (the D_KL variant's 'forget loss magnitudes larger' claim). Also returns the runs."""
    rows, runs = [], {}
    for p in planned(world.cfg, "table10"):
        v = p.options["lr"]
        r = runs[(p.method, v)] = execute(world, p, seed)
        h = pd.DataFrame(r["history"])
        rows.append({"method": p.method, "lr": v, **{k: r["metrics"][k] for k in METRICS},
                     "mean forget loss": h["forget_loss"].mean(), "mean retain loss": h["retain_loss"].mean()})
    return pd.DataFrame(rows), runs


def dynamics(world: World, seed: int = 0) -> dict:
    """Figure 16: JensUn at its default setting, evaluated every ``cfg['dynamics_every']`` steps."""
    (p,) = planned(world.cfg, "fig16")
    return execute(world, p, seed)


def target_sweep(world: World, seed: int = 0) -> pd.DataFrame:
    """Figure 14: JensUn with each fixed target string of ``cfg['sweeps']['targets']``."""
    rows = []
    for p in planned(world.cfg, "fig14"):
        r = execute(world, p, seed)
        rows.append({"target": p.options["target"], **{k: r["metrics"][k] for k in METRICS},
                     "sample output": r["metrics"]["forget_samples"][0][1]})
    return pd.DataFrame(rows)


def baseline_table(runs: dict) -> pd.DataFrame:
    """Table 1 rows of the non-JensUn methods (the grey crosses of Figure 14)."""
    return pd.DataFrame([{"method": METHOD_NAMES.get(m, m), **{k: r["metrics"][k] for k in METRICS}}
                         for m, r in runs.items() if not m.startswith("jensun")])


def relearning_table(world: World, seed: int = 0) -> pd.DataFrame:
    """Table 3: every ``relearn_methods`` entry unlearned for each multiple, then relearned."""
    rows = []
    for p in planned(world.cfg, "table3"):
        rows += execute(world, p, seed)
    return pd.DataFrame(rows)


def relearning_curves(world: World, seed: int = 0) -> pd.DataFrame:
    """Figure 11 analogue: forget J_W over relearning steps for each relearning method, after
    unlearning for the base length (``relearn.curve_steps``; the same cached run as Table 3's 1×
    row). Empty when the profile sets no curve or uses the checkpoint shortcut."""
    rcfg = world.cfg["relearn"]
    if not rcfg.get("curve_steps") or not rcfg.get("separate_runs", True):
        return pd.DataFrame(columns=["method", "relearn_step", "J_W", "standard"])
    ra = _relearn_args({"steps": rcfg["steps"], "lr": rcfg["lr"], "batch_size": rcfg["batch_size"]}, rcfg, 1)
    rows = []
    for p in planned(world.cfg, "table3"):
        r = run_unlearning(world, p.method, steps=world.cfg["unlearn"]["steps"], seed=seed, relearn_after=ra)
        rows += [{"method": p.method, **pt} for pt in r["relearned"]["curve"]]
    return pd.DataFrame(rows)
