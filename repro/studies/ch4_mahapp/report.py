"""Chapter 4 (Mahalanobis++, paper 8.2): the zoo-wide evaluation, the per-model diagnostics and
the "paper vs reproduced" table, as functions of arrays and frames.

The notebook ``ch4_mahalanobis_pp`` only calls these. Inputs are the chapter's ``feats`` mapping

    feats[model] = dict(train=Features, test=Features, ood={set: Features}, unit={test: Features})

(:class:`repro.ood.features.Features`: features, logits, labels, head) and the tables built from it.
Nothing here contains a reproduced number: every verdict is computed from its inputs with the rule
written next to the claim, and the paper side is read from ``repro/reference/tables``.

Paper tables used (dissertation line numbers in the notes, ``ch3_ch4_ood.md`` §5-8):
``mpp_T4`` (44-model OpenOOD average FPR, L2404-2423), ``mpp_T6`` (NINCO FPR), ``mpp_T7``
(variance deviation, Eq. 5), ``mpp_T17`` (unit tests failed).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from repro.reference import claims_frame, load_paper_table, verdict_from
from repro.ood import gaussianity as G

__all__ = ["PAPER_COL", "SuiteResult", "benchmark_config", "extract_zoo_features", "zoo_table", "evaluate_suite",
           "fpr_average_table", "auroc_average_table", "ninco_tables", "unit_fail_table", "ssd_plus_table",
           "gaussianity_table", "diagnostic_models", "norm_confound_by_model", "norm_score_panels",
           "norm_scaling_curves", "scaling_endpoints", "dataset_norm_groups", "paper_model_comparison",
           "mahapp_summary", "mahapp_claims", "verdict_text", "NEAR_BEST_POINTS"]

#: paper column names of M-Tab. 4 / M-Tab. 6 for the registry names
PAPER_COL = {"msp": "MSP", "energy": "E", "react": "E+R", "maxlogit": "ML", "vim": "ViM", "ash_s": "AshS",
             "knn": "KNN", "nnguide": "NGG", "neco": "NEC", "gmn": "GMN", "gen": "GEN", "fdbd": "fDBD",
             "maha": "Maha", "maha_pp": "Maha++", "rmaha": "rMaha", "rmaha_pp": "rMaha++"}

#: "near-best": Maha++ within this many FPR points of the row minimum
NEAR_BEST_POINTS = 2.0

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


def zoo_table(zoo, feats: Mapping[str, dict]) -> pd.DataFrame:
    """One row per zoo model: name, architecture, recipe, feature dimension, ID test accuracy (%)."""
    return pd.DataFrame([dict(model=zm.name, arch=zm.entry.arch, recipe=zm.entry.recipe,
                              feature_dim=feats[zm.name]["train"].features.shape[1],
                              test_acc=round(100 * zm.test_acc, 1)) for zm in zoo])


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

    FPR@95%TPR with the dissertation's convention (L1609), AUROC (ties 1/2); the NINCO analogue also
    per OOD class (:func:`repro.ood.evaluate.per_class_metrics`); a unit test fails when its FPR
    exceeds ``unit_fail_fpr`` (L1198).
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


def _with_average(t: pd.DataFrame) -> pd.DataFrame:
    t = t.copy()
    t.loc["Average"] = t.mean()
    return t


def fpr_average_table(metrics: pd.DataFrame, accs: Mapping[str, float], detectors: Sequence[str],
                      ood_sets: Sequence[str]) -> pd.DataFrame:
    """model x detector FPR (%) averaged over the OOD sets (unweighted, as M-Tab. 4), a ``test acc``
    column (%) first and an ``Average`` row last."""
    m = metrics[metrics.dataset.isin(list(ood_sets))]
    avg = m.groupby(["model", "detector"]).fpr.mean().unstack()[list(detectors)]
    avg.insert(0, "test acc", [100 * accs[i] for i in avg.index])
    return _with_average(avg)


def auroc_average_table(metrics: pd.DataFrame, detectors: Sequence[str], ood_sets: Sequence[str]) -> pd.DataFrame:
    """model x detector AUROC (%) averaged over the OOD sets (analogue of M-Tab. 10), ``Average`` row."""
    m = metrics[metrics.dataset.isin(list(ood_sets))]
    return _with_average(m.groupby(["model", "detector"]).auroc.mean().unstack()[list(detectors)])


def ninco_tables(metrics: pd.DataFrame, ninco_sum: pd.DataFrame, detectors: Sequence[str],
                 ninco_set: str = "ninco") -> tuple[pd.DataFrame, pd.DataFrame]:
    """NINCO-analogue FPR (%): pooled over all OOD images, and the mean over OOD classes (M-Tab. 6
    does not say which one it reports; notes §2). Both model x detector with an ``Average`` row."""
    pooled = metrics[metrics.dataset == ninco_set].pivot(index="model", columns="detector", values="fpr")
    class_mean = 100 * ninco_sum.pivot(index="model", columns="detector", values="mean_fpr")
    return _with_average(pooled[list(detectors)]), _with_average(class_mean[list(detectors)])


def unit_fail_table(units: pd.DataFrame, detectors: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """Unit tests failed per model x detector (M-Tab. 17), ``Average`` row, and the number of tests."""
    if units.empty:
        return pd.DataFrame(columns=list(detectors)), 0
    fails = units.groupby(["model", "detector"]).failed.sum().unstack().astype(float)[list(detectors)]
    return _with_average(fails), int(units.test.nunique())


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
    ``rejected_classes_maha/_pp`` (distinct ID classes rejected at 95 % TPR, L2390).
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


def scaling_endpoints(scaling: pd.DataFrame, hi: float = 2.0, lo: float = 0.5) -> dict:
    """model -> (FPR at alpha = hi, FPR at alpha = lo), as fractions, from :func:`norm_scaling_curves`'
    long frame (NaN when that alpha was not run)."""
    out = {}
    for model, d in scaling.groupby("model", sort=False):
        s = d.set_index("alpha").fpr
        out[model] = (float(s.get(hi, np.nan)), float(s.get(lo, np.nan)))
    return out


def dataset_norm_groups(F: dict, ood_sets: Sequence[str]) -> dict:
    """Feature norms per dataset for one model (M-Fig. 10): ID test, every OOD set, all unit tests."""
    dn = {"ID test": G.feature_norms(F["test"].features)}
    dn.update({f"OOD: {k}": G.feature_norms(F["ood"][k].features) for k in ood_sets})
    if F.get("unit"):
        dn[f"unit tests (all {len(F['unit'])})"] = np.concatenate([G.feature_norms(U.features)
                                                                   for U in F["unit"].values()])
    return dn


def paper_model_comparison(avg: pd.DataFrame, ninco: pd.DataFrame) -> pd.DataFrame:
    """Per-model Maha / Maha++ FPR, ours next to M-Tab. 4 (OpenOOD average) and M-Tab. 6 (NINCO), for the
    models whose names match the paper's (the ``full`` profile uses the paper's names). Empty otherwise."""
    t4 = load_paper_table("mpp_T4_openood_avg_fpr_44models").set_index("Model")
    t6 = load_paper_table("mpp_T6_ninco_fpr_44models").set_index("Model")
    common = [m for m in avg.index if m != "Average" and m in t4.index]
    rows = []
    for m in common:
        rows.append(dict(model=m, paper_maha=t4.loc[m, "Maha"], ours_maha=avg.loc[m, "maha"],
                         paper_maha_pp=t4.loc[m, "Maha++"], ours_maha_pp=avg.loc[m, "maha_pp"],
                         paper_ninco_maha_pp=t6.loc[m, "Maha++"] if m in t6.index else np.nan,
                         ours_ninco_maha_pp=ninco.loc[m, "maha_pp"] if m in ninco.index else np.nan))
    return pd.DataFrame(rows, columns=["model", "paper_maha", "ours_maha", "paper_maha_pp", "ours_maha_pp",
                                       "paper_ninco_maha_pp", "ours_ninco_maha_pp"])


# --------------------------------------------------------------------------- claims
def _almost_all(k: int, n: int) -> bool:
    # "all but one" only means something with several models
    return k == n or (n >= 5 and k >= n - 1)


def _frac(k: int, n: int) -> str:
    return f"{k}/{n}"


def mahapp_summary(avg: pd.DataFrame, ninco: pd.DataFrame, fails: pd.DataFrame, diag: pd.DataFrame,
                   conf_table: pd.DataFrame, detectors: Sequence[str]) -> dict:
    """The scalars the claims and the verdict text are built from (ours and the paper's)."""
    t4 = load_paper_table("mpp_T4_openood_avg_fpr_44models")
    t4m = t4[t4.Model != "Average"]
    methods_t4 = [c for c in t4.columns if c not in ("Model", "Val Acc")]
    A = avg.drop(index="Average", errors="ignore")
    N = ninco.drop(index="Average", errors="ignore")
    dets = [d for d in detectors if d in A.columns]
    n = len(A)
    if n == 0:
        raise ValueError("mahapp_summary needs at least one model row in the FPR table")
    s = dict(
        n_models=n,
        maha=float(A.maha.mean()), maha_pp=float(A.maha_pp.mean()),
        rmaha=float(A.rmaha.mean()) if "rmaha" in A else np.nan,
        rmaha_pp=float(A.rmaha_pp.mean()) if "rmaha_pp" in A else np.nan,
        improved=int((A.maha_pp < A.maha).sum()),
        r_improved=int((A.rmaha_pp < A.rmaha).sum()) if {"rmaha", "rmaha_pp"} <= set(A.columns) else 0,
        best=int((A[dets].idxmin(axis=1) == "maha_pp").sum()),
        near=int(((A.maha_pp - A[dets].min(axis=1)) <= NEAR_BEST_POINTS).sum()),
        ninco_maha=float(N.maha.mean()), ninco_maha_pp=float(N.maha_pp.mean()),
        paper_n=len(t4m),
        paper_maha=float(t4m.Maha.mean()), paper_maha_pp=float(t4m["Maha++"].mean()),
        paper_rmaha=float(t4m.rMaha.mean()), paper_rmaha_pp=float(t4m["rMaha++"].mean()),
        paper_improved=int((t4m["Maha++"] < t4m.Maha).sum()),
        paper_r_improved=int((t4m["rMaha++"] < t4m.rMaha).sum()),
        paper_best=int((t4m[methods_t4].idxmin(axis=1) == "Maha++").sum()),
    )
    fl = fails.drop(index="Average", errors="ignore")
    s["unit_maha"] = float(fl.maha.mean()) if len(fl) else np.nan
    s["unit_maha_pp"] = float(fl.maha_pp.mean()) if len(fl) else np.nan
    s["dev_drop"] = int((diag.deviation_l2 < diag.deviation_raw).sum())
    s["kurt_drop"] = int((diag.kurtosis_l2 < diag.kurtosis_raw).sum())
    s["conf_drop"] = int((conf_table["score: maha_pp"].abs() < conf_table["score: maha"].abs()).sum())
    # a model whose Maha already rejects samples of every class cannot show "more classes": only the others count
    room = diag.rejected_classes_maha < diag.n_classes
    s["rej_testable"] = int(room.sum())
    s["rej_up"] = int((diag.rejected_classes_maha_pp > diag.rejected_classes_maha)[room].sum())
    s["rej_saturated"] = s["rej_testable"] == 0
    return s


def mahapp_claims(avg: pd.DataFrame, ninco: pd.DataFrame, fails: pd.DataFrame, n_tests: int, diag: pd.DataFrame,
                  conf_table: pd.DataFrame, scaling: pd.DataFrame, detectors: Sequence[str]) -> pd.DataFrame:
    """The chapter's "claim | paper | reproduced | verdict" table (built with :func:`claims_frame`).

    ``avg``/``ninco``/``fails``: model x detector tables with an ``Average`` row (:func:`fpr_average_table`,
    :func:`ninco_tables` pooled, :func:`unit_fail_table`); ``diag``: :func:`gaussianity_table`;
    ``conf_table``: :func:`norm_confound_by_model`; ``scaling``: :func:`norm_scaling_curves` long frame.
    Verdict rules are stated in each row's code; "most" means more than half of the models.
    """
    s = mahapp_summary(avg, ninco, fails, diag, conf_table, detectors)
    n = s["n_models"]
    t6 = load_paper_table("mpp_T6_ninco_fpr_44models")
    t6m = t6[t6.Model != "Average"].set_index("Model")
    t17 = load_paper_table("mpp_T17_unit_tests_failed_all")
    t7 = load_paper_table("mpp_T7_variance_deviation_more_models").drop_duplicates()
    ends = scaling_endpoints(scaling)
    dv = diag

    if n_tests == 0 or np.isnan(s["unit_maha"]):
        unit_verdict, unit_rep = verdict_from(None), "no unit tests evaluated"
    else:
        unit_rep = f"{s['unit_maha']:.2f} -> {s['unit_maha_pp']:.2f} of {n_tests} ({n} models)"
        # neither fails any test: nothing to improve, the claim cannot be tested here
        unit_verdict = (verdict_from(None) if s["unit_maha"] == 0 and s["unit_maha_pp"] == 0
                        else verdict_from(s["unit_maha_pp"] < s["unit_maha"]))

    if ends:
        scal_rep = "; ".join(f"{k}: {100 * v[0]:.0f} % at 2, {100 * v[1]:.0f} % at 0.5" for k, v in ends.items())
        # FPRs are fractions here; "0" and "all" allow one percent of slack
        scal_verdict = verdict_from(all(v[0] <= 0.01 and v[1] >= 0.99 for v in ends.values()),
                                    partly=all(v[0] < v[1] for v in ends.values()))
    else:
        scal_rep, scal_verdict = "not run", verdict_from(None)

    sota = "ConvNeXtV2-L-In21k"
    N = ninco.drop(index="Average", errors="ignore")
    if sota in N.index:
        ours_sota = float(N.loc[sota, "maha_pp"])
        sota_rep = f"{ours_sota:.1f} (pooled NINCO FPR of {sota} + Maha++)"
        sota_verdict = verdict_from(abs(ours_sota - float(t6m.loc[sota, "Maha++"])) <= 3.0,
                                    partly=ours_sota <= float(N.loc[sota].min()) + NEAR_BEST_POINTS)
    else:
        sota_rep, sota_verdict = "needs the paper's ImageNet checkpoints (full profile)", verdict_from(None)

    claims = [
        dict(section="2", claim="Maha++ lowers the average OpenOOD FPR of Maha (M-Tab. 4)",
             paper=f"{s['paper_maha']:.1f} -> {s['paper_maha_pp']:.1f} ({s['paper_n']} models)",
             reproduced=f"{s['maha']:.1f} -> {s['maha_pp']:.1f} ({n} models)",
             verdict=verdict_from(s["maha_pp"] < s["maha"])),
        dict(section="2", claim="Maha++ better than Maha for almost every model (M-Tab. 4, M-Fig. 12)",
             paper=_frac(s["paper_improved"], s["paper_n"]), reproduced=_frac(s["improved"], n),
             verdict=verdict_from(s["improved"] >= 0.8 * n, partly=s["improved"] > n / 2)),
        dict(section="2", claim="rMaha++ better than rMaha for most models (M-Tab. 4)",
             paper=_frac(s["paper_r_improved"], s["paper_n"]), reproduced=_frac(s["r_improved"], n),
             verdict=verdict_from(s["r_improved"] >= 0.7 * n, partly=s["r_improved"] > n / 2)),
        dict(section="2", claim="Maha++ is the best detector for most models (L2423: 30/44)",
             paper=f"best in {s['paper_best']}/{s['paper_n']} (strict row minima)",
             reproduced=f"best in {s['best']}/{n}; within {NEAR_BEST_POINTS:g} points of best in {s['near']}/{n}",
             verdict=verdict_from(s["best"] > n / 2, partly=s["near"] > n / 2)),
        dict(section="2", claim="Maha++ lowers the NINCO FPR (M-Tab. 6)",
             paper=f"{t6m.Maha.mean():.1f} -> {t6m['Maha++'].mean():.1f}",
             reproduced=f"{s['ninco_maha']:.1f} -> {s['ninco_maha_pp']:.1f} (pooled NINCO analogue)",
             verdict=verdict_from(s["ninco_maha_pp"] < s["ninco_maha"])),
        dict(section="2", claim="Maha++ fails fewer OOD unit tests (M-Tab. 17, mean over models)",
             paper=f"{t17.Maha.mean():.2f} -> {t17['Maha++'].mean():.2f} of 17 ({len(t17)} models)",
             reproduced=unit_rep, verdict=unit_verdict),
        dict(section="3", claim="Normalisation lowers the variance deviation score (Eq. 5) for all models but "
                                "ViT-augreg (M-Tab. 7)",
             paper=f"lower for {int((t7.normalized < t7.unnormalized).sum())}/{len(t7)}",
             reproduced=f"lower for {s['dev_drop']}/{n}",
             verdict=verdict_from(_almost_all(s["dev_drop"], n), partly=s["dev_drop"] > n / 2)),
        dict(section="3", claim="Real per-class feature norms vary more than under the fitted Gaussian "
                                "(Lemma 3.1, Fig. 4.1)",
             paper="heavy-tailed norms for SwinV2-B, DeiT3, augreg2; ViT-augreg close to Gaussian",
             reproduced=f"within-class norm spread real/Gaussian: median {dv.norm_within_ratio.median():.2f} "
                        f"(range {dv.norm_within_ratio.min():.2f}-{dv.norm_within_ratio.max():.2f})",
             verdict=verdict_from(bool((dv.norm_within_ratio > 1.2).all()),
                                  partly=bool((dv.norm_within_ratio > 1.2).any()))),
        dict(section="3", claim="Normalisation reduces the heavy tails of class-centred features (QQ plots, Fig. 4.2)",
             paper="tails reduced for SwinV2, DeiT3, augreg2; not for ViT-augreg",
             reproduced=f"excess kurtosis lower after l2 for {s['kurt_drop']}/{n} models "
                        f"(median {dv.kurtosis_raw.median():.2f} -> {dv.kurtosis_l2.median():.2f})",
             verdict=verdict_from(_almost_all(s["kurt_drop"], n), partly=s["kurt_drop"] > n / 2)),
        dict(section="3", claim="Maha++ rejects ID samples from more distinct classes at 95% TPR "
                                "(L2390: 634 -> 728 of 1000)",
             paper="634 -> 728",
             reproduced=f"more classes for {s['rej_up']}/{s['rej_testable']} models where Maha leaves room "
                        f"(of {int(dv.n_classes.iloc[0])} classes; median {dv.rejected_classes_maha.median():.0f} -> "
                        f"{dv.rejected_classes_maha_pp.median():.0f} over all {n} models)",
             # Maha already rejects samples of every class for every model: nothing can increase, not testable
             verdict=verdict_from(None) if s["rej_saturated"]
             else verdict_from(s["rej_up"] >= 0.8 * s["rej_testable"], partly=s["rej_up"] > s["rej_testable"] / 2)),
        dict(section="4", claim="The feature norm correlates with the Maha score; much weaker under Maha++ "
                                "(Fig. 4.3, M-Fig. 7)",
             paper="strong for SwinV2, ConvNeXt, ViT-CLIP; none for ViT-augreg",
             reproduced=f"|Spearman| lower under Maha++ for {s['conf_drop']}/{n} "
                        f"(median {conf_table['score: maha'].median():.2f} -> "
                        f"{conf_table['score: maha_pp'].median():.2f})",
             verdict=verdict_from(s["conf_drop"] >= 0.8 * n, partly=s["conf_drop"] > n / 2)),
        dict(section="4", claim="Scaling OOD features: FPR 0 at alpha = 2, all OOD accepted at alpha <= 0.5 (M-Fig. 6)",
             paper="FPR 0 % at 2, 100 % at 0.5", reproduced=scal_rep, verdict=scal_verdict),
        dict(section="-", claim="State of the art on NINCO: ConvNeXtV2-L-In21k + Maha++ 18.4 % FPR (M-Tab. 6)",
             paper=f"{float(t6m.loc[sota, 'Maha++']):.1f}", reproduced=sota_rep, verdict=sota_verdict),
    ]
    return claims_frame(claims)


def verdict_text(avg: pd.DataFrame, ninco: pd.DataFrame, fails: pd.DataFrame, diag: pd.DataFrame,
                 conf_table: pd.DataFrame, detectors: Sequence[str], feats: Mapping[str, dict],
                 ood_sets: Sequence[str], world_source: str = "generated") -> str:
    """The verdict paragraphs (Markdown), every number computed from the tables."""
    s = mahapp_summary(avg, ninco, fails, diag, conf_table, detectors)
    first = next(iter(feats.values()))
    n_ood_images = sum(len(first["ood"][k].features) for k in ood_sets)
    world = "the generated small world" if world_source == "generated" else "the ImageNet benchmark"
    n, dv = s["n_models"], diag
    flat = ", ".join(dv.index[dv.norm_cv < 0.01]) or "none"
    varied = ", ".join(dv.index[dv.norm_cv >= 0.01]) or "none"
    lines = [
        f"On {world} ({n} models, {len(detectors)} detectors, {n_ood_images} OOD images per model), "
        f"Mahalanobis++ changes the average OOD FPR of Mahalanobis from {s['maha']:.1f} % to {s['maha_pp']:.1f} % "
        f"(paper, {s['paper_n']} ImageNet models: {s['paper_maha']:.1f} % -> {s['paper_maha_pp']:.1f} %) and "
        f"improves {s['improved']}/{n} models (paper {s['paper_improved']}/{s['paper_n']}). It is the best detector "
        f"for {s['best']}/{n} models (paper {s['paper_best']}/{s['paper_n']}).",
        f"The Gaussian diagnostics: the deviation score of Eq. 5 drops with normalisation for {s['dev_drop']}/{n} "
        f"models (median {dv.deviation_raw.median():.3f} -> {dv.deviation_l2.median():.3f}; paper values "
        f"0.05-0.26 -> 0.05-0.18 on ImageNet), and within-class norm spreads are "
        f"{dv.norm_within_ratio.median():.2f}x those of the fitted Gaussian (median over models).",
        f"Models whose pre-logit features have almost constant norms (within-class norm variation below 1 %: "
        f"{flat}) are barely changed by l2 normalisation, so Maha and Maha++ nearly coincide there by "
        f"construction; the norm effects of the paper can only show up in the other models ({varied}).",
    ]
    paper_models = set(load_paper_table("mpp_T4_openood_avg_fpr_44models").Model) - {"Average"}
    if not set(avg.index) & paper_models:
        lines.append(
            "Scale matters: these are small CNN/ViT/Mixer models trained from scratch for a few epochs on a "
            "generated 32-pixel world with few classes, not ImageNet models with (pre)training at scale; the "
            "paper's effects are driven by the large norm variations of such models, which small from-scratch "
            "models need not show. Claims whose verdict is 'not reproduced' are reported as such, with both "
            "numbers, in the table above.")
    return "\n\n".join(lines)
