"""What every chapter notebook calls: parameter validation, seeding, output folders, figures,
tables, the claim table and the provenance box.

    ctx = start_chapter("ch5", profile=profile, seed=seed, device=device)
    ...
    ctx.savefig(fig, "tau_heatmap", caption="...")
    ctx.finish(claims_df)
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import config
from .plots import savefig as _savefig
from .plots import set_style
from .provenance import Provenance
from .reference import CLAIM_COLUMNS


@dataclass
class ChapterContext:
    chapter: str
    profile: str
    seed: int
    device: Any
    cfg: dict
    out: Path
    provenance: Provenance
    figures: list = field(default_factory=list)

    @property
    def fig_dir(self) -> Path:
        d = self.out / "figures"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def savefig(self, fig, name: str, caption: str | None = None, show: bool = True) -> None:
        """Save PNG+SVG under ``out/figures/`` and display the figure with its caption.

        Returns nothing so a notebook cell ending in ``ctx.savefig(...)`` shows only the figure;
        the saved paths are in ``ctx.figures``.
        """
        png, svg = _savefig(fig, self.fig_dir / name)
        self.figures.append({"name": name, "png": str(png), "svg": str(svg), "caption": caption or ""})
        if _in_notebook() and show:
            from IPython.display import Markdown, display

            display(fig)
            if caption:
                display(Markdown(f"**Figure ({name}).** {caption}"))
        import matplotlib.pyplot as plt

        plt.close(fig)

    def save_table(self, df: pd.DataFrame, name: str, index: bool = False) -> pd.DataFrame:
        """Write ``out/<name>.csv``, show a download link for it in the book, and return ``df``."""
        df.to_csv(self.out / f"{name}.csv", index=index)
        if _in_notebook():
            from IPython.display import Markdown, display

            # `repro.book.stage` copies results/<profile>/<chapter>/*.csv to data/<chapter>/ beside chapters/.
            display(Markdown(f"{{download}}`Download this table as CSV <../data/{self.chapter}/{name}.csv>`"))
        return df

    def finish(self, claims: pd.DataFrame) -> pd.DataFrame:
        """Write claims.csv and provenance.json; display the claim table and the provenance box."""
        missing = [c for c in CLAIM_COLUMNS if c not in claims.columns]
        if missing:
            raise ValueError(f"claims table lacks columns {missing}; build it with repro.reference.claims_frame")
        claims.to_csv(self.out / "claims.csv", index=False)
        prov = self.provenance.finish()
        prov.save(self.out / "provenance.json")
        if _in_notebook():
            from IPython.display import Markdown, display

            display(Markdown("### Paper vs reproduced\n\n" + claims[CLAIM_COLUMNS].to_markdown(index=False)
                             + f"\n\n{{download}}`Download the claim table as CSV <../data/{self.chapter}/claims.csv>`"))
            display(Markdown(prov.markdown()))
        return claims


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def start_chapter(chapter: str, profile: str = "cpu", seed: int = 0, device: str = "auto") -> ChapterContext:
    """Validate papermill parameters, seed everything, set the figure style, start provenance."""
    config.check_profile(profile)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r} (e.g. -p seed 0)")
    dev = config.device(device)
    if profile == "full" and dev.type != "cuda":
        logging.getLogger("repro").warning("profile 'full' is meant for CUDA machines; running on %s will be slow", dev)
    cfg = config.chapter_config(chapter, profile)
    out = config.results_dir(profile, chapter)
    config.seed_everything(seed)
    set_style()
    _setup_logging()
    return ChapterContext(chapter=chapter, profile=profile, seed=seed, device=dev, cfg=cfg, out=out,
                          provenance=Provenance(chapter=chapter, profile=profile, seed=seed, device=str(dev)))


def _setup_logging() -> None:
    lg = logging.getLogger("repro")
    if not lg.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        lg.addHandler(h)
    lg.setLevel(logging.INFO)
