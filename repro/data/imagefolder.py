"""Full-profile loaders for ImageFolder-style trees (``root/<class>/<image>``): NINCO, ImageNet val.

NINCO (paper 8.1, Zenodo record 8013288, ``NINCO_all.tar.gz``) unpacks to

    NINCO/NINCO_OOD_classes/<64 class folders>/
    NINCO/NINCO_OOD_unit_tests/<17 unit-test folders>/
    NINCO/NINCO_popular_datasets_subsamples/<11 dataset folders>/

Images are turned into ``ImageSet`` s at a fixed resolution with the usual evaluation transform
(resize the shorter side to ``resolution / crop_pct``, centre crop), stored as uint8; the model's
own normalisation is applied later by the feature extractor's transform.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from repro.data.world import ImageSet

__all__ = ["load_imagefolder", "load_ninco", "IMG_EXTENSIONS", "NINCO_PARTS"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
NINCO_PARTS = {"ninco": "NINCO_OOD_classes", "unit_tests": "NINCO_OOD_unit_tests",
               "popular": "NINCO_popular_datasets_subsamples"}
_FETCH_HINT = ("download NINCO_all.tar.gz (Zenodo record 8013288, see data_manifests/) and extract it so that "
               "{root}/NINCO_OOD_classes exists, or set $REPRO_DATA")


def _load_image(path: Path, resolution: int, crop_pct: float) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        short = int(round(resolution / crop_pct))
        scale = short / min(w, h)
        im = im.resize((max(short, int(round(w * scale))), max(short, int(round(h * scale)))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - resolution) // 2, (h - resolution) // 2
        im = im.crop((left, top, left + resolution, top + resolution))
        return np.array(im, dtype=np.uint8)  # writable: torch.from_numpy warns on read-only arrays



def decode_images(files, resolution: int, crop_pct: float, workers: int = 0) -> torch.Tensor:
    """Image files -> uint8 ``[N, 3, R, R]`` with the eval transform (shorter side to R/crop_pct,
    centre crop), decoded straight into one preallocated tensor (no stacked copy: paper-scale sets
    are tens of GB); ``workers`` > 0 decodes in that many threads (PIL releases the GIL)."""
    x = torch.empty((len(files), 3, resolution, resolution), dtype=torch.uint8)

    def load(f):
        return _load_image(Path(f), resolution, crop_pct)

    if workers and workers > 0 and len(files) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(int(workers)) as pool:
            for i, a in enumerate(pool.map(load, files)):
                x[i] = torch.from_numpy(a).permute(2, 0, 1)
    else:
        for i, f in enumerate(files):
            x[i] = torch.from_numpy(load(f)).permute(2, 0, 1)
    return x

def load_imagefolder(root, resolution: int = 224, crop_pct: float = 0.875, class_names: Optional[list] = None,
                     max_per_class: Optional[int] = None, name: Optional[str] = None, seed: int = 0,
                     workers: int = 0) -> ImageSet:
    """An ImageFolder tree as an ImageSet; classes are the sorted sub-folder names (or ``class_names``).

    ``max_per_class`` keeps a seeded random subset per class (for quick runs). ``workers`` > 0
    decodes images in that many threads (PIL releases the GIL while decoding and resizing); the
    result does not depend on it.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; expected {root}/<class>/<image files>")
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must lie in (0, 1], got {crop_pct}")
    classes = class_names or sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root} has no class sub-folders; expected {root}/<class>/<image files>")
    rng = np.random.default_rng(seed)
    files, labels = [], []
    for c, cname in enumerate(classes):
        d = root / cname
        if not d.is_dir():
            raise FileNotFoundError(f"class folder {d} is missing")
        fs = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
        if max_per_class is not None and len(fs) > max_per_class:
            fs = [fs[i] for i in sorted(rng.choice(len(fs), max_per_class, replace=False))]
        files += fs
        labels += [c] * len(fs)
    if not files:
        raise ValueError(f"no images ({', '.join(IMG_EXTENSIONS)}) found under {root}")
    x = decode_images(files, resolution, crop_pct, workers)
    return ImageSet(x, torch.as_tensor(labels, dtype=torch.int64),
                    list(classes), name or root.name, meta={"root": str(root), "files": [str(f) for f in files]})


def load_ninco(root=None, resolution: int = 224, crop_pct: float = 0.875, parts=("ninco", "unit_tests", "popular"),
               max_per_class: Optional[int] = None, workers: int = 0) -> dict:
    """NINCO's three parts as ImageSets: ``ninco`` (64 OOD classes, y = class index), ``unit_tests``
    (``{test: uint8 tensor}``) and ``popular`` (``{dataset: ImageSet}``, cleaned subsamples)."""
    from repro.core.config import data_root

    root = Path(root).expanduser() if root is not None else data_root() / "ninco" / "NINCO"
    out = {}
    for part in parts:
        if part not in NINCO_PARTS:
            raise ValueError(f"unknown NINCO part {part!r}; choose from {list(NINCO_PARTS)}")
        d = root / NINCO_PARTS[part]
        if not d.is_dir():
            raise FileNotFoundError(f"NINCO part {part!r} not found at {d}: " + _FETCH_HINT.format(root=root))
        if part == "ninco":
            out[part] = load_imagefolder(d, resolution, crop_pct, max_per_class=max_per_class, name="ninco",
                                         workers=workers)
        else:
            sets = {}
            for sub in sorted(p for p in d.iterdir() if p.is_dir()):
                s = load_imagefolder(sub.parent, resolution, crop_pct, class_names=[sub.name],
                                     max_per_class=max_per_class, name=sub.name, workers=workers)
                sets[sub.name] = s.x if part == "unit_tests" else s
            out[part] = sets
    return out
