"""Registry of post-hoc OOD detectors (one module per family; every module here is imported
automatically, so a new file with ``@register("name")`` is available without editing this one).

    from repro.ood.detectors import get_detector, list_detectors
    det = get_detector("maha_pp").fit(train_features, train_logits, train_labels, head)
    scores = det.score(test_features, test_logits)   # higher = more in-distribution
"""
from __future__ import annotations

import importlib
import pkgutil

from repro.ood.detectors.base import Detector, Head, as_2d, get_detector, list_detectors, register

__all__ = ["Detector", "Head", "as_2d", "get_detector", "list_detectors", "register"]

_IMPORTED = False


def _import_all() -> None:
    global _IMPORTED
    if _IMPORTED:
        return
    _IMPORTED = True
    for m in pkgutil.iter_modules(__path__):
        if m.name != "base":
            importlib.import_module(f"{__name__}.{m.name}")
