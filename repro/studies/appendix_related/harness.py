"""The chapter 3-4 harness as the appendix uses it: one benchmark (world), models, and a tidy
OOD table per (model, variant, detector, OOD set).

* ``smoke``/``cpu``: the generated world of chapter 3 (``make_world(**cfg3["world"])``), so the
  conventionally trained models come from chapter 3's zoo cache.
* ``full``: chapter 3's ImageFolder benchmark read through the manifests (``imagenet1k`` for the
  ID train/val/test images, ``ninco`` for the OOD classes); a missing asset fails early with
  :class:`repro.data.manifests.MissingAsset` naming the manifest and ``repro data fetch NAME``.

Every score is "higher = more in-distribution" and FPR is FPR@95%TPR with the dissertation's
convention (threshold at the 5 % quantile of ID scores; Sec. 8.1, App. D), through :mod:`repro.ood.metrics`.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

__all__ = ["load_benchmark", "ood_table", "model_features", "mean_over_sets"]

def load_benchmark(cfg3: Mapping, profile: str, seed: int = 0):
    """Chapter 3's benchmark (:func:`repro.studies.ch3_ninco.experiment.load_ood_benchmark`): the generated world
    for ``smoke``/``cpu``, ImageNet-1k + NINCO through the manifests for ``full`` (a missing asset
    raises ``MissingAsset`` naming the manifest and ``repro data fetch NAME``)."""
    from repro.studies.ch3_ninco.experiment import load_ood_benchmark

    return load_ood_benchmark(dict(cfg3), profile, int(seed))


def _feats(zm, data, device):
    fn = getattr(zm, "features", None)
    if callable(fn):  # a repro.studies.ch3_ninco.zoo.ZooModel: extraction with the model's own input transform
        return fn(data, device=device)
    from repro.ood.features import extract

    return extract(zm, data, device=device, progress=False)


def model_features(model, world, ood_sets: Sequence[str], device=None, train: bool = True) -> dict:
    """Cached pre-logit features/logits/head of ``model`` (a :class:`repro.studies.ch3_ninco.zoo.ZooModel` or a bare
    module) on the ID train (optional) and test sets and on every OOD set."""
    missing = [k for k in ood_sets if k not in world.ood]
    if missing:
        raise ValueError(f"OOD sets {missing} are not in the benchmark (available: {sorted(world.ood)}); "
                         "fix ood_sets in repro/profiles/appendix.yaml")
    out = {"test": _feats(model, world.id_test, device), "ood": {k: _feats(model, world.ood[k], device) for k in ood_sets}}
    if train:
        out["train"] = _feats(model, world.id_train, device)
    return out


def ood_table(feats: Mapping, detectors: Mapping[str, dict], **keys) -> pd.DataFrame:
    """Fit every detector on ``feats["train"]`` and report FPR@95 / AUROC (in %) on every OOD set.

    ``feats`` as returned by :func:`model_features`; ``keys`` (e.g. ``model=..., variant=...``)
    become leading columns. One row per (detector, OOD set).
    """
    from repro.ood.evaluate import score_detectors
    from repro.ood.metrics import auroc, fpr_at_95tpr

    sets = {"id": feats["test"], **{f"ood:{k}": v for k, v in feats["ood"].items()}}
    sc = score_detectors(list(detectors), feats["train"], sets, hparams=dict(detectors))
    rows = []
    for det, d in sc.items():
        for k in feats["ood"]:
            rows.append({**keys, "detector": det, "dataset": k, "fpr": 100 * fpr_at_95tpr(d["id"], d[f"ood:{k}"]),
                         "auroc": 100 * auroc(d["id"], d[f"ood:{k}"])})
    return pd.DataFrame(rows)


def mean_over_sets(table: pd.DataFrame, index: Sequence[str], value: str = "fpr") -> pd.DataFrame:
    """``table`` averaged over OOD sets (unweighted, as M-Tab. 4 averages its datasets), wide by detector."""
    return table.groupby(list(index) + ["detector"], sort=False)[value].mean().unstack("detector")
