"""The chapter-6 experiment: SGD vs SAM-all vs SAM-ON (and sparse / block-restricted variants).

Everything here is a plain function over (data, config) that the notebook calls; each training run
goes through :func:`repro.core.cache.get_or_compute`, keyed by the data fingerprints, the model spec,
the training config and the SAM run spec, so a rerun does no work and a killed run resumes.

Protocol (paper §4, App. A.1, L4373-L4377, L4617): SGD with momentum 0.9, weight decay 5e-4,
label smoothing 0.1, cosine LR, crop+flip augmentation; each SAM variant's ρ is chosen from a
small grid (Table 7 analogue) separately for *all* and *ON*, then run with several seeds.
Deviation: ρ is chosen on a held-out validation split (the paper does not say which split it used).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional

import numpy as np
import pandas as pd
import torch
from torch import nn

from repro.core.cache import fingerprint, get_or_compute
from repro.models import build_from_spec, model_spec, preprocess
from repro.train.loop import evaluate, train_classifier
from repro.sam import selection as _sel
from repro.sam.optimizer import SAM

__all__ = ["RunSpec", "train_run", "run_many", "select_rho", "accuracy_table", "gap_summary",
           "norm_affine_values", "feature_rank", "sharpness_table", "load_model", "block_prefixes"]

CACHE_VERSION = "1"


@dataclass(frozen=True)
class RunSpec:
    """One training run. ``method="sgd"`` ignores the SAM fields; ``params`` as in :class:`SAM`."""

    method: str = "sam"          # "sgd" or "sam"
    variant: str = "sam"
    params: str = "all"          # all | only_norm | no_norm | random_mask | ssam_f | ssam_d | blocks:...
    rho: float = 0.0
    seed: int = 0
    runtime_mode: bool = False
    label: str = ""              # display name, e.g. "B3"; not part of what is computed

    @property
    def mode(self) -> str:
        if self.method == "sgd":
            return "-"
        return {"all": "all", "only_norm": "ON", "no_norm": "no-norm"}.get(self.params, self.params)

    def key(self) -> dict:
        d = asdict(self)
        d.pop("label")
        d.pop("runtime_mode")  # same update either way (tested); only the wall clock differs
        if self.method == "sgd":
            d.update(variant="", params="", rho=0.0)
        return d


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


def _make_selection(spec: RunSpec, total_steps: int):
    if spec.params == "ssam_d":
        return _sel.get("ssam_d", total_steps=total_steps, seed=spec.seed)
    if spec.params == "random_mask":
        return _sel.get("random_mask", seed=spec.seed)
    return spec.params


def train_run(data: dict, model_name: str, num_classes: int, train_cfg: dict, spec: RunSpec,
              device=None, progress: bool = False) -> dict:
    """Train one model (cached). ``data`` holds uint8 ``x_train, y_train, x_val, y_val, x_test, y_test``.

    Returns a dict with ``state_dict``, ``model_spec``, ``val_acc``, ``test_acc``, ``train_time``
    (seconds of the first, uncached run), ``sec_per_step`` and ``history``.
    """
    if spec.method not in ("sgd", "sam"):
        raise ValueError(f"RunSpec.method must be 'sgd' or 'sam', got {spec.method!r}")
    if spec.method == "sam" and not spec.rho > 0:
        raise ValueError(f"SAM runs need rho > 0, got {spec.rho!r}")
    mspec = model_spec(model_name, num_classes)
    cfg = dict(train_cfg)
    params = dict(data={k: fingerprint(v) for k, v in sorted(data.items())}, model=mspec, cfg=cfg, spec=spec.key())

    def compute():
        torch.manual_seed(spec.seed)
        model = build_from_spec(mspec)
        n_steps = cfg["epochs"] * math.ceil(len(data["x_train"]) / cfg.get("batch_size", 128))
        hook = None
        if spec.method == "sam":
            sel = _make_selection(spec, n_steps)

            def hook(m, base):
                return SAM(m, base, rho=spec.rho, variant=spec.variant, params=sel, runtime_mode=spec.runtime_mode)
        t0 = time.perf_counter()
        out = train_classifier(model, data["x_train"], data["y_train"], make_optimizer=hook, seed=spec.seed,
                               device=device, progress=progress, desc=f"{spec.method}/{spec.variant}/{spec.mode}",
                               **cfg)
        dt = time.perf_counter() - t0
        return dict(state_dict={k: v.cpu() for k, v in model.state_dict().items()}, model_spec=mspec,
                    val_acc=evaluate(model, data["x_val"], data["y_val"], device=device)["accuracy"],
                    test_acc=evaluate(model, data["x_test"], data["y_test"], device=device)["accuracy"],
                    train_time=dt, sec_per_step=dt / n_steps, history=out["history"])

    return get_or_compute("ch6_train", params, compute, version=CACHE_VERSION)


def load_model(result: dict) -> nn.Module:
    m = build_from_spec(result["model_spec"])
    m.load_state_dict(result["state_dict"])
    return m.eval()


def run_many(data, model_name, num_classes, train_cfg, specs: Iterable[RunSpec], device=None,
             progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Train (or load) every spec; returns a tidy frame (one row per run) and ``{spec: result}``."""
    specs = list(specs)
    rows, results = [], {}
    it = specs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(specs, desc="ch6 runs", leave=False)
    for s in it:
        r = train_run(data, model_name, num_classes, train_cfg, s, device=device)
        results[s] = r
        rows.append(dict(method=s.method, variant=s.variant if s.method == "sam" else "SGD", mode=s.mode,
                         params=s.params if s.method == "sam" else "", rho=s.rho, seed=s.seed,
                         label=s.label, val_acc=100 * r["val_acc"], test_acc=100 * r["test_acc"],
                         train_time=r["train_time"], sec_per_step=r["sec_per_step"]))
    return pd.DataFrame(rows), results


def select_rho(grid: pd.DataFrame) -> dict:
    """Best ρ per (variant, mode) by mean validation accuracy (Table 7 analogue)."""
    g = grid[grid.method == "sam"].groupby(["variant", "mode", "rho"]).val_acc.mean().reset_index()
    best = g.loc[g.groupby(["variant", "mode"]).val_acc.idxmax()]
    return {(r.variant, r["mode"]): float(r.rho) for _, r in best.iterrows()}


def _ms(s: pd.Series) -> str:
    return f"{s.mean():.2f} ± {s.std(ddof=0):.1f}" if len(s) > 1 else f"{s.mean():.2f}"


def accuracy_table(runs: pd.DataFrame, variants: list[str]) -> pd.DataFrame:
    """Table 1 analogue: mean ± std test accuracy per variant for all / ON, ON − all gap."""
    rows = []
    sgd = runs[runs.method == "sgd"].test_acc
    rows.append(dict(variant="SGD", all=_ms(sgd), ON="–", gap=float("nan"), rho_all=float("nan"),
                     rho_ON=float("nan"), mean_all=sgd.mean(), mean_ON=float("nan")))
    for v in variants:
        a = runs[(runs.variant == v) & (runs["mode"] == "all")]
        o = runs[(runs.variant == v) & (runs["mode"] == "ON")]
        rows.append(dict(variant=v, all=_ms(a.test_acc), ON=_ms(o.test_acc), gap=o.test_acc.mean() - a.test_acc.mean(),
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
    """Feature rank after Andriushchenko et al. (2023a), as cited for Table 6 (L4497, notes §2.8).

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


def run_plan(cfg: dict, data: dict, device=None, progress: bool = True) -> dict:
    """The whole chapter-6 experiment for one profile config (see ``repro/profiles/ch6.yaml``).

    1. ρ grid (Table 7 analogue) on the first seed for every variant, all and ON;
    2. SGD and every variant at its selected ρ (all and ON) on all seeds (Table 1 analogue);
    3. block-restricted SAM-ON "B3", "B2+B3" (Fig. 3 analogue) and sparse masks at SAM-ON's sparsity
       (random, SSAM-F, SSAM-D; Table 5 analogue), plain SAM at SAM-ON's selected ρ.
    SAM-ON runs use the runtime mode (same update, cheaper ascent pass).
    """
    d = {k: v for k, v in data.items() if k != "num_classes"}
    C, model_name, tcfg, seeds = data["num_classes"], cfg["model"], cfg["train"], list(cfg["seeds"])
    grid_specs = [RunSpec("sam", v, p, float(r), seeds[0], runtime_mode=(p == "only_norm"))
                  for v in cfg["variants"] for p in ("all", "only_norm") for r in cfg["rho_grid"][v][p]]
    grid, res = run_many(d, model_name, C, tcfg, grid_specs, device, progress)
    best = select_rho(grid)
    main_specs = [RunSpec("sgd", seed=s) for s in seeds]
    for v in cfg["variants"]:
        for p, mode in (("all", "all"), ("only_norm", "ON")):
            main_specs += [RunSpec("sam", v, p, best[(v, mode)], s, runtime_mode=(p == "only_norm")) for s in seeds]
    main, r2 = run_many(d, model_name, C, tcfg, main_specs, device, progress)
    res.update(r2)
    rho_on = best.get(("sam", "ON"), float(cfg["rho_grid"]["sam"]["only_norm"][0]))
    extra_specs = [RunSpec("sam", "sam", block_prefixes(model_name, b), rho_on, s, runtime_mode=True, label=b)
                   for b in cfg.get("blocks", []) for s in seeds]
    extra_specs += [RunSpec("sam", "sam", sp, rho_on, s, label=sp) for sp in cfg.get("sparse", []) for s in seeds]
    extra, r3 = run_many(d, model_name, C, tcfg, extra_specs, device, progress)
    res.update(r3)
    return dict(grid=grid, best_rho=best, main=main, extra=extra, results=res, rho_on=rho_on)
