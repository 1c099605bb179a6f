"""Figures of chapter 4 (Mahalanobis++): norm histograms, QQ plots, Maha vs Maha++ scatter,
norm-confound scatter, variance ratios, norm scaling. Each function takes tidy data computed by
:mod:`repro.ood.gaussianity` / the evaluation and returns a Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repro.plots import PAGE_WIDTH_IN, PALETTE, figure_check

BLUE, ORANGE, GREEN = PALETTE[0], PALETTE[1], PALETTE[2]


def _class_order(norms, labels, max_classes):
    classes = np.unique(labels)
    means = np.array([norms[labels == c].mean() for c in classes])
    order = classes[np.argsort(means)]
    if max_classes is not None and len(order) > max_classes:
        order = order[np.round(np.linspace(0, len(order) - 1, max_classes)).astype(int)]
    return order


def norm_histograms(comparisons: dict, max_classes: int = 12, bins: int = 40):
    """Per-class feature-norm distributions, Gaussian samples vs real features (Fig. 4.1 / M-Fig. 3).

    ``comparisons``: panel title -> output of :func:`repro.ood.gaussianity.norm_comparison`
    (e.g. ``{"unnormalised": ..., "normalised": ...}``). One row per entry, two columns
    (sampled from N(mu_c, Sigma) | real); norms in units of the average real norm.
    """
    n = len(comparisons)
    fig, axes = plt.subplots(n, 2, figsize=(9, 2.8 * n), squeeze=False)
    for row, (title, comp) in enumerate(comparisons.items()):
        real, yr = comp["real"]
        samp, ys = comp["sampled"]
        order = _class_order(real, yr, max_classes)
        lo = min(np.quantile(real, 0.001), np.quantile(samp, 0.001))
        hi = max(np.quantile(real, 0.999), np.quantile(samp, 0.999))
        if hi - lo < 1e-9:
            lo, hi = lo - 0.05, hi + 0.05
        edges = np.linspace(lo, hi, bins + 1)
        cmap = plt.get_cmap("viridis")
        for col, (vals, labs, name) in enumerate([(samp, ys, "sampled from fitted Gaussian"), (real, yr, "real features")]):
            ax = axes[row, col]
            for k, c in enumerate(order):
                ax.hist(vals[labs == c], bins=edges, histtype="step", density=True,
                        color=cmap(k / max(len(order) - 1, 1)), lw=1.1)
            ax.set_title(f"{title}: {name}", fontsize=9)
            ax.set_xlabel("feature norm / mean real norm")
            ax.set_yticks([])
    fig.tight_layout()
    return fig


_DIRS = ("random", "largest eigendirection", "smallest eigendirection")


def _qq_demo():
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    th = norm.ppf((np.arange(1, 201) - 0.5) / 200)
    return ({d: {"unnormalised": (th, np.sort(rng.standard_t(4, 200))), "normalised": (th, np.sort(rng.normal(size=200)))}
             for d in _DIRS},)


@figure_check(_qq_demo, {"title": "resnet-sgd"})
def qq_plots(qq: dict, title: str = ""):
    """QQ plots against N(0, 1) (Fig. 4.2 / M-Fig. 4, 9).

    ``qq``: direction name -> {"unnormalised": (theoretical, sample), "normalised": (theoretical, sample)}.
    Blue: unnormalised features, green: l2-normalised (the paper's colours)."""
    dirs = list(qq)
    fig, axes = plt.subplots(1, len(dirs), figsize=(min(PAGE_WIDTH_IN, 2.6 * len(dirs)), 3.0), squeeze=False)
    for ax, d in zip(axes[0], dirs):
        lim = 0
        for key, color in (("unnormalised", BLUE), ("normalised", GREEN)):
            if key in qq[d]:
                th, sq = qq[d][key]
                ax.plot(th, sq, ".", ms=2.5, color=color, label=key)
                lim = max(lim, np.abs(th).max(), np.abs(sq).max())
        ax.plot([-lim, lim], [-lim, lim], color="black", lw=0.8)
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("N(0,1) quantiles")
    axes[0, 0].set_ylabel("standardised sample quantiles")
    axes[0, 0].legend(fontsize=8, markerscale=3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def maha_scatter(df: pd.DataFrame, x: str = "maha", y: str = "maha_pp", label: str = "model",
                 xlabel: str = "FPR Mahalanobis (%)", ylabel: str = "FPR Mahalanobis++ (%)", title: str = ""):
    """One point per model: FPR of Maha vs Maha++ (M-Fig. 12). Points below the diagonal: Maha++ better."""
    # points carry numbers and the names sit in a key beside the axes: model names overlapped at the
    # point positions when several models have similar FPRs
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    ax.scatter(df[x], df[y], color=BLUE, s=28, zorder=3)
    for k, (_, r) in enumerate(df.iterrows(), 1):
        ax.annotate(str(k), (r[x], r[y]), fontsize=8, xytext=(3, 3), textcoords="offset points")
    key = "\n".join(f"{k}: {r[label]}" for k, (_, r) in enumerate(df.iterrows(), 1))
    ax.text(1.04, 1.0, key, transform=ax.transAxes, va="top", ha="left", fontsize=8)
    lo = min(df[x].min(), df[y].min())
    hi = max(df[x].max(), df[y].max())
    pad = 0.05 * (hi - lo + 1e-9)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _delta_demo():
    d = pd.DataFrame({"maha_pp": [-6.0, -1.5, 0.4, 2.5]}, index=pd.Index(["resnet-sgd", "mixer-sgd", "preact-sgd",
                                                                           "convnext-adamw"], name="model"))
    return (d.assign(maha_pp_lo=d.maha_pp - [2.0, 2.5, 1.8, 1.0], maha_pp_hi=d.maha_pp + [2.1, 2.4, 1.9, 1.2]),)


@figure_check(_delta_demo)
def delta_fpr_bars(deltas: pd.DataFrame, col: str = "maha_pp", level: float = 0.95, excluded=()):
    """M-Fig. 1: per model, the change of the average FPR from Maha to Maha++ (points; negative = Maha++ better)
    with its paired bootstrap interval over test images (``<col>_lo`` / ``<col>_hi``, from
    :func:`repro.studies.ch4_mahapp.experiment.maha_pp_deltas`), models sorted by the change. Blue: decidedly
    better (interval below 0), orange: decidedly worse, grey: undecided. Models in ``excluded`` (those that cannot
    test the claim, e.g. LayerNorm pre-logit features) are drawn hatched and labelled "not counted"."""
    d = deltas.sort_values(col)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN * 0.8, 0.35 * len(d) + 1.6))
    lo, hi = d[f"{col}_lo"], d[f"{col}_hi"]
    out = [m in set(excluded) for m in d.index]
    colors = ["white" if x else BLUE if h < 0 else ("#D55E00" if l > 0 else "0.6") for x, l, h in zip(out, lo, hi)]
    y = np.arange(len(d))
    bars = ax.barh(y, d[col], color=colors, edgecolor=["0.4" if x else "none" for x in out])
    for b, x in zip(bars, out):
        if x:
            b.set_hatch("///")
    ax.errorbar(d[col], y, xerr=np.vstack([d[col] - lo, hi - d[col]]), fmt="none", ecolor="black", lw=1, capsize=3)
    ax.set_yticks(y, [f"{i} (not counted)" if x else str(i) for i, x in zip(d.index, out)])
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"FPR Maha++ − FPR Maha (points; < 0: Maha++ better; bars: {100 * level:g} % interval)")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def _norm_score_demo():
    rng = np.random.default_rng(0)
    return ({f"resnet-sgd: {m}": dict(norm_id=rng.gamma(9, 1, 500), dist_id=rng.gamma(20, 1, 500),
                                      norm_ood=rng.gamma(7, 1, 500), dist_ood=rng.gamma(25, 1, 500), threshold=30.0)
             for m in ("Mahalanobis", "Mahalanobis++")},)


@figure_check(_norm_score_demo)
def norm_vs_score(panels: dict, max_points: int = 3000, seed: int = 0):
    """Feature norm vs Mahalanobis distance for ID and OOD test samples (Fig. 4.3 / M-Fig. 5, 7).

    ``panels``: title -> dict(norm_id, dist_id, norm_ood, dist_ood); the y-axis is the distance
    min_c d(x, mu_c) = -s (large = more OOD), the x-axis the unnormalised norm."""
    rng = np.random.default_rng(seed)
    # at most the page width: wider figures are scaled down and their 8 pt legend becomes unreadable
    fig, axes = plt.subplots(1, len(panels), figsize=(min(PAGE_WIDTH_IN, 3.3 * len(panels)), 3.4), squeeze=False)
    for ax, (title, p) in zip(axes[0], panels.items()):
        for key, color, name in (("id", BLUE, "ID test"), ("ood", ORANGE, "OOD")):
            nx, dy = np.asarray(p[f"norm_{key}"]), np.asarray(p[f"dist_{key}"])
            if len(nx) > max_points:
                idx = rng.choice(len(nx), max_points, replace=False)
                nx, dy = nx[idx], dy[idx]
            ax.scatter(nx, dy, s=3, alpha=0.4, color=color, label=name, rasterized=True)
        if "threshold" in p:
            ax.axhline(p["threshold"], color="black", lw=0.8, ls="--", label="95% TPR threshold")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("feature norm ||phi(x)||")
        ax.set_ylabel("min_c Mahalanobis distance")
    axes[0, 0].legend(fontsize=8, markerscale=3)
    fig.tight_layout()
    return fig


def _ratios_demo():
    rng = np.random.default_rng(0)
    return ({d: {"unnormalised": rng.lognormal(0, 1, 50), "normalised": rng.lognormal(0, 0.3, 50)} for d in _DIRS},)


@figure_check(_ratios_demo)
def variance_ratio_hists(ratios: dict, bins: int = 20):
    """Class variance / shared variance along three directions (M-Fig. 11).

    ``ratios``: direction -> {"unnormalised": array, "normalised": array}."""
    fig, axes = plt.subplots(1, len(ratios), figsize=(min(PAGE_WIDTH_IN, 2.6 * len(ratios)), 2.9), squeeze=False)
    for ax, (d, r) in zip(axes[0], ratios.items()):
        allv = np.concatenate([np.log2(v) for v in r.values()])
        edges = np.linspace(allv.min() - 0.1, allv.max() + 0.1, bins + 1)
        for key, color in (("unnormalised", BLUE), ("normalised", GREEN)):
            if key in r:
                ax.hist(np.log2(r[key]), bins=edges, alpha=0.55, color=color, label=key)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("log2(class var / shared var)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def norm_scaling_curve(curves: dict):
    """FPR vs OOD feature scale alpha (M-Fig. 6). ``curves``: label -> DataFrame(alpha, fpr)."""
    fig, ax = plt.subplots(figsize=(4.4, 3.3))
    for (name, df), color in zip(curves.items(), PALETTE):
        ax.plot(df.alpha, 100 * df.fpr, marker="o", ms=3, color=color, label=name)
    ax.axvline(1, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("scale alpha of OOD features")
    ax.set_ylabel("FPR@95%TPR (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def dataset_norms(norms: dict, title: str = ""):
    """Feature-norm distributions of several datasets for one model (M-Fig. 10).
    ``norms``: dataset name -> 1-D array."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    allv = np.concatenate(list(norms.values()))
    edges = np.linspace(allv.min(), np.quantile(allv, 0.999), 50)
    for (name, v), color in zip(norms.items(), PALETTE):
        ax.hist(v, bins=edges, density=True, histtype="step", lw=1.3, color=color, label=name)
    ax.set_xlabel("feature norm ||phi(x)||")
    ax.set_yticks([])
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
