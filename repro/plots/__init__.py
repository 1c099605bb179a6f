"""One figure style for the whole book; figures are saved as PNG and SVG with the same base name.

Chapter-specific figure functions live in sibling modules (``repro.plots.ood``, ...); each takes
tidy data (DataFrames / arrays) and returns a ``matplotlib.figure.Figure``.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def set_style() -> None:
    """Colour-blind-safe palette, readable sizes, no chart junk."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.95)
    plt.rcParams.update({
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "svg.fonttype": "none",
        "svg.hashsalt": "repro",  # deterministic SVG ids -> identical files across runs
    })


def savefig(fig, path_base: Path | str) -> tuple[Path, Path]:
    """Save ``fig`` as ``<path_base>.png`` and ``<path_base>.svg``; returns both paths."""
    base = Path(path_base)
    if base.suffix in (".png", ".svg"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    png, svg = base.with_suffix(".png"), base.with_suffix(".svg")
    fig.savefig(png, metadata={"Software": None})
    fig.savefig(svg, metadata={"Date": None})
    return png, svg
