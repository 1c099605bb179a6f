"""The chapter-6 experiment: SGD vs SAM-all vs SAM-ON (and sparse / block-restricted variants).

Everything here is a plain function over (data, config) that the notebook calls; each training run
goes through :func:`repro.core.cache.get_or_compute`, keyed by the data fingerprints, the model spec,
the training config and the SAM run spec, so a rerun does no work and a killed run resumes.

Protocol (the SAM-ON paper as reprinted in Sec. 8.4: its Sec. 4 "Training set-up" and App. A.1):
SGD with momentum 0.9, weight decay 5e-4, label smoothing 0.1, cosine LR, crop+flip augmentation;
each SAM variant's ρ is chosen from a small grid (Sec. 8.4, Table 7 analogue) separately for *all*,
*ON* and *no-norm*, then run with several seeds.
Deviation: ρ is chosen on a held-out validation split (the paper does not say which split it used),
by the mean over the seeds that ran at each ρ, never by one seed's best value.

:func:`plan_specs` is *the* run plan: :func:`run_plan` (the notebook) and
:mod:`repro.studies.ch6_samon.jobs` (the sweep) both build their runs from it.
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import pandas as pd
import torch
from torch import nn

from repro.core.cache import fingerprint, get_or_compute
from repro.core.parallel import STATE, parallel_map
from repro.models import preprocess
from repro.sam import selection as _sel
from repro.studies.ch6_samon.train import (  # noqa: F401  (re-exported: the study's API)
    CACHE_VERSION, MODES, SPARSE, RunSpec, _split_sparsity, load_model, run_result, run_weights, spec_dict,
    train_run)

__all__ = ["RunSpec", "train_run", "run_many", "select_rho", "accuracy_table", "gap_summary",
           "norm_affine_values", "feature_rank", "sharpness_table", "load_model", "block_prefixes", "check_config",
           "plan_specs", "spec_dict", "run_plan", "make_data", "step_cost_table", "sharpness_models",
           "sharpness_study", "affine_study", "rank_study", "MODES", "make_data_cifar", "norm_counts", "headline_rho",
           "run_result", "run_weights", "plan_model"]


def block_prefixes(model_name: str, blocks: str) -> str:
    """Map the paper's "B3" / "B2+B3" to module prefixes of our 3-stage WRNs (final BN counted in B3)."""
    stages = {"B1": ["layer1"], "B2": ["layer2"], "B3": ["layer3", "norm"]}
    if not model_name.startswith("wrn"):
        raise ValueError(f"block names B1..B3 are defined for the 3-stage WRNs, not {model_name!r}; "
                         "pass params='blocks:<prefix>+<prefix>' instead")
    out = []
    for b in blocks.split("+"):
        if b not in stages:
            raise ValueError(f"unknown block {b!r}; use B1, B2, B3 joined by '+'")
        out += stages[b]
    return "blocks:" + "+".join(out)


def _train_job(spec: RunSpec) -> dict:
    w = STATE
    return run_result(w["data"], w["model_name"], w["num_classes"], w["train_cfg"], spec, device=w["device"])


def run_many(data, model_name, num_classes, train_cfg, specs: Iterable[RunSpec], device=None,
             progress: bool = True, jobs: int = 1) -> tuple[pd.DataFrame, dict]:
    """Train (or load) every spec; returns a tidy frame (one row per run) and ``{spec: result}`` (the results of
    :func:`~repro.studies.ch6_samon.train.run_result`, without weights). ``jobs``: worker
    processes of one torch thread each (:func:`repro.core.parallel.parallel_map`; the profile's ``jobs``)."""
    specs = list(specs)
    state = dict(data=data, model_name=model_name, num_classes=num_classes, train_cfg=train_cfg, device=device)
    out = parallel_map(_train_job, specs, state, jobs=jobs, desc="ch6 runs", progress=progress)
    rows, results = [], {}
    for s, r in zip(specs, out):
        results[s] = r
        rows.append(dict(method=s.method, variant=s.variant if s.method == "sam" else "SGD", mode=s.mode,
                         params=s.params if s.method == "sam" else "", rho=s.rho, seed=s.seed,
                         label=s.label, train_acc=100 * r["train_acc"], val_acc=100 * r["val_acc"],
                         test_acc=100 * r["test_acc"],
                         train_time=r["train_time"], sec_per_step=r["sec_per_step"]))
    return pd.DataFrame(rows), results


def select_rho(grid: pd.DataFrame) -> dict:
    """Best ρ per (variant, mode) by the validation accuracy averaged over the seeds run at each ρ
    (Table 7 analogue): one seed's best ρ would pick the luckiest run, not the best radius."""
    g = grid[grid.method == "sam"].groupby(["variant", "mode", "rho"]).val_acc.mean().reset_index()
    bad = g.groupby(["variant", "mode"]).val_acc.apply(lambda v: v.isna().all())
    if bad.any():
        raise ValueError(f"select_rho: no finite validation accuracy for {list(bad[bad].index)}; a run diverged "
                         "or its evaluation failed, so no ρ can be chosen")
    best = g.loc[g.groupby(["variant", "mode"]).val_acc.idxmax()]
    return {(r.variant, r["mode"]): float(r.rho) for _, r in best.iterrows()}


def _ms(s: pd.Series) -> str:
    # sample std (ddof=1), as the ± of the paper's tables over its 3 seeds
    return f"{s.mean():.2f} ± {s.std(ddof=1):.2f}" if len(s) > 1 else (f"{s.mean():.2f}" if len(s) else "–")


def accuracy_table(runs: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Table 1 / Fig. 6.1 analogue: mean ± std (ddof=1) test accuracy per variant for all / ON / no-norm,
    ON − all gap."""
    rows = []
    sgd = runs[runs.method == "sgd"].test_acc
    rows.append(dict(variant="SGD", all=_ms(sgd), ON="–", no_norm="–", gap=float("nan"), rho_all=float("nan"),
                     rho_ON=float("nan"), mean_all=sgd.mean(), mean_ON=float("nan")))
    for v in variants:
        a = runs[(runs.variant == v) & (runs["mode"] == "all")]
        o = runs[(runs.variant == v) & (runs["mode"] == "ON")]
        nn_ = runs[(runs.variant == v) & (runs["mode"] == "no-norm")]
        rows.append(dict(variant=v, all=_ms(a.test_acc), ON=_ms(o.test_acc), no_norm=_ms(nn_.test_acc),
                         gap=o.test_acc.mean() - a.test_acc.mean(),
                         rho_all=a.rho.iloc[0] if len(a) else float("nan"),
                         rho_ON=o.rho.iloc[0] if len(o) else float("nan"),
                         mean_all=a.test_acc.mean(), mean_ON=o.test_acc.mean()))
    return pd.DataFrame(rows)


def gap_summary(table: pd.DataFrame) -> dict:
    """Win count and mean ON − all gap over the variants (the paper's 16/18, +0.76 for Table 1)."""
    t = table[table.variant != "SGD"]
    sgd = float(table[table.variant == "SGD"].mean_all.iloc[0])
    return dict(n=len(t), wins=int((t.gap > 0).sum()), mean_gap=float(t.gap.mean()),
                on_beats_sgd=int((t.mean_ON > sgd).sum()), all_beats_sgd=int((t.mean_all > sgd).sum()),
                best_on=float(t.mean_ON.max()), best_all=float(t.mean_all.max()), sgd=sgd)


def norm_affine_values(model: nn.Module) -> dict:
    """All γ and all β of the model's normalization layers (Fig. 5 / Fig. 9 analogue)."""
    gam, bet = [], []
    for m in model.modules():
        if isinstance(m, _sel.NORM_TYPES) and getattr(m, "weight", None) is not None:
            gam.append(m.weight.detach().flatten().cpu())
            if m.bias is not None:
                bet.append(m.bias.detach().flatten().cpu())
    return dict(gamma=torch.cat(gam).numpy(), beta=torch.cat(bet).numpy())


@torch.no_grad()
def feature_rank(model: nn.Module, x: torch.Tensor, module: str, energy: float = 0.99, batch_size: int = 256) -> int:
    """Feature rank after Andriushchenko et al. (2023a), as cited for Table 6 of Sec. 8.4 (Table 6.2's last row).

    Features of ``module`` are flattened (spatial dims included), each example's mean subtracted,
    and the rank is the number of singular values needed for ``energy`` of Σσ².
    """
    mod = dict(model.named_modules()).get(module)
    if mod is None:
        raise ValueError(f"no module {module!r} in {type(model).__name__}")
    feats = []
    h = mod.register_forward_hook(lambda m, i, o: feats.append(o.detach().flatten(1).cpu()))
    try:
        model.eval()
        for i in range(0, len(x), batch_size):
            model(preprocess(x[i:i + batch_size]).to(next(model.parameters()).device))
    finally:
        h.remove()
    f = torch.cat(feats).double()
    f = f - f.mean(1, keepdim=True)
    s2 = torch.linalg.svdvals(f) ** 2
    c = torch.cumsum(s2, 0) / s2.sum()
    return int((c < energy).sum()) + 1


def sharpness_table(models: dict, x: torch.Tensor, y: torch.Tensor, rhos: list[float], *, m: int = 128,
                    steps: int = 20, definition: str = "adaptive_worst_linf_ln", device=None) -> pd.DataFrame:
    """Worst-case adaptive ℓ∞ logit-normalized m-sharpness (Table 6 / 6.2) via :mod:`repro.sharpness`.

    ``models``: ``{(name, seed): (nn.Module, state fingerprint)}``; each value is cached.
    """
    from repro import sharpness

    rows = []
    for (name, seed), (model, fp) in models.items():
        for rho in rhos:
            params = dict(model=fp, x=fingerprint(x), y=fingerprint(y), rho=rho, m=m, steps=steps, d=definition)
            val = get_or_compute("ch6_sharpness", params, lambda: sharpness.measure(
                model, (x, y), definition, rho, m=m, steps=steps, seed=0, device=device), version=CACHE_VERSION)
            rows.append(dict(method=name, seed=seed, rho=rho, sharpness=float(val)))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the chapter's plan
def make_data(world_cfg: dict) -> dict:
    """Train/val/test splits of the generated world (ID classes only) as uint8 tensors."""
    from repro.data.world import make_world

    w = make_world(n_ood_classes=1, n_near_per_class=0, n_far_per_class=0, n_popular=0, **world_cfg)
    return dict(x_train=w.id_train.x, y_train=w.id_train.y, x_val=w.id_val.x, y_val=w.id_val.y,
                x_test=w.id_test.x, y_test=w.id_test.y, num_classes=w.num_classes)


#: allowed keys of a ch6 profile section (a misspelled ``blocks`` or ``sparse`` would otherwise make
#: runs and their claim rows vanish without a word)
CONFIG_KEYS = {
    "world": None, "dataset": None, "val_size": None, "model": None, "train": None, "seeds": None,
    "variants": None, "rho_grid": None, "blocks": None, "sparse": None, "sparse_levels": None, "no_norm": None,
    "fix_norm": None, "imagenet": None, "jobs": None,
    "sharpness": {"definition", "rhos", "n_points", "m", "steps"},
    "feature_rank": {"module", "n_points"},
    "bench": {"batch_size", "resolution", "repeats", "warmup"},
}
REQUIRED_KEYS = ("model", "train", "seeds", "variants", "rho_grid")


def check_config(cfg: dict) -> dict:
    """Validate one ch6 profile section; raises ``ValueError`` naming the bad key and the allowed ones."""
    def bad(where, k, allowed):
        raise ValueError(f"ch6 profile: unknown key {k!r} in {where}; allowed: {', '.join(sorted(allowed))} "
                         "(fix repro/profiles/ch6.yaml)")

    for k, v in cfg.items():
        if k not in CONFIG_KEYS:
            bad("the chapter section", k, CONFIG_KEYS)
        sub = CONFIG_KEYS[k]
        if sub is not None and isinstance(v, dict):
            for kk in v:
                if kk not in sub:
                    bad(f"'{k}'", kk, sub)
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"ch6 profile: missing key(s) {missing}; each profile needs {list(REQUIRED_KEYS)}")
    if "world" not in cfg and "dataset" not in cfg:
        raise ValueError("ch6 profile: give 'world' (generated data) or 'dataset' (CIFAR from its manifest)")
    for v in cfg["variants"]:
        if v not in cfg["rho_grid"]:
            raise ValueError(f"ch6 profile: variant {v!r} has no rho_grid entry (rho_grid has {sorted(cfg['rho_grid'])})")
        for p in cfg["rho_grid"][v]:
            if p not in MODES:
                bad(f"rho_grid[{v!r}]", p, MODES)
        for p in ("all", "only_norm"):
            if p not in cfg["rho_grid"][v]:
                raise ValueError(f"ch6 profile: rho_grid[{v!r}] lacks {p!r} (every variant runs all and only_norm)")
    for v in cfg.get("no_norm", []) or []:
        if v not in cfg["variants"] or "no_norm" not in cfg["rho_grid"].get(v, {}):
            raise ValueError(f"ch6 profile: no_norm lists {v!r}, which needs to be a variant with a "
                             "rho_grid[...]['no_norm'] entry")
    for sp in cfg.get("sparse", []) or []:
        if sp not in SPARSE:
            raise ValueError(f"ch6 profile: unknown sparse mask {sp!r}; allowed: {', '.join(SPARSE)}")
    levels = cfg.get("sparse_levels") or {}
    if not isinstance(levels, dict):
        raise ValueError("ch6 profile: sparse_levels maps a mask to its extra sparsities, e.g. {ssam_f: [0.5]}")
    for sp, lvs in levels.items():
        if sp not in SPARSE:
            raise ValueError(f"ch6 profile: unknown sparse mask {sp!r} in sparse_levels; allowed: {', '.join(SPARSE)}")
        for lv in lvs:
            if not 0.0 <= float(lv) < 1.0:
                raise ValueError(f"ch6 profile: sparse_levels must lie in [0, 1) (share of entries NOT perturbed), "
                                 f"got {lv!r}")
    for b in cfg.get("blocks", []) or []:
        block_prefixes(cfg["model"], b) if str(cfg["model"]).startswith("wrn") else None
    if not isinstance(cfg.get("fix_norm", False), bool):
        raise ValueError(f"ch6 profile: fix_norm must be true or false, got {cfg['fix_norm']!r}")
    return cfg


def _modes_of(cfg: dict, variant: str) -> list[str]:
    return ["all", "only_norm"] + (["no_norm"] if variant in (cfg.get("no_norm") or []) else [])


def plan_specs(cfg: dict, best: Optional[dict] = None) -> dict:
    """The chapter's run plan as :class:`RunSpec` lists, shared by the notebook and the sweep.

    Without ``best``: ``grid`` (every variant and parameter selection over its ρ grid on every seed, so
    that ρ is chosen on the seed mean -- Sec. 8.4 reports means over 3 seeds, and one seed's argmax would
    pick the luckiest run) and ``sgd`` (SGD on every seed, plus fix-norm SGD when ``fix_norm``). With ``best`` (from
    :func:`select_rho` on the grid) also ``main`` (every variant and selection at its selected ρ on
    every seed: Table 1 and Fig. 6.1) and ``extra`` (block-restricted SAM-ON "B3", "B2+B3" for Fig. 3;
    the sparse masks at SAM-ON's sparsity and at the extra sparsities of ``sparse_levels`` (mask ->
    list) for Table 5/12; fix-norm
    SAM-all for Fig. 10; plain SAM at SAM-ON's ρ, or SAM-all's for fix-norm).
    """
    check_config(cfg)
    model_name, seeds = cfg["model"], list(cfg["seeds"])
    out = {"grid": [RunSpec("sam", v, p, float(r), s, runtime_mode=(p == "only_norm"))
                    for v in cfg["variants"] for p in _modes_of(cfg, v) for r in cfg["rho_grid"][v][p] for s in seeds],
           "sgd": [RunSpec("sgd", seed=s) for s in seeds]}
    if cfg.get("fix_norm"):
        out["sgd"] += [RunSpec("sgd", seed=s, label="fix-norm", fix_norm=True) for s in seeds]
    if best is None:
        return out
    # the grid's runs at the selected ρ (the same cache entries; listed again to keep Table 1's frame)
    out["main"] = [RunSpec("sam", v, p, best[(v, MODES[p])], s, runtime_mode=(p == "only_norm"))
                   for v in cfg["variants"] for p in _modes_of(cfg, v) for s in seeds]
    rho_on = best.get(("sam", "ON"), float(cfg["rho_grid"]["sam"]["only_norm"][0]) if "sam" in cfg["rho_grid"] else None)
    extra = [RunSpec("sam", "sam", block_prefixes(model_name, b), rho_on, s, runtime_mode=True, label=b)
             for b in cfg.get("blocks", []) or [] for s in seeds]
    extra += [RunSpec("sam", "sam", sp, rho_on, s, label=sp) for sp in cfg.get("sparse", []) or [] for s in seeds]
    extra += [RunSpec("sam", "sam", f"{sp}@{float(lv):g}", rho_on, s, label=f"{sp}@{float(lv):g}")
              for sp, lvs in (cfg.get("sparse_levels") or {}).items() for lv in lvs for s in seeds]
    if cfg.get("fix_norm"):
        rho_all = best.get(("sam", "all"), float(cfg["rho_grid"]["sam"]["all"][0]) if "sam" in cfg["rho_grid"] else None)
        extra += [RunSpec("sam", "sam", "all", rho_all, s, label="fix-norm", fix_norm=True) for s in seeds]
    if extra and rho_on is None:
        raise ValueError("ch6 profile: blocks / sparse / fix_norm runs use plain SAM's selected ρ; add 'sam' to variants")
    out["main_rho_on"] = rho_on
    out["extra"] = extra
    return out


def run_plan(cfg: dict, data: dict, device=None, progress: bool = True) -> dict:
    """The whole chapter-6 experiment for one profile config (see ``repro/profiles/ch6.yaml``), in the
    stages of :func:`plan_specs`: the ρ grid (Table 7 analogue), then SGD and every variant at its
    selected ρ on all seeds (Table 1, Fig. 6.1), then the block-restricted, sparse and fix-norm runs.
    SAM-ON runs use the runtime mode (same update, cheaper ascent pass).
    """
    d = {k: v for k, v in data.items() if k != "num_classes"}
    C, model_name, tcfg = data["num_classes"], cfg["model"], cfg["train"]
    jobs = int(cfg.get("jobs", 1))
    first = plan_specs(cfg)
    grid, res = run_many(d, model_name, C, tcfg, first["grid"], device, progress, jobs)
    best = select_rho(grid)
    later = plan_specs(cfg, best)
    main, r2 = run_many(d, model_name, C, tcfg, first["sgd"] + later["main"], device, progress, jobs)
    res.update(r2)
    extra, r3 = run_many(d, model_name, C, tcfg, later["extra"], device, progress, jobs)
    res.update(r3)
    # fix-norm SGD belongs with the ablations, not with the SGD baseline of Table 1
    fx = main.label == "fix-norm"
    extra = pd.concat([extra, main[fx]], ignore_index=True)
    main = main[~fx].reset_index(drop=True)
    setup = dict(data=d, model_name=model_name, num_classes=C, train_cfg=tcfg, device=device)
    return dict(grid=grid, best_rho=best, main=main, extra=extra, results=res, rho_on=later["main_rho_on"],
                setup=setup)


def plan_model(plan: dict, spec: RunSpec) -> tuple[nn.Module, str]:
    """The trained model of one run of ``plan`` and the fingerprint of its weights (:func:`run_weights`:
    released for the studied models, else trained once and cached)."""
    st = plan["setup"]
    w = run_weights(st["data"], st["model_name"], st["num_classes"], st["train_cfg"], spec, device=st["device"])
    return load_model(dict(model_spec=plan["results"][spec]["model_spec"], state_dict=w)), fingerprint(w)


def make_data_cifar(cfg: dict) -> dict:
    """The ``full`` profile's CIFAR splits (:func:`repro.data.cifar.make_data_cifar`; raises with the
    manifest's fetch instructions when the data are absent)."""
    from repro.data.cifar import make_data_cifar as _make

    return _make(cfg)


def norm_counts(model_name: str, num_classes: int) -> tuple[int, int]:
    """(normalization parameters, all parameters) of ``model_name``, built on the meta device."""
    from repro.models import create_model
    from repro.sam import norm_fraction

    with torch.device("meta"):
        return tuple(int(v) for v in norm_fraction(create_model(model_name, num_classes)))


# ----------------------------------------------------------------------------- the page's studies
def step_cost_table(cfg: dict, num_classes: int, device=None) -> tuple[dict, pd.DataFrame]:
    """Step time and memory of SGD / SAM-all / SAM-ON / block-restricted SAM-ON (Fig. 3 analogue), each
    also relative to SAM-all; one process, interleaved, on one random batch (``cfg["bench"]``)."""
    from repro.models import create_model
    from repro.sam.timing import step_costs

    b = cfg["bench"]
    gx = torch.Generator().manual_seed(0)
    xb = torch.randn(b["batch_size"], 3, b["resolution"], b["resolution"], generator=gx)
    yb = torch.randint(0, num_classes, (b["batch_size"],), generator=gx)
    costs = step_costs(lambda: create_model(cfg["model"], num_classes), xb, yb, repeats=b["repeats"],
                       warmup=b.get("warmup", 2), device=device)
    df = pd.DataFrame({n: {k: v for k, v in c.items() if k != "sec_per_repeat"} for n, c in costs.items()}).T
    df = df.reset_index(names="configuration")
    ref = costs["SAM-all"]
    df["time / SAM-all"] = df.sec_per_step / ref["sec_per_step"]
    df["memory / SAM-all"] = df.mem_bytes / ref["mem_bytes"]
    df["ascent-pass memory / SAM-all"] = df.ascent_mem_bytes / ref["ascent_mem_bytes"]
    return costs, df


#: display name -> (method, variant, mode) of the models whose sharpness, γ/β and rank are measured (Table 6.2)
SHARPNESS_MODELS = {"SGD": ("sgd", "", "-"), "SAM all": ("sam", "sam", "all"), "SAM ON": ("sam", "sam", "ON"),
                    "el-linf all": ("sam", "elementwise_linf", "all"), "el-linf ON": ("sam", "elementwise_linf", "ON")}


def studied_specs(plan: dict) -> dict:
    """``{(name, seed): RunSpec}`` of the models the chapter measures after training (Table 6.2's methods at
    their selected ρ, every seed): the sharpness, γ/β and rank studies, and the weights the release keeps."""
    best = plan["best_rho"]
    out = {}
    for spec in plan["results"]:
        if spec.label or spec.fix_norm:
            continue
        for name, (meth, var, mode) in SHARPNESS_MODELS.items():
            if spec.method != meth:
                continue
            if meth == "sgd" or (spec.variant == var and spec.mode == mode and spec.rho == best.get((var, mode))):
                out[(name, spec.seed)] = spec
    return out


def sharpness_models(plan: dict) -> tuple[dict, dict]:
    """The trained models of Table 6.2's methods at their selected ρ, every seed:
    ``({(name, seed): (module, fingerprint)}, {(name, seed): test accuracy in %})``."""
    specs = studied_specs(plan)
    models = {k: plan_model(plan, s) for k, s in specs.items()}
    accs = {k: 100 * plan["results"][s]["test_acc"] for k, s in specs.items()}
    return models, accs


def headline_rho(rhos) -> float:
    """Table 6.2's headline radius ρ = 0.005 when measured, else the largest radius measured."""
    rhos = [float(r) for r in rhos]
    return 0.005 if 0.005 in rhos else max(rhos)


def sharpness_study(plan: dict, data: dict, cfg: dict, device=None) -> pd.DataFrame:
    """Sharpness of every model of :func:`sharpness_models` at every radius of ``cfg["sharpness"]``,
    with the model's test accuracy, one row per (model, seed, ρ)."""
    sh = cfg["sharpness"]
    models, accs = sharpness_models(plan)
    n = sh["n_points"]
    out = sharpness_table(models, data["x_train"][:n], data["y_train"][:n], sh["rhos"], m=sh["m"], steps=sh["steps"],
                          definition=sh["definition"], device=device)
    out["test_acc"] = [accs[(m, s)] for m, s in zip(out.method, out.seed)]
    return out


def affine_study(plan: dict, names=("SGD", "SAM all", "SAM ON")) -> tuple[dict, dict]:
    """γ and β of every normalization layer (Fig. 5 analogue): pooled over seeds per method, and the
    per-model mean γ and mean |β| of SAM-all and SAM-ON (the unit of the γ-shift claim)."""
    models, _ = sharpness_models(plan)
    per = {name: [norm_affine_values(m) for (n, s), (m, fp) in sorted(models.items()) if n == name] for name in names}
    pooled = {name: {k: np.concatenate([d[k] for d in v]) for k in ("gamma", "beta")} for name, v in per.items() if v}
    shift = {}
    for k, name in (("all", "SAM all"), ("on", "SAM ON")):
        shift[f"gamma_{k}"] = [float(v["gamma"].mean()) for v in per.get(name, [])]
        shift[f"beta_{k}"] = [float(np.abs(v["beta"]).mean()) for v in per.get(name, [])]
    return pooled, shift


def rank_study(plan: dict, data: dict, cfg: dict) -> pd.DataFrame:
    """Feature rank (Table 6.2 last row) of every model of :func:`sharpness_models`."""
    fr = cfg["feature_rank"]
    models, _ = sharpness_models(plan)
    x = data["x_train"][:fr["n_points"]]
    return pd.DataFrame([dict(method=n, seed=s, rank=feature_rank(m, x, fr["module"]))
                         for (n, s), (m, fp) in models.items()], columns=["method", "seed", "rank"])
