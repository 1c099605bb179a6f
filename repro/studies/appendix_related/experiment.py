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

__all__ = ["select_entries", "l2_study", "unleashing_study", "setar_study", "logit_scores_table", "ood_halves",
           "checkpoint_selection", "benchmark_sizes"]

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


def benchmark_sizes(world, ood_sets) -> pd.DataFrame:
    """Images per set of the benchmark the appendix uses (ID splits and the listed OOD sets)."""
    sets = {"id_train": world.id_train, "id_val": world.id_val, "id_test": world.id_test,
            **{k: world.ood[k] for k in ood_sets}}
    return pd.DataFrame([dict(set=k, images=len(v)) for k, v in sets.items()])


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


def ood_halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (selection, evaluation) index halves of an OOD set of ``n`` images (a fixed random split)."""
    perm = np.random.default_rng(int(seed)).permutation(int(n))
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def _mean_fpr(sid, sood: Mapping, idx: Mapping | None = None) -> float:
    from repro.ood.metrics import fpr_at_95tpr

    return float(np.mean([100 * fpr_at_95tpr(sid, v if idx is None else v[idx[k]]) for k, v in sood.items()]))


def checkpoint_selection(scores: Mapping, seed: int = 0, n_boot: int = 200) -> dict:
    """Pick the "best" checkpoint without looking at the images it is judged on.

    ``scores``: ``{epoch: {"val": ID validation scores, "test": ID test scores, "ood": {set: scores}}}``
    (higher = more ID). Each OOD set is split once into a selection and an evaluation half
    (:func:`ood_halves`); the best epoch is the argmin of the mean FPR95 of (ID validation, selection
    halves), and the final-vs-best gap is measured on (ID test, evaluation halves), with a paired
    bootstrap over those images (``n_boot`` resamples) for its 99 % interval (a false "better checkpoint"
    under pure noise then needs a 1-in-200 draw). Choosing the epoch on the
    very sets it is judged on would pass "an intermediate checkpoint is better" under pure noise
    (the minimum of noisy curves lies below the last point).

    Returns ``best_epoch``, ``last_epoch``, ``gap_select`` (final − best on the selection data: the
    in-sample gap, biased), ``gap_eval``, ``ci_low``, ``ci_high``, ``fpr_final_eval``, ``fpr_best_eval``
    and ``curve`` (epoch, split, fpr)."""
    epochs = sorted(scores)
    if not epochs:
        raise ValueError("checkpoint_selection needs at least one checkpoint")
    last = epochs[-1]
    sets = list(scores[last]["ood"])
    halves = {k: ood_halves(len(scores[last]["ood"][k]), seed + i) for i, k in enumerate(sets)}
    sel = {k: h[0] for k, h in halves.items()}
    ev = {k: h[1] for k, h in halves.items()}
    rows = []
    for ep in epochs:
        sc = scores[ep]
        rows.append({"epoch": ep, "split": "selection", "fpr": _mean_fpr(sc["val"], sc["ood"], sel)})
        rows.append({"epoch": ep, "split": "evaluation", "fpr": _mean_fpr(sc["test"], sc["ood"], ev)})
    curve = pd.DataFrame(rows)
    cs = curve[curve.split == "selection"].set_index("epoch").fpr
    ce = curve[curve.split == "evaluation"].set_index("epoch").fpr
    if cs.isna().all():
        raise ValueError("checkpoint_selection: every checkpoint has a NaN FPR on the selection data")
    best = int(cs.idxmin())
    gap_eval = float(ce[last] - ce[best])
    lo = hi = float("nan")
    if best != last and n_boot > 0:
        rng = np.random.default_rng(int(seed) + 12345)
        f, b = scores[last], scores[best]
        n_id = len(f["test"])
        diffs = []
        for _ in range(int(n_boot)):
            i_id = rng.integers(0, n_id, n_id)
            idx = {k: ev[k][rng.integers(0, len(ev[k]), len(ev[k]))] for k in sets}
            diffs.append(_mean_fpr(np.asarray(f["test"])[i_id], f["ood"], idx)
                         - _mean_fpr(np.asarray(b["test"])[i_id], b["ood"], idx))
        lo, hi = (float(v) for v in np.percentile(diffs, [0.5, 99.5]))
    elif best == last:
        lo = hi = 0.0
    return {"best_epoch": best, "last_epoch": int(last), "gap_select": float(cs[last] - cs[best]), "gap_eval": gap_eval,
            "ci_low": lo, "ci_high": hi, "fpr_final_eval": float(ce[last]), "fpr_best_eval": float(ce[best]),
            "curve": curve}


def unleashing_study(world, cfg: Mapping, seed: int = 0, device=None, progress: bool = False) -> dict:
    """Unleashing Mask on one model trained for ``cfg["unleashing"]["model"]["epochs"]`` epochs.

    1. Checkpoint curve: logit-based detectors (``curve_detectors``, the paper uses Energy) on every
       checkpoint; ID test accuracy and training loss beside them. The "best" checkpoint is chosen on
       held-out data (:func:`checkpoint_selection`), not on the images it is judged on.
    2. UM: the loss level from random masks keeping ``keep`` of each layer (Eq. 3, App. F), then the
       fine-tuning of the final model with that level.

    Returns ``curve``, ``summary`` (final / best checkpoint / UM, per detector: mean FPR over OOD
    sets, test accuracy), ``table`` (every detector of ``cfg["detectors"]`` on final and UM),
    ``selection`` (:func:`checkpoint_selection` for the main detector), ``level``, ``ascent_share``,
    ``best_epoch``, ``epochs``."""
    from repro.models import build_from_spec
    from repro.ood.detectors import get_detector
    from repro.studies.appendix_related.harness import _feats
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
    curves, models, scores = [], {}, {}
    det_main = get_detector(main)
    det_main.fit(None, None)
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
        val = _feats(m, world.id_val, device)
        scores[ep] = {"val": det_main.score(None, val.logits), "test": det_main.score(None, F["test"].logits),
                      "ood": {k: det_main.score(None, v.logits) for k, v in F["ood"].items()}}
    curve = pd.concat(curves, ignore_index=True)
    epochs = int(max(models))
    final = models[epochs]
    selection = checkpoint_selection(scores, seed=int(seed), n_boot=int(ucfg.get("n_boot", 200)))
    best_epoch = selection["best_epoch"]
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
            "selection": selection,
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

L2_VERSION = "1"  # extra cache salt; the key also carries the code fingerprint


def train_l2_model(world, entry, seed: int = 0, scale: float = 1.0, device=None, progress: bool = True):
    """Train ``entry`` (a from-scratch :class:`repro.studies.ch3_ninco.zoo.ZooEntry`) with ℓ2-normalised features on
    ``world.id_train``.

    Same recipe, seed and training loop (:func:`repro.train.loop.train_classifier`) as the
    conventional zoo model, so the pair differs only by the two lines of Eq. 6. Haas et al. train
    from scratch (their App. A.1), so ``pretrained`` entries are refused. Cached under (ID
    train/test images, entry, seed, scale). Returns a :class:`repro.studies.ch3_ninco.zoo.ZooModel`.
    """
    from repro.models import build_from_spec, model_spec
    from repro.ood.related.l2_training import L2NormalizedNet
    from repro.train.loop import evaluate, train_classifier
    from repro.studies.ch3_ninco.zoo import _RECIPE_KEYS, ZooModel, _entry_params

    if entry.pretrained:
        raise ValueError(f"zoo entry {entry.name!r} is pretrained; l2-normalised training (Haas et al.) trains from "
                         "scratch: list from-scratch entries under l2.models in repro/profiles/appendix.yaml")
    nc = world.num_classes
    spec = model_spec(entry.arch, nc, **entry.model_kwargs)

    def compute():
        torch.manual_seed(int(seed))
        model = L2NormalizedNet(build_from_spec(spec), scale=scale)
        recipe = {k: getattr(entry, k) for k in _RECIPE_KEYS}
        hist = train_classifier(model, world.id_train.x, world.id_train.y, seed=int(seed), device=device,
                                progress=progress, desc=f"{entry.name}+l2", **recipe)["history"]
        acc = evaluate(model, world.id_test.x, world.id_test.y, device=device)["accuracy"]
        sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return {"state_dict": sd, "spec": spec, "test_acc": float(acc), "history": hist}

    params = {"id_train": fingerprint(world.id_train), "id_test": fingerprint(world.id_test),
              "entry": _entry_params(entry), "seed": int(seed), "scale": float(scale)}
    d = get_or_compute("related_l2_model", params, compute, version=L2_VERSION)
    model = L2NormalizedNet(build_from_spec(d["spec"]), scale=scale)
    model.load_state_dict(d["state_dict"])
    model.eval()
    return ZooModel(f"{entry.name}+l2", model, d["test_acc"], entry, d["spec"], d["history"])
