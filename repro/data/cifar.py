"""CIFAR-10/100 in the authors' "python version" format, for the ``full`` profile of chapter 6.

The archives are described by ``data_manifests/cifar10.yaml`` / ``cifar100.yaml`` and never
downloaded implicitly: :func:`load_cifar` calls :func:`repro.data.manifests.require`, which says where
to put the files and how to fetch them. Images are returned as uint8 [N, 3, 32, 32] tensors, the
same format as the generated world, so the training code path is identical.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional

import numpy as np
import torch

__all__ = ["load_cifar", "read_batch", "make_data_cifar"]

_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}


def read_batch(path: Path, label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled CIFAR batch -> (uint8 [N,3,32,32], int64 [N])."""
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    if b"data" not in d or label_key not in d:
        raise ValueError(f"{path} is not a CIFAR python batch (keys {sorted(d)[:5]}); expected b'data' and {label_key!r}")
    x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    y = np.asarray(d[label_key], dtype=np.int64)
    return torch.from_numpy(x.copy()), torch.from_numpy(y)


def load_cifar(name: str, root: Optional[Path] = None) -> dict:
    """``{"x_train", "y_train", "x_test", "y_test", "num_classes"}`` for ``cifar10`` / ``cifar100``.

    ``root`` overrides the manifest location (a folder containing e.g. ``cifar-100-python/``).
    """
    if name not in _LAYOUT:
        raise ValueError(f"unknown CIFAR dataset {name!r}; use one of {sorted(_LAYOUT)}")
    sub, train, test, key = _LAYOUT[name]
    if root is None:
        from repro.data.manifests import require

        root = require(name)
    base = Path(root) / sub
    parts = {}
    for split, files in (("train", train), ("test", test)):
        xs, ys = zip(*(read_batch(base / f, key) for f in files))
        parts[f"x_{split}"], parts[f"y_{split}"] = torch.cat(xs), torch.cat(ys)
    parts["num_classes"] = 10 if name == "cifar10" else 100
    return parts


def make_data_cifar(cfg: dict, root: Optional[Path] = None) -> dict:
    """Data dict of :func:`repro.studies.ch6_samon.experiment.run_plan` for the ``full`` profile.

    ``cfg["val_size"]`` (default 0) holds out the last images of the training set for choosing ρ;
    with 0 the test set doubles as validation set (the paper does not say which split it tuned on).
    """
    d = load_cifar(cfg["dataset"], root)
    n_val = int(cfg.get("val_size", 0))
    if n_val > 0:
        d["x_val"], d["y_val"] = d["x_train"][-n_val:], d["y_train"][-n_val:]
        d["x_train"], d["y_train"] = d["x_train"][:-n_val], d["y_train"][:-n_val]
    else:
        d["x_val"], d["y_val"] = d["x_test"], d["y_test"]
    return d
