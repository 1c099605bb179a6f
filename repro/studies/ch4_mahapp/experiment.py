"""Chapter 4 (Mahalanobis++, Sec. 4 of the dissertation, reprinted paper "M-"): the cached computations.

The world, the zoo and the extracted features are chapter 3's (:func:`plan` builds chapter 3's
:class:`repro.studies.ch3_ninco.experiment.ZooPlan` from both chapters' profiles), so chapter 4 reads
chapter 3's cache and adds the detectors and the Gaussianity diagnostics of M-Sec. 3. The chapter has
no sweep of its own: its expensive step is chapter 3's zoo, built from the same plan.

Inputs below are the chapter's ``feats`` mapping

    feats[model] = dict(train=Features, test=Features, ood={set: Features}, unit={test: Features})

(:class:`repro.ood.features.Features`: features, logits, labels, head). Claims, verdict text and page
tables live in :mod:`repro.studies.ch4_mahapp.report`.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from repro.ood import gaussianity as G

__all__ = ["SuiteResult", "benchmark_config", "plan", "extract_zoo_features", "evaluate_suite", "ssd_plus_table",
           "gaussianity_table", "diagnostic_models", "norm_confound_by_model", "norm_score_panels",
           "norm_scaling_curves", "dataset_norm_groups", "SMALL_DIM"]

#: feature dimensions up to this use one BLAS thread in the zoo-wide loops (see :func:`_small_blas`)
SMALL_DIM = 512


@contextmanager
def _small_blas(feats: Mapping[str, dict]):
    """One BLAS thread while scoring the generated world's small models (D <= SMALL_DIM).

    Their matrices (<= 512 x 512) gain nothing from threads, and on a shared 2-core machine OpenBLAS
    threads spin-wait against other jobs: measured there, the detector suite of the smoke profile took
    23.6 s with 2 threads and 1.0 s with 1. ImageNet-sized features (full profile) keep every thread.
    """
    dims = [F["train"].features.shape[1] for F in feats.values()]
    if not dims or max(dims) > SMALL_DIM:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover - scikit-learn always brings it
        yield
        return
    with threadpool_limits(limits=1):  # BLAS and OpenMP (faiss)
        yield


def _small_blas_for_feats(fn):
    """Decorator: run ``fn(feats, ...)`` under :func:`_small_blas` (``feats`` is the first argument)."""
    import functools

    @functools.wraps(fn)
    def wrapper(feats, *args, **kwargs):
        with _small_blas(feats):
            return fn(feats, *args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- data + features
def benchmark_config(cfg3: dict, cfg4: dict) -> dict:
    """Chapter 3's profile with chapter 4's additions, for :func:`repro.studies.ch3_ninco.experiment.load_ood_benchmark`.

    Chapter 4 evaluates on chapter 3's world (same images, so the same feature cache). In ``full`` its
    ``benchmark`` keys (e.g. ``openood: [ssb_hard, ...]``, the OpenOOD v1.5 sets of M-Tab. 4) are merged
    into chapter 3's ``benchmark`` section; chapter 4's own ``zoo`` (the 44 checkpoints of M-Tab. 19)
    replaces chapter 3's.
    """
    out = dict(cfg3)
    if cfg4.get("benchmark"):
        out["benchmark"] = {**(cfg3.get("benchmark") or {}), **cfg4["benchmark"]}
    if cfg4.get("zoo"):
        out["zoo"] = cfg4["zoo"]
    return out


def extract_zoo_features(zoo, world, ood_sets: Sequence[str], unit_images: Mapping[str, object],
                         device=None) -> tuple[dict, dict]:
    """Cached features of every zoo model on ID train/test, the OOD sets ``world.ood[k]`` and the unit tests.

    Each model uses its own input transform (:meth:`repro.studies.ch3_ninco.zoo.ZooModel.features`), so chapter 3's
    feature cache is hit. Returns ``(feats, accs)`` keyed by model name (accuracy as a fraction).
    """
    missing = [k for k in ood_sets if k not in world.ood]
    if missing:
        raise ValueError(f"OOD sets {missing} are not in the world (available: {sorted(world.ood)}); "
                         "fix ood_sets in repro/profiles/ch4.yaml")
    feats, accs = {}, {}
    for zm in zoo:
        feats[zm.name] = dict(train=zm.features(world.id_train, device=device),
                              test=zm.features(world.id_test, device=device),
                              ood={k: zm.features(world.ood[k], device=device) for k in ood_sets},
                              unit={k: zm.features(v, device=device) for k, v in unit_images.items()})
        accs[zm.name] = float(zm.test_acc)
    return feats, accs


# --------------------------------------------------------------------------- the detector suite
@dataclass
class SuiteResult:
    """Output of :func:`evaluate_suite`: tidy frames plus the raw scores for the diagnostics."""

    metrics: pd.DataFrame            # model, detector, dataset, fpr (%), auroc (%)
    units: pd.DataFrame              # model, detector, test, fpr, failed
    ninco_summary: pd.DataFrame      # model, detector, mean_fpr (over OOD classes), ...
    scores: dict = field(default_factory=dict)   # (model, detector, set) -> scores; set "id" = ID test

    def score(self, model: str, detector: str, dataset: str) -> np.ndarray:
        key = (model, detector, dataset)
        if key not in self.scores:
            raise KeyError(f"no scores for {key}; detectors evaluated: "
                           f"{sorted({k[1] for k in self.scores})}")
        return self.scores[key]


def evaluate_suite(feats: Mapping[str, dict], detectors: Mapping[str, dict], ood_sets: Sequence[str],
                   ninco_set: str = "ninco", ninco_class_names: Optional[Sequence[str]] = None,
                   unit_fail_fpr: float = 0.10) -> SuiteResult:
    """Fit every detector on each model's ID train features and score ID test, OOD sets and unit tests.

    FPR@95%TPR with the dissertation's convention (N-App. D), AUROC (ties 1/2); the NINCO analogue also
    per OOD class (:func:`repro.ood.evaluate.per_class_metrics`); a unit test fails when its FPR
    exceeds ``unit_fail_fpr`` (N-Sec. 3.2).
    """
    ood_sets = list(ood_sets)
    if ninco_set not in ood_sets:
        raise ValueError(f"ninco_set {ninco_set!r} must be one of the evaluated OOD sets {ood_sets}")
    with _small_blas(feats):
        return _evaluate_suite(feats, detectors, ood_sets, ninco_set, ninco_class_names, unit_fail_fpr)


def _evaluate_suite(feats, detectors, ood_sets, ninco_set, ninco_class_names, unit_fail_fpr) -> SuiteResult:
    from repro.ood.evaluate import ninco_summary, per_class_metrics, score_detectors, unit_test_verdicts
    from repro.ood.metrics import auroc, fpr_at_95tpr

    rows, unit_frames, ninco_frames, scores = [], [], [], {}
    for name, F in feats.items():
        missing = [k for k in ood_sets if k not in F["ood"]]
        if missing:
            raise ValueError(f"model {name}: no features for OOD set(s) {missing} (have {sorted(F['ood'])})")
        sets = {"id": F["test"], **{k: F["ood"][k] for k in ood_sets},
                **{f"unit:{k}": U for k, U in F.get("unit", {}).items()}}
        sc = score_detectors(list(detectors), F["train"], sets, hparams=dict(detectors))
        for det, d in sc.items():
            for k, v in d.items():
                scores[(name, det, k)] = v
            for ood in ood_sets:
                rows.append(dict(model=name, detector=det, dataset=ood, fpr=100 * fpr_at_95tpr(d["id"], d[ood]),
                                 auroc=100 * auroc(d["id"], d[ood])))
            ninco_frames.append(per_class_metrics(d["id"], d[ninco_set], F["ood"][ninco_set].labels,
                                                  ninco_class_names, dataset=ninco_set, model=name, method=det))
            unit = {k[5:]: v for k, v in d.items() if k.startswith("unit:")}
            if unit:
                unit_frames.append(unit_test_verdicts(d["id"], unit, threshold=unit_fail_fpr, model=name,
                                                      method=det))
    units = (pd.concat(unit_frames, ignore_index=True).rename(columns={"method": "detector"}) if unit_frames
             else pd.DataFrame(columns=["model", "detector", "test", "fpr", "failed"]))
    nsum = ninco_summary(pd.concat(ninco_frames, ignore_index=True)).rename(columns={"method": "detector"})
    return SuiteResult(pd.DataFrame(rows), units, nsum, scores)


#: the normalised detectors of M-Tab. 4 and the detector each one normalises
MAHA_PAIRS = (("maha", "maha_pp"), ("rmaha", "rmaha_pp"))


def maha_pp_deltas(suite: SuiteResult, models: Sequence[str], ood_sets: Sequence[str],
                   pairs: Sequence[tuple[str, str]] = MAHA_PAIRS, n_boot: int = 2000, level: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """Per model, the change of the average FPR@95 (points, over ``ood_sets``) from each detector to its
    normalised version, with a paired percentile bootstrap interval over the test images
    (:func:`repro.ood.uncertainty.paired_fpr_bootstrap`): columns ``<pp>``, ``<pp>_lo``, ``<pp>_hi`` per pair.
    A model counts as better (worse) under Maha++ only when the whole interval is below (above) zero."""
    from repro.ood.uncertainty import paired_fpr_bootstrap

    rows = []
    for m in models:
        row = {"model": m}
        for base, pp in pairs:
            r = paired_fpr_bootstrap(suite.score(m, base, "id"), {k: suite.score(m, base, k) for k in ood_sets},
                                     suite.score(m, pp, "id"), {k: suite.score(m, pp, k) for k in ood_sets},
                                     n_boot=n_boot, level=level, seed=seed)
            row.update({pp: 100 * r["delta"], f"{pp}_lo": 100 * r["lo"], f"{pp}_hi": 100 * r["hi"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


@_small_blas_for_feats
def ssd_plus_table(feats: Mapping[str, dict], ninco_pooled: pd.DataFrame, clusters: Sequence[int], seed: int = 0,
                   ninco_set: str = "ninco") -> pd.DataFrame:
    """NINCO-analogue FPR (%) of Maha++ vs SSD+ scoring with k clusters, per model (M-Tab. 18).

    SSD+ in the paper is a SupCon-trained ResNet-50; here its scoring is applied post hoc to every model.
    """
    from repro.ood.detectors import get_detector
    from repro.ood.metrics import fpr_at_95tpr

    rows = []
    for name, F in feats.items():
        tr, te, o = F["train"], F["test"], F["ood"][ninco_set]
        row = dict(model=name, maha_pp=float(ninco_pooled.loc[name, "maha_pp"]))
        for k in clusters:
            det = get_detector("ssd_plus", n_clusters=int(k), seed=seed).fit(tr.features, tr.logits, tr.labels, tr.head)
            row[f"ssd_plus_k{k}"] = 100 * fpr_at_95tpr(det.score(te.features), det.score(o.features))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


# --------------------------------------------------------------------------- Gaussianity diagnostics
@_small_blas_for_feats
def gaussianity_table(feats: Mapping[str, dict], accs: Mapping[str, float], suite: SuiteResult,
                      n_qq_random: int = 1, n_per_class=None, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Per-model Gaussianity diagnostics on the ID train features, raw and l2-normalised (paper Sec. 3).

    Columns: ``deviation_raw/l2`` (Eq. 5 mean over classes, M-Tab. 7), ``kurtosis_raw/l2`` (mean excess
    kurtosis of standardised class-centred projections, the scalar of the QQ plots), ``norm_cv`` /
    ``norm_within_ratio`` / ``norm_across_ratio`` (real vs fitted-Gaussian norm spread, Fig. 4.1),
    ``lemma_sd_ratio`` (observed / Lemma 3.1 sd of ||phi||^2, median over classes),
    ``rejected_classes_maha/_pp`` (distinct ID classes rejected at 95 % TPR, M-Sec. 4).
    Returns ``(table, {model: Lemma 3.1 per-class table})``.
    """
    rows, lemma = [], {}
    for name, F in feats.items():
        f, y = F["train"].features.astype(np.float64), F["train"].labels
        row = dict(model=name, test_acc=100 * accs[name])
        for norm, tag in ((False, "raw"), (True, "l2")):
            row[f"deviation_{tag}"] = G.deviation_score(f, y, normalize=norm)[0]
            dirs = G.qq_directions(G.fit_class_gaussians(f, y, normalize=norm), n_random=n_qq_random, seed=seed)
            row[f"kurtosis_{tag}"] = float(np.mean(list(G.projection_kurtosis(f, y, dirs, normalize=norm).values())))
        spread = G.norm_spread_summary(G.norm_comparison(f, y, n_per_class=n_per_class, seed=seed))
        row.update(norm_cv=spread["within_real"], norm_within_ratio=spread["within_ratio"],
                   norm_across_ratio=spread["across_ratio"])
        lemma[name] = G.lemma31_table(f, y)
        row["lemma_sd_ratio"] = float(lemma[name].sd_ratio.median())
        for det in ("maha", "maha_pp"):
            rc = G.rejected_classes(suite.score(name, det, "id"), F["test"].labels)
            row[f"rejected_classes_{det}"] = rc["rejected_classes"]
        row.update(rejected_expected_uniform=rc["expected_uniform"], n_classes=rc["n_classes"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("model"), lemma


def diagnostic_models(avg: pd.DataFrame, n: int) -> list[str]:
    """The models shown in per-model figures: largest and smallest Maha -> Maha++ gain first, then the
    next largest gains, ``n`` in all (tables always cover every model)."""
    a = avg.drop(index="Average", errors="ignore")
    order = list((a.maha - a.maha_pp).sort_values(ascending=False, kind="stable").index)
    show = list(dict.fromkeys([order[0], order[-1]] + order[1:-1]))
    return show[:max(int(n), 1)]


def _softmax_max(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(1, keepdims=True)).max(1)


def norm_confound_by_model(feats: Mapping[str, dict], suite: SuiteResult, ood_set: str = "ninco",
                           detectors: Sequence[str] = ("maha", "maha_pp", "msp")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spearman correlation of the feature norm with each detector's score (ID test + ``ood_set`` pooled),
    with the MSP confidence (ID) and the AUROC of the norm for correct vs wrong ID predictions
    (Fig. 4.3, M-Fig. 5, 7). Returns ``(long table, model x quantity table)``."""
    frames = []
    for name, F in feats.items():
        te, o = F["test"], F["ood"][ood_set]
        sc = {d: (suite.score(name, d, "id"), suite.score(name, d, ood_set)) for d in detectors}
        tab = G.norm_confound_table(G.feature_norms(te.features), G.feature_norms(o.features), sc,
                                    confidence_id=_softmax_max(te.logits),
                                    correct_id=te.logits.argmax(1) == te.labels)
        frames.append(tab.assign(model=name))
    long = pd.concat(frames, ignore_index=True)
    pooled = long.pivot(index="model", columns="quantity", values="pooled")[[f"score: {d}" for d in detectors]]
    idcol = long.pivot(index="model", columns="quantity", values="id")[["confidence (MSP)",
                                                                         "correctness (AUROC of norm)"]]
    return long, pooled.join(idcol)


def norm_score_panels(name: str, F: dict, suite: SuiteResult, ood_set: str = "ninco") -> dict:
    """Panels for :func:`repro.plots.gaussianity.norm_vs_score`: norm vs min_c distance (= -score) of ID test
    and OOD samples, Maha and Maha++, with the 95 % TPR threshold (Fig. 4.3 / M-Fig. 5, 7)."""
    te, o = F["test"], F["ood"][ood_set]
    panels = {}
    for det, title in (("maha", "Mahalanobis"), ("maha_pp", "Mahalanobis++")):
        s_id, s_ood = suite.score(name, det, "id"), suite.score(name, det, ood_set)
        panels[f"{name}: {title}"] = dict(norm_id=G.feature_norms(te.features), dist_id=-s_id,
                                          norm_ood=G.feature_norms(o.features), dist_ood=-s_ood,
                                          threshold=-np.quantile(s_id, 0.05))
    return panels


@_small_blas_for_feats
def norm_scaling_curves(feats: Mapping[str, dict], models: Sequence[str], alphas: Sequence[float],
                        ood_set: str = "ninco") -> tuple[dict, pd.DataFrame]:
    """FPR of Mahalanobis when the OOD features are scaled by alpha (M-Fig. 6), for each of ``models``.
    Returns ``({label: frame(alpha, fpr)}, long frame with a model column)``."""
    from repro.ood.detectors import get_detector

    curves = {}
    for name in models:
        F = feats[name]
        tr = F["train"]
        det = get_detector("maha").fit(tr.features, tr.logits, tr.labels, tr.head)
        curves[f"{name} (Maha)"] = G.norm_scaling_fpr(det, F["test"].features, F["ood"][ood_set].features, alphas)
    return curves, pd.concat([c.assign(model=k) for k, c in curves.items()], ignore_index=True)


def dataset_norm_groups(F: dict, ood_sets: Sequence[str]) -> dict:
    """Feature norms per dataset for one model (M-Fig. 10): ID test, every OOD set, all unit tests."""
    dn = {"ID test": G.feature_norms(F["test"].features)}
    dn.update({f"OOD: {k}": G.feature_norms(F["ood"][k].features) for k in ood_sets})
    if F.get("unit"):
        dn[f"unit tests (all {len(F['unit'])})"] = np.concatenate([G.feature_norms(U.features)
                                                                   for U in F["unit"].values()])
    return dn




# --------------------------------------------------------------------------- the run plan
def plan(cfg4: dict, profile: str, seed: int):
    """Chapter 3's plan (world + zoo entries) for chapter 4's profile: chapter 3's section of the same
    profile with chapter 4's additions (:func:`benchmark_config`). Chapter 4 has no sweep: its zoo is
    chapter 3's (``repro sweep ch3``)."""
    from repro.core.config import chapter_config
    from repro.studies.ch3_ninco.experiment import plan as ch3_plan

    return ch3_plan(benchmark_config(chapter_config("ch3", profile), cfg4), profile, seed)


def models_by_norm_variation(diag: pd.DataFrame, n: int, min_cv: float = 0.01) -> list[str]:
    """The models shown in the norm/QQ figures: those whose pre-logit norms vary (within-class norm CV
    above ``min_cv``), largest CV first, ``n`` in all; a model with constant norms (LayerNorm outputs) shows
    nothing there (the raw curve hides under the normalised one). Falls back to the largest CVs if none vary."""
    order = diag["norm_cv"].sort_values(ascending=False, kind="stable")
    varied = list(order.index[order > min_cv])
    return (varied or list(order.index))[:max(int(n), 1)]
