"""Tables as a reader sees them: escaped HTML, numbers formatted for people, verdicts colour-coded.

Markdown pipe tables break on a ``|`` inside a cell and pass ``<eos>`` through as a tag, so every
table the book shows (data tables, claim tables, the summary) is rendered here as HTML from the
DataFrame, with every cell and header escaped. Raw values stay in the CSV next to the page.
"""
from __future__ import annotations

import html
import math
import numbers
import re

import numpy as np
import pandas as pd

MISSING = "–"  # en dash: what a reader sees for NaN / None / empty

# Background / text colour per verdict; readable on the light theme and colour-blind distinguishable
# by lightness as well as hue (the verdict text is always printed too).
VERDICT_STYLE = {
    "reproduced": ("#d7f0dd", "#0b5a22"),
    "partly reproduced": ("#fff0c2", "#6b4a00"),
    "not reproduced": ("#f9d6d5", "#8a1010"),
    "not testable at this scale": ("#e6e6e6", "#333333"),
}

_UNNAMED = re.compile(r"^Unnamed: \d+(_level_\d+)?$")


def esc(x) -> str:
    """HTML-escape any value's text (quotes too: the text may end up inside an attribute)."""
    return html.escape(str(x), quote=True)


def is_missing(v) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() in ("", "nan", "NaN", "None")


def column_decimals(values, digits: int | None = None) -> int:
    """Decimals for one float column: ``digits`` if given, else three significant digits of the
    column's typical (median absolute, non-zero) value, between 0 and 4 decimals, so a column reads
    consistently (87.7 / 5.3, not 87.65432 / 5.3)."""
    if digits is not None:
        return int(digits)
    a = np.abs(np.asarray([v for v in values if not is_missing(v)], dtype=float))
    a = a[np.isfinite(a) & (a > 0)]
    if a.size == 0:
        return 0
    return int(np.clip(2 - math.floor(math.log10(float(np.median(a)))), 0, 4))


def _is_integral(values) -> bool:
    vals = [v for v in values if not is_missing(v)]
    return bool(vals) and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                              and float(v).is_integer() and abs(v) < 2 ** 53 for v in vals)


def format_number(v, decimals: int | None, integral: bool) -> str:
    if is_missing(v):
        return MISSING
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, numbers.Integral) or (integral and isinstance(v, numbers.Real)):
        iv = int(v)
        return f"{iv:,}" if abs(iv) >= 10_000 else str(iv)
    if isinstance(v, numbers.Real):
        f = float(v)
        if math.isinf(f):
            return "∞" if f > 0 else "−∞"
        s = f"{f:,.{decimals or 0}f}" if abs(f) >= 10_000 else f"{f:.{decimals or 0}f}"
        return s.replace("-", "−") if s.startswith("-") else s
    return str(v)


def _resolved(v, decimals: int | None) -> str:
    """``format_number`` with the column's decimals, unless they misstate the value by more than 5 % (a radius
    0.0005 in a column shown with 3 decimals would read "0.001"): then three significant digits."""
    out = format_number(v, decimals, False)
    if isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and not is_missing(v):
        f = float(v)
        if math.isfinite(f) and f != 0 and abs(round(f, decimals or 0) - f) > 0.05 * abs(f):
            g = f"{f:.3g}"
            return g.replace("-", "−") if g.startswith("-") else g
    return out


def format_column(s: pd.Series, digits: int | None = None) -> list[str]:
    """One column as display strings (not escaped)."""
    vals = list(s)
    nums = [v for v in vals if not is_missing(v)]
    if nums and all(isinstance(v, (numbers.Real, np.bool_)) for v in nums):
        integral = _is_integral(nums)
        dec = None if integral else column_decimals(nums, digits)
        return [_resolved(v, dec) if not integral else format_number(v, dec, integral) for v in vals]
    return [MISSING if is_missing(v) else str(v) for v in vals]


def _flat_name(c) -> str:
    if isinstance(c, tuple):
        parts = [str(p) for p in c if str(p) != "" and not _UNNAMED.match(str(p))]
        return " / ".join(parts)
    c = "" if c is None else str(c)
    return "" if _UNNAMED.match(c) else c


def prepare(df: pd.DataFrame, index: bool = False) -> pd.DataFrame:
    """The frame a reader sees: a named index (``set_index("model")``) or ``index=True`` becomes
    leading columns; an unnamed default index and pandas' ``Unnamed: 0`` leftovers disappear."""
    df = df.copy()
    named = any(n is not None for n in df.index.names)
    if index or named:
        df = df.reset_index()
    df.columns = [_flat_name(c) for c in df.columns]
    # An 'Unnamed: 0' column read back from a CSV that stored the index: drop it when it is just 0..n-1.
    keep = []
    for i, c in enumerate(df.columns):
        col = df.iloc[:, i]
        if c == "" and pd.api.types.is_integer_dtype(col) and list(col) == list(range(len(col))):
            continue
        keep.append(i)
    return df.iloc[:, keep]


def frame_html(df: pd.DataFrame, *, index: bool = False, digits: int | dict | None = None,
               table_id: str | None = None, cell_style=None, css_class: str = "repro-table") -> str:
    """``df`` as one escaped HTML ``<table>`` (no blank lines, so it survives inside Markdown).

    ``digits``: decimals for every float column, or ``{column: decimals}``. ``cell_style(col, value)``
    may return an inline CSS string for a cell (used for verdict colours).
    """
    show = prepare(df, index=index)
    cols = list(show.columns)
    formatted, numeric = [], []
    for i, c in enumerate(cols):
        d = digits.get(c) if isinstance(digits, dict) else digits
        col = show.iloc[:, i]
        formatted.append(format_column(col, d))
        numeric.append(pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col))
    ident = f' id="{esc(table_id)}"' if table_id else ""
    out = [f'<table class="{esc(css_class)}"{ident}>', "<thead><tr>"]
    out += [f'<th style="text-align:{"right" if num else "left"}">{esc(c)}</th>' for c, num in zip(cols, numeric)]
    out.append("</tr></thead><tbody>")
    for r in range(len(show)):
        cells = []
        for i, c in enumerate(cols):
            style = "text-align:right;white-space:nowrap" if numeric[i] else "text-align:left"
            extra = cell_style(c, show.iloc[r, i]) if cell_style else None
            if extra:
                style += ";" + extra
            cells.append(f'<td style="{style}">{esc(formatted[i][r])}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def verdict_style(col, value) -> str | None:
    if col != "verdict":
        return None
    bg, fg = VERDICT_STYLE.get(str(value), ("", ""))
    return f"background:{bg};color:{fg};font-weight:600" if bg else None


CLAIM_DISPLAY = ["claim", "paper", "reproduced", "verdict", "why"]


def claims_html(claims: pd.DataFrame, extra_columns: tuple[str, ...] = (), force_why: bool = False) -> str:
    """A claim table as escaped HTML with colour-coded verdicts; the ``why`` column when some row has
    a reason (always with ``force_why``). Paper / reproduced stay the strings the chapter formatted."""
    df = claims.copy()
    if force_why and "why" not in df.columns:
        df["why"] = None
    cols = list(extra_columns) + [c for c in CLAIM_DISPLAY if c in df.columns]
    if "why" in cols and not force_why and not df["why"].map(lambda v: not is_missing(v)).any():
        cols.remove("why")
    df = df[cols].astype(object).where(df[cols].notna(), None)
    for c in ("paper", "reproduced"):
        if c in df:
            df[c] = df[c].map(lambda v: None if is_missing(v) else str(v))
    return frame_html(df.reset_index(drop=True), cell_style=verdict_style, css_class="repro-table repro-claims")


def verdict_counts_html(counts: dict) -> str:
    """``{verdict: n}`` as coloured badges, in the vocabulary's order."""
    parts = []
    for v, (bg, fg) in VERDICT_STYLE.items():
        n = int(counts.get(v, 0))
        parts.append(f'<span class="repro-verdict" style="background:{bg};color:{fg};padding:0 .4em;'
                     f'border-radius:3px;white-space:nowrap">{esc(v)}: {n}</span>')
    return " ".join(parts)
