"""Content-addressed, atomic, checksummed cache for expensive results, keyed by the code that makes them.

Every expensive step of the book (training a model, extracting features, a sharpness run, an
unlearning run) goes through :func:`get_or_compute`. The key hashes

    (name, version, fingerprint(params), code fingerprint)

``params`` holds *everything* that determines the result, input data included (arrays and tensors
are fingerprinted by content). The **code fingerprint** (:mod:`repro.core.fingerprint`) hashes the
normalised source of the module that computes the value (``fn.__module__``, or ``code=``) and of
every ``repro`` module it imports, transitively; presentation and run-layer code (plots, the book
layer, the CLI, the job runner, chapter reports) is left out, so a new figure or verdict rule keeps
the expensive entries while an edit of the training loop invalidates every model trained with it.
An entry made by other code therefore never matches a key: **every entry that is loaded was made
by the current code, by construction of the key.** ``version`` remains as an optional explicit salt
(e.g. to force a recomputation when a dependency outside ``repro`` changed).

Lookup order: the local cache (``$REPRO_CACHE``), then the read-only release store
(:mod:`repro.core.release`, disabled by ``REPRO_NO_RELEASE=1``), then compute and store locally.

Entries are written to a temporary file in the target folder, fsync'ed and renamed into place,
so a killed process never leaves a half-written entry under a valid name. Each entry starts with
a header carrying the SHA-256 of its payload and of a one-line JSON record (name, key, code
fingerprint and module list, compute time, scalar metrics of the value); an entry whose checksums
do not match (truncated file, flipped bytes) is reported, deleted and recomputed -- never loaded.

Values are serialised with ``torch.save`` (numpy arrays, tensors, state dicts, DataFrames, plain
containers). Cache models as ``state_dict()`` plus the arguments to rebuild them.
"""
from __future__ import annotations

import dataclasses
import json
import functools
import hashlib
import inspect
import io
import logging
import os
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from repro.core import fingerprint as code_fp
from repro.core.config import cache_root

log = logging.getLogger("repro.core.cache")
T = TypeVar("T")

MAGIC = b"REPROCACHE2\n"
LEGACY_MAGIC = b"REPROCACHE1\n"  # entries without a code fingerprint (before keys followed the code)
_LEGACY_HEADER_LEN = len(LEGACY_MAGIC) + 64 + 1
_MAX_META = 1 << 20

# Events of this process, for the provenance box: (name, key, kind, seconds) with kind one of
# "hit" (local cache), "release" (release store), "miss" (computed) or "corrupt" (recomputed).
EVENTS: list[tuple[str, str, str, float]] = []
# Per (name, key) loaded or computed in this process: code fingerprint and, for release loads, the release.
DETAILS: dict[tuple[str, str], dict] = {}


class CacheCorrupt(Exception):
    """An entry exists but its checksum does not match its payload."""


CodeError = code_fp.CodeError


# --------------------------------------------------------------------------- fingerprints
def _h() -> "hashlib._Hash":
    return hashlib.sha256()


def _update(h, obj: Any) -> None:
    import torch

    if hasattr(obj, "__fingerprint__"):
        h.update(b"fp:" + obj.__fingerprint__().encode())
    elif obj is None or isinstance(obj, (bool, int, float, complex, str)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, bytes):
        h.update(b"bytes:" + hashlib.sha256(obj).digest())
    elif isinstance(obj, np.generic):
        _update(h, obj.item())
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"nd:{a.dtype.str}:{a.shape};".encode())
        if a.dtype == object:
            for x in a.ravel():
                _update(h, x)
        else:
            h.update(a.view(np.uint8).data if a.size else b"")
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"t:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(obj, torch.nn.Module):
        h.update(f"module:{type(obj).__module__}.{type(obj).__qualname__};".encode())
        _update(h, obj.state_dict())
    elif isinstance(obj, dict):
        h.update(f"dict:{len(obj)};".encode())
        for k in sorted(obj, key=lambda k: repr(k)):
            _update(h, k)
            _update(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}:{len(obj)};".encode())
        for x in obj:
            _update(h, x)
    elif isinstance(obj, (set, frozenset)):
        h.update(f"set:{len(obj)};".encode())
        for x in sorted(obj, key=repr):
            _update(h, x)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(f"dc:{type(obj).__qualname__};".encode())
        for f in dataclasses.fields(obj):
            _update(h, f.name)
            _update(h, getattr(obj, f.name))
    elif isinstance(obj, Path):
        h.update(f"path:{obj};".encode())
    elif type(obj).__name__ == "DataFrame":
        import pandas as pd

        h.update(b"df:")
        _update(h, list(map(str, obj.columns)))
        _update(h, pd.util.hash_pandas_object(obj, index=True).to_numpy())
    elif isinstance(obj, torch.dtype) or isinstance(obj, torch.device):
        h.update(f"{obj};".encode())
    else:
        raise TypeError(
            f"cannot fingerprint an object of type {type(obj).__qualname__}; pass arrays, tensors, "
            "modules, dataclasses, plain containers or scalars in `params` (or give the object a "
            "`__fingerprint__()` method returning a string)"
        )


def fingerprint(obj: Any) -> str:
    """SHA-256 (hex) of an object's *content*: equal content -> equal fingerprint."""
    h = _h()
    _update(h, obj)
    return h.hexdigest()


# --------------------------------------------------------------------------- storage
def _safe_name(name: str) -> str:
    if not name or any(c in name for c in "/\\\0") or name.startswith("."):
        raise ValueError(f"cache name {name!r} must be a non-empty string without slashes, e.g. 'ch3.train_model'")
    return name


def code_for(fn: Callable | None = None, code: Any = None) -> code_fp.CodeFingerprint:
    """The code fingerprint of a computation: ``code`` (module name(s) or module(s)) if given, else the
    module that defines ``fn``. Raises :class:`CodeError` for code without a source file
    (``__main__``, a notebook cell) or in an excluded presentation module, asking for ``code=``."""
    if isinstance(code, code_fp.CodeFingerprint):
        return code
    return code_fp.code_fingerprint(code_fp.roots_of(fn, code))


def key_for(name: str, params: dict, version: str = "1", *, code: Any) -> str:
    """The key of an entry. ``code`` is required: module name(s), module(s) or a
    :class:`~repro.core.fingerprint.CodeFingerprint` (see :func:`code_for`)."""
    cfp = code_for(None, code)
    return fingerprint({"name": name, "version": str(version), "params": params, "code": cfp.digest})


def entry_path(name: str, key: str, root: Path | None = None) -> Path:
    return Path(root or cache_root()) / _safe_name(name) / f"{key}.pt"


def _serialize(value: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(value, buf)
    return buf.getvalue()


def _deserialize(payload: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)


def scalar_metrics(value: Any, limit: int = 64) -> dict[str, float]:
    """Top-level numeric scalars of a dict value (e.g. a zoo entry's ``test_acc``), for the entry's record
    and a release manifest; ``{}`` for anything else."""
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = float(v)
                if len(out) >= limit:
                    break
    return out


def _meta_for(name: str, key: str, version: str, cfp: code_fp.CodeFingerprint, seconds: float, value: Any) -> dict:
    g = code_fp.default_graph()
    return {"format": 2, "name": name, "key": key, "version": str(version), "code": cfp.digest,
            "code_roots": list(cfp.roots),
            "code_files": {r: str(g.extra_files[r]) for r in cfp.roots if r in g.extra_files},
            "modules": [list(m) for m in cfp.modules],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(float(seconds), 3), "metrics": scalar_metrics(value)}


def write_entry(path: Path, value: Any, meta: dict | None = None) -> None:
    """Atomically write ``value`` (and its one-line JSON record ``meta``) to ``path``
    (temp file in the same folder + fsync + rename)."""
    payload = _serialize(value)
    meta_line = json.dumps(meta or {}, sort_keys=True, separators=(",", ":")).encode()
    if b"\n" in meta_line or len(meta_line) > _MAX_META:
        raise ValueError("an entry's record must be one JSON line under 1 MB")
    header = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b" " + hashlib.sha256(meta_line).hexdigest().encode() + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header + meta_line + b"\n")
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _parse_header(f, path) -> tuple[str, dict, int]:
    """(payload sha256, record, payload offset); raises CacheCorrupt."""
    first = f.readline(len(MAGIC) + 1)
    if first == LEGACY_MAGIC:
        digest = f.readline(66)
        if len(digest) != 65 or not digest.endswith(b"\n"):
            raise CacheCorrupt(f"{path}: bad header (truncated or not a cache entry)")
        return digest[:64].decode("ascii", "replace"), {"format": 1}, _LEGACY_HEADER_LEN
    if first != MAGIC:
        raise CacheCorrupt(f"{path}: bad header (truncated or not a cache entry)")
    line2 = f.readline(64 * 2 + 2)
    meta_line = f.readline(_MAX_META + 1)
    if len(line2) != 130 or not line2.endswith(b"\n") or not meta_line.endswith(b"\n"):
        raise CacheCorrupt(f"{path}: bad header (truncated or not a cache entry)")
    pay_digest, meta_digest = line2[:64].decode("ascii", "replace"), line2[65:129].decode("ascii", "replace")
    if hashlib.sha256(meta_line[:-1]).hexdigest() != meta_digest:
        raise CacheCorrupt(f"{path}: checksum mismatch in the entry's record (modified file)")
    try:
        meta = json.loads(meta_line)
    except ValueError as e:
        raise CacheCorrupt(f"{path}: unreadable record ({e})") from None
    return pay_digest, meta, len(first) + len(line2) + len(meta_line)


def read_meta(path: Path) -> dict:
    """The entry's record (``{"format": 1}`` for entries from before code fingerprints), header only."""
    with open(path, "rb") as f:
        return _parse_header(f, path)[1]


def payload_sha256(path: Path) -> str:
    """SHA-256 of the serialised value as recorded in the header (what two bit-identical builds share)."""
    with open(path, "rb") as f:
        return _parse_header(f, path)[0]


def read_entry(path: Path, with_meta: bool = False) -> Any:
    """Load an entry, verifying its checksums; raises :class:`CacheCorrupt` on any mismatch."""
    with open(path, "rb") as f:
        digest, meta, _ = _parse_header(f, path)
        payload = f.read()
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CacheCorrupt(f"{path}: checksum mismatch (truncated or modified file)")
    value = _deserialize(payload)
    return (value, meta) if with_meta else value


def get_or_compute(name: str, params: dict, fn: Callable[[], T], version: str = "1",
                   root: Path | None = None, *, code: Any = None) -> T:
    """Return the value for ``(name, version, params, code)`` from the cache or the release store, or
    compute, store and return it.

    ``code``: the module(s) whose code computes the value; default ``fn.__module__`` (a nested
    ``compute`` or a lambda belongs to the module it is written in). Required for functions defined in
    ``__main__`` / a notebook cell, and for callers in the run layer (a job runner passes its job
    function's module)."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of everything that determines the result, got {type(params).__name__}")
    cfp = code_for(fn, code)
    key = key_for(name, params, version, code=cfp)
    path = entry_path(name, key, root)
    if path.exists():
        try:
            value = read_entry(path)
            EVENTS.append((name, key, "hit", 0.0))
            DETAILS[(name, key)] = {"code": cfp.digest}
            log.info("cache hit   %s [%s]", name, key[:10])
            return value
        except CacheCorrupt as e:
            log.warning("cache entry corrupt, recomputing: %s", e)
            EVENTS.append((name, key, "corrupt", 0.0))
            path.unlink(missing_ok=True)
    from repro.core import release

    rel = release.lookup(name, key)
    if rel is not None:
        try:
            value = read_entry(rel.path)
            EVENTS.append((name, key, "release", 0.0))
            DETAILS[(name, key)] = {"code": cfp.digest, "release": rel.summary()}
            log.info("release     %s [%s] (%s)", name, key[:10], rel.label)
            return value
        except CacheCorrupt as e:  # a damaged checkout: compute instead, loudly
            log.warning("release entry corrupt, computing instead: %s", e)
            EVENTS.append((name, key, "corrupt", 0.0))
    t0 = time.perf_counter()
    log.info("computing   %s [%s]", name, key[:10])
    value = fn()
    dt = time.perf_counter() - t0
    try:
        write_entry(path, value, _meta_for(name, key, version, cfp, dt, value))
    except OSError as e:
        raise OSError(
            f"could not write cache entry {path} ({e.strerror or e}); free disk space or set "
            "REPRO_CACHE to a writable folder with room. Earlier entries are intact."
        ) from e
    EVENTS.append((name, key, "miss", dt))
    DETAILS[(name, key)] = {"code": cfp.digest}
    # Hand back what any later run will load, not the in-memory object: a trained model's tensors can
    # differ in memory layout from their stored copy, which moves ill-conditioned downstream numbers
    # (e.g. GMN's class covariances) by a few ulps between a fresh run and a resumed one.
    return read_entry(path)


def cached(name: str, version: str = "1", code: Any = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: cache a function on *all* of its (bound, defaulted) arguments and on its module's code."""

    def deco(fn: Callable[..., T]) -> Callable[..., T]:
        sig = inspect.signature(fn)
        mods = code if code is not None else fn.__module__

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            params = dict(bound.arguments)
            return get_or_compute(name, params, lambda: fn(*args, **kwargs), version=version, code=mods)

        wrapper.cache_name = name  # type: ignore[attr-defined]
        return wrapper

    return deco


# --------------------------------------------------------------------------- maintenance
def entry_state(meta: dict, graph: code_fp.ModuleGraph | None = None) -> tuple[str, str]:
    """("current" | "stale", why) for an entry's record against the code of this checkout."""
    if meta.get("format", 1) < 2 or "code" not in meta:
        return "stale", "made before keys carried a code fingerprint"
    g = graph or code_fp.default_graph()
    for r, f in (meta.get("code_files") or {}).items():
        if r not in g.extra_files and Path(f).exists():
            g.extra_files[r] = Path(f)
    try:
        now = g.fingerprint(meta["code_roots"])
    except (CodeError, SyntaxError, OSError) as e:
        return "stale", f"its code is gone ({e})"
    if now.digest == meta["code"]:
        return "current", ""
    old = dict(map(tuple, meta.get("modules", [])))
    new = dict(now.modules)
    changed = sorted(m for m in set(old) | set(new) if old.get(m) != new.get(m))
    return "stale", "code changed: " + ", ".join(changed[:6]) + (" ..." if len(changed) > 6 else "")


def entries(root: Path | None = None) -> list[dict]:
    """One row per entry: name, path, bytes, state ("current" | "stale" | "corrupt"), why, record."""
    root = Path(root or cache_root())
    rows = []
    for p in sorted(root.glob("*/*.pt")) if root.exists() else []:
        row = {"name": p.parent.name, "path": p, "bytes": p.stat().st_size}
        try:
            meta = read_meta(p)
            row["state"], row["why"] = entry_state(meta)
        except (CacheCorrupt, OSError) as e:
            meta, row["state"], row["why"] = {}, "corrupt", str(e)
        row["meta"] = meta
        rows.append(row)
    return rows


def info(root: Path | None = None) -> list[dict]:
    """One row per cache name (entry family): entries, bytes, and how many are current / stale
    (made by code that has changed since; they are never loaded) / corrupt."""
    fam: dict[str, dict] = {}
    for e in entries(root):
        r = fam.setdefault(e["name"], {"name": e["name"], "entries": 0, "bytes": 0, "current": 0, "stale": 0, "corrupt": 0})
        r["entries"] += 1
        r["bytes"] += e["bytes"]
        r[e["state"]] += 1
    root = Path(root or cache_root())
    for d in sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []:
        fam.setdefault(d.name, {"name": d.name, "entries": 0, "bytes": 0, "current": 0, "stale": 0, "corrupt": 0})
    return [fam[k] for k in sorted(fam)]


def stale(root: Path | None = None) -> list[dict]:
    """Entries whose code has changed since they were made (see :func:`entries`)."""
    return [e for e in entries(root) if e["state"] == "stale"]


def clear(name: str | None = None, root: Path | None = None, stale_only: bool = False) -> int:
    """Delete all entries (or those of one name, or only the stale ones); returns the number removed."""
    root = Path(root or cache_root())
    if stale_only:
        rows = [e for e in stale(root) if name is None or e["name"] == _safe_name(name)]
        for e in rows:
            e["path"].unlink(missing_ok=True)
        return len(rows)
    targets = [root / _safe_name(name)] if name else ([p for p in root.iterdir() if p.is_dir()] if root.exists() else [])
    n = 0
    for d in targets:
        if d.exists():
            n += len(list(d.glob("*.pt")))
            shutil.rmtree(d)
    return n


def verify(root: Path | None = None) -> list[Path]:
    """Check every entry's checksums; returns the corrupt ones (not deleted)."""
    root = Path(root or cache_root())
    bad = []
    for p in root.glob("*/*.pt") if root.exists() else []:
        try:
            with open(p, "rb") as f:
                digest, _, _ = _parse_header(f, p)
                h = hashlib.sha256()
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            ok = h.hexdigest() == digest
        except (OSError, CacheCorrupt):
            ok = False
        if not ok:
            bad.append(p)
    return bad


def stats() -> dict[str, int]:
    out = {"hit": 0, "release": 0, "miss": 0, "corrupt": 0}
    for _, _, kind, _ in EVENTS:
        out[kind] += 1
    return out
