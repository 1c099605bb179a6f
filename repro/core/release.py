"""Released artifacts: a read-only, versioned store of expensive cache entries shipped with the repository.

The paper does not train its ImageNet models; it uses released checkpoints. The small world does the
same: ``repro release <chapter> --profile <p>`` runs the chapter into an empty temporary cache (with
the store disabled, so a release is always re-derived from code), then copies the entries of the
chapter's *released families* (``<store>/families.yaml``: the expensive training steps) into

    <store>/<chapter>/<profile>/<name>/<key>.pt      the cache entries, unchanged (same format, checksums)
    <store>/<chapter>/<profile>/manifest.json        what was released, by whom, from which code

The store is ``<repo>/releases`` (or ``$REPRO_RELEASES``). :func:`repro.core.cache.get_or_compute`
looks there after the local cache and before computing. Keys carry the code fingerprint, so a
released entry made by other code never matches a lookup: a stale release is never used, it is
simply recomputed. ``tests/test_core_release.py`` fails on a stale committed release (so changing the
training code means re-releasing), and re-derives a release bit-identically.

Disable the store with ``REPRO_NO_RELEASE=1`` (``repro run --no-release``, ``make book REBUILD=1``).

Manifest (``format`` 1): chapter, profile, seed, device, release (a counter, +1 per re-release of the
same chapter/profile), built (UTC), build_seconds, command, commit, python/torch versions, families,
and per entry: name, key, file, sha256 (of the whole file), payload_sha256 (of the serialised value:
what two bit-identical builds share), bytes, code (fingerprint), code_roots, version, metrics (scalar
numbers the value carries, e.g. ``test_acc``) and compute_seconds.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from repro.core.config import check_profile, project_root

FORMAT = 1
BUDGET_MB = 80.0
NO_RELEASE_ENV = "REPRO_NO_RELEASE"
STORE_ENV = "REPRO_RELEASES"


def store_root() -> Path:
    """``$REPRO_RELEASES`` or ``<repo>/releases``."""
    return Path(os.environ.get(STORE_ENV) or project_root() / "releases").expanduser()


def enabled() -> bool:
    """False when ``REPRO_NO_RELEASE`` is set to 1/true/yes (rebuild everything from code)."""
    return os.environ.get(NO_RELEASE_ENV, "").strip().lower() not in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Released:
    """One released entry found by :func:`lookup`."""

    path: Path
    chapter: str
    profile: str
    release: int
    built: str
    build_seconds: float
    commit: str
    compute_seconds: float = 0.0   # what the release's entries took to compute, summed over them

    @property
    def label(self) -> str:
        return f"release {self.chapter}/{self.profile} #{self.release}"

    def summary(self) -> dict:
        return {"chapter": self.chapter, "profile": self.profile, "release": self.release, "built": self.built,
                "build_seconds": self.build_seconds, "compute_seconds": self.compute_seconds, "commit": self.commit}


# --------------------------------------------------------------------------- lookup
_INDEX: dict[Path, dict[tuple[str, str], Released]] = {}
_LOCK = threading.Lock()


def manifest_paths(store: Path | None = None) -> list[Path]:
    store = Path(store or store_root())
    return sorted(store.glob("*/*/manifest.json")) if store.exists() else []


def read_manifest(path: Path) -> dict:
    try:
        m = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"release manifest {path} is unreadable ({e}); restore it from git or re-release") from e
    if m.get("format") != FORMAT:
        raise ValueError(f"release manifest {path} has format {m.get('format')!r}, this code reads {FORMAT}")
    return m


def compute_seconds(manifest: dict) -> float:
    """Seconds the release's entries took to compute, summed. ``build_seconds`` is the wall time of the last
    ``repro release`` call only: a release resumed from a working cache, or built by a sweep first, took longer."""
    return float(sum(e.get("compute_seconds") or 0.0 for e in manifest["entries"]))


def _index(store: Path) -> dict[tuple[str, str], Released]:
    with _LOCK:
        if store not in _INDEX:
            idx = {}
            for mp in manifest_paths(store):
                m = read_manifest(mp)
                compute = compute_seconds(m)
                for e in m["entries"]:
                    idx[(e["name"], e["key"])] = Released(mp.parent / e["file"], m["chapter"], m["profile"],
                                                          int(m["release"]), m["built"], float(m["build_seconds"]),
                                                          m.get("commit", "unknown"), compute)
            _INDEX[store] = idx
        return _INDEX[store]


def reset_index() -> None:
    """Forget the per-process index of release manifests (after a release, in tests)."""
    with _LOCK:
        _INDEX.clear()


def lookup(name: str, key: str) -> Released | None:
    """The released entry for ``(name, key)``, or None (store disabled, absent, or no such entry).

    The manifests are read once per process; a lookup is then one dict access."""
    if not enabled():
        return None
    store = store_root()
    if not store.exists():
        return None
    hit = _index(store.resolve()).get((name, key))
    return hit if hit is not None and hit.path.exists() else None


# --------------------------------------------------------------------------- families
def families(chapter: str, store: Path | None = None) -> list[str]:
    """Cache names released for ``chapter`` (``<store>/families.yaml``)."""
    import yaml

    p = Path(store or store_root()) / "families.yaml"
    data = yaml.safe_load(p.read_text()) if p.exists() else {}
    if chapter not in (data or {}):
        raise ValueError(f"no released families for chapter {chapter!r} in {p}; add a line "
                         f"`{chapter}: [<cache name>, ...]` naming its expensive cache entries "
                         f"(chapters listed: {', '.join(sorted(data or {})) or 'none'})")
    names = data[chapter]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{p}: {chapter} must map to a list of cache names, got {names!r}")
    return names


# --------------------------------------------------------------------------- build
def _sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) if d.exists() else 0


def build(chapter: str, profile: str, runner: Callable[[], None], *, names: Iterable[str] | None = None,
          store: Path | None = None, seed: int = 0, device: str = "cpu", command: str = "",
          budget_mb: float = BUDGET_MB, keep_tmp: bool = False, work_dir: Path | str | None = None) -> dict:
    """Run ``runner()`` into an empty temporary cache with the store disabled, then copy the entries of
    ``names`` (default: the chapter's released families) into ``<store>/<chapter>/<profile>`` and write
    its manifest. Returns the manifest. Raises ValueError when the run produced none of the released
    entries or the store would exceed ``budget_mb``.

    ``work_dir``: a persistent working folder instead of the temporary one (kept afterwards), so that a
    killed release resumes where it stopped: entries already computed there are keyed by the code that
    made them, so only those of the current code are reused."""
    from repro.core import cache
    from repro.core.provenance import git_commit

    check_profile(profile)
    store = Path(store or store_root())
    names = list(names) if names is not None else families(chapter, store)
    if work_dir is not None:
        tmp, keep_tmp = Path(work_dir).expanduser().resolve(), True
        tmp.mkdir(parents=True, exist_ok=True)
    else:
        tmp = Path(tempfile.mkdtemp(prefix=f"repro-release-{chapter}-"))
    saved = {k: os.environ.get(k) for k in ("REPRO_CACHE", NO_RELEASE_ENV)}
    os.environ["REPRO_CACHE"], os.environ[NO_RELEASE_ENV] = str(tmp / "cache"), "1"
    t0 = time.perf_counter()
    try:
        runner()
        build_seconds = time.perf_counter() - t0
        rows = [e for e in cache.entries(tmp / "cache") if e["name"] in names]
        if not rows:
            raise ValueError(f"releasing {chapter}/{profile}: the run made no entries of {names}; check the "
                             f"families in {store / 'families.yaml'} against the cache names the chapter uses")
        bad = [f"{e['name']}/{e['path'].name}: {e['state']} ({e['why']})" for e in rows if e["state"] != "current"]
        if bad:
            raise ValueError("releasing entries that do not match the current code: " + "; ".join(bad))
        dest = store / chapter / profile
        old = read_manifest(dest / "manifest.json") if (dest / "manifest.json").exists() else None
        new_bytes = sum(e["bytes"] for e in rows)
        total = _dir_bytes(store) - _dir_bytes(dest) + new_bytes
        if total > budget_mb * 1e6:
            raise ValueError(f"the release store would hold {total / 1e6:.1f} MB, over its {budget_mb:g} MB budget "
                             f"({chapter}/{profile} alone: {new_bytes / 1e6:.1f} MB); store fewer or smaller "
                             "entries (fp16 weights where exact enough) or raise the budget deliberately")
        staging = store / chapter / f".{profile}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        entries = []
        for e in sorted(rows, key=lambda e: (e["name"], e["path"].name)):
            rel = Path(e["name"]) / e["path"].name
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(e["path"], staging / rel)
            m = e["meta"]
            entries.append({"name": e["name"], "key": m["key"], "file": str(rel), "sha256": _sha256_file(staging / rel),
                            "payload_sha256": cache.payload_sha256(staging / rel), "bytes": e["bytes"],
                            "code": m["code"], "code_roots": m["code_roots"], "version": m["version"],
                            "metrics": m.get("metrics", {}), "compute_seconds": m.get("seconds")})
        import torch

        manifest = {
            "format": FORMAT, "chapter": chapter, "profile": profile, "seed": int(seed), "device": str(device),
            "release": int(old["release"]) + 1 if old else 1,
            "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(build_seconds, 1), "command": command, "commit": git_commit(),
            "python": platform.python_version(), "torch": torch.__version__, "families": names,
            "total_bytes": new_bytes, "entries": entries,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
        return manifest
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        reset_index()


# --------------------------------------------------------------------------- checks
def check(store: Path | None = None) -> list[str]:
    """Problems of the store, one line each (empty when every release is intact and current):
    a missing or modified file, a checksum mismatch, an entry whose code has changed since the release
    (stale: it would never be used, so the chapter would silently retrain)."""
    from repro.core import cache

    problems = []
    for mp in manifest_paths(store):
        try:
            m = read_manifest(mp)
        except ValueError as e:
            problems.append(str(e))
            continue
        where = f"release {m['chapter']}/{m['profile']} #{m['release']}"
        redo = f"`repro release {m['chapter']} --profile {m['profile']}`"
        for e in m["entries"]:
            p = mp.parent / e["file"]
            if not p.exists():
                problems.append(f"{where}: {e['file']} is missing; restore it from git or re-release with {redo}")
                continue
            if _sha256_file(p) != e["sha256"]:
                problems.append(f"{where}: {e['file']} does not match its sha256 in the manifest; re-release with {redo}")
                continue
            try:
                state, why = cache.entry_state(cache.read_meta(p))
            except cache.CacheCorrupt as err:
                state, why = "corrupt", str(err)
            if state != "current":
                problems.append(f"{where}: {e['name']} [{e['key'][:10]}] is {state} ({why}); re-release with {redo}")
    return problems


def describe(store: Path | None = None) -> list[dict]:
    """One row per release: chapter, profile, release, built, build_seconds, compute_seconds, entries, MB."""
    rows = []
    for mp in manifest_paths(store):
        m = read_manifest(mp)
        rows.append({"chapter": m["chapter"], "profile": m["profile"], "release": m["release"], "built": m["built"],
                     "build_seconds": m["build_seconds"], "compute_seconds": round(compute_seconds(m), 1),
                     "entries": len(m["entries"]),
                     "MB": round(m["total_bytes"] / 1e6, 2)})
    return rows
