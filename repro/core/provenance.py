"""Provenance of a chapter run: profile, seed, device, commit, versions, wall time, and per cached step
where its entries came from (computed / loaded from the local cache / loaded from a release).

Every loaded entry was made by the current code: cache keys contain the fingerprint of the code that
computes the entry (:mod:`repro.core.fingerprint`), so an entry made by other code cannot match a
key. The box says so and lists the releases whose entries were used, with their build time."""
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
    cache_release: int = 0
    computed: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    releases: list = field(default_factory=list)
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
        self.cache_release = sum(e[2] == "release" for e in events)
        per: dict[str, dict] = {}
        rels: dict[tuple, dict] = {}
        for name, key, kind, dt in events:
            s = per.setdefault(name, {"step": name, "computed": 0, "cache": 0, "release": 0, "seconds": 0.0, "code": set()})
            if kind == "miss":
                s["computed"] += 1
                s["seconds"] += dt
            elif kind == "hit":
                s["cache"] += 1
            elif kind == "release":
                s["release"] += 1
                r = cache.DETAILS.get((name, key), {}).get("release")
                if r:
                    rels[(r["chapter"], r["profile"], r["release"])] = r
            code = cache.DETAILS.get((name, key), {}).get("code")
            if code and kind != "corrupt":
                s["code"].add(code[:12])
        self.steps = [{**s, "seconds": round(s["seconds"], 1), "code": sorted(s["code"])} for _, s in sorted(per.items())]
        self.computed = [{"step": s["step"], "entries": s["computed"], "seconds": s["seconds"]}
                         for s in self.steps if s["computed"]]
        self.releases = [rels[k] for k in sorted(rels)]
        return self

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def save(self, path) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    def markdown(self) -> str:
        v = self.versions
        vers = ", ".join(f"{k} {v[k]}" for k in ("torch", "timm", "transformers", "numpy") if k in v)

        def src(s):
            parts = [f"computed ×{s['computed']} ({s['seconds']} s)" if s["computed"] else "",
                     f"loaded from cache ×{s['cache']}" if s["cache"] else "",
                     f"loaded from release ×{s['release']}" if s["release"] else ""]
            return "; ".join(p for p in parts if p)

        steps = "<br>".join(f"`{s['step']}`: {src(s)}" for s in self.steps) or "none (no cached step)"
        rels = "<br>".join(f"{r['chapter']}/{r['profile']} #{r['release']}, built {r['built']} at `{r['commit']}` "
                           f"in {r['build_seconds']:.0f} s (its entries: {r.get('compute_seconds', 0):,.0f} s of compute)"
                           for r in self.releases)
        return (
            ":::{admonition} Provenance of this page\n:class: note\n\n"
            f"| | |\n|---|---|\n"
            f"| profile | `{self.profile}` (sizes from `{self.profile_file}`) |\n| seed | {self.seed} |\n| device | {self.device} |\n"
            f"| git commit | `{self.commit}` |\n| run started (UTC) | {self.started} |\n"
            f"| wall time | {self.wall_time_s:.1f} s |\n"
            f"| cache | {self.cache_misses} computed, {self.cache_hits} loaded from cache, {self.cache_release} loaded from "
            f"release, {self.cache_corrupt} corrupt entries recomputed |\n"
            f"| cached steps | {steps} |\n"
            + (f"| releases used | {rels} |\n" if rels else "")
            + "| code | every loaded entry was made by the current code (the commit above): each cache key contains a fingerprint "
            "of the source of the computation and of the `repro` modules it imports (plots, book, CLI, job runner "
            "and report modules excluded), so an entry made by other code cannot match |\n"
            f"| python / packages | {self.python}; {vers} |\n:::\n"
        )
