"""Figures of chapter 6 (SAM-ON). Each function takes tidy frames/arrays and returns a Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repro.plots import PALETTE

__all__ = ["accuracy_vs_rho", "accuracy_vs_runtime", "sparse_comparison", "affine_histograms",
           "sharpness_vs_accuracy", "gap_comparison"]

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
    ax.legend(fontsize=8, ncol=2)
    return fig


def accuracy_vs_runtime(points: pd.DataFrame):
    """Fig. 3 analogue: test accuracy vs step time normalized to SAM-all (mean ± std over seeds).

    ``points``: columns ``label, runtime, acc_mean, acc_std``.
    """
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for i, r in enumerate(points.itertuples()):
        ax.errorbar(r.runtime, r.acc_mean, yerr=r.acc_std, fmt="o", capsize=3, color=PALETTE[i % len(PALETTE)],
                    label=r.label)
    ax.set_xlabel("step time / SAM-all step time")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    return fig


def sparse_comparison(df: pd.DataFrame):
    """Table 5 analogue as bars: test accuracy (mean ± std) per method, with sparsity in the label."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    x = np.arange(len(df))
    ax.bar(x, df.acc_mean, yerr=df.acc_std, capsize=3, color=[PALETTE[i % len(PALETTE)] for i in range(len(df))])
    ax.set_xticks(x, [f"{m}\n{s}" for m, s in zip(df.method, df.sparsity)], fontsize=8)
    lo = float((df.acc_mean - df.acc_std.fillna(0)).min())
    ax.set_ylim(max(0.0, lo - 5), float((df.acc_mean + df.acc_std.fillna(0)).max()) + 2)
    ax.set_ylabel("test accuracy (%)")
    return fig


def affine_histograms(values: dict):
    """Fig. 5 analogue: distributions of γ (left) and β (right) per method, pooled over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4))
    for j, key in enumerate(("gamma", "beta")):
        allv = np.concatenate([v[key] for v in values.values()])
        bins = np.linspace(np.percentile(allv, 0.5), np.percentile(allv, 99.5), 40)
        for i, (name, v) in enumerate(values.items()):
            axes[j].hist(v[key], bins=bins, histtype="step", lw=1.6, density=True, color=PALETTE[i % len(PALETTE)],
                         label=name)
        axes[j].set_xlabel({"gamma": "γ (BN weight)", "beta": "β (BN bias)"}[key])
        axes[j].set_ylabel("density")
    axes[0].legend(fontsize=8)
    return fig


def sharpness_vs_accuracy(df: pd.DataFrame, rho: float):
    """Sharpness (x) vs test accuracy (y), one point per model; Table 6.2's message as a scatter."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    d = df[df.rho == rho]
    for i, (m, g) in enumerate(d.groupby("method", sort=False)):
        ax.scatter(g.sharpness, g.test_acc, color=PALETTE[i % len(PALETTE)], label=m, s=36)
    ax.set_xlabel(f"worst-case adaptive ℓ∞ sharpness (logit-normalized), ρ = {rho}")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    return fig


def gap_comparison(ours: pd.DataFrame, paper: pd.DataFrame):
    """ON − all gap per variant: ours vs the paper (WRN-28, CIFAR-100, Table 1). Columns ``variant, gap``."""
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    v = list(ours.variant)
    x = np.arange(len(v))
    pg = paper.set_index("variant").reindex(v).gap
    ax.bar(x - 0.2, ours.gap, 0.4, label="reproduced (small world)", color=PALETTE[0])
    ax.bar(x + 0.2, pg, 0.4, label="paper (WRN-28, CIFAR-100)", color=PALETTE[1])
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, v, fontsize=8)
    ax.set_ylabel("ON − all test accuracy (points)")
    ax.legend(fontsize=8)
    return fig
