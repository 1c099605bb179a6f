"""Figures of the appendix (one function per figure; data in, ``matplotlib`` figure out)."""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repro.plots import PALETTE, figure_check

__all__ = ["norm_histograms", "checkpoint_curve", "method_overview"]


def norm_histograms(norms: Mapping) -> plt.Figure:
    """Feature norms ||z|| of ID test vs OOD images, conventional vs l2-trained (Haas et al. Fig. 5).

    ``norms``: {(model, variant): {"id": array, "ood": array}}."""
    models = list(dict.fromkeys(m for m, _ in norms))
    variants = ["conventional", "l2-trained"]
    fig, axes = plt.subplots(len(models), 2, figsize=(8, 2.6 * len(models)), squeeze=False)
    for i, m in enumerate(models):
        for j, v in enumerate(variants):
            ax = axes[i, j]
            d = norms.get((m, v))
            if d is None:
                ax.set_visible(False)
                continue
            hi = float(np.quantile(np.r_[d["id"], d["ood"]], 0.995))
            bins = np.linspace(0, hi, 40)
            ax.hist(d["id"], bins=bins, density=True, alpha=0.6, color=PALETTE[0], label="ID test")
            ax.hist(d["ood"], bins=bins, density=True, alpha=0.6, color=PALETTE[1], label="OOD")
            ax.set_title(f"{m} ({v})", fontsize=9)
            ax.set_xlabel("||z||")
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _curve_demo():
    rng = np.random.default_rng(0)
    ep = np.arange(1, 11)
    curve = pd.DataFrame([dict(detector="energy", dataset=ds, epoch=e, fpr=float(rng.uniform(30, 90)), test_acc=50 + 4 * e)
                          for ds in ("ninco", "ssb_hard", "openimage_o") for e in ep])
    sel = pd.DataFrame([dict(split=s, epoch=e, fpr=float(rng.uniform(30, 90))) for s in ("selection", "evaluation")
                        for e in ep])
    summary = pd.DataFrame([dict(stage="UM", detector="energy", mean_fpr=55.0)])
    return (curve, summary, "energy", {"curve": sel, "best_epoch": 4})


@figure_check(_curve_demo)
def checkpoint_curve(curve: pd.DataFrame, summary: pd.DataFrame, detector: str = "energy",
                     selection: Mapping | None = None) -> plt.Figure:
    """FPR95 of ``detector`` over training epochs (per OOD set, thin), the mean over OOD sets on the
    selection and the evaluation halves (``selection["curve"]``, thick) with the epoch chosen on the
    selection half, the UM model as a marker after the last epoch, and the ID test accuracy
    (Zhu et al. Fig. 1a / 2a)."""
    c = curve[curve.detector == detector]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for k, (ds, g) in enumerate(c.groupby("dataset", sort=False)):
        ax.plot(g.epoch, g.fpr, lw=1, alpha=0.5, color=PALETTE[(k + 3) % len(PALETTE)], label=f"{ds} (all images)")
    if selection is not None:
        sc = selection["curve"]
        for split, color, ls in (("selection", PALETTE[0], "-"), ("evaluation", PALETTE[2], "-")):
            g = sc[sc.split == split]
            ax.plot(g.epoch, g.fpr, lw=2.2, ls=ls, color=color, label=f"mean, {split} half")
        b = selection["best_epoch"]
        g = sc[(sc.split == "selection") & (sc.epoch == b)]
        ax.scatter([b], g.fpr, s=60, color=PALETTE[0], zorder=5, edgecolor="k", label="chosen epoch")
        mean = sc[sc.split == "evaluation"].set_index("epoch").fpr
    else:
        mean = c.groupby("epoch").fpr.mean()
        ax.plot(mean.index, mean.values, lw=2.2, color=PALETTE[0], label="mean over OOD sets")
    um = summary[(summary.stage == "UM") & (summary.detector == detector)]
    if len(um):
        x = mean.index.max() + max(1, len(mean) // 10)
        ax.scatter([x], [um.mean_fpr.iloc[0]], marker="*", s=160, color=PALETTE[1], zorder=5, label="after UM (all images)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"FPR95 (%), {detector}")
    ax2 = ax.twinx()
    acc = curve.groupby("epoch").test_acc.first()
    ax2.plot(acc.index, acc.values, ls="--", color="grey", label="ID test acc.")
    ax2.set_ylabel("ID test accuracy (%)", color="grey")
    ax2.grid(False)
    # the twin shares the epoch axis; its own tick labels would sit on top of the first axes' ones
    ax2.tick_params(axis="x", which="both", labelbottom=False, labeltop=False)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    # above the axes: below them it sat on the 'epoch' label (the figure has no title to collide with)
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.02), ncol=3, frameon=False)
    fig.tight_layout()
    return fig


def method_overview(rows: pd.DataFrame) -> plt.Figure:
    """Horizontal bars of mean FPR95 per (method, model) row: ``rows`` has columns label, fpr, group.
    One colour per group, the legend (one patch per group, in its colour) outside the bars."""
    from matplotlib.patches import Patch

    r = rows.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(r) + 1.6))
    groups = list(dict.fromkeys(r.group))
    colors = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    ax.barh(np.arange(len(r)), r.fpr, color=[colors[g] for g in r.group])
    ax.set_yticks(np.arange(len(r)))
    ax.set_yticklabels(r.label, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(100.0, float(np.nan_to_num(r.fpr.max())) * 1.02))
    ax.set_xlabel("mean FPR95 over OOD sets (%, lower is better)")
    ax.legend(handles=[Patch(facecolor=colors[g], label=g) for g in groups], fontsize=8, loc="lower center",
              bbox_to_anchor=(0.5, 1.0), ncol=min(4, len(groups)), frameon=False)
    fig.tight_layout()
    return fig
