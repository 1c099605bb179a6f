"""The dissertation's printed numbers, and the "claim | paper | reproduced | verdict" tables.

``tables/`` holds one CSV per printed table (copied from the dissertation text; see each
``<name>.source.txt`` or the shared reference notes for line numbers). Chapters compare their
reproduced numbers against these and never against numbers typed into a notebook.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

TABLE_DIR = Path(__file__).resolve().parent / "tables"

VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "not testable at this scale")
CLAIM_COLUMNS = ["claim", "paper", "reproduced", "verdict"]


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
    An optional ``section`` column links the claim to the notebook section that tests it.
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
    df = pd.DataFrame(rows)
    cols = CLAIM_COLUMNS + [c for c in df.columns if c not in CLAIM_COLUMNS]
    df = df[cols]
    for c in ("paper", "reproduced"):
        df[c] = df[c].astype(str)
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
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
        df.insert(0, "chapter", p.parent.name)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["chapter"] + CLAIM_COLUMNS)
    return pd.concat(frames, ignore_index=True)
