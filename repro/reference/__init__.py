"""The dissertation's printed numbers, and the "claim | paper | reproduced | verdict" tables.

``tables/`` holds one CSV per printed table (copied from the dissertation text; each
``<name>.source.txt`` names the table, section and page it was transcribed from). Chapters compare their
reproduced numbers against these and never against numbers typed into a notebook.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

TABLE_DIR = Path(__file__).resolve().parent / "tables"

VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "not testable at this scale")
CLAIM_COLUMNS = ["claim", "paper", "reproduced", "verdict"]
# Optional columns. ``kind``: "claim" (a scientific claim of the dissertation, the default) or "check"
# (an implementation check: parameter counts, worked examples, exact identities, invariances), counted
# apart in the summary. ``why``: for a verdict other than "reproduced", one short sentence why.
KINDS = ("claim", "check")
OPTIONAL_CLAIM_COLUMNS = ["kind", "why", "section"]


def list_paper_tables() -> list[str]:
    return sorted(p.stem for p in TABLE_DIR.glob("*.csv"))


def load_paper_table(name: str) -> pd.DataFrame:
    """A printed table of the dissertation as a DataFrame (``name`` without ``.csv``)."""
    path = TABLE_DIR / f"{name}.csv"
    if not path.exists():
        raise ValueError(f"no paper table {name!r}; available: {', '.join(list_paper_tables())}")
    return pd.read_csv(path)


def table_source(name: str) -> str | None:
    p = TABLE_DIR / f"{name}.source.txt"
    return p.read_text().strip() if p.exists() else None


def claims_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Validate and order claim rows: each needs ``claim, paper, reproduced, verdict``.

    ``paper`` and ``reproduced`` are strings as printed (numbers formatted by the caller, so the
    table shows what the dissertation shows); ``verdict`` must be one of :data:`VERDICTS`.
    Optional columns: ``section`` links the claim to the notebook section that tests it; ``kind``
    is one of :data:`KINDS` (default "claim"; "check" for an implementation check); ``why`` is one
    short sentence for a verdict other than "reproduced" (default empty). Text may contain
    ``| < > &``: the book escapes it, so never hand-escape.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("claims_frame needs at least one claim row")
    for i, r in enumerate(rows):
        missing = [c for c in CLAIM_COLUMNS if c not in r]
        if missing:
            raise ValueError(f"claim row {i} lacks {missing}; each row needs {CLAIM_COLUMNS}")
        if r["verdict"] not in VERDICTS:
            raise ValueError(f"claim row {i}: verdict {r['verdict']!r} not in {VERDICTS}")
        kind = r.get("kind")
        kind = "claim" if kind is None or (isinstance(kind, float) and kind != kind) or kind == "" else kind
        if kind not in KINDS:
            raise ValueError(f"claim row {i}: kind {kind!r} not in {KINDS} "
                             "('claim' = the dissertation's claim, 'check' = an implementation check)")
    df = pd.DataFrame(rows)
    has_optional = [c for c in ("kind", "why") if c in df.columns]
    cols = CLAIM_COLUMNS + [c for c in df.columns if c not in CLAIM_COLUMNS]
    df = df[cols]
    for c in ("paper", "reproduced"):
        df[c] = df[c].astype(str)
    # Missing optional values get their defaults; frames built without them keep their old columns.
    if "kind" in has_optional:
        df["kind"] = df["kind"].where(df["kind"].notna() & (df["kind"] != ""), "claim")
    if "why" in has_optional:
        df["why"] = df["why"].where(df["why"].notna(), "").astype(str)
    return df


# --------------------------------------------------------------------------- world cards
#: what a world card says where the run did not measure a value (a missing input, or only NaN)
NOT_MEASURED = "not measured"
WORLD_CARD_COLUMNS = ["aspect", "paper", "this world"]


def world_card_frame(rows: Iterable[tuple]) -> pd.DataFrame:
    """A chapter's world card: ``(aspect, paper, this world)`` rows, the paper's setting beside this run's."""
    return pd.DataFrame(list(rows), columns=WORLD_CARD_COLUMNS)


def finite_values(values) -> pd.Series:
    """The finite entries of ``values`` as floats (None, NaN, inf and non-numbers dropped)."""
    v = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").astype(float)
    return v[np.isfinite(v)]


def pct_range(values, scale: float = 1.0, unit: str | None = None) -> str:
    """``"62.1-64.0 % (mean 63.0 %)"`` of the finite ``values`` times ``scale``, one value as ``"63.0 %"``,
    none as :data:`NOT_MEASURED`. ``unit`` (e.g. ``"run"``) adds the count: ``"(mean 63.0 %, 3 runs)"``,
    ``"63.0 % (1 run)"``."""
    v = finite_values(values) * scale
    if not len(v):
        return NOT_MEASURED
    if len(v) == 1:
        return f"{v.iloc[0]:.1f} %" + (f" (1 {unit})" if unit else "")
    count = f", {len(v)} {unit}s" if unit else ""
    return f"{v.min():.1f}-{v.max():.1f} % (mean {v.mean():.1f} %{count})"


def with_claim_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``kind`` ("claim") and ``why`` ("") filled in where a table predates them."""
    df = df.copy()
    if "kind" not in df.columns:
        df["kind"] = "claim"
    df["kind"] = df["kind"].replace("", "claim").fillna("claim")
    if "why" not in df.columns:
        df["why"] = ""
    df["why"] = df["why"].fillna("")
    return df


def verdict_from(ok: bool | None, partly: bool = False) -> str:
    """Map a computed check to the verdict vocabulary (``None`` = not testable at this scale)."""
    if ok is None:
        return "not testable at this scale"
    if ok:
        return "reproduced"
    return "partly reproduced" if partly else "not reproduced"


def summary(results_root: Path, profile: str) -> pd.DataFrame:
    """All chapters' claim tables of one profile, concatenated (for the book's summary page)."""
    frames = []
    for p in sorted((Path(results_root) / profile).glob("*/claims.csv")):
        df = with_claim_defaults(pd.read_csv(p, dtype=str, keep_default_na=False))
        df.insert(0, "chapter", p.parent.name)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["chapter"] + CLAIM_COLUMNS + ["kind", "why"])
    return pd.concat(frames, ignore_index=True)
