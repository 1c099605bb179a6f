"""Content-addressed, atomic, checksummed cache for expensive results.

Every expensive step of the book (training a model, extracting features, a sharpness run, an
unlearning run) goes through :func:`get_or_compute`. The key hashes

    (name, version, fingerprint(params))

where ``params`` holds *everything* that determines the result, input data included (arrays
and tensors are fingerprinted by content). Bump ``version`` when the computation changes.

Entries are written to a temporary file in the target folder, fsync'ed and renamed into place,
so a killed process never leaves a half-written entry under a valid name. Each entry starts with
a header carrying the SHA-256 of its payload; an entry whose checksum does not match (truncated
file, flipped bytes) is reported, deleted and recomputed -- never loaded.

Values are serialised with ``torch.save`` (numpy arrays, tensors, state dicts, DataFrames, plain
containers). Cache models as ``state_dict()`` plus the arguments to rebuild them.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import io
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from repro.core.config import cache_root

log = logging.getLogger("repro.core.cache")
T = TypeVar("T")

MAGIC = b"REPROCACHE1\n"
_HEADER_LEN = len(MAGIC) + 64 + 1

# Events of this process, for the provenance box: (name, key, "hit" | "miss" | "corrupt", seconds).
EVENTS: list[tuple[str, str, str, float]] = []


class CacheCorrupt(Exception):
    """An entry exists but its checksum does not match its payload."""


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


def key_for(name: str, params: dict, version: str = "1") -> str:
    return fingerprint({"name": name, "version": str(version), "params": params})


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


def write_entry(path: Path, value: Any) -> None:
    """Atomically write ``value`` to ``path`` (temp file in the same folder + fsync + rename)."""
    payload = _serialize(value)
    digest = hashlib.sha256(payload).hexdigest().encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + digest + b"\n")
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


def read_entry(path: Path) -> Any:
    """Load an entry, verifying its checksum; raises :class:`CacheCorrupt` on any mismatch."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _HEADER_LEN or not data.startswith(MAGIC) or data[_HEADER_LEN - 1 : _HEADER_LEN] != b"\n":
        raise CacheCorrupt(f"{path}: bad header (truncated or not a cache entry)")
    digest = data[len(MAGIC) : len(MAGIC) + 64].decode("ascii", "replace")
    payload = data[_HEADER_LEN:]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CacheCorrupt(f"{path}: checksum mismatch (truncated or modified file)")
    return _deserialize(payload)


def get_or_compute(name: str, params: dict, fn: Callable[[], T], version: str = "1",
                   root: Path | None = None) -> T:
    """Return the cached value for ``(name, version, params)`` or compute, store and return it."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of everything that determines the result, got {type(params).__name__}")
    key = key_for(name, params, version)
    path = entry_path(name, key, root)
    if path.exists():
        try:
            value = read_entry(path)
            EVENTS.append((name, key, "hit", 0.0))
            log.info("cache hit   %s [%s]", name, key[:10])
            return value
        except CacheCorrupt as e:
            log.warning("cache entry corrupt, recomputing: %s", e)
            EVENTS.append((name, key, "corrupt", 0.0))
            path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    log.info("computing   %s [%s]", name, key[:10])
    value = fn()
    dt = time.perf_counter() - t0
    try:
        write_entry(path, value)
    except OSError as e:
        raise OSError(
            f"could not write cache entry {path} ({e.strerror or e}); free disk space or set "
            "REPRO_CACHE to a writable folder with room. Earlier entries are intact."
        ) from e
    EVENTS.append((name, key, "miss", dt))
    return value


def cached(name: str, version: str = "1") -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: cache a function on *all* of its (bound, defaulted) arguments."""

    def deco(fn: Callable[..., T]) -> Callable[..., T]:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            params = dict(bound.arguments)
            return get_or_compute(name, params, lambda: fn(*args, **kwargs), version=version)

        wrapper.cache_name = name  # type: ignore[attr-defined]
        return wrapper

    return deco


# --------------------------------------------------------------------------- maintenance
def info(root: Path | None = None) -> list[dict]:
    """One row per cache name: number of entries and bytes."""
    root = Path(root or cache_root())
    rows = []
    if root.exists():
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            files = list(d.glob("*.pt"))
            rows.append({"name": d.name, "entries": len(files), "bytes": sum(f.stat().st_size for f in files)})
    return rows


def clear(name: str | None = None, root: Path | None = None) -> int:
    """Delete all entries (or those of one name); returns the number of entries removed."""
    root = Path(root or cache_root())
    targets = [root / _safe_name(name)] if name else ([p for p in root.iterdir() if p.is_dir()] if root.exists() else [])
    n = 0
    for d in targets:
        if d.exists():
            n += len(list(d.glob("*.pt")))
            shutil.rmtree(d)
    return n


def verify(root: Path | None = None) -> list[Path]:
    """Check every entry's checksum; returns the corrupt ones (not deleted)."""
    root = Path(root or cache_root())
    bad = []
    for p in root.glob("*/*.pt") if root.exists() else []:
        try:
            with open(p, "rb") as f:
                data = f.read()
            ok = data.startswith(MAGIC) and hashlib.sha256(data[_HEADER_LEN:]).hexdigest() == data[len(MAGIC):len(MAGIC) + 64].decode("ascii", "replace")
        except OSError:
            ok = False
        if not ok:
            bad.append(p)
    return bad


def stats() -> dict[str, int]:
    out = {"hit": 0, "miss": 0, "corrupt": 0}
    for _, _, kind, _ in EVENTS:
        out[kind] += 1
    return out
