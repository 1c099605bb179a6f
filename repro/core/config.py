"""Profiles, paths, seeds and device selection.

A *profile* fixes the scale of every chapter:

``smoke``  every code path at tiny sizes (tests, CI; whole book in a few minutes),
``cpu``    the complete small-scale reproduction on generated data (default of ``make book``),
``full``   paper scale with pretrained weights and real datasets (CUDA machines).

Each chapter keeps its sizes as data in ``repro/profiles/<chapter>.yaml`` with one top-level
key per profile, so a reader sees at a glance what was scaled down.
"""
from __future__ import annotations

import os
import random
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

PROFILES: tuple[str, ...] = ("smoke", "cpu", "full")
DEVICES_HELP = "'auto', 'cpu', 'cuda' or 'cuda:N'"

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the repro package (this file is repro/core/config.py)
PROFILE_DIR = PACKAGE_DIR / "profiles"


def project_root() -> Path:
    """The checkout root when running from a source tree, else the current directory."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").exists():
        return root
    return Path.cwd()


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(
            f"unknown profile {profile!r}; allowed values: {', '.join(PROFILES)} "
            "(e.g. `papermill ... -p profile cpu`)"
        )
    return profile


def chapter_sort_key(name: str) -> tuple:
    """Book order: numbered chapters by number (ch3 < ch10), then appendices and others by name."""
    m = re.fullmatch(r"ch(\d+)", name.split("_")[0])
    return (0, int(m.group(1)), name) if m else (1, 0, name)


def chapters() -> list[str]:
    """Chapters that have a profile file, in book order (ch3, ch4, ..., then appendix)."""
    return sorted((p.stem for p in PROFILE_DIR.glob("*.yaml")), key=chapter_sort_key)


def profile_path(chapter: str) -> Path:
    """``$REPRO_PROFILE_DIR/<chapter>.yaml`` when that file exists, else the packaged one.

    The override lets a cluster site (or a test with small local stand-ins of the real assets)
    change one chapter's sizes and model lists without editing the package; the book's
    provenance records which file was used."""
    override = os.environ.get("REPRO_PROFILE_DIR")
    if override:
        cand = Path(override).expanduser() / f"{chapter}.yaml"
        if cand.exists():
            return cand
    return PROFILE_DIR / f"{chapter}.yaml"


def _load_profile_file(chapter: str) -> dict[str, Any]:
    return _parse_profile_file(profile_path(chapter), chapter)


@lru_cache(maxsize=None)
def _parse_profile_file(path: Path, chapter: str) -> dict[str, Any]:
    if not path.exists():
        raise ValueError(
            f"unknown chapter {chapter!r}; chapters with a profile file: {', '.join(chapters()) or '(none)'}"
        )
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    missing = [p for p in PROFILES if p not in data]
    if missing:
        raise ValueError(f"{path} lacks the profile section(s) {missing}; each of {PROFILES} is required")
    from repro.core.schema import validate

    # every profile of the file, not only the one asked for: a typo in `full` must not wait for a GPU run
    shown = f"repro/profiles/{path.name}" if path.parent == PROFILE_DIR else str(path)
    for p in PROFILES:
        validate(chapter, p, data[p], shown)
    return data


def chapter_config(chapter: str, profile: str) -> dict[str, Any]:
    """The sizes/epochs/model lists of one chapter in one profile (a fresh copy).

    Every profile of the chapter's file is checked against its schema (:mod:`repro.core.schema`) when
    the file is loaded: an unknown (e.g. misspelled) key raises ``ValueError`` naming it."""
    check_profile(profile)
    import copy

    return copy.deepcopy(_load_profile_file(chapter)[profile])


def device(pref: str = "auto"):
    """Pick the torch device: ``auto`` means CUDA when present, else CPU."""
    import torch

    if pref in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if isinstance(pref, str) and (pref == "cuda" or pref.startswith("cuda:")):
        if not torch.cuda.is_available():
            raise ValueError(f"device={pref!r} requested but CUDA is not available here; use 'auto' or 'cpu'")
        return torch.device(pref)
    raise ValueError(f"unknown device {pref!r}; allowed: {DEVICES_HELP}")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for bit-for-bit repeatable CPU runs."""
    import torch

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


def results_root() -> Path:
    return Path(os.environ.get("REPRO_RESULTS", project_root() / "results"))


def results_dir(profile: str, chapter: str) -> Path:
    """``$REPRO_RESULTS/<profile>/<chapter>`` (created); default ``<repo>/results``."""
    check_profile(profile)
    out = results_root() / profile / chapter
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(
            f"cannot create the results folder {out} ({e.strerror}); "
            "set REPRO_RESULTS to a writable folder"
        ) from e
    if not os.access(out, os.W_OK):
        raise PermissionError(f"results folder {out} is not writable; set REPRO_RESULTS to a writable folder")
    return out


def data_root() -> Path:
    """Where external datasets live: ``$REPRO_DATA`` or ``~/.cache/repro``."""
    return Path(os.environ.get("REPRO_DATA", Path.home() / ".cache" / "repro")).expanduser()


def cache_root() -> Path:
    """Content-addressed cache: ``$REPRO_CACHE`` or ``<repo>/.repro_cache``."""
    return Path(os.environ.get("REPRO_CACHE", project_root() / ".repro_cache")).expanduser()
