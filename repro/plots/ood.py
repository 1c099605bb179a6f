"""Chapter 3 figures: galleries, per-class FPR heatmap, unit-test failure grid, contamination
effect, method ranking. Each function takes tidy data and returns a Figure."""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repro.plots import PAGE_WIDTH_IN, PALETTE, figure_check

__all__ = ["gallery", "contamination_gallery", "fpr_heatmap", "unit_test_grid", "contamination_plot", "method_ranking",
           "fpr_cdf", "fpr_vs_accuracy", "ranking_bump"]


def _gallery_demo():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(20, 16, 16, 3), dtype=np.uint8)
    return (x, [f"class name {i}" for i in range(20)])


def _fit_title(text: str, width_pt: float, fontsize: float) -> str:
    """``text`` shortened with an ellipsis to about ``width_pt`` points at ``fontsize`` (DejaVu Sans
    averages ~0.6 em per character), so neighbouring image titles do not run into each other."""
    n = max(3, int(width_pt / (0.62 * fontsize)))
    return text if len(text) <= n else text[: n - 1] + "\u2026"


@figure_check(_gallery_demo, {"ncols": 10})
def gallery(images, titles: Optional[Sequence[str]] = None, ncols: int = 8, scale: float = 1.1, suptitle: str = "",
            fontsize: float = 8.0):
    """A grid of uint8 images [N, 3, H, W] with optional titles.

    At most :data:`repro.plots.PAGE_WIDTH_IN` wide: ``ncols`` is lowered to what fits the page at
    ``scale`` inches per image (more rows instead), so the titles are not shrunk when the book scales
    the figure to its column. Drawn as one mosaic in a single axes (one subplot per image makes layout
    cost grow with N)."""
    x = images.permute(0, 2, 3, 1).cpu().numpy() if hasattr(images, "permute") else np.asarray(images)
    n = len(x)
    if n == 0:
        raise ValueError("gallery needs at least one image")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"gallery expects images [N, 3, H, W] (tensor) or [N, H, W, 3] (array), got {x.shape}")
    ncols = max(1, min(int(ncols), n, int(PAGE_WIDTH_IN / scale + 1e-9)))
    nrows = int(np.ceil(n / ncols))
    h, w = x.shape[1:3]
    pad = max(1, h // 16)
    top = int(round(h * 0.3)) if titles is not None else 0  # room for the title above each image
    ch, cw = h + top + pad, w + pad
    canvas = np.full((nrows * ch, ncols * cw, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        y0, x0 = r * ch + top, c * cw
        # a 1-px grey frame in the padding, so all-white images (the 'white' unit test) stay visible
        canvas[max(y0 - 1, 0): y0 + h + 1, max(x0 - 1, 0): x0 + w + 1] = 170
        canvas[y0: y0 + h, x0: x0 + w] = x[i]
    fig, ax = plt.subplots(figsize=(ncols * scale, nrows * scale * (ch / cw)))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    if titles is not None:
        for i in range(n):
            r, c = divmod(i, ncols)
            ax.text(c * cw + w / 2, r * ch + top - 1, _fit_title(str(titles[i]), scale * 72 * 0.95, fontsize),
                    ha="center", va="bottom", fontsize=fontsize)
    if suptitle:
        fig.suptitle(suptitle)
    fig.subplots_adjust(0, 0, 1, 0.95 if suptitle else 1)
    return fig


def contamination_gallery(pop, per_flag: int = 6):
    """Images of a flagged popular-dataset analogue: clean, categorical and incidental
    contamination (``repro.data.world.CONTAMINATION``), ``per_flag`` of each (Fig. 3.1 / N-Fig.1)."""
    import torch

    from repro.data.world import CONTAMINATION

    if getattr(pop, "flags", None) is None:
        raise ValueError(f"set {getattr(pop, 'name', pop)!r} has no contamination flags; only the generated "
                         "world's popular-dataset analogues carry them")
    idx = torch.cat([torch.nonzero(pop.flags == f).flatten()[:per_flag] for f in CONTAMINATION])
    return gallery(pop.x[idx], [CONTAMINATION[int(pop.flags[i])] for i in idx], ncols=per_flag)


def _per_class_demo():
    rng = np.random.default_rng(0)
    models = ["convnext-adamw", "resnet-sgd", "vit-b16-in21k", "deit-s-distilled"]
    rows = [dict(model=m, ood_class=f"ninco class {k}", method=meth, dataset="ninco", fpr=float(rng.uniform()))
            for m in models for k in range(64) for meth in ("msp", "maha")]
    return (pd.DataFrame(rows), "msp")


@figure_check(_per_class_demo)
def fpr_heatmap(per_class: pd.DataFrame, method: str, dataset: str = "ninco", value: str = "fpr"):
    """Models (rows) x OOD classes (columns) heatmap of the per-class FPR (%) for one method;
    classes sorted by their mean FPR over models (hard classes on the right), cf. N-Fig.7.

    Page-wide; with more classes than fit as readable labels (64 NINCO classes), every k-th class
    is labelled."""
    import seaborn as sns

    d = per_class[(per_class["method"] == method) & (per_class["dataset"] == dataset)]
    if d.empty:
        raise ValueError(f"no rows for method {method!r} on {dataset!r}")
    wide = d.pivot_table(index="model", columns="ood_class", values=value, sort=False) * 100
    wide = wide[wide.mean().sort_values().index]
    n_models, n_classes = wide.shape
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 0.4 * n_models + 2.6))
    # ~4.2 in of heatmap after the model names and the colour bar; a rotated label needs ~0.16 in
    step = max(1, int(np.ceil(n_classes / 26)))
    sns.heatmap(wide, ax=ax, cmap="rocket_r", vmin=0, vmax=100, cbar_kws={"label": "FPR@95 (%)"},
                linewidths=0.3 if n_classes <= 40 else 0, linecolor="white", xticklabels=step, yticklabels=1)
    # seaborn turns y labels vertical when it thinks they collide; model names read horizontally
    ax.tick_params(axis="y", labelrotation=0)
    ax.tick_params(axis="x", labelrotation=90)
    ax.set_xlabel("OOD class (sorted by mean FPR)" + (f"; every {step}. labelled" if step > 1 else ""))
    ax.set_ylabel("")
    ax.set_title(f"Per-class FPR, {method}")
    fig.tight_layout()
    return fig


def _unit_demo():
    from repro.data.unit_tests import ABBREV

    rng = np.random.default_rng(0)
    methods = ["msp", "maxlogit", "energy", "maha", "rmaha", "vim", "knn", "cosine", "kl_matching", "ash", "react"]
    models = ["convnext-adamw", "resnet-sgd", "vit-b16-in21k"]
    rows = [dict(method=m, model=mo, test=t, fpr=float(rng.uniform())) for m in methods for mo in models
            for t in ABBREV]
    return (pd.DataFrame(rows),)


@figure_check(_unit_demo)
def unit_test_grid(unit: pd.DataFrame, methods: Optional[Sequence[str]] = None, threshold: float = 0.10):
    """One panel per method: models x unit tests, FPR (%) coloured, failed tests (FPR > threshold) marked x.

    Two panels per row at the page width; tick labels only on the outer panels and one marker artist
    per panel: text rendering is what makes a grid of many small heatmaps slow."""
    methods = list(methods or unit["method"].unique())
    ncols = min(2, len(methods))  # 2 per row: 17 rotated test names per panel stay legible at page width
    nrows = int(np.ceil(len(methods) / ncols))
    tests = list(dict.fromkeys(unit["test"]))
    models = list(dict.fromkeys(unit["model"]))
    # no sharex/sharey: shared axes share their tick formatter, so labels set on one panel would
    # appear (unrotated) on the others
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH_IN, (0.22 * len(models) + 0.45) * nrows + 1.3),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(methods):]:
        fig.delaxes(ax)
    wide = unit.pivot_table(index=["method", "model"], columns="test", values="fpr", sort=False)
    im = None
    for k, (ax, m) in enumerate(zip(axes.flat, methods)):
        d = wide.loc[m].reindex(index=models, columns=tests).to_numpy() * 100 if m in wide.index.get_level_values(0) \
            else np.full((len(models), len(tests)), np.nan)
        im = ax.imshow(d, cmap="rocket_r", vmin=0, vmax=100, aspect="auto", interpolation="nearest")
        fi, fj = np.nonzero(d > threshold * 100)
        dark = d[fi, fj] > 50  # white marks on dark cells, black on light ones
        ax.scatter(fj, fi, marker="x", s=12, c=np.where(dark, "white", "black"), linewidths=0.8)
        ax.set_title(f"{m}: {len(fi)} fails", fontsize=9)
        ax.grid(False)
        c = k % ncols
        ax.set_xticks(range(len(tests)))
        ax.set_yticks(range(len(models)))
        if k + ncols >= len(methods):  # nothing below this panel
            ax.set_xticklabels(tests, fontsize=8, rotation=90)
        else:
            ax.tick_params(axis="x", labelbottom=False)
        if c == 0:
            ax.set_yticklabels(models, fontsize=8)
        else:
            ax.tick_params(axis="y", labelleft=False)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="FPR@95 (%)")
    return fig


def contamination_plot(study: pd.DataFrame, methods: Sequence[str], ref_ps: Optional[Sequence[float]] = None):
    """FPR vs ID fraction p of the OOD set, original (solid) vs cleaned (dashed), mean +/- sd over
    resamples, averaged over models; vertical ticks at the paper's measured fractions (N-Tab.1)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, m in enumerate(methods):
        d = study[study["method"] == m].groupby("p")[["fpr_original", "fpr_cleaned"]]
        mean, sd = d.mean() * 100, d.std().fillna(0) * 100
        c = PALETTE[i % len(PALETTE)]
        ax.errorbar(mean.index, mean["fpr_original"], yerr=sd["fpr_original"], color=c, marker="o", label=f"{m}, original")
        ax.errorbar(mean.index, mean["fpr_cleaned"], yerr=sd["fpr_cleaned"], color=c, marker="s", ls="--",
                    label=f"{m}, cleaned")
    if ref_ps is not None:
        for p in ref_ps:
            ax.axvline(p, color="grey", lw=0.6, alpha=0.4, zorder=0)
    ax.set_xlabel("fraction p of OOD-set images that contain an ID object")
    ax.set_ylabel("FPR@95 (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _summary_demo():
    rng = np.random.default_rng(0)
    methods = ["msp", "maxlogit", "energy", "maha", "rmaha", "vim", "knn", "cosine", "kl_matching", "ash", "react"]
    models = ["convnext-adamw", "resnet-sgd", "vit-b16-in21k"]
    return (pd.DataFrame([dict(model=mo, method=m, mean_fpr=float(rng.uniform())) for mo in models for m in methods]),)


@figure_check(_summary_demo)
def method_ranking(summary: pd.DataFrame, value: str = "mean_fpr", methods: Optional[Sequence[str]] = None):
    """Models x methods heatmap of the mean FPR (%) with each model's best method boxed, plus each
    method's mean rank across models (horizontal bars: method names need no rotation)."""
    import seaborn as sns

    wide = summary.pivot_table(index="model", columns="method", values=value, sort=False) * 100
    if methods is not None:
        wide = wide[list(methods)]
    ranks = wide.rank(axis=1, method="min")
    n_models, n_methods = wide.shape
    # two rows (heatmap above, ranks below) so the heatmap gets the full page width
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(PAGE_WIDTH_IN, 0.45 * n_models + 0.28 * n_methods + 3.2),
                                  gridspec_kw={"height_ratios": [max(n_models, 2) + 2, 0.6 * n_methods + 1]})
    sns.heatmap(wide, ax=ax, annot=True, fmt=".0f", cmap="rocket_r", vmin=0, vmax=100, annot_kws={"fontsize": 10},
                cbar_kws={"label": "mean FPR@95 (%)"})
    for i, (_, row) in enumerate(ranks.iterrows()):
        j = int(np.argmin(row.to_numpy()))
        ax.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, ec=PALETTE[2], lw=2))
    ax.tick_params(axis="y", labelrotation=0)
    # vertical: the checker (and the eye) needs the boxes of neighbouring names apart, 45 degrees overlaps them
    ax.tick_params(axis="x", labelrotation=90)
    ax.set_xlabel("")
    ax.set_ylabel("")
    mr = ranks.mean().sort_values()
    sd = ranks.std().reindex(mr.index).fillna(0)  # spread of the rank over models
    ax2.barh(np.arange(len(mr)), mr.to_numpy(), xerr=sd.to_numpy(), color=PALETTE[0], capsize=3)
    ax2.set_yticks(np.arange(len(mr)), mr.index)
    ax2.invert_yaxis()  # best method on top
    ax2.set_xlabel("mean rank (1 = best) ± sd over models")
    fig.tight_layout()
    return fig


def fpr_cdf(per_class: pd.DataFrame, model: str, dataset: str = "ninco", methods: Optional[Sequence[str]] = None):
    """N-Fig.5: for each FPR x, the share of OOD classes with FPR <= x, one curve per method."""
    d = per_class[(per_class["model"] == model) & (per_class["dataset"] == dataset)]
    methods = list(methods or d["method"].unique())
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, m in enumerate(methods):
        v = np.sort(d[d["method"] == m]["fpr"].to_numpy() * 100)
        ax.step(np.r_[0, v, 100], np.r_[0, np.arange(1, len(v) + 1) / len(v), 1] * 100, where="post",
                color=PALETTE[i % len(PALETTE)], ls="-" if i < 7 else "--", label=f"{m} ({v.mean():.1f})")
    ax.set_xlabel("FPR@95 (%)")
    ax.set_ylabel("OOD classes with FPR <= x (%)")
    ax.set_title(model)
    ax.legend(fontsize=7, title="method (mean FPR)")
    fig.tight_layout()
    return fig


def fpr_vs_accuracy(tab: pd.DataFrame, groups: pd.Series, methods: Sequence[str] = ("msp", "maha", "rmaha", "cosine")):
    """Fig. 3.3 / N-Fig. 6: mean NINCO FPR (%) against ID test accuracy (%), one panel per method, one point
    per model, coloured by ``groups`` (model -> pretraining or training recipe). ``tab``: model x
    (``test acc``, methods...) without summary rows."""
    methods = [m for m in methods if m in tab.columns]
    if not methods:
        raise ValueError(f"none of the methods is a column of the table; columns: {list(tab.columns)}")
    levels = list(dict.fromkeys(groups.reindex(tab.index).fillna("other")))
    ncols = min(2, len(methods))  # 2 x 2 panels fit the page width at a readable size
    nrows = int(np.ceil(len(methods) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.6, 3.0 * nrows + 0.8), sharey=True, squeeze=False)
    for ax in axes.flat[len(methods):]:
        fig.delaxes(ax)
    for ax, m in zip(axes.flat, methods):
        for i, g in enumerate(levels):
            idx = [k for k in tab.index if groups.get(k, "other") == g]
            ax.scatter(tab.loc[idx, "test acc"], tab.loc[idx, m], color=PALETTE[i % len(PALETTE)], label=g, s=30)
        ax.set_title(m)
        ax.set_xlabel("ID test accuracy (%)")
    axes[0, 0].set_ylabel("mean FPR@95 over OOD classes (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(levels), 3), fontsize=10, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def _ranks_demo():
    rng = np.random.default_rng(0)
    methods = ["msp", "maxlogit", "energy", "maha", "rmaha", "vim", "knn", "cosine", "kl_matching", "react", "rcos"]
    sets = ["ninco", "near", "far", "pop_species (original)", "pop_textures (original)"]
    return (pd.DataFrame({s: rng.permutation(len(methods)) + 1 for s in sets}, index=methods),)


@figure_check(_ranks_demo)
def ranking_bump(ranks: pd.DataFrame, reference: str = "ninco"):
    """N-Fig. 8: each detector's rank (1 = best) on every OOD set (columns of ``ranks``, ``reference`` first),
    one line per detector; the methods are named at both ends so the eye can follow a crossing."""
    cols = [reference] + [c for c in ranks.columns if c != reference]
    # ties drawn one above the other (in the table's method order), so no two names print on top of each other
    r = ranks[cols].rank(method="first")
    n = len(r)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH_IN, 0.32 * n + 1.9))
    x = np.arange(len(cols))
    for i, (m, row) in enumerate(r.iterrows()):
        ax.plot(x, row.to_numpy(), marker="o", color=PALETTE[i % len(PALETTE)], ls="-" if i < len(PALETTE) else "--",
                lw=1.6)
        ax.text(-0.12, row.iloc[0], m, ha="right", va="center", fontsize=8, color=PALETTE[i % len(PALETTE)])
        ax.text(len(cols) - 1 + 0.12, row.iloc[-1], m, ha="left", va="center", fontsize=8,
                color=PALETTE[i % len(PALETTE)])
    def label(c: str) -> str:  # "pop_inat_plants (original)" -> "inat plants\n(popular)"; the caption says "original"
        c = c.replace(" (original)", "")
        return (c[4:].replace("_", " ") + "\n(popular)") if c.startswith("pop_") else c.replace("_", " ")

    ax.set_xticks(x, [label(c) for c in cols], fontsize=8)
    ax.set_xlim(-1.3, len(cols) - 1 + 1.3)
    ax.set_ylim(n + 0.5, 0.5)
    ax.set_yticks(np.arange(1, n + 1))
    ax.set_ylabel("rank of the detector (1 = lowest FPR)")
    ax.grid(axis="y", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig
