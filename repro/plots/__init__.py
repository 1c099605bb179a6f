"""One figure style for the whole book; figures are saved as PNG and SVG with the same base name.

Chapter-specific figure functions live in sibling modules (``repro.plots.ood``, ...); each takes
tidy data (DataFrames / arrays) and returns a ``matplotlib.figure.Figure``.

The page rule: a figure is shown in the book at ``figure.dpi`` (:data:`DISPLAY_DPI`) and scaled down
when it is wider than the page's content column (:data:`PAGE_WIDTH_PX`), so its smallest text must
still be :data:`MIN_TEXT_PX` pixels high after that scaling, and no two texts (tick labels, axis
labels, titles, annotations, legends) may overlap. Design figures at most :data:`PAGE_WIDTH_IN`
wide (use ``figsize=page_figsize(...)``); :func:`check_layout` reports what breaks the rule, and
``tests/test_figures.py`` runs it on every figure function registered with :func:`figure_check`.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

#: resolution of the figures as notebooks display them (the book shows that PNG)
DISPLAY_DPI = 110
#: width of the book's content column in CSS pixels (Jupyter Book 1.x, sphinx-book-theme, desktop)
PAGE_WIDTH_PX = 730
#: the widest figure shown at its natural size
PAGE_WIDTH_IN = PAGE_WIDTH_PX / DISPLAY_DPI
#: smallest readable text height on the page (CSS px; about 7.5 pt on a 96-dpi screen)
MIN_TEXT_PX = 10.0


def set_style() -> None:
    """Colour-blind-safe palette, readable sizes, no chart junk."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.95)
    plt.rcParams.update({
        "figure.dpi": DISPLAY_DPI,
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


def min_display_scale(font_pt: float | None = None) -> float:
    """The smallest factor a figure may be scaled by on the page before text of ``font_pt`` points
    (default: the style's tick-label size) drops under :data:`MIN_TEXT_PX` (used by the browser test)."""
    if font_pt is None:
        from matplotlib.font_manager import FontProperties

        with plt.rc_context():  # the style's sizes, without changing the caller's settings
            set_style()
            font_pt = FontProperties(size=plt.rcParams["xtick.labelsize"]).get_size_in_points()
    return min(1.0, MIN_TEXT_PX / (font_pt * DISPLAY_DPI / 72.0))


def page_figsize(height_ratio: float = 0.5, width: float | None = None) -> tuple[float, float]:
    """``(width, height)`` in inches for a figure that fills the page column (or ``width`` inches)."""
    w = PAGE_WIDTH_IN if width is None else float(width)
    return (w, w * float(height_ratio))


def _rendered_bbox_in(fig, renderer):
    """The figure's extent as saved and displayed (``bbox_inches="tight"`` grows it to the artists)."""
    if plt.rcParams.get("savefig.bbox") == "tight":
        return fig.get_tightbbox(renderer)
    return fig.bbox_inches


def _tick_texts(axis):
    try:  # the ticks actually drawn (inside the view limits), major and minor
        ticks = axis._update_ticks()
    except AttributeError:  # pragma: no cover - private API moved
        ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    for t in ticks:
        for lab in (t.label1, t.label2):
            yield lab


def layout_texts(fig) -> list[tuple[str, object, object]]:
    """``[(description, Text or Legend, group)]`` of every visible, non-empty text of ``fig``; a
    legend counts as one box (its entries may touch each other)."""
    from matplotlib.text import Text

    out = []

    def add(desc, art, group=None):
        if art is None or not art.get_visible():
            return
        if isinstance(art, Text) and not art.get_text().strip():
            return
        out.append((desc, art, group))

    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        name = f"axes {i}" + (f" ({ax.get_title()!r})" if ax.get_title() else "")
        for axis, xy in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            for lab in _tick_texts(axis):
                add(f"{name} {xy}-tick {lab.get_text()!r}", lab)
            add(f"{name} {xy}-label {axis.label.get_text()!r}", axis.label)
            add(f"{name} {xy}-offset {axis.get_offset_text().get_text()!r}", axis.get_offset_text())
        for t in (ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None)):
            if t is not None:
                add(f"{name} title {t.get_text()!r}", t)
        for t in ax.texts:
            add(f"{name} text {t.get_text()!r}", t)
        if ax.get_legend() is not None:
            add(f"{name} legend", ax.get_legend())
    sup = [getattr(fig, attr, None) for attr in ("_suptitle", "_supxlabel", "_supylabel")]
    for t in fig.texts:
        if not any(t is s for s in sup):  # fig.suptitle() also lands in fig.texts: count it once, below
            add(f"figure text {t.get_text()!r}", t)
    for attr, t in zip(("_suptitle", "_supxlabel", "_supylabel"), sup):
        if t is not None:
            add(f"figure {attr.strip('_')} {t.get_text()!r}", t)
    for i, lg in enumerate(fig.legends):
        add(f"figure legend {i}", lg)
    return out


def _font_px(art) -> list[float]:
    from matplotlib.legend import Legend

    if isinstance(art, Legend):
        return [t.get_fontsize() for t in art.get_texts() if t.get_text().strip()] + \
            ([art.get_title().get_fontsize()] if art.get_title().get_text().strip() else [])
    return [art.get_fontsize()]


def check_layout(fig, page_width_px: float = PAGE_WIDTH_PX, min_text_px: float = MIN_TEXT_PX,
                 tol_px: float = 1.0) -> list[str]:
    """Problems a reader would meet with ``fig`` on a book page (empty list: none).

    - *too small to read*: the smallest text, after the figure is scaled to the page column, is
      under ``min_text_px`` pixels;
    - *overlap*: two texts (tick labels, axis labels, titles, annotations, legends) overlap by more
      than ``tol_px`` in both directions — colliding tick labels, a legend over a title, ...;
    - *outside*: a text leaves the figure (only when figures are not saved with a tight bbox, which
      would grow the figure to include it).
    Texts are measured with matplotlib's own renderer (``get_window_extent``) at ``DISPLAY_DPI``.
    """
    dpi0 = fig.get_dpi()
    fig.set_dpi(DISPLAY_DPI)
    try:
        canvas = fig.canvas
        canvas.draw()
        renderer = canvas.get_renderer()
        problems = []
        items = [(d, a, a.get_window_extent(renderer)) for d, a, _ in layout_texts(fig)]
        bbox_in = _rendered_bbox_in(fig, renderer)
        width_px = bbox_in.width * DISPLAY_DPI
        scale = min(1.0, page_width_px / width_px) if width_px > 0 else 1.0
        sizes = [(px, d) for d, a, _ in items for px in _font_px(a)]
        if sizes:
            pt, where = min(sizes)
            shown = pt * DISPLAY_DPI / 72.0 * scale
            if shown < min_text_px:
                fix = (f"make the figure narrower (<= {page_width_px / DISPLAY_DPI:.1f} in) or split it" if scale < 1
                       else f"use at least {min_text_px * 72.0 / DISPLAY_DPI:.1f} pt")
                problems.append(
                    f"too small to read: {where} is {pt:.1f} pt; the figure is {bbox_in.width:.1f} in "
                    f"({width_px:.0f} px) wide and is shown at {scale:.0%} on a {page_width_px:.0f} px page, "
                    f"so its text is {shown:.1f} px high (< {min_text_px:.0f}); {fix}")
        if plt.rcParams.get("savefig.bbox") != "tight":
            fb = fig.bbox
            for d, _, bb in items:
                if bb.x0 < fb.x0 - tol_px or bb.y0 < fb.y0 - tol_px or bb.x1 > fb.x1 + tol_px or bb.y1 > fb.y1 + tol_px:
                    problems.append(f"outside: {d} leaves the figure")
        for i in range(len(items)):
            di, ai, bi = items[i]
            for j in range(i + 1, len(items)):
                dj, aj, bj = items[j]
                ox = min(bi.x1, bj.x1) - max(bi.x0, bj.x0)
                oy = min(bi.y1, bj.y1) - max(bi.y0, bj.y0)
                if ox > tol_px and oy > tol_px:
                    problems.append(f"overlap: {di} and {dj} ({ox:.0f} x {oy:.0f} px)")
        return problems
    finally:
        fig.set_dpi(dpi0)


# Figure functions with small synthetic inputs, checked by tests/test_figures.py. Chapter modules
# register their functions with the decorator below, next to the function:
#
#     @figure_check(lambda: (pd.DataFrame({...}),), {"methods": ["msp"]})
#     def fpr_heatmap(df, methods): ...
FIGURE_CHECKS: dict = {}


def figure_check(make_args, make_kwargs=None, name: str | None = None):
    """Register a figure function for the layout test: ``make_args()`` returns the positional
    arguments (small synthetic data shaped like the chapter's), ``make_kwargs`` the keyword ones
    (a dict or a function returning one). Returns the function unchanged."""

    def deco(fn):
        key = name or f"{fn.__module__}.{fn.__qualname__}"
        FIGURE_CHECKS[key] = (fn, make_args, make_kwargs)
        return fn

    return deco
