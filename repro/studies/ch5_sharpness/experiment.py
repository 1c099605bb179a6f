"""The controlled model-zoo experiment of App. H of the paper (Sec. 8.3), scaled to the generated world.

Paper: 200 ResNet-18 (+200 ViT) on CIFAR-10 with LR ~ log-uniform, SAM ρ ∈ {0, 0.05, 0.1}, mixup
(α = 0.5) with prob. ½, augmentation with prob. ½; only models with ≤ 1 % training error are kept;
sharpness on fixed non-augmented training points; test error on the clean test set and on
CIFAR-10-C.  Here: a ``resnet_t`` (BN) zoo on the world (sizes in ``repro/profiles/ch5.yaml``);
augmentation = random crop + flip (no RandAugment, no repeated augmentation: not available in the
shared trainer), SAM from :mod:`repro.sam`.  Every model and every sharpness value goes through
:mod:`repro.core.cache`, so a rerun does no work and a killed run resumes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from repro.core import cache, config
from repro.core.parallel import STATE as _WORKER, parallel_map  # noqa: F401  (parallel_map: the study's API)
from repro.sharpness.definitions import get as get_definition
from repro.sharpness.measure import measure_detailed
from repro.studies.ch5_sharpness.zoo_train import (  # noqa: F401  (re-exported: the study's API)
    ZOO_VERSION, error_rate, train_sharpness_zoo_model)

ZOO_SHARPNESS_VERSION = "2"  # 2: bound flat-buffer path + fused APGD updates (same math, other rounding)


@dataclass(frozen=True)
class HParams:
    index: int
    lr: float
    augment: bool
    mixup: bool
    sam_rho: float
    seed: int

    @property
    def group(self) -> str:
        return f"aug={'on' if self.augment else 'off'}, mixup={'on' if self.mixup else 'off'}"


def sample_hparams(n: int, lr_range=(0.05, 5.0), sam_rhos=(0.0, 0.05, 0.1), seed: int = 0) -> list[HParams]:
    """App. H sampling: LR log-uniform on ``lr_range``, SAM ρ uniform on ``sam_rhos``, mixup and
    augmentation each with probability ½.  The four augment × mixup subgroups are balanced (cycled)
    so that small zoos still have every subgroup; the rest is random."""
    if n < 1:
        raise ValueError(f"need at least one model, got n={n}")
    lo, hi = lr_range
    if not 0 < lo < hi:
        raise ValueError(f"lr_range must be 0 < low < high, got {lr_range}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    out = []
    for i in range(n):
        q = int(order[i]) % 4
        out.append(HParams(i, float(math.exp(rng.uniform(math.log(lo), math.log(hi)))), bool(q & 1), bool(q & 2),
                           float(rng.choice(sam_rhos)), int(seed * 10_000 + i)))
    return out


def sharpness_points(x, y, n_points: int):
    """The first ``n_points`` training points, no augmentation (App. H.1; released code uses the
    first 1024 CIFAR-10 training images)."""
    if n_points > len(x):
        raise ValueError(f"n_points={n_points} exceeds the training set ({len(x)})")
    return x[:n_points], y[:n_points]


def zoo_sharpness(entry: dict, points, definition: str, rho: float, *, m: int, steps: int = 20,
                  n_samples: int = 100, logit_norm=None, mode: str = "faithful", seed: int = 0,
                  device=None) -> float:
    """Cached sharpness of one zoo model (see :func:`repro.sharpness.measure_detailed`)."""
    d = get_definition(definition)
    params = dict(model=cache.fingerprint(entry["state_dict"]), definition=d.name, rho=float(rho), m=int(m),
                  steps=int(steps) if d.kind == "worst" else None,
                  n_samples=int(n_samples) if d.kind == "avg" else None,
                  logit_norm=logit_norm if d.logit_norm else None, mode=mode if d.kind == "worst" else None,
                  seed=int(seed), points=cache.fingerprint(points[0]),
                  # noise draws and reductions differ between CPU and CUDA: never share their values
                  device=config.device(device).type if not isinstance(device, torch.device) else device.type)

    def fn():
        model = load_model(entry)
        return float(measure_detailed(model, [points], d.name, float(rho), m=m, steps=steps, n_samples=n_samples,
                                      logit_norm=logit_norm, seed=seed, device=device, mode=mode).value)

    return cache.get_or_compute("ch5_sharpness", params, fn, version=ZOO_SHARPNESS_VERSION)


def zoo_frame(entries: list[dict]) -> pd.DataFrame:
    rows = []
    for e in entries:
        hp = e["hparams"]
        rows.append(dict(index=hp["index"], lr=hp["lr"], augment=hp["augment"], mixup=hp["mixup"],
                         sam_rho=hp["sam_rho"], group=HParams(**hp).group, train_err=e["train_err"],
                         test_err=e["test_err"], shift_err=e["shift_err"], gen_gap=e["test_err"] - e["train_err"],
                         diverged=e["diverged"],
                         wall_s=e["wall_s"]))
    return pd.DataFrame(rows)


TAU_COLUMNS = ["definition", "rho", "target", "tau", "tau_within_mean", "tau_lr", "tau_lr_within_mean", "n_models",
               "tau_noise", "tau_within_noise"]


def tau_noise_level(n_models) -> float:
    """Standard deviation of Kendall τ between independent variables for M models,
    √(2(2M+5) / (9M(M−1))) (0.24 at M = 10, 0.05 at M = 200).  It is the noise of a τ near 0; for
    larger |τ| the sampling spread is smaller, so τ ± 2× this is a conservative interval."""
    try:
        m = int(n_models)
    except (TypeError, ValueError):
        return float("nan")
    if m < 2:
        return float("nan")
    return math.sqrt(2 * (2 * m + 5) / (9 * m * (m - 1)))


def decided_sign(tau, n_models, noise=None) -> int:
    """+1 / −1 when the interval τ ± 2σ lies above / below 0, else 0 (σ = ``noise`` or
    :func:`tau_noise_level` of ``n_models``; NaN anywhere gives 0)."""
    try:
        t = float(tau)
        sig = float(noise) if noise is not None else tau_noise_level(n_models)
    except (TypeError, ValueError):
        return 0
    if not (math.isfinite(t) and math.isfinite(sig)):
        return 0
    return 1 if t - 2 * sig > 0 else -1 if t + 2 * sig < 0 else 0


def within_noise_level(group_sizes) -> float:
    """Noise of the unweighted mean of within-group τ (independent groups): √(Σ σ(n_g)²) / G over
    the groups of at least 3 models (those :func:`repro.sharpness.kendall.kendall_tau_by_group` uses)."""
    sig = [tau_noise_level(n) for n in group_sizes if n >= 3]
    return math.sqrt(sum(x * x for x in sig)) / len(sig) if sig else float("nan")


def tau_table(df: pd.DataFrame, sharp_cols: list[tuple[str, float]], targets=("test_err", "shift_err", "gen_gap"),
              min_models: int = 3) -> pd.DataFrame:
    """Global and within-subgroup Kendall τ for every (definition, ρ) column ``f"{d}@{rho}"``.

    Targets: clean test error, corrupted test error and the generalization gap (App. B compares
    the gap with the test error).  ``tau_noise`` / ``tau_within_noise``: the standard deviation of
    the global / mean within-group τ under independence (:func:`tau_noise_level`), from which the
    report draws its intervals.  Fewer than ``min_models`` models: an empty frame with the same
    columns."""
    from repro.sharpness.kendall import kendall_tau, kendall_tau_by_group

    if len(df) < min_models:
        return pd.DataFrame(columns=TAU_COLUMNS)
    rows = []
    for d, rho in sharp_cols:
        col = f"{d}@{rho:g}"
        for t in targets:
            sub = df[[t, col, "group", "lr"]].dropna()
            if len(sub) < min_models:
                continue
            g = kendall_tau_by_group(sub[t], sub[col], sub["group"])
            rows.append(dict(definition=d, rho=rho, target=t, tau=kendall_tau(sub[t], sub[col]),
                             tau_within_mean=g.get("mean", float("nan")),
                             tau_lr=kendall_tau(sub["lr"], sub[col]),
                             tau_lr_within_mean=kendall_tau_by_group(sub["lr"], sub[col], sub["group"]).get("mean", float("nan")),
                             n_models=len(sub), tau_noise=tau_noise_level(len(sub)),
                             tau_within_noise=within_noise_level(sub.groupby("group").size().tolist())))
    return pd.DataFrame(rows, columns=TAU_COLUMNS)


def keep_mask(zdf: pd.DataFrame, train_err_max: float) -> pd.Series:
    """Models that entered the correlations: not diverged and train error ≤ ``train_err_max`` (App. H
    keeps models with ≤ 1 % training error). The error is a float (1 - 297/300 = 0.010000000000000009), so an
    error exactly at the threshold is compared with a tolerance far below one image."""
    return (~zdf.diverged.astype(bool)) & (zdf.train_err <= train_err_max + 1e-9)


def describe_zoo(zdf: pd.DataFrame, train_err_max: float) -> str:
    """One markdown sentence: how many models were trained, diverged, kept, and their error ranges."""
    kept = zdf[keep_mask(zdf, train_err_max)]
    head = (f"{len(zdf)} models trained, {int(zdf.diverged.sum())} diverged, **{len(kept)} kept** "
            f"(train error ≤ {train_err_max:.0%})")
    if not len(kept):
        return head + "; no model passed the train-error filter."
    return (head + f"; test error {kept.test_err.min():.1%}–{kept.test_err.max():.1%}, corrupted "
            f"{kept.shift_err.min():.1%}–{kept.shift_err.max():.1%}.")


def main_columns(grid) -> list[str]:
    """Zoo-frame columns of the main measure (adaptive worst-case ℓ∞ with LN) and of its no-LN
    counterpart, each at its smallest ρ in ``grid`` (the pair the paper's Fig. 2 contrasts)."""
    from repro.sharpness.definitions import MAIN_DEFINITION

    out = []
    for name in (MAIN_DEFINITION, "adaptive_worst_linf"):
        rs = sorted(r for d, r in grid if d == name)
        if rs:
            out.append(f"{name}@{rs[0]:g}")
    return out


DATA_SOURCES = ("world", "cifar10")


def prepare_data(cfg: dict, root=None) -> dict:
    """Train/test split plus the corrupted test set (the CIFAR-10-C analogue, severity and names from
    ``cfg["shift"]``).

    ``cfg["data"]["source"]``: ``"world"`` (default; the generated world at ``cfg["world"]`` sizes) or
    ``"cifar10"`` (the ``full`` profile: the real CIFAR-10 python batches through
    ``data_manifests/cifar10.yaml``, loaded by :func:`repro.data.cifar.load_cifar`; a missing archive
    raises :class:`repro.data.manifests.MissingAsset` naming the manifest and ``repro data fetch
    cifar10``).  Optional ``n_train`` / ``n_test`` keep the first images of each split, and
    ``shift.max_images`` subsamples the pooled corrupted set (the released code uses 10k CIFAR-10-C
    images).  ``shift.source``: ``"generated"`` (default; the corruptions of :mod:`repro.data.shift`
    applied to this test split) or ``"cifar10c"`` (the real CIFAR-10-C through
    ``data_manifests/cifar10c.yaml``: ``shift.names`` of its 15 corruptions, null = all)."""
    from repro.data.shift import corrupted_set

    src = dict(cfg.get("data") or {}).get("source", "world")
    if src not in DATA_SOURCES:
        raise ValueError(f"ch5 data.source must be one of {DATA_SOURCES}, got {src!r} (see repro/profiles/ch5.yaml)")
    if src == "world":
        from repro.data.world import make_world

        w = cfg["world"]
        world = make_world(seed=w.get("seed", 0), resolution=w["resolution"], n_train_per_class=w["n_train_per_class"],
                           n_val_per_class=1, n_test_per_class=w["n_test_per_class"], n_ood_classes=1, ood_scale=0.1,
                           n_near_per_class=0, n_far_per_class=0, n_popular=0)
        x_tr, y_tr, x_te, y_te, k = world.id_train.x, world.id_train.y, world.id_test.x, world.id_test.y, world.num_classes
    else:
        from repro.data.cifar import load_cifar

        d = load_cifar("cifar10", root)
        dc = cfg["data"]
        n_tr, n_te = dc.get("n_train"), dc.get("n_test")
        x_tr, y_tr = d["x_train"][:n_tr], d["y_train"][:n_tr]
        x_te, y_te = d["x_test"][:n_te], d["y_test"][:n_te]
        k = d["num_classes"]
    sh = cfg["shift"]
    if sh.get("source", "generated") == "cifar10c":
        # the real CIFAR-10-C (data_manifests/cifar10c.yaml); a missing archive raises MissingAsset
        from repro.data.cifar10c import load_cifar10c

        xs, ys, _ = load_cifar10c(sh.get("names"), sh["severity"], sh.get("root"))
    elif sh.get("source", "generated") == "generated":
        xs, ys, _ = corrupted_set(x_te, y_te, sh["names"], sh["severity"])
    else:
        raise ValueError(f"ch5 shift.source must be 'generated' (repro.data.shift) or 'cifar10c', got {sh['source']!r}")
    if sh.get("max_images") and len(xs) > int(sh["max_images"]):
        keep = torch.randperm(len(xs), generator=torch.Generator().manual_seed(0))[: int(sh["max_images"])]
        xs, ys = xs[keep], ys[keep]
    data = dict(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, x_shift=xs, y_shift=ys, num_classes=k)
    data["fingerprint"] = cache.fingerprint([data["x_train"], data["y_train"], data["x_test"], data["x_shift"]])
    return data


def _train_job(hp: HParams) -> dict:
    w = _WORKER
    return train_sharpness_zoo_model(hp, w["data"], w["train_cfg"], w["arch"], w["data"]["num_classes"], w["device"],
                           w.get("arch_kwargs"))


def _sharpness_job(i: int) -> dict:
    w = _WORKER
    s = w["s"]
    return {(i, d, r): zoo_sharpness(w["entries"][i], w["pts"], d, r, m=s["m"], steps=s["steps"],
                                     n_samples=s["n_samples"], seed=w["seed"], device=w["device"])
            for d, r in w["grid"]}


def zoo_hparams(cfg: dict, seed: int = 0) -> list[HParams]:
    """The hyperparameters of every zoo model of ``cfg["zoo"]`` (notebook and sweep: model i is ``[i]``)."""
    z = cfg["zoo"]
    return sample_hparams(z["n_models"], tuple(z["lr_range"]), tuple(z["sam_rhos"]), seed=seed)


def zoo_keys(cfg: dict) -> list[str]:
    """The zoo sections this profile runs: ``zoo`` (ResNets, Table 3) and ``zoo_vit`` (Table 4) if present."""
    return ["zoo"] + (["zoo_vit"] if "zoo_vit" in cfg else [])


def train_zoo(cfg: dict, data: dict, device=None, seed: int = 0, progress: bool = True, jobs: int | None = None) -> list[dict]:
    """Train (cached) the whole zoo; ``jobs`` (default: the profile's ``jobs``, else 1) worker processes."""
    z = cfg["zoo"]
    hps = zoo_hparams(cfg, seed)
    state = dict(data=data, train_cfg=dict(cfg["train"]), arch=z["arch"], device=device, arch_kwargs=z.get("arch_kwargs"))
    return parallel_map(_train_job, hps, state, jobs or cfg.get("jobs", 1), "zoo: training", progress)


# The paper's CIFAR-10 tables per zoo (``zoo.paper_table``): T3 ResNet-18, T4 ViT (repro.reference.sharpness).
PAPER_TABLES = {"T3": "T3_CIFAR10_ResNet18", "T4": "T4_CIFAR10_ViT"}


def _paper_rhos(table: str) -> dict:
    from repro.reference.sharpness import paper_radii

    if table not in PAPER_TABLES:
        raise ValueError(f"zoo.paper_table must be one of {sorted(PAPER_TABLES)} (T3: ResNets, T4: ViTs), got {table!r}")
    return paper_radii(table)


def rho_grid(cfg: dict) -> list[tuple[str, float]]:
    """(definition, ρ) pairs: the paper's grid per definition (Table 3 for ResNets, Table 4 for ViTs:
    ``cfg["zoo"]["paper_table"]``, default T3), at the profile's ``sharpness.rho_index``."""
    rhos = _paper_rhos(cfg["zoo"].get("paper_table", "T3"))
    idx = cfg["sharpness"]["rho_index"]
    return [(d, rhos[d][i]) for d in rhos for i in idx]


def zoo_study_config(cfg: dict, key: str) -> dict:
    """The chapter config with ``cfg[key]`` (e.g. ``zoo_vit``) as its zoo: a second zoo reuses every
    function of this module.  ``cfg[key]`` may carry ``train`` and ``sharpness`` overrides (merged
    into the chapter's) and ``train_err_max``."""
    if key not in cfg:
        raise KeyError(f"no zoo {key!r} in this profile (keys: {sorted(k for k in cfg if k.startswith('zoo'))})")
    z = dict(cfg[key])
    out = dict(cfg, zoo=z)
    for sub in ("train", "sharpness"):
        if sub in z:
            out[sub] = {**cfg[sub], **z.pop(sub)}
    if "train_err_max" in z:
        out["train_err_max"] = z.pop("train_err_max")
    return out


def sharpness_frame(entries: list[dict], data: dict, cfg: dict, grid, device=None, seed: int = 0,
                    progress: bool = True, only=None, jobs: int | None = None) -> pd.DataFrame:
    """:func:`zoo_frame` plus one column ``f"{definition}@{rho:g}"`` per grid point.  ``only``: the
    model indices to measure (e.g. those passing :func:`keep_mask`; the paper shows sharpness only for
    models with ≤ 1 % train error); the rest get NaN.  Diverged models are never measured."""
    s = cfg["sharpness"]
    pts = sharpness_points(data["x_train"], data["y_train"], s["n_points"])
    df = zoo_frame(entries)
    keep = [i for i, e in enumerate(entries) if not e["diverged"] and (only is None or i in set(only))]
    state = dict(entries=entries, pts=pts, s=s, grid=list(grid), seed=seed, device=device)
    vals: dict = {}
    for part in parallel_map(_sharpness_job, keep, state, jobs or cfg.get("jobs", 1), "zoo: sharpness", progress):
        vals.update(part)
    for d, r in grid:
        df[f"{d}@{r:g}"] = [vals.get((i, d, r), float("nan")) for i in range(len(entries))]
    return df


def run_study(cfg: dict, data: dict, device=None, seed: int = 0, progress: bool = True) -> dict:
    """One zoo study of App. H end to end: train the zoo (cached), measure the kept models on the
    profile's (definition, ρ) grid, Kendall τ (:func:`tau_table`) and our τ beside the paper's table
    (``cfg["zoo"]["paper_table"]``: T3 ResNets, T4 ViTs).  Returns ``entries, grid, zdf`` (all
    models, ``kept`` column), ``kept`` (the kept rows), ``taus`` and ``cmp``."""
    entries = train_zoo(cfg, data, device=device, seed=seed, progress=progress)
    grid = rho_grid(cfg)
    kept_idx = kept_indices(entries, cfg["train_err_max"])
    zdf = sharpness_frame(entries, data, cfg, grid, device=device, seed=seed, progress=progress, only=kept_idx)
    zdf["kept"] = keep_mask(zdf, cfg["train_err_max"])
    kept = zdf[zdf.kept].reset_index(drop=True)
    taus = tau_table(kept, grid)
    cmp = paper_comparison(taus, cfg["zoo"].get("paper_table", "T3"))
    return dict(entries=entries, grid=grid, zdf=zdf, kept=kept, taus=taus, cmp=cmp)


def run_vit_study(cfg: dict, data: dict, device=None, seed: int = 0, progress: bool = True) -> dict | None:
    """:func:`run_study` of the profile's ViT zoo (``zoo_vit``, Table 4), or None when it has none."""
    if "zoo_vit" not in zoo_keys(cfg):
        return None
    return run_study(zoo_study_config(cfg, "zoo_vit"), data, device=device, seed=seed, progress=progress)


def ablation_frame(entries: list[dict], data: dict, cfg: dict, definition: str, rho: float, device=None,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figs. 30-31: sharpness of the first ``ablation.n_models`` well-trained models for several
    APGD step counts and several m (same points)."""
    s, a = cfg["sharpness"], cfg["ablation"]
    pts = sharpness_points(data["x_train"], data["y_train"], s["n_points"])
    ok = [i for i, e in enumerate(entries) if not e["diverged"]][: a["n_models"]]
    steps_rows = [dict(model=i, steps=k, test_err=entries[i]["test_err"],
                       sharpness=zoo_sharpness(entries[i], pts, definition, rho, m=s["m"], steps=k, seed=seed,
                                               device=device)) for i in ok for k in a["steps"]]
    m_rows = [dict(model=i, m=mm, test_err=entries[i]["test_err"],
                   sharpness=zoo_sharpness(entries[i], pts, definition, rho, m=mm, steps=s["steps"], seed=seed,
                                           device=device)) for i in ok for mm in a["m"]]
    return pd.DataFrame(steps_rows), pd.DataFrame(m_rows)


def ablation_taus(abl: pd.DataFrame, col: str) -> pd.DataFrame:
    """τ(sharpness, test error) per setting, and τ between each setting's values and the first's."""
    from repro.sharpness.kendall import kendall_tau
    rows = []
    base = None
    for k, sub in abl.groupby(col):
        sub = sub.sort_values("model")
        if base is None:
            base = sub.sharpness.to_numpy()
        rows.append({col: k, "tau_test_err": kendall_tau(sub.test_err, sub.sharpness) if len(sub) > 1 else float("nan"),
                     "tau_vs_first": kendall_tau(base, sub.sharpness) if len(sub) > 1 else float("nan"),
                     "mean_sharpness": float(sub.sharpness.mean())})
    return pd.DataFrame(rows)


PAPER_COMPARISON_COLUMNS = ["definition", "rho", "eval_set", "tau_paper", "tau_ours", "tau_ours_within", "n_models",
                            "tau_noise", "sign_agrees"]


def paper_comparison(taus: pd.DataFrame, table: str = "T3") -> pd.DataFrame:
    """Our τ next to the paper's for the same definition and ρ: Table 3 (CIFAR-10 ResNet-18) or
    Table 4 (CIFAR-10 ViT) of Sec. 8.3.  ``tau_noise``: the standard deviation of τ between
    independent variables for our number of models (:func:`tau_noise_level`)."""
    from repro.reference.sharpness import paper_tau

    _paper_rhos(table)  # validates the name
    rows = []
    for r in taus.itertuples():
        if r.target not in ("test_err", "shift_err"):
            continue
        col = "CIFAR-10" if r.target == "test_err" else "CIFAR-10-C"
        p = paper_tau(table, r.definition, r.rho, col)
        rows.append(dict(definition=r.definition, rho=r.rho, eval_set=col, tau_paper=p, tau_ours=r.tau,
                         tau_ours_within=r.tau_within_mean, n_models=getattr(r, "n_models", float("nan")),
                         tau_noise=tau_noise_level(getattr(r, "n_models", 0)),
                         sign_agrees=bool(np.sign(p) == np.sign(r.tau)) if np.isfinite(p) else None))
    return pd.DataFrame(rows, columns=PAPER_COMPARISON_COLUMNS)


def load_model(entry: dict):
    """Rebuild a trained zoo model (eval mode) from its cached entry."""
    from repro.models import build_from_spec

    model = build_from_spec(entry["spec"])
    model.load_state_dict(entry["state_dict"])
    return model.eval()


def ablation_plan(cfg: dict, grid, zdf: pd.DataFrame) -> dict:
    """What the APGD-steps / m ablations (Figs. 30-31) measure; the notebook and the sweep
    (``jobs.py``) both call this, so they cannot choose differently.

    ``zdf``: one row per zoo model, in model order, with ``diverged`` and ``train_err`` (the zoo
    frame, or the sweep's stage-1 results).  Returns ``definition`` (the main measure), ``rho`` (its
    smallest radius in ``grid``, the ρ of Figs. 5-6), ``models`` (the first ``ablation.n_models``
    models passing :func:`keep_mask`) and ``on_kept``.  When no model passes the filter (the smoke
    profile's one-epoch models) the ablations still run on the first non-diverged models so that the
    code is exercised, but ``on_kept`` is False and the report does not judge them."""
    from repro.sharpness.definitions import MAIN_DEFINITION

    rhos = [r for d, r in grid if d == MAIN_DEFINITION]
    if not rhos:
        raise ValueError(f"the ablations use {MAIN_DEFINITION}, which is not in the grid {sorted({d for d, _ in grid})}")
    n = int(cfg["ablation"]["n_models"])
    zdf = zdf.reset_index(drop=True)
    kept = [int(i) for i in zdf.index[keep_mask(zdf, cfg["train_err_max"])]]
    pool = kept or [int(i) for i in zdf.index[~zdf.diverged.astype(bool)]]
    return dict(definition=MAIN_DEFINITION, rho=float(min(rhos)), models=pool[:n], on_kept=bool(kept))


def run_ablation(study: dict, data: dict, cfg: dict, device=None, seed: int = 0) -> dict:
    """Figs. 30-31 for a :func:`run_study` result: :func:`ablation_plan`, then :func:`ablation_frame`
    and :func:`ablation_taus` per setting.  Returns the plan's keys plus ``steps``/``m`` (per model and
    setting) and ``steps_taus``/``m_taus``."""
    plan = ablation_plan(cfg, study["grid"], study["zdf"])
    entries = [study["entries"][i] for i in plan["models"]]
    steps, m = ablation_frame(entries, data, cfg, plan["definition"], plan["rho"], device=device, seed=seed)
    return dict(plan, steps=steps, m=m, steps_taus=ablation_taus(steps, "steps"), m_taus=ablation_taus(m, "m"))


#: Fig. 29: adaptive average-case ℓ∞ sharpness (normalized) on original vs augmented training points
AUGMENTATION_DEFINITION = "adaptive_avg_linf_ln"


def augmented_points(x, y, n_points: int, seed: int = 0):
    """The sharpness points under the training augmentation (random crop + flip of
    :func:`repro.train.loop.augment_batch`), one fixed draw (App. H.1 / Fig. 29)."""
    from repro.train.loop import augment_batch

    xs, ys = sharpness_points(x, y, n_points)
    return augment_batch(xs, torch.Generator().manual_seed(int(seed))), ys


def augmentation_frame(entries: list[dict], data: dict, cfg: dict, grid, indices, device=None,
                       seed: int = 0) -> pd.DataFrame:
    """Fig. 29: sharpness (:data:`AUGMENTATION_DEFINITION` at its radii in ``grid``) of the models
    ``indices`` on the original and on augmented training points; one row per model × ρ with
    ``original``, ``augmented`` and ``test_err``.  Both go through the ``ch5_sharpness`` cache."""
    s = cfg["sharpness"]
    pts = sharpness_points(data["x_train"], data["y_train"], s["n_points"])
    aug = augmented_points(data["x_train"], data["y_train"], s["n_points"], seed)
    rhos = sorted(r for d, r in grid if d == AUGMENTATION_DEFINITION)
    rows = []
    for i in indices:
        e = entries[i]
        for r in rhos:
            kw = dict(m=s["m"], steps=s["steps"], n_samples=s["n_samples"], seed=seed, device=device)
            rows.append(dict(model=int(i), rho=r, test_err=e["test_err"],
                             original=zoo_sharpness(e, pts, AUGMENTATION_DEFINITION, r, **kw),
                             augmented=zoo_sharpness(e, aug, AUGMENTATION_DEFINITION, r, **kw)))
    return pd.DataFrame(rows, columns=["model", "rho", "test_err", "original", "augmented"])


def run_augmentation(study: dict, data: dict, cfg: dict, device=None, seed: int = 0) -> dict:
    """Fig. 29 for a :func:`run_study` result, on its kept models: ``frame``
    (:func:`augmentation_frame`) and ``taus`` (:func:`augmentation_taus`)."""
    kept = [int(i) for i in study["zdf"].index[study["zdf"].kept]]
    frame = augmentation_frame(study["entries"], data, cfg, study["grid"], kept, device=device, seed=seed)
    return dict(frame=frame, taus=augmentation_taus(frame))


def augmentation_taus(frame: pd.DataFrame) -> pd.DataFrame:
    """Per ρ: τ(test error, sharpness) on original and augmented points, and τ between the two."""
    from repro.sharpness.kendall import kendall_tau

    rows = []
    for r, sub in frame.groupby("rho"):
        ok = len(sub) > 1
        rows.append(dict(rho=r, n_models=len(sub),
                         tau_original=kendall_tau(sub.test_err, sub.original) if ok else float("nan"),
                         tau_augmented=kendall_tau(sub.test_err, sub.augmented) if ok else float("nan"),
                         tau_original_vs_augmented=kendall_tau(sub.original, sub.augmented) if ok else float("nan")))
    return pd.DataFrame(rows, columns=["rho", "n_models", "tau_original", "tau_augmented", "tau_original_vs_augmented"])


def first_trained_model(entries: list[dict]):
    """The first non-diverged zoo model (for the invariance check, which needs trained BN layers)."""
    for e in entries:
        if not e["diverged"]:
            return load_model(e)
    raise RuntimeError("every zoo model diverged; lower the learning-rate range in repro/profiles/ch5.yaml")


def kept_indices(entries: list[dict], train_err_max: float) -> list[int]:
    """Indices of the zoo models passing :func:`keep_mask` (those whose sharpness is measured)."""
    z = zoo_frame(entries)
    return [int(i) for i in z.index[keep_mask(z, train_err_max)]]
