"""CIFAR-10-C (Hendrycks & Dietterich 2019), the corrupted test set of chapter 5's CIFAR-10 study.

The archive (``data_manifests/cifar10c.yaml``) holds one ``<corruption>.npy`` per corruption, uint8
``[50000, 32, 32, 3]`` = the 10,000 CIFAR-10 test images at severities 1..5 in blocks of 10,000, and
``labels.npy``.  The released code loads it with RobustBench's ``load_cifar10c(n_examples=15000,
severity=5, shuffle=True)`` over the 15 corruptions and evaluates the first 10,000 images (notes ch5
§3, D13): :func:`load_cifar10c` returns the pooled set of the requested corruptions at one severity,
and ``shift.max_images`` in ``repro/data`` callers subsamples it with a fixed seed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

__all__ = ["CORRUPTIONS", "load_cifar10c"]

#: The 15 corruptions of CIFAR-10-C (RobustBench's default list; the 4 "extra" ones are not used).
CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
               "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
               "jpeg_compression")
N_TEST = 10_000


def load_cifar10c(names: Optional[Sequence[str]] = None, severity: int = 5, root: Optional[Path] = None):
    """Pooled CIFAR-10-C images of ``names`` (default: all 15) at ``severity`` (1..5):
    ``(x uint8 [N, 3, 32, 32], y int64 [N], corruption index int64 [N])``, corruptions in the given
    order.  ``root`` overrides the manifest location (a folder containing ``CIFAR-10-C/``)."""
    from repro.data.manifests import require

    names = list(CORRUPTIONS if names is None else names)
    bad = [n for n in names if n not in CORRUPTIONS]
    if bad or not names:
        raise ValueError(f"unknown CIFAR-10-C corruption(s) {bad or names}; choose from {list(CORRUPTIONS)}")
    if int(severity) not in range(1, 6):
        raise ValueError(f"CIFAR-10-C severity must be 1..5, got {severity!r}")
    base = Path(root) if root is not None else require("cifar10c")
    folder = base / "CIFAR-10-C"
    labels = np.load(folder / "labels.npy")
    if len(labels) == 0 or len(labels) % 5:
        raise ValueError(f"{folder / 'labels.npy'} has {len(labels)} labels; CIFAR-10-C has 5 severities x {N_TEST}")
    n = len(labels) // 5  # 10,000 in the real archive
    lo, hi = (int(severity) - 1) * n, int(severity) * n
    xs, cs = [], []
    for i, name in enumerate(names):
        a = np.load(folder / f"{name}.npy", mmap_mode="r")
        if a.shape[1:] != (32, 32, 3) or a.dtype != np.uint8 or len(a) != len(labels):
            raise ValueError(f"{folder / (name + '.npy')}: expected uint8 [{len(labels)}, 32, 32, 3] (as labels.npy), "
                             f"got {a.dtype} {list(a.shape)}")
        xs.append(torch.from_numpy(np.ascontiguousarray(a[lo:hi])).permute(0, 3, 1, 2).contiguous())
        cs.append(torch.full((hi - lo,), i, dtype=torch.long))
    y = torch.from_numpy(labels[lo:hi].astype(np.int64))
    return torch.cat(xs), y.repeat(len(names)), torch.cat(cs)
