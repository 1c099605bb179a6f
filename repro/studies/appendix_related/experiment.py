"""The appendix's three studies on the chapter 3-4 benchmark, each a function returning tidy frames
(the notebook only calls them and shows the results).

Config: ``repro/profiles/appendix.yaml`` (``cfg``) and chapter 3's profile (``cfg3``: the world and
the zoo entries, so conventionally trained models come from chapter 3's cache).
"""
from __future__ import annotations

import logging
from typing import Mapping, Optional

import numpy as np
import pandas as pd
import torch

from repro.core.cache import fingerprint, get_or_compute
from repro.studies.appendix_related.harness import model_features, ood_table

log = logging.getLogger("repro.ood.related")

__all__ = ["select_entries", "l2_study", "unleashing_study", "setar_study", "logit_scores_table"]

STUDY_VERSION = "1"


def select_entries(cfg3: Mapping, items) -> list:
    """Zoo entries for ``items``: a name picks chapter 3's entry of that name, a dict is a full
    entry (``{name, arch, optimizer, ...}``; with chapter 3's recipe it hits chapter 3's cache,
    because the cache key ignores the display name)."""
    from repro.studies.ch3_ninco.zoo import zoo_entries

    if not items:
        raise ValueError("the model list is empty; list chapter 3 zoo names or entries in repro/profiles/appendix.yaml")
    names = [it for it in items if isinstance(it, str)]
    known = {e.name: e for e in zoo_entries(cfg3)} if names else {}
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"model(s) {missing} are not in chapter 3's zoo of this profile (available: {sorted(known)}); "
                         "fix the model names in repro/profiles/appendix.yaml or give full entries")
    dicts = zoo_entries([it for it in items if not isinstance(it, str)]) if len(names) < len(items) else []
    it_d = iter(dicts)
    return [known[it] if isinstance(it, str) else next(it_d) for it in items]


def _acc(feats) -> float:
    f = feats["test"]
    return float(100 * (f.logits.argmax(1) == f.labels).mean())


# ------------------------------------------------------------------------------------------ L2
def l2_study(world, cfg3: Mapping, cfg: Mapping, seed: int = 0, device=None, progress: bool = False) -> dict:
    """Conventional vs ℓ2-normalised training (Haas et al.) for the chapter 3 entries listed in
    ``cfg["l2"]["models"]``; every detector of ``cfg["detectors"]`` on both.

    Returns ``table`` (model, variant, detector, dataset, fpr, auroc), ``acc`` (model, variant,
    test_acc) and ``norms`` ({(model, variant): {"id": norms, "ood": norms}}) for the figures."""
    from repro.studies.ch3_ninco.zoo import trained_zoo
    from repro.ood.related.l2_training import train_l2_model

    lcfg = cfg["l2"]
    entries = select_entries(cfg3, lcfg["models"])
    base = trained_zoo(world, entries, seed=seed, device=device, progress=progress)
    tabs, accs, norms = [], [], {}
    for e, zb in zip(entries, base):
        zl = train_l2_model(world, e, seed=seed, scale=float(lcfg.get("scale", 1.0)), device=device, progress=progress)
        for variant, zm in (("conventional", zb), ("l2-trained", zl)):
            F = model_features(zm, world, cfg["ood_sets"], device=device)
            tabs.append(ood_table(F, cfg["detectors"], model=e.name, arch=e.arch, variant=variant))
            accs.append({"model": e.name, "arch": e.arch, "variant": variant, "test_acc": 100 * zm.test_acc})
            norms[(e.name, variant)] = {
                "id": np.linalg.norm(F["test"].features, axis=1),
                "ood": np.concatenate([np.linalg.norm(v.features, axis=1) for v in F["ood"].values()])}
    return {"table": pd.concat(tabs, ignore_index=True), "acc": pd.DataFrame(accs), "norms": norms}


# ------------------------------------------------------------------------------ Unleashing Mask
def logit_scores_table(feats: Mapping, detectors, **keys) -> pd.DataFrame:
    """FPR@95/AUROC (%) of logit-only detectors (no training statistics: Energy, MSP, MaxLogit)."""
    from repro.ood.detectors import get_detector
    from repro.ood.metrics import auroc, fpr_at_95tpr

    rows = []
    for name in detectors:
        det = get_detector(name)
        if det.uses_features:
            raise ValueError(f"{name!r} needs training features; the checkpoint curve uses logit-only detectors "
                             "(energy, msp, maxlogit)")
        det.fit(None, None)
        sid = det.score(None, feats["test"].logits)
        for k, v in feats["ood"].items():
            so = det.score(None, v.logits)
            rows.append({**keys, "detector": name, "dataset": k, "fpr": 100 * fpr_at_95tpr(sid, so),
                         "auroc": 100 * auroc(sid, so)})
    return pd.DataFrame(rows)


def _um_trajectory(world, entry, every: int, seed: int, device, progress: bool) -> dict:
    from repro.models import model_spec, build_from_spec
    from repro.studies.ch3_ninco.zoo import _RECIPE_KEYS, _entry_params
    from repro.ood.related.unleashing import train_with_checkpoints

    spec = model_spec(entry.arch, world.num_classes, **entry.model_kwargs)

    def compute():
        torch.manual_seed(int(seed))
        model = build_from_spec(spec)
        recipe = {k: getattr(entry, k) for k in _RECIPE_KEYS}
        out = train_with_checkpoints(model, world.id_train.x, world.id_train.y, every=every, seed=int(seed),
                                     device=device, progress=progress, **recipe)
        return {**out, "spec": spec}

    params = {"id_train": fingerprint(world.id_train), "entry": _entry_params(entry), "seed": int(seed), "every": int(every)}
    return get_or_compute("related_um_trajectory", params, compute, version=STUDY_VERSION)


def unleashing_study(world, cfg: Mapping, seed: int = 0, device=None, progress: bool = False) -> dict:
    """Unleashing Mask on one model trained for ``cfg["unleashing"]["model"]["epochs"]`` epochs.

    1. Checkpoint curve: logit-based detectors (``curve_detectors``, the paper uses Energy) on every
       checkpoint; ID test accuracy and training loss beside them.
    2. UM: the loss level from random masks keeping ``keep`` of each layer (Eq. 3, App. F), then the
       fine-tuning of the final model with that level.

    Returns ``curve``, ``summary`` (final / best checkpoint / UM, per detector: mean FPR over OOD
    sets, test accuracy), ``table`` (every detector of ``cfg["detectors"]`` on final and UM),
    ``level``, ``ascent_share``, ``best_epoch``, ``epochs``."""
    from repro.models import build_from_spec
    from repro.studies.ch3_ninco.zoo import zoo_entries
    from repro.ood.related.unleashing import estimate_loss_constraint, unleashing_mask_finetune

    ucfg = cfg["unleashing"]
    entry = zoo_entries([ucfg["model"]])[0]
    dets = list(ucfg.get("curve_detectors", ["energy"]))
    main = dets[0]
    # every epoch is stored (cheap); ``every`` only thins the evaluated curve, so changing it reuses the run
    traj = _um_trajectory(world, entry, 1, seed, device, progress)
    hist = {h["epoch"] + 1: h for h in traj["history"]}
    every, last = int(ucfg.get("every", 1)), max(ep for ep, _ in traj["checkpoints"])
    curves, models = [], {}
    for ep, sd in traj["checkpoints"]:
        if ep % every and ep != last:
            continue
        m = build_from_spec(traj["spec"])
        m.load_state_dict(sd)
        m.eval()
        F = model_features(m, world, cfg["ood_sets"], device=device, train=False)
        t = logit_scores_table(F, dets, epoch=ep)
        t["test_acc"] = _acc(F)
        t["train_loss"] = hist.get(ep, {}).get("loss", np.nan)
        curves.append(t)
        models[ep] = m
    curve = pd.concat(curves, ignore_index=True)
    epochs = int(max(models))
    final = models[epochs]
    mean_fpr = curve[curve.detector == main].groupby("epoch").fpr.mean()
    best_epoch = int(mean_fpr.idxmin())

    keep, n_masks = float(ucfg.get("keep", 0.975)), int(ucfg.get("n_masks", 1))
    n_est = min(len(world.id_train), int(ucfg.get("level_samples", len(world.id_train))))
    ft = dict(ucfg.get("finetune", {}))
    params = {"final": fingerprint(final), "id_train": fingerprint(world.id_train), "keep": keep, "n_masks": n_masks,
              "n_est": n_est, "finetune": ft, "seed": int(seed)}

    def compute():
        level = float(ucfg["level"]) if ucfg.get("level") is not None else estimate_loss_constraint(
            final, world.id_train.x[:n_est], world.id_train.y[:n_est], keep, seed=seed, n_masks=n_masks, device=device)
        m, info = unleashing_mask_finetune(final, world.id_train.x, world.id_train.y, level, seed=int(seed),
                                           device=device, progress=progress, **ft)
        return {"state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()}, "level": level, **info}

    params["level"] = ucfg.get("level")
    d = get_or_compute("related_um_finetune", params, compute, version=STUDY_VERSION)
    um = build_from_spec(traj["spec"])
    um.load_state_dict(d["state_dict"])
    um.eval()

    rows, tabs = [], []
    for stage, m in (("final", final), (f"best checkpoint (epoch {best_epoch})", models[best_epoch]), ("UM", um)):
        F = model_features(m, world, cfg["ood_sets"], device=device, train=stage != f"best checkpoint (epoch {best_epoch})")
        t = logit_scores_table(F, dets)
        for det, g in t.groupby("detector", sort=False):
            rows.append({"stage": stage, "detector": det, "mean_fpr": g.fpr.mean(), "mean_auroc": g.auroc.mean(),
                         "test_acc": _acc(F)})
        if "train" in F:
            tabs.append(ood_table(F, cfg["detectors"], model=entry.name, variant=stage))
    return {"curve": curve, "summary": pd.DataFrame(rows), "table": pd.concat(tabs, ignore_index=True),
            "level": float(d["level"]), "ascent_share": float(d["ascent_share"]), "best_epoch": best_epoch,
            "epochs": epochs, "keep": keep, "detector": main, "um_history": d["history"]}


# ------------------------------------------------------------------------------------------ SeTAR
def setar_study(world, cfg3: Mapping, cfg: Mapping, seed: int = 0, device=None, progress: bool = False) -> dict:
    """SeTAR (greedy selective low-rank approximation) on the chapter 3 entries listed in
    ``cfg["setar"]["models"]``: every detector of ``cfg["detectors"]`` on the untouched and the
    SeTAR model. Returns ``table``, ``acc``, ``ratios`` (model, layer, theta) and ``trace``."""
    from repro.studies.ch3_ninco.zoo import ZooModel, trained_zoo
    from repro.ood.related.setar import DEFAULT_CANDIDATES, apply_setar, setar_search

    scfg = cfg["setar"]
    entries = select_entries(cfg3, scfg["models"])
    zoo = trained_zoo(world, entries, seed=seed, device=device, progress=progress)
    cands = [float(c) for c in scfg.get("candidates", DEFAULT_CANDIDATES)]
    lam, top_k, pattern = float(scfg.get("lam", 0.01)), int(scfg.get("top_k", 3)), scfg.get("pattern")
    tabs, accs, ratios, traces = [], [], [], []
    for zm in zoo:
        params = {"model": fingerprint(zm.model), "id_val": fingerprint(world.id_val), "candidates": cands, "lam": lam,
                  "top_k": top_k, "pattern": pattern,
                  "transform": getattr(zm.transform, "id", None) if zm.transform is not None else None}

        def compute(zm=zm):
            _, res = setar_search(zm.model, world.id_val.x, world.id_val.y, cands, lam=lam, top_k=top_k, pattern=pattern,
                                  device=device, transform=zm.transform)
            return {"ratios": res.ratios, "trace": res.trace, "loss_before": res.loss_before, "loss_after": res.loss_after}

        d = get_or_compute("related_setar_search", params, compute, version=STUDY_VERSION)
        zs = ZooModel(f"{zm.name}+setar", apply_setar(zm.model, d["ratios"]), float("nan"), zm.entry, zm.spec, [],
                      zm.transform)
        for variant, z in (("vanilla", zm), ("SeTAR", zs)):
            F = model_features(z, world, cfg["ood_sets"], device=device)
            tabs.append(ood_table(F, cfg["detectors"], model=zm.name, arch=zm.entry.arch, variant=variant))
            accs.append({"model": zm.name, "arch": zm.entry.arch, "variant": variant, "test_acc": _acc(F),
                         "val_loss": d["loss_before"] if variant == "vanilla" else d["loss_after"]})
        ratios += [{"model": zm.name, "layer": k, "theta": v} for k, v in d["ratios"].items()]
        traces.append(d["trace"].assign(model=zm.name))
    return {"table": pd.concat(tabs, ignore_index=True), "acc": pd.DataFrame(accs), "ratios": pd.DataFrame(ratios),
            "trace": pd.concat(traces, ignore_index=True)}
