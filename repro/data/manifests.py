"""External assets described by YAML manifests in ``data_manifests/`` (used by the ``full`` profile).

Schema (one file per asset)::

    name: ninco                      # identifier used by `repro data fetch NAME`
    title: NINCO OOD dataset
    kind: archive | imagefolder | hf_model | hf_dataset | timm_weights
    license: ...
    citation: bibtex key or text
    homepage: https://...
    layout: <path under the data root>          # where the asset lives once present
    expect:                                      # how to recognise a complete asset
      glob: "NINCO_OOD_classes/*/*.JPEG"         # files that must exist
      min_count: 5000                            # at least this many matches
    files:                                       # downloadable parts (may be empty)
      - url: https://...
        hash: "sha256:<hex>" | "md5:<hex>" | null   # as the publisher gives it; null = unknown
        size: <bytes> | null
        unpack: true | false
    instructions: |                              # what to do when no download is possible
      ...

The data root is ``$REPRO_DATA`` (default ``~/.cache/repro``). Nothing is ever downloaded
implicitly: ``require(name)`` checks presence and raises :class:`MissingAsset` naming the
manifest, the expected path and the command that fetches it; ``fetch(name)`` downloads with
pooch (hash-verified when the manifest has a checksum, resumable partial downloads).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from repro.core.config import data_root, project_root

KINDS = ("archive", "imagefolder", "hf_model", "hf_dataset", "timm_weights", "file")
REQUIRED = ("name", "title", "kind", "license", "citation", "layout", "expect", "files", "instructions")


class ManifestError(ValueError):
    pass


class MissingAsset(FileNotFoundError):
    pass


def manifest_dir() -> Path:
    return project_root() / "data_manifests"


@dataclass
class Manifest:
    name: str
    title: str
    kind: str
    license: str
    citation: str
    layout: str
    expect: dict
    files: list
    instructions: str
    homepage: str = ""
    used_by: list = field(default_factory=list)
    path: Path | None = None

    @property
    def location(self) -> Path:
        return data_root() / self.layout

    def present(self) -> bool:
        loc = self.location
        if not loc.exists():
            return False
        pattern = self.expect.get("glob")
        if not pattern:
            return True
        n = sum(1 for _ in loc.glob(pattern))
        return n >= int(self.expect.get("min_count", 1))


def _validate(d: dict[str, Any], path: Path) -> Manifest:
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise ManifestError(f"{path}: missing key(s) {missing}; required: {list(REQUIRED)}")
    if d["kind"] not in KINDS:
        raise ManifestError(f"{path}: kind {d['kind']!r} not in {KINDS}")
    if not isinstance(d["files"], list):
        raise ManifestError(f"{path}: 'files' must be a list (possibly empty)")
    for i, f in enumerate(d["files"]):
        if "url" not in f:
            raise ManifestError(f"{path}: files[{i}] lacks 'url'")
        h = f.get("hash")
        if h is not None:
            algo, _, hexd = str(h).partition(":")
            n = {"sha256": 64, "md5": 32}.get(algo)
            if n is None or len(hexd) != n or any(c not in "0123456789abcdef" for c in hexd):
                raise ManifestError(f"{path}: files[{i}].hash must be 'sha256:<64 hex>', 'md5:<32 hex>' or null (unknown)")
    if not isinstance(d["expect"], dict):
        raise ManifestError(f"{path}: 'expect' must be a mapping with 'glob' and 'min_count'")
    known = set(Manifest.__dataclass_fields__) - {"path"}
    extra = set(d) - known
    if extra:
        raise ManifestError(f"{path}: unknown key(s) {sorted(extra)}")
    return Manifest(**d, path=path)


def load(name_or_path: str | Path) -> Manifest:
    p = Path(name_or_path)
    if not p.suffix:
        p = manifest_dir() / f"{name_or_path}.yaml"
    if not p.exists():
        raise ManifestError(f"no manifest {name_or_path!r}; available: {', '.join(list_names())}")
    with open(p) as f:
        return _validate(yaml.safe_load(f) or {}, p)


def list_names() -> list[str]:
    return sorted(p.stem for p in manifest_dir().glob("*.yaml"))


def all_manifests() -> list[Manifest]:
    return [load(n) for n in list_names()]


def require(name: str) -> Path:
    """Path of a present asset, or :class:`MissingAsset` saying where to put it and how to fetch it."""
    m = load(name)
    if m.present():
        return m.location
    how = (f"run `repro data fetch {m.name}`" if m.files else "it cannot be downloaded automatically")
    raise MissingAsset(
        f"dataset/asset '{m.name}' ({m.title}) not found at {m.location} "
        f"(expected {m.expect.get('glob', 'the folder')} with at least {m.expect.get('min_count', 1)} file(s)). "
        f"To get it, {how}; manifest: {m.path}. Data root: $REPRO_DATA={data_root()}.\n"
        f"Instructions: {m.instructions.strip()}"
    )


def check(name: str) -> dict:
    m = load(name)
    return {"name": m.name, "present": m.present(), "location": str(m.location), "kind": m.kind,
            "checksums": sum(f.get("hash") is not None for f in m.files), "files": len(m.files)}


def fetch(name: str, progress: bool = True) -> Path:
    """Download (and unpack) an asset's files into the data root with pooch; verify checksums."""
    import pooch

    m = load(name)
    if not m.files:
        raise MissingAsset(f"'{m.name}' has no downloadable files. {m.instructions.strip()}")
    m.location.mkdir(parents=True, exist_ok=True)
    for f in m.files:
        known = f.get("hash")
        processor = None
        if f.get("unpack"):
            url = f["url"]
            processor = pooch.Untar(extract_dir=".") if ".tar" in url or url.endswith(".tgz") else pooch.Unzip(extract_dir=".")
        pooch.retrieve(url=f["url"], known_hash=known,
                       path=m.location, processor=processor, progressbar=progress)
    return m.location
