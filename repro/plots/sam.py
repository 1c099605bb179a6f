"""Figures of chapter 6 (SAM-ON). Each function takes tidy frames/arrays and returns a Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repro.plots import PALETTE

__all__ = ["accuracy_vs_rho", "accuracy_vs_runtime", "sparse_comparison", "affine_histograms",
           "sharpness_vs_accuracy", "gap_comparison", "norm_arms", "sparsity_levels", "fix_norm_comparison"]


def _err(v):
    """Error-bar lengths with NaN (one seed) drawn as no bar."""
    return np.nan_to_num(np.asarray(v, dtype=float), nan=0.0)

_MODE_STYLE = {"all": "-", "ON": "--", "no-norm": ":"}


def accuracy_vs_rho(grid: pd.DataFrame, metric: str = "val_acc", sgd: float | None = None):
    """Fig. 1/6 analogue: accuracy vs ρ per variant; solid = all, dashed = ON (log ρ axis)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, (v, gv) in enumerate(grid[grid.method == "sam"].groupby("variant", sort=False)):
        for mode, gm in gv.groupby("mode"):
            s = gm.groupby("rho")[metric].mean()
            ax.plot(s.index, s.values, _MODE_STYLE.get(mode, "-."), marker="o", color=PALETTE[i % len(PALETTE)],
                    label=f"{v} {mode}")
    if sgd is not None:
        ax.axhline(sgd, color="grey", lw=1, ls=":", label="SGD")
    ax.set_xscale("log")
    ax.set_xlabel("ρ")
    ax.set_ylabel({"val_acc": "validation accuracy (%)", "test_acc": "test accuracy (%)"}.get(metric, metric))
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def accuracy_vs_runtime(points: pd.DataFrame):
    """Fig. 3 analogue: test accuracy vs step time normalized to SAM-all (mean ± standard error over seeds).

    ``points``: columns ``label, runtime, acc_mean`` and ``se`` (or ``acc_std``).
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    err = points["se"] if "se" in points else points["acc_std"]
    for i, (r, e) in enumerate(zip(points.itertuples(), err)):
        ax.errorbar(r.runtime, r.acc_mean, yerr=_err([e]), fmt="o", ms=7, capsize=3, color=PALETTE[i % len(PALETTE)],
                    label=r.label)
    ax.set_xlabel("step time / SAM-all step time")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def sparse_comparison(df: pd.DataFrame):
    """Table 5 analogue as a dot plot: test accuracy (mean ± standard error over seeds) per method, the
    sparsity in the label. Dots, not bars: a bar's length would suggest a zero the axis does not show."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    y = np.arange(len(df))[::-1]
    err = df["se"] if "se" in df else df["acc_std"]
    for i, (yy, r, e) in enumerate(zip(y, df.itertuples(), err)):
        ax.errorbar(r.acc_mean, yy, xerr=_err([e]), fmt="o", ms=7, capsize=3, color=PALETTE[i % len(PALETTE)])
    ax.set_yticks(y, [f"{m} ({s})" for m, s in zip(df.method, df.sparsity)], fontsize=9)
    ax.set_xlabel("test accuracy (%), mean ± SE over seeds")
    ax.margins(x=0.15, y=0.12)
    fig.tight_layout()
    return fig


def norm_arms(arms: pd.DataFrame):
    """Fig. 6.1 analogue: test accuracy (mean ± SE over seeds) per SAM variant for SAM on all
    parameters, only the normalization parameters (ON) and all but them (no-norm); SGD as a band.

    ``arms``: columns ``variant, mode, acc_mean, se`` (:func:`repro.studies.ch6_samon.report.arms_frame`)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    sam = arms[arms.variant != "SGD"]
    variants = list(dict.fromkeys(sam.variant))
    modes = [m for m in ("all", "ON", "no-norm") if m in set(sam["mode"])]
    w = 0.8 / max(len(modes), 1)
    for j, mode in enumerate(modes):
        d = sam[sam["mode"] == mode].set_index("variant").reindex(variants)
        x = np.arange(len(variants)) + (j - (len(modes) - 1) / 2) * w
        ax.errorbar(x, d.acc_mean, yerr=_err(d.se), fmt="os^"[j], ms=7, capsize=3, color=PALETTE[j], lw=1.2,
                    label={"all": "SAM-all", "ON": "SAM-ON", "no-norm": "no-norm"}[mode])
    sgd = arms[arms.variant == "SGD"]
    if len(sgd):
        m, e = float(sgd.acc_mean.iloc[0]), float(np.nan_to_num(sgd.se.iloc[0]))
        ax.axhline(m, color="grey", lw=1, ls="--", label="SGD")
        if e > 0:
            ax.axhspan(m - e, m + e, color="grey", alpha=0.15, lw=0)
    ax.set_xticks(np.arange(len(variants)), [v.replace("elementwise_", "el. ").replace("layerwise_", "layer ")
                                             .replace("linf", "ℓ∞").replace("l2", "ℓ2") for v in variants])
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8, ncol=len(modes) + 1, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    fig.tight_layout()
    return fig


def sparsity_levels(df: pd.DataFrame):
    """Table 12 analogue: test accuracy (mean ± SE) vs the share of entries *not* perturbed, one line
    per sparse mask, with SAM-all (0 %) and SAM-ON (its own sparsity) as reference points."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    refs = {"SAM": ("D", "black"), "SAM-ON": ("*", PALETTE[1])}
    k = 0
    for name, g in df.groupby("method", sort=False):
        g = g.sort_values("sparsity")
        if name in refs:
            mk, c = refs[name]
            ax.errorbar(g.sparsity, g.acc_mean, yerr=_err(g.se), fmt=mk, ms=9 if mk == "*" else 6, capsize=3, color=c,
                        label=f"{name} ({'all parameters' if name == 'SAM' else 'norm parameters'})", zorder=4)
            continue
        ax.errorbar(g.sparsity, g.acc_mean, yerr=_err(g.se), fmt="o-", ms=6, capsize=3,
                    color=PALETTE[[0, 2, 3, 4][k % 4]], label=name)
        k += 1
    ax.set_xlabel("sparsity of the perturbation (% of entries not perturbed)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def fix_norm_comparison(df: pd.DataFrame):
    """Fig. 10 analogue (Sec. 8.4, App. B.7): SGD and SAM-all with trainable vs fixed (γ = 1, β = 0)
    normalization parameters, test accuracy mean ± SE over seeds. ``df``: method, norm, acc_mean, se."""
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    methods = list(dict.fromkeys(df.method))
    for j, norm in enumerate(("trainable", "fixed")):
        d = df[df.norm == norm].set_index("method").reindex(methods)
        x = np.arange(len(methods)) + (j - 0.5) * 0.3
        ax.errorbar(x, d.acc_mean, yerr=_err(d.se), fmt="os"[j], ms=7, capsize=3, color=PALETTE[j],
                    label={"trainable": "γ, β trained", "fixed": "fix-norm (γ = 1, β = 0)"}[norm])
    ax.set_xticks(np.arange(len(methods)), methods)
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def affine_histograms(values: dict):
    """Fig. 5 analogue: distributions of γ (left) and β (right) per method, pooled over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.2))
    for j, key in enumerate(("gamma", "beta")):
        allv = np.concatenate([v[key] for v in values.values()])
        bins = np.linspace(np.percentile(allv, 0.5), np.percentile(allv, 99.5), 40)
        for i, (name, v) in enumerate(values.items()):
            axes[j].hist(v[key], bins=bins, histtype="step", lw=1.6, density=True, color=PALETTE[i % len(PALETTE)],
                         label=name)
        axes[j].set_xlabel({"gamma": "γ (BN weight)", "beta": "β (BN bias)"}[key])
        axes[j].set_ylabel("density")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def sharpness_vs_accuracy(df: pd.DataFrame, rho: float):
    """Sharpness (x) vs test accuracy (y), one point per model; Table 6.2's message as a scatter."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    d = df[df.rho == rho]
    for i, (m, g) in enumerate(d.groupby("method", sort=False)):
        ax.scatter(g.sharpness, g.test_acc, color=PALETTE[i % len(PALETTE)], label=m, s=36)
    ax.set_xlabel(f"worst-case adaptive ℓ∞ sharpness\n(logit-normalized), ρ = {rho}")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def gap_comparison(ours: pd.DataFrame, paper: pd.DataFrame):
    """ON − all gap per variant: ours (mean, error bar = SE over seeds) vs the paper (WRN-28,
    CIFAR-100, Sec. 8.4 Table 1). Columns ``variant, gap`` (+ ``se`` for ours)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    v = list(ours.variant)
    x = np.arange(len(v))
    pg = paper.set_index("variant").reindex(v).gap
    ax.bar(x - 0.2, ours.gap, 0.4, yerr=_err(ours["se"]) if "se" in ours else None, capsize=4,
           label="reproduced (small world), ± SE over seeds", color=PALETTE[0])
    ax.bar(x + 0.2, pg, 0.4, label="paper (WRN-28, CIFAR-100)", color=PALETTE[1])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, v, fontsize=9)
    ax.set_ylabel("ON − all test accuracy (points)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    fig.tight_layout()
    return fig
