"""The OOD benchmark of chapters 3 and 4: ID train/val/test + OOD sets + unit tests, one object
for every profile, and the NINCO-style evaluation of a model zoo on it.

:func:`load_ood_benchmark` returns a :class:`repro.data.world.World` in every profile:

* ``smoke`` / ``cpu``: the generated world, ``make_world(seed, **cfg["world"])``;
* ``full``: ImageNet-1k and NINCO from image folders (paper 8.1, N-Sec. 3.1):

  - ``id_train``: a seeded per-class subset of the ImageNet-1k **train** set; all train statistics of
    the detectors (means, covariances, KNN bank, ViM subspace, ReAct threshold, KL templates) are
    fitted on it, as the paper fits on the train set (N-App. C) -- a subset because the
    images are held in memory (``benchmark.n_train_per_class``; the paper uses all 1.28M);
  - ``id_val``: further train images of the same classes, disjoint from ``id_train``;
  - ``id_test``: the ImageNet-1k **validation** set, the ID test set of the paper (all 50 images per
    class unless ``benchmark.n_test_per_class`` is set);
  - ``ood["ninco"]``: the 64 NINCO classes (y = class index);
  - ``ood["pop_<dataset>_clean"]``: the cleaned 400-image subsamples of the popular OOD sets shipped
    in the NINCO archive (no contamination flags: the archive has only the cleaned images);
  - ``ood[<name>]`` for each OpenOOD v1.5 set listed in ``benchmark.openood`` (chapter 4);
  - ``unit_tests``: the 17 unit-test folders shipped in the NINCO archive.

  Assets are located through ``data_manifests/`` (:func:`repro.data.manifests.require`: a missing
  dataset raises ``MissingAsset`` naming the manifest and ``repro data fetch NAME``). Images are
  centre-cropped once at ``benchmark.resolution``; each model resizes and normalises them with its
  own pretrained config (:class:`repro.ood.features.ResizeNormalize`). This differs from the paper's
  per-model resize+crop of the original files only by the resampling order.

:func:`benchmark_unit_tests` gives the 17 unit tests in both cases (generated from the recipes
for the generated world, the shipped images for ``full``), and :func:`evaluate_zoo` runs every
detector on every model and returns the tidy frames of chapter 3.

Config keys (``repro/profiles/ch3.yaml``): ``world`` (smoke/cpu) or ``benchmark`` (full), ``unit_tests``,
``detectors``, ``contamination``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from repro.core.config import check_profile

log = logging.getLogger("repro.studies.ch3_ninco.experiment")

__all__ = ["load_ood_benchmark", "benchmark_unit_tests", "evaluate_zoo", "ZooPlan", "plan", "train_zoo",
           "BENCHMARK_KEYS", "OPENOOD_SETS"]

BENCHMARK_KEYS = {
    "resolution": 224,        # side of the stored centre crops (pixels)
    "crop_pct": 0.875,        # resize the shorter side to resolution / crop_pct, then centre-crop
    "n_train_per_class": 50,  # ImageNet train images per class for the detectors' train statistics
    "n_val_per_class": 5,     # further train images per class (id_val)
    "n_test_per_class": None,  # ImageNet val images per class (None: all 50)
    "ninco_max_per_class": None,  # None: every NINCO image
    "popular": True,          # load the cleaned popular-dataset subsamples of the NINCO archive
    "openood": [],            # OpenOOD v1.5 sets to add (chapter 4), names from OPENOOD_SETS
    "workers": 8,             # image decoding threads
    "imagenet_manifest": "imagenet1k",
    "ninco_manifest": "ninco",
    "openood_manifest": "openood_v15_imagenet",
}
OPENOOD_SETS = ("ssb_hard", "ninco", "inaturalist", "textures", "openimage_o")


def load_ood_benchmark(cfg: dict, profile: str, seed: int):
    """The chapter's ID/OOD sets as a :class:`repro.data.world.World` (see the module docstring).

    ``cfg`` is ``repro.core.config.chapter_config("ch3", profile)``: it needs ``world`` (the arguments of
    ``make_world``) for ``smoke``/``cpu`` and ``benchmark`` (keys of :data:`BENCHMARK_KEYS`) for ``full``.
    """
    check_profile(profile)
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg must be the chapter's profile dict (repro.core.config.chapter_config('ch3', profile)), "
                        f"got {type(cfg).__name__}")
    if profile != "full":
        from repro.data.world import make_world

        if "world" not in cfg:
            raise ValueError(f"the {profile!r} profile needs a 'world' section (arguments of make_world) in ch3.yaml")
        return make_world(seed=int(seed), **cfg["world"])
    return _load_full(cfg.get("benchmark") or {}, int(seed))


def _full_settings(bcfg: dict) -> dict:
    bad = set(bcfg) - set(BENCHMARK_KEYS)
    if bad:
        raise ValueError(f"unknown key(s) {sorted(bad)} in the 'benchmark' section; allowed: {sorted(BENCHMARK_KEYS)}")
    s = {**BENCHMARK_KEYS, **bcfg}
    if int(s["resolution"]) < 8:
        raise ValueError(f"benchmark.resolution must be >= 8 pixels, got {s['resolution']}")
    for k in ("n_train_per_class", "n_val_per_class"):
        if int(s[k]) < 1:
            raise ValueError(f"benchmark.{k} must be >= 1, got {s[k]}")
    unknown = [o for o in s["openood"] if o not in OPENOOD_SETS]
    if unknown:
        raise ValueError(f"benchmark.openood has unknown set(s) {unknown}; choose from {list(OPENOOD_SETS)}")
    return s


def _split_train_val(train, n_train: int):
    """Per class: the first ``n_train`` images to id_train, the rest to id_val (load order is seeded)."""
    y = train.y
    rank = torch.zeros_like(y)
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        rank[idx] = torch.arange(len(idx))
    is_train = rank < n_train
    if not bool((~is_train).any()):
        raise ValueError("the ImageNet train folder has too few images per class for id_train + id_val")
    return train.subset(is_train, name="id_train"), train.subset(~is_train, name="id_val")


def _load_full(bcfg: dict, seed: int):
    from repro.data.imagefolder import load_imagefolder, load_ninco
    from repro.data.manifests import MissingAsset, require
    from repro.data.world import World

    s = _full_settings(bcfg)
    res, crop, workers = int(s["resolution"]), float(s["crop_pct"]), int(s["workers"])
    names = [s["imagenet_manifest"], s["ninco_manifest"]] + ([s["openood_manifest"]] if s["openood"] else [])
    found, missing = {}, []
    for name in names:  # report every missing asset at once, not one per run
        try:
            found[name] = require(name)
        except MissingAsset as e:
            missing.append(str(e))
    if missing:
        raise MissingAsset(f"the full profile needs {len(missing)} missing dataset(s):\n\n" + "\n\n".join(missing))
    imagenet, ninco_root = found[s["imagenet_manifest"]], found[s["ninco_manifest"]]
    openood_root = found.get(s["openood_manifest"])
    ninco_dir = ninco_root / "NINCO" if (ninco_root / "NINCO").is_dir() else ninco_root
    for sub in ("train", "val"):
        if not (imagenet / sub).is_dir():
            raise FileNotFoundError(f"ImageNet-1k folder {imagenet / sub} is missing; expected {imagenet}/train/<wnid>/* "
                                    f"and {imagenet}/val/<wnid>/* (see data_manifests/{s['imagenet_manifest']}.yaml)")

    n_tr, n_va = int(s["n_train_per_class"]), int(s["n_val_per_class"])
    log.info("loading ImageNet-1k train (%d + %d per class) from %s", n_tr, n_va, imagenet / "train")
    train_all = load_imagefolder(imagenet / "train", res, crop, max_per_class=n_tr + n_va, name="id_train",
                                 seed=seed, workers=workers)
    id_train, id_val = _split_train_val(train_all, n_tr)
    log.info("loading ImageNet-1k val from %s", imagenet / "val")
    id_test = load_imagefolder(imagenet / "val", res, crop, class_names=list(id_train.class_names),
                               max_per_class=s["n_test_per_class"], name="id_test", seed=seed, workers=workers)
    parts = ("ninco", "unit_tests") + (("popular",) if s["popular"] else ())
    log.info("loading NINCO (%s) from %s", ", ".join(parts), ninco_dir)
    nin = load_ninco(ninco_dir, res, crop, parts=parts, max_per_class=s["ninco_max_per_class"], workers=workers)
    ood = {"ninco": nin["ninco"]}
    for name, pop in nin.get("popular", {}).items():
        key = f"pop_{name.lower()}_clean"
        pop.name = key
        ood[key] = pop
    for name in s["openood"]:
        d = openood_root / name
        if not d.is_dir():
            raise FileNotFoundError(f"OpenOOD set {name!r} not found at {d}; expected {openood_root}/<set>/<images> "
                                    f"(see data_manifests/{s['openood_manifest']}.yaml)")
        key = "openood_ninco" if name == "ninco" else name
        ood[key] = load_imagefolder(openood_root, res, crop, class_names=[name], name=key, seed=seed, workers=workers)
    params = {k: s[k] for k in ("resolution", "crop_pct", "n_train_per_class", "n_val_per_class", "n_test_per_class",
                                "ninco_max_per_class", "popular", "openood")}
    params.update(imagenet=str(imagenet), ninco=str(ninco_dir))
    from repro.data.unit_tests import canonical_name

    # archive folder names (e.g. 'bla') -> our unit-test keys ('black'), so tables line up across profiles
    unit = {canonical_name(k): v for k, v in nin["unit_tests"].items()}
    return World(id_train, id_val, id_test, ood, seed, res, params, unit_tests=unit, source="imagefolder")


def benchmark_unit_tests(world, cfg: dict, seed: int) -> dict:
    """The 17 OOD unit tests as ``{name: uint8 [N, 3, H, W]}``: the images shipped with NINCO when the
    world has them (``full``), else generated with the paper's recipes (N-App. G) at the world's
    resolution, pixel permutations drawn from ``world.id_val`` (``cfg["unit_tests"]`` = arguments of
    ``make_unit_tests``)."""
    if getattr(world, "unit_tests", None):
        return dict(world.unit_tests)
    from repro.data.unit_tests import make_unit_tests

    return make_unit_tests(size=world.resolution, seed=int(seed), source_images=world.id_val,
                           **cfg.get("unit_tests", {}))


def evaluate_zoo(world, zoo: Sequence, unit_imgs: dict, detectors: dict, contamination: Optional[dict] = None,
                 seed: int = 0, device=None, ood_sets: Optional[Sequence[str]] = None) -> dict:
    """Chapter 3's evaluation: every detector on every zoo model (N-Sec. 3.3, N-Fig.3).

    For each model, features of the ID train/test sets, the OOD sets, the unit tests and (generated
    world only) the flagged popular-dataset analogues are extracted (cached, with the model's own
    input transform), each detector in ``detectors`` (registry name -> hyperparameters) is fitted on
    the train features, and the tidy frames are built. Returns a dict with

    ``per_class`` (:func:`repro.ood.evaluate.per_class_metrics` rows), ``summary`` (class means),
    ``units`` (unit-test verdicts), ``cleaning`` (original vs cleaned FPR per popular set),
    ``study`` (FPR vs ID fraction p), ``ood_sets`` (the evaluated set names) and ``skipped``
    (human-readable reasons for the parts this world cannot provide; never silent).

    ``ood_sets`` defaults to every OOD set of the world without contamination flags (for the generated
    world: ``ninco``, ``near``, ``far``).
    """
    from repro.ood.features import extract
    from repro.ood import evaluate as E

    if not zoo:
        raise ValueError("evaluate_zoo needs at least one zoo model")
    if not detectors:
        raise ValueError("evaluate_zoo needs at least one detector (registry name -> hyperparameters)")
    if ood_sets is None:
        # the generated world's *_clean sets only serve the cleaning comparison
        ood_sets = [k for k, v in world.ood.items()
                    if v.flags is None and not (world.source == "generated" and k.endswith("_clean"))]
    ood_sets = list(ood_sets)
    missing = [k for k in ood_sets if k not in world.ood]
    if missing:
        raise ValueError(f"OOD set(s) {missing} are not in the world; available: {sorted(world.ood)}")
    # sets with contaminated images to clean (a cleaned copy keeps its all-zero flags: nothing to compare)
    flagged = sorted(k for k, v in world.ood.items() if v.flags is not None and bool((v.flags != 0).any()))
    skipped = []
    if not flagged:
        skipped.append("cleaning effect (N-Fig.3): the OOD sets carry no per-image contamination flags "
                       f"({world.source} world); only the generated world knows which images contain ID objects")
    pool = None
    if contamination and world.source == "generated":
        pool = world.popular("study", n=contamination["pool_n"], p=contamination["pool_p"], seed=seed)
    elif contamination:
        skipped.append("contamination study (FPR vs ID fraction p): needs images with known ID content, which only "
                       "the generated world provides; the NINCO archive ships cleaned subsamples only")

    def feats(z, data):
        fn = getattr(z, "features", None)
        if callable(fn):
            return fn(data, device=device)
        return extract(z.model, data, device=device, progress=False)

    per_class, units, cleaning, study = [], [], [], []
    for z in zoo:
        F = {"train": feats(z, world.id_train), "id": feats(z, world.id_test),
             **{k: feats(z, world.ood[k]) for k in ood_sets + flagged},
             **{f"unit:{k}": feats(z, v) for k, v in unit_imgs.items()}}
        if pool is not None:
            F["pool"] = feats(z, pool)
        scores = E.score_detectors(list(detectors), F["train"], {k: v for k, v in F.items() if k != "train"},
                                   hparams=detectors)
        res = E.evaluate_model(scores, "id", {k: (F[k].labels, world.ood[k].class_names) for k in ood_sets},
                               unit_sets=[f"unit:{k}" for k in unit_imgs], model=z.name)
        per_class.append(res["per_class"])
        if not res["unit_tests"].empty:
            units.append(res["unit_tests"].assign(test=lambda d: d["test"].str[len("unit:"):]))
        for m, sc in scores.items():
            for p in flagged:
                cleaning.append(E.cleaning_effect(sc["id"], sc[p], world.ood[p].flags.numpy(), model=z.name,
                                                  method=m, set=p))
            if pool is not None:
                study.append(E.contamination_study(sc["id"], sc["pool"], pool.flags.numpy(), ps=contamination["ps"],
                                                   reps=contamination["reps"], seed=seed, model=z.name, method=m))
    per_class = pd.concat(per_class, ignore_index=True)
    return {"per_class": per_class, "summary": E.ninco_summary(per_class),
            "units": pd.concat(units, ignore_index=True) if units else pd.DataFrame(
                columns=["model", "method", "test", "fpr", "failed"]),
            "cleaning": pd.DataFrame(cleaning) if cleaning else pd.DataFrame(
                columns=["model", "method", "set", "p", "fpr_original", "fpr_cleaned", "fp_share_contaminated"]),
            "study": pd.concat(study, ignore_index=True) if study else pd.DataFrame(
                columns=["model", "method", "p", "rep", "n", "fpr_original", "fpr_cleaned"]),
            "ood_sets": ood_sets, "flagged_sets": flagged, "skipped": skipped}


def hard_class_confusions(world, zoo: Sequence, per_class: pd.DataFrame, method: str = "msp", k: int = 4,
                          dataset: str = "ninco") -> pd.DataFrame:
    """N-Fig. 4's content: the ``k`` OOD classes of ``dataset`` with the highest FPR of ``method`` (mean over the
    zoo) and, for each, the ID class the zoo predicts most often for its images (majority over every model's
    argmax; ``share`` = fraction of all (model, image) predictions that fall on it). Uses the cached logits."""
    d = per_class[(per_class.dataset == dataset) & (per_class.method == method)]
    if d.empty:
        raise ValueError(f"no per-class rows for method {method!r} on {dataset!r}; methods: "
                         f"{sorted(per_class.method.unique())}, sets: {sorted(per_class.dataset.unique())}")
    hard = d.groupby("ood_class").fpr.mean().sort_values(ascending=False, kind="stable").head(int(k))
    s = world.ood[dataset]
    votes = np.zeros((len(s.class_names), world.num_classes), dtype=np.int64)
    for z in zoo:
        f = z.features(s) if callable(getattr(z, "features", None)) else None
        if f is None:
            raise ValueError("hard_class_confusions needs zoo models with cached features (ZooModel)")
        pred = np.asarray(f.logits).argmax(1)
        np.add.at(votes, (np.asarray(s.y), pred), 1)
    id_names = list(world.id_test.class_names)
    rows = []
    for name, fpr in hard.items():
        c = list(s.class_names).index(name)
        j = int(votes[c].argmax())
        rows.append(dict(ood_class=name, mean_fpr=100 * float(fpr), confused_with=id_names[j],
                         share=100 * float(votes[c, j] / max(votes[c].sum(), 1)), images=int((s.y == c).sum())))
    return pd.DataFrame(rows)


def hard_class_gallery_images(world, confusions: pd.DataFrame, per_side: int = 4, dataset: str = "ninco"):
    """Images for N-Fig. 4: per row, ``per_side`` images of a hard OOD class, then ``per_side`` images of the ID
    class it is confused with; returns (uint8 [n, 3, H, W], titles)."""
    import torch

    s, idt = world.ood[dataset], world.id_test
    xs, titles = [], []
    for r in confusions.itertuples():
        o = torch.nonzero(s.y == list(s.class_names).index(r.ood_class)).flatten()[:per_side]
        i = torch.nonzero(idt.y == list(idt.class_names).index(r.confused_with)).flatten()[:per_side]
        xs += [s.x[o], idt.x[i]]
        titles += [f"OOD: {r.ood_class}"] * len(o) + [f"ID: {r.confused_with}"] * len(i)
    return torch.cat(xs), titles


# --------------------------------------------------------------------------- the run plan
@dataclass
class ZooPlan:
    """What chapters 3 and 4 compute before any detector runs: the world and the zoo entries to train.

    The notebook and the sweep (:mod:`repro.studies.ch3_ninco.jobs`) both start from :func:`plan`, so
    they train the same entries on the same world and hit the same cache entries.
    """

    cfg: dict
    profile: str
    seed: int
    world: object
    entries: list

    def unit_tests(self) -> dict:
        """The 17 OOD unit tests for this world (:func:`benchmark_unit_tests`)."""
        return benchmark_unit_tests(self.world, self.cfg, self.seed)


def plan(cfg: dict, profile: str, seed: int) -> ZooPlan:
    """The world (:func:`load_ood_benchmark`) and the zoo entries of ``cfg["zoo"]``."""
    from repro.studies.ch3_ninco.zoo import check_input_pipeline, zoo_entries

    entries = zoo_entries(cfg)
    if profile == "full":  # before hours of decoding: every checkpoint must get its own input pipeline
        s = _full_settings(cfg.get("benchmark") or {})
        check_input_pipeline(entries, int(s["resolution"]), float(s["crop_pct"]))
    return ZooPlan(cfg, profile, int(seed), load_ood_benchmark(cfg, profile, seed), entries)


def train_zoo(p: ZooPlan, device=None, progress: bool = True, index: Optional[int] = None) -> list:
    """Train (or load) the plan's zoo, or only entry ``index`` (a sweep job); cached per entry."""
    from repro.studies.ch3_ninco.zoo import trained_zoo

    entries = p.entries if index is None else [p.entries[int(index)]]
    return trained_zoo(p.world, entries, seed=p.seed, device=device, progress=progress)
