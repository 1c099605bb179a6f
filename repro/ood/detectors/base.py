"""Detector interface and registry (scikit-learn estimator contract, OpenOOD postprocessor split).

A detector is fitted on in-distribution training data and then scores test samples:

    det = get_detector("maha_pp").fit(train_features, train_logits, train_labels, head)
    s = det.score(features, logits)          # np.ndarray [N], higher = more in-distribution

- ``fit`` returns ``self``; everything it learns is stored in attributes ending in ``_``.
- ``score`` is pure: it never changes the detector.
- Hyperparameters are constructor keyword arguments (``get_detector("react", percentile=99)``),
  listed by ``get_params()``; every hyperparameter must change the scores (tested).
- Detectors see arrays only (pre-logit features ``[N, D]``, logits ``[N, C]``, labels ``[N]`` and
  the classifier ``Head(W [C, D], b [C])``); they know nothing about datasets or networks.
"""
from __future__ import annotations

import abc
import inspect
from typing import NamedTuple, Optional

import numpy as np

from repro.core.registry import Registry


class Head(NamedTuple):
    """The last linear layer: logits = features @ W.T + b."""

    W: np.ndarray  # [C, D]
    b: np.ndarray  # [C]

    @classmethod
    def from_module(cls, linear) -> "Head":
        b = linear.bias.detach().cpu().double().numpy() if linear.bias is not None else np.zeros(linear.out_features)
        return cls(linear.weight.detach().cpu().double().numpy(), b)


def _load_all() -> None:
    from repro.ood.detectors import _import_all

    _import_all()


#: every detector, by name (one module per family registers into it, see ``repro.ood.detectors``)
DETECTORS = Registry("detector", loader=_load_all)


def register(name: str):
    """Class decorator: make a detector available as ``get_detector(name)``."""
    return DETECTORS.register(name)


def list_detectors() -> list[str]:
    return DETECTORS.list(sorted=True)


def get_detector(name: str, **hparams) -> "Detector":
    """Instantiate a registered detector with its hyperparameters (unknown names/keywords: ValueError)."""
    return DETECTORS.get(name, **hparams)


def _check_rows(name: str, f, lg, what: str) -> None:
    """Features and logits describe the same samples: a row-count mismatch would broadcast silently
    (checked whenever both are given, even if this detector reads only one of them)."""
    if f is None or lg is None:
        return
    nf, nl = np.shape(f), np.shape(lg)
    if nf and nl and nf[0] != nl[0]:
        raise ValueError(f"{name}: {what}features have {nf[0]} rows but {what}logits have {nl[0]} rows; "
                         "pass one feature row and one logit row per sample")


def as_2d(a, name: str, dtype=np.float64) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D], got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    a = a.astype(dtype, copy=False)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf values ({int((~np.isfinite(a)).sum())} entries)")
    return a


class Detector(abc.ABC):
    """Base class. Subclasses implement ``_fit`` and ``_score``; validation lives here."""

    name: str = "detector"
    #: which inputs the detector uses, for validation and documentation
    uses_features: bool = True
    uses_logits: bool = False
    needs_labels: bool = False
    needs_head: bool = False

    def get_params(self) -> dict:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- public API -----------------------------------------------------------------------
    def fit(self, train_features=None, train_logits=None, train_labels=None, head: Optional[Head] = None):
        f = as_2d(train_features, "train_features") if self.uses_features and train_features is not None else None
        lg = as_2d(train_logits, "train_logits") if train_logits is not None else None
        _check_rows(self.name, train_features, train_logits, "train_")
        if self.uses_features and f is None and self.needs_training_features():
            raise ValueError(f"{self.name}: fit needs train_features [N, D]")
        y = None
        if self.needs_labels:
            if train_labels is None:
                raise ValueError(f"{self.name}: fit needs train_labels (class index per training sample)")
            y = np.asarray(train_labels)
            if y.ndim != 1 or (f is not None and len(y) != len(f)):
                raise ValueError(f"{self.name}: train_labels must be 1-D with one label per feature row; "
                                 f"got shape {y.shape} for {None if f is None else len(f)} rows")
            if not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"{self.name}: train_labels must be integers, got dtype {y.dtype}")
        if self.needs_head:
            if head is None:
                raise ValueError(f"{self.name}: fit needs the classifier head Head(W [C, D], b [C])")
            head = Head(np.asarray(head[0], dtype=np.float64), np.asarray(head[1], dtype=np.float64))
            if f is not None and head.W.shape[1] != f.shape[1]:
                raise ValueError(f"{self.name}: head.W has input dimension {head.W.shape[1]} but features have "
                                 f"dimension {f.shape[1]}")
        self._fit(f, lg, y, head)
        self.feature_dim_ = None if f is None else f.shape[1]
        self.fitted_ = True
        return self

    def score(self, features=None, logits=None) -> np.ndarray:
        if not getattr(self, "fitted_", False):
            raise RuntimeError(f"{self.name}: call fit(...) before score(...)")
        f = as_2d(features, "features") if self.uses_features else None
        if f is not None and self.feature_dim_ is not None and f.shape[1] != self.feature_dim_:
            raise ValueError(f"{self.name}: features have dimension {f.shape[1]}, but the detector was fitted "
                             f"on dimension {self.feature_dim_}")
        lg = as_2d(logits, "logits") if self.uses_logits else None
        _check_rows(self.name, features, logits, "")
        s = np.asarray(self._score(f, lg), dtype=np.float64)
        return s

    # -- subclass hooks ---------------------------------------------------------------------
    def needs_training_features(self) -> bool:
        return self.uses_features

    def _fit(self, features, logits, labels, head) -> None:  # pragma: no cover - default: nothing to fit
        return None

    @abc.abstractmethod
    def _score(self, features, logits) -> np.ndarray:
        """Scores for validated inputs; higher = more in-distribution."""


def l2_normalize_strict(f: np.ndarray, what: str = "features") -> np.ndarray:
    """h / ||h||_2 row-wise (Maha++ Eq. 4.1, NNGuide, GMN). A zero row has no direction, so it is a
    clear error rather than a silent NaN or zero."""
    n = np.linalg.norm(f, axis=1, keepdims=True)
    if np.any(n == 0):
        raise ValueError(f"{what}: {int((n == 0).sum())} row(s) have zero l2 norm and cannot be normalised "
                         "(normalised detectors need a direction, e.g. Maha++ Eq. 4.1); remove them or check "
                         "the feature extraction")
    return f / n
