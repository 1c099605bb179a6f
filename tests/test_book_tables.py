"""Tables as a reader sees them: ctx.table (numbered, escaped, formatted for people), figure numbers,
claim tables rendered from the frame as HTML with verdict colours, and the summary page."""
import html
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from repro.book import notebook as nbmod
from repro.book.render import MISSING, claims_html, format_column, frame_html
from repro.reference import claims_frame

NASTY = "|Spearman| < 0.3 & τ > 0 for <EOT> and <eos>"


class _Table(HTMLParser):
    """Cells per row and any element that is not part of a table (an un-escaped tag)."""

    ALLOWED = {"table", "thead", "tbody", "tr", "th", "td"}

    def __init__(self):
        super().__init__()
        self.rows, self.stray, self._row = [], [], None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        if tag not in self.ALLOWED:
            self.stray.append(tag)
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "tr":
            self.rows.append(self._row)
        elif tag in ("td", "th"):
            self._row.append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def parse(h: str) -> _Table:
    p = _Table()
    p.feed(h)
    p.close()
    return p


def test_numbers_formatted_for_people():
    df = pd.DataFrame({"model": ["a", "b", "c"], "count": [17.0, 32.0, np.nan], "bytes": [19620740.0, 5.0, 7.0],
                       "fpr": [87.654321, 5.3, 12.0], "ratio": [0.312165, 0.5, 0.25], "n": [1, 2, 3]})
    t = parse(frame_html(df))
    header, *rows = t.rows
    assert header == ["model", "count", "bytes", "fpr", "ratio", "n"]
    assert rows[0] == ["a", "17", "19,620,740", "87.7", "0.312", "1"]
    assert rows[2][1] == MISSING
    assert frame_html(df, digits=1).count("0.3<") == 1  # digits= overrides the automatic choice
    assert parse(frame_html(df, digits={"ratio": 1})).rows[1][4] == "0.3"


def test_index_rules_and_unnamed_leftovers():
    df = pd.DataFrame({"x": [1.5, 2.5]}, index=[9, 11])
    assert parse(frame_html(df)).rows[0] == ["x"]  # unnamed index hidden
    assert parse(frame_html(df, index=True)).rows[1][0] == "9"
    named = pd.DataFrame({"model": ["r18", "vit"], "fpr": [1.25, 2.5]}).set_index("model")
    assert parse(frame_html(named)).rows[0] == ["model", "fpr"]  # a named index is data
    back = pd.DataFrame({"Unnamed: 0": [0, 1], "x": [1, 2]})  # a CSV that stored its index
    assert parse(frame_html(back)).rows[0] == ["x"]
    multi = pd.DataFrame([[1.0, 2.0]], columns=pd.MultiIndex.from_tuples([("fpr", "msp"), ("fpr", "maha")]))
    assert parse(frame_html(multi)).rows[0] == ["fpr / msp", "fpr / maha"]


def test_cells_and_headers_are_escaped():
    df = pd.DataFrame({"a|<b>": [NASTY, "x"], "v": [1, 2]})
    h = frame_html(df)
    t = parse(h)
    assert not t.stray, f"un-escaped tags: {t.stray}"
    assert {len(r) for r in t.rows} == {2}
    assert t.rows[1][0] == NASTY and t.rows[0][0] == "a|<b>"
    assert "<EOT>" not in h and html.escape("<EOT>") in h


def test_claims_html_escapes_and_colours():
    cl = claims_frame([
        {"claim": NASTY, "paper": "<0.3 | >0", "reproduced": "a & b", "verdict": "reproduced"},
        {"claim": "second", "paper": "1", "reproduced": "2", "verdict": "not reproduced",
         "why": "ID accuracy 62 % < paper's 80 %"},
    ])
    h = claims_html(cl)
    t = parse(h)
    assert not t.stray
    assert t.rows[0] == ["claim", "paper", "reproduced", "verdict", "why"]
    assert t.rows[1][:4] == [NASTY, "<0.3 | >0", "a & b", "reproduced"]
    assert t.rows[2][4] == "ID accuracy 62 % < paper's 80 %"
    assert "background:#d7f0dd" in h and "background:#f9d6d5" in h
    # No reasons given at all: no empty 'why' column.
    assert "why" not in parse(claims_html(cl.assign(why=""))).rows[0]


def test_claims_frame_kind_and_why():
    cl = claims_frame([{"claim": "c", "paper": "1", "reproduced": "1", "verdict": "reproduced", "kind": "check"},
                       {"claim": "d", "paper": "1", "reproduced": "2", "verdict": "not reproduced", "why": "w"}])
    assert list(cl["kind"]) == ["check", "claim"] and list(cl["why"]) == ["", "w"]
    with pytest.raises(ValueError, match="kind"):
        claims_frame([{"claim": "c", "paper": "1", "reproduced": "1", "verdict": "reproduced", "kind": "test"}])
    old = claims_frame([{"claim": "c", "paper": "1", "reproduced": "1", "verdict": "reproduced"}])
    assert list(old.columns) == ["claim", "paper", "reproduced", "verdict"]  # backwards compatible


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(nbmod, "_in_notebook", lambda: True)
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    c = nbmod.start_chapter("ch5", profile="smoke", seed=0, device="cpu")
    c.shown = shown
    return c


def _texts(objs):
    out = []
    for o in objs:
        out.append(getattr(o, "data", None) if hasattr(o, "data") else repr(o))
    return out


def test_ctx_table_numbers_escapes_and_returns_none(ctx):
    df = pd.DataFrame({"claim": [NASTY], "count": [17.0], "fpr": [np.nan]})
    assert ctx.table(df, "first", "The first table.") is None
    ctx.table(df.assign(count=3.0), "second", "The second.")
    texts = [t for t in _texts(ctx.shown) if isinstance(t, str)]
    assert texts[0] == "**Table 5.1.** The first table."
    assert any(t.startswith("**Table 5.2.** The second.") for t in texts)
    tables = [t for t in texts if t.startswith("<table")]
    assert len(tables) == 2
    p = parse(tables[0])
    assert p.rows[1] == [NASTY, "17", MISSING] and not p.stray
    assert any("../data/ch5/first.csv" in t for t in texts)
    raw = pd.read_csv(ctx.out / "first.csv")
    assert list(raw.columns) == ["claim", "count", "fpr"] and raw.loc[0, "count"] == 17.0
    with pytest.raises(ValueError, match="twice"):
        ctx.table(df, "first", "again")
    with pytest.raises(ValueError, match="caption"):
        ctx.table(df, "third", "")


def test_figures_numbered_in_call_order(ctx):
    import matplotlib.pyplot as plt

    for name in ("a", "b"):
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot([0, 1], [0, 1])
        ctx.savefig(fig, name, caption=f"caption {name}")
    fig, _ = plt.subplots()
    ctx.savefig(fig, "hidden", show=False)
    assert [f["number"] for f in ctx.figures] == ["5.1", "5.2", None]
    texts = [t for t in _texts(ctx.shown) if isinstance(t, str)]
    assert any(t.startswith("**Figure 5.2.** caption b") for t in texts)


def test_finish_splits_checks_renders_html_and_returns_none(ctx):
    cl = claims_frame([
        {"claim": NASTY, "paper": "1", "reproduced": "1", "verdict": "reproduced"},
        {"claim": "params of WRN-28-10", "paper": "36.5M", "reproduced": "36.5M", "verdict": "reproduced",
         "kind": "check"},
    ])
    assert ctx.finish(cl) is None
    texts = [t for t in _texts(ctx.shown) if isinstance(t, str)]
    assert "#### Implementation checks" in texts
    tables = [t for t in texts if t.startswith("<table")]
    assert len(tables) == 2 and all(not parse(t).stray for t in tables)
    assert not any("| claim |" in t for t in texts), "no Markdown pipe tables"


def test_chapter_number():
    assert nbmod.chapter_number("ch3") == "3" and nbmod.chapter_number("appendix") == "A"


def test_format_column_keeps_text():
    assert format_column(pd.Series(["a", None, "nan"])) == ["a", MISSING, MISSING]
    assert re.fullmatch(r"−1\.50", format_column(pd.Series([-1.5, 2.25]))[0])


def test_a_value_the_column_decimals_would_misstate_gets_significant_digits():
    from repro.book.render import format_column
    # a radius column: 0.0005 among 0.05 / 0.2 must not read "0.001" (or "0.000")
    col = format_column(pd.Series([0.05, 0.2, 0.4, 0.8, 0.0005, 0.0]))
    assert col == ["0.050", "0.200", "0.400", "0.800", "0.0005", "0.000"]
    assert format_column(pd.Series([87.6, 55.3, 0.04]))[2] == "0.04"     # an FPR of 0.04 % is not 0.0 %
    assert format_column(pd.Series([-0.00012, 0.5, 0.25]))[0] == "−0.00012"
