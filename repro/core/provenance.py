"""Provenance of a chapter run: profile, seed, device, commit, versions, wall time, cache use."""
from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata

from repro.core import cache
from repro.core.config import project_root

PACKAGES = ("repro", "torch", "torchvision", "timm", "transformers", "numpy", "scipy", "pandas",
            "scikit-learn", "faiss-cpu", "matplotlib")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=project_root(),
                             capture_output=True, text=True, timeout=5)
        sha = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_root(),
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "-"
    return out


@dataclass
class Provenance:
    chapter: str
    profile: str
    seed: int
    device: str
    profile_file: str = ""
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    commit: str = field(default_factory=git_commit)
    python: str = field(default_factory=platform.python_version)
    machine: str = field(default_factory=lambda: f"{platform.machine()}, {platform.processor() or platform.system()}")
    versions: dict = field(default_factory=package_versions)
    wall_time_s: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_corrupt: int = 0
    computed: list = field(default_factory=list)
    _t0: float = field(default_factory=time.perf_counter, repr=False)
    _n0: int = field(default_factory=lambda: len(cache.EVENTS), repr=False)

    def __post_init__(self) -> None:
        if not self.profile_file:
            from repro.core.config import PROFILE_DIR, profile_path

            p = profile_path(self.chapter)
            # packaged files by their repo path; a REPRO_PROFILE_DIR override by its full path
            self.profile_file = f"repro/profiles/{p.name}" if p.parent == PROFILE_DIR else str(p)

    def finish(self) -> "Provenance":
        self.wall_time_s = round(time.perf_counter() - self._t0, 1)
        events = cache.EVENTS[self._n0:]
        self.cache_hits = sum(e[2] == "hit" for e in events)
        self.cache_misses = sum(e[2] == "miss" for e in events)
        self.cache_corrupt = sum(e[2] == "corrupt" for e in events)
        per = {}
        for name, _, kind, dt in events:
            if kind == "miss":
                n, t = per.get(name, (0, 0.0))
                per[name] = (n + 1, t + dt)
        self.computed = [{"step": k, "entries": n, "seconds": round(t, 1)} for k, (n, t) in sorted(per.items())]
        return self

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def save(self, path) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    def markdown(self) -> str:
        v = self.versions
        steps = ", ".join(f"{c['step']} ×{c['entries']} ({c['seconds']} s)" for c in self.computed) or "none (all from cache)"
        vers = ", ".join(f"{k} {v[k]}" for k in ("torch", "timm", "transformers", "numpy") if k in v)
        return (
            ":::{admonition} Provenance of this page\n:class: note\n\n"
            f"| | |\n|---|---|\n"
            f"| profile | `{self.profile}` (sizes from `{self.profile_file}`) |\n| seed | {self.seed} |\n| device | {self.device} |\n"
            f"| git commit | `{self.commit}` |\n| run started (UTC) | {self.started} |\n"
            f"| wall time | {self.wall_time_s:.1f} s |\n"
            f"| cache | {self.cache_hits} hits, {self.cache_misses} computed, {self.cache_corrupt} corrupt entries recomputed |\n"
            f"| computed this run | {steps} |\n"
            f"| python / packages | {self.python}; {vers} |\n:::\n"
        )
