"""Figures readable at the book's page width: repro.plots.check_layout finds overlapping texts and text
too small after scaling; every registered figure function passes it on small synthetic data, and
every figure of the smoke book passes it (recorded by ctx.savefig)."""
import importlib
import json
import pkgutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import repro.plots as P  # noqa: E402
from repro.book import stage as book  # noqa: E402


@pytest.fixture(autouse=True)
def _style():
    P.set_style()
    yield
    plt.close("all")


def test_clean_figure_has_no_problems():
    fig, ax = plt.subplots(figsize=P.page_figsize(0.5))
    ax.plot([0, 1], [0, 1], label="msp")
    ax.set(xlabel="p (%)", ylabel="FPR (%)", title="a clean panel")
    ax.legend(loc="lower right")
    assert P.check_layout(fig) == []


def test_colliding_tick_labels_are_found():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar([f"a long category name {i}" for i in range(8)], range(8))
    probs = P.check_layout(fig)
    assert probs and all(p.startswith("overlap:") for p in probs)
    assert "x-tick 'a long category name 0'" in probs[0]


def test_legend_over_title_is_found():
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([0, 1], [0, 1], label="a long legend entry")
    ax.set_title("A title the legend covers")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 1.14))
    assert any("title" in p and "legend" in p for p in P.check_layout(fig))


def test_figure_too_wide_for_the_page_is_found():
    fig, axs = plt.subplots(1, 11, figsize=(22, 2.5))  # the old 11-panel unit-test grid
    for a in axs:
        a.plot([0, 1])
    probs = P.check_layout(fig)
    assert any(p.startswith("too small to read") for p in probs), probs
    # The same content at page width is fine.
    fig2, axs2 = plt.subplots(2, 2, figsize=P.page_figsize(0.7), constrained_layout=True)
    for a in axs2.flat:
        a.plot([0, 1])
    assert P.check_layout(fig2) == []


def test_text_outside_the_figure_without_tight_bbox(monkeypatch):
    monkeypatch.setitem(plt.rcParams, "savefig.bbox", "standard")
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(1.5, 0.5, "off the edge", transform=ax.transAxes)
    assert any(p.startswith("outside:") and "off the edge" in p for p in P.check_layout(fig))


def test_registry_decorator():
    key = "test_book_figures.tiny"

    @P.figure_check(lambda: (np.arange(5),), {"label": "x"}, name=key)
    def tiny(x, label):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot(x, label=label)
        return fig

    try:
        fn, args, kwargs = P.FIGURE_CHECKS[key]
        assert fn is tiny and P.check_layout(fn(*args(), **kwargs)) == []
    finally:
        P.FIGURE_CHECKS.pop(key)


def _import_plot_modules():
    for m in pkgutil.iter_modules(P.__path__):
        importlib.import_module(f"repro.plots.{m.name}")
    return sorted(P.FIGURE_CHECKS)


@pytest.mark.parametrize("key", _import_plot_modules())
def test_registered_figure_functions_are_readable(key):
    """Every function registered with @repro.plots.figure_check, on its small synthetic inputs."""
    fn, make_args, make_kwargs = P.FIGURE_CHECKS[key]
    kwargs = make_kwargs() if callable(make_kwargs) else dict(make_kwargs or {})
    fig = fn(*make_args(), **kwargs)
    assert isinstance(fig, matplotlib.figure.Figure), f"{key} must return a Figure"
    probs = P.check_layout(fig)
    assert not probs, f"{key}:\n" + "\n".join(probs)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_figure_of_the_smoke_book_is_readable(smoke_site):
    """ctx.savefig measured each figure as the notebook showed it (figure_layout.json per chapter)."""
    assert smoke_site["rc"] == 0, smoke_site["log"]
    bad = []
    for nb in book.notebook_paths():
        f = smoke_site["results"] / "smoke" / book.chapter_of(nb) / "figure_layout.json"
        if not f.exists():
            continue  # a chapter without figures
        for name, rec in json.loads(f.read_text()).items():
            bad += [f"{book.chapter_of(nb)}/{name}: {p}" for p in rec["problems"]]
    assert not bad, "\n".join(bad)
