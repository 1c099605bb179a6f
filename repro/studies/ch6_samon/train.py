"""One chapter-6 training run (SGD, SAM-all, SAM-ON, no-norm, sparse masks, block-restricted and fix-norm
SAM): the computation behind the ``ch6_train``, ``ch6_run`` and ``ch6_model`` cache entries.

Kept apart from :mod:`repro.studies.ch6_samon.experiment` (the plan, ρ selection, tables, sharpness, γ/β and
rank studies) so that the code fingerprint of a trained run (:mod:`repro.core.fingerprint`) covers what can
change it -- this module, the architectures (:mod:`repro.models`), the training loop (:mod:`repro.train.loop`)
and SAM (:mod:`repro.sam`) -- and not the studies, whose edits must not retrain (and re-release) the runs.

Three cache families, one training:

- ``ch6_train``: the whole result, weights included (:func:`train_run`); local only, never released.
- ``ch6_run``: the same without the weights (:func:`run_result`: accuracies, times, history) -- what every
  table and claim of the chapter reads. Released for every run (a few kB each).
- ``ch6_model``: the weights alone (:func:`run_weights`), made only for the models the sharpness, γ/β and
  feature-rank studies measure. Released for those (15 in the cpu profile), so the store holds a few MB
  instead of the weights of every run.

Each derived entry is computed from ``ch6_train``, so a cold book that finds both released entries trains
nothing, and a local run trains each model once.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import nn

from repro.core.cache import fingerprint, get_or_compute
from repro.models import build_from_spec, model_spec
from repro.sam import selection as _sel
from repro.sam.optimizer import SAM
from repro.train.loop import evaluate, train_classifier

__all__ = ["RunSpec", "MODES", "SPARSE", "CACHE_VERSION", "train_run", "run_result", "run_weights", "load_model",
           "spec_dict"]

#: SAM parameter selections run at every variant's own selected ρ -> display mode (Fig. 6.1: all, ON, no-norm)
MODES = {"all": "all", "only_norm": "ON", "no_norm": "no-norm"}

#: sparse perturbation masks of Table 5 / 12 (``"<mask>@<sparsity>"`` for a sparsity other than SAM-ON's)
SPARSE = ("random_mask", "ssam_f", "ssam_d")

#: bump to invalidate every trained run on purpose (a change of the training code does it by itself)
CACHE_VERSION = "1"


@dataclass(frozen=True)
class RunSpec:
    """One training run. ``method="sgd"`` ignores the SAM fields; ``params`` as in :class:`SAM`."""

    method: str = "sam"          # "sgd" or "sam"
    variant: str = "sam"
    params: str = "all"          # all | only_norm | no_norm | random_mask | ssam_f | ssam_d | blocks:...
    rho: float = 0.0
    seed: int = 0
    runtime_mode: bool = False
    label: str = ""              # display name, e.g. "B3"; not part of what is computed
    fix_norm: bool = False       # γ = 1, β = 0, frozen (the fix-norm ablation, Sec. 8.4 App. B.7, Fig. 10)

    @property
    def mode(self) -> str:
        if self.method == "sgd":
            return "-"
        return MODES.get(self.params, self.params)

    def key(self) -> dict:
        d = asdict(self)
        d.pop("label")
        d.pop("runtime_mode")  # same update either way (tested); only the wall clock differs
        if not self.fix_norm:  # absent when off, so the cache keys of the runs without it stay as they were
            d.pop("fix_norm")
        if self.method == "sgd":
            d.update(variant="", params="", rho=0.0)
        return d


def spec_dict(spec: RunSpec) -> dict:
    """``spec`` as keyword arguments of :class:`RunSpec` without default-valued display/ablation fields
    (the form the sweep's job keys are built from)."""
    d = asdict(spec)
    if not d["label"]:
        d.pop("label")
    if not d["fix_norm"]:
        d.pop("fix_norm")
    return d


def _split_sparsity(params: str) -> tuple[str, Optional[float]]:
    """``"ssam_f@0.5"`` -> ("ssam_f", 0.5); without ``@`` the mask has SAM-ON's sparsity (None)."""
    name, _, level = params.partition("@")
    return name, (float(level) if level else None)


def _make_selection(spec: RunSpec, total_steps: int):
    name, sparsity = _split_sparsity(spec.params)
    if name == "ssam_d":
        return _sel.get("ssam_d", sparsity=sparsity, total_steps=total_steps, seed=spec.seed)
    if name == "random_mask":
        return _sel.get("random_mask", sparsity=sparsity, seed=spec.seed)
    if name == "ssam_f":
        return _sel.get("ssam_f", sparsity=sparsity)
    return spec.params


def _params(data: dict, model_name: str, num_classes: int, train_cfg: dict, spec: RunSpec) -> dict:
    if spec.method not in ("sgd", "sam"):
        raise ValueError(f"RunSpec.method must be 'sgd' or 'sam', got {spec.method!r}")
    if spec.method == "sam" and not spec.rho > 0:
        raise ValueError(f"SAM runs need rho > 0, got {spec.rho!r}")
    return dict(data={k: fingerprint(v) for k, v in sorted(data.items())}, model=model_spec(model_name, num_classes),
                cfg=dict(train_cfg), spec=spec.key())


def train_run(data: dict, model_name: str, num_classes: int, train_cfg: dict, spec: RunSpec,
              device=None, progress: bool = False) -> dict:
    """Train one model (cached as ``ch6_train``). ``data`` holds uint8 ``x_train, y_train, x_val, y_val,
    x_test, y_test``.

    Returns a dict with ``state_dict``, ``model_spec``, ``train_acc`` (clean training images), ``val_acc``,
    ``test_acc``, ``train_time`` (seconds of the first, uncached run), ``sec_per_step`` and ``history``.
    """
    params = _params(data, model_name, num_classes, train_cfg, spec)
    mspec, cfg = params["model"], params["cfg"]

    def compute():
        torch.manual_seed(spec.seed)
        model = build_from_spec(mspec)
        if spec.fix_norm:
            from repro.sam.ablations import fix_norm

            fix_norm(model)
        n_steps = cfg["epochs"] * math.ceil(len(data["x_train"]) / cfg.get("batch_size", 128))
        hook = None
        if spec.method == "sam":
            sel = _make_selection(spec, n_steps)

            def hook(m, base):
                return SAM(m, base, rho=spec.rho, variant=spec.variant, params=sel, runtime_mode=spec.runtime_mode)
        t0 = time.perf_counter()
        out = train_classifier(model, data["x_train"], data["y_train"], make_optimizer=hook, seed=spec.seed,
                               device=device, progress=progress, desc=f"{spec.method}/{spec.variant}/{spec.mode}",
                               **cfg)
        dt = time.perf_counter() - t0
        acc = {f"{s}_acc": evaluate(model, data[f"x_{s}"], data[f"y_{s}"], device=device)["accuracy"]
               for s in ("train", "val", "test")}
        return dict(state_dict={k: v.cpu() for k, v in model.state_dict().items()}, model_spec=mspec, **acc,
                    train_time=dt, sec_per_step=dt / n_steps, history=out["history"])

    return get_or_compute("ch6_train", params, compute, version=CACHE_VERSION)


def run_result(data: dict, model_name: str, num_classes: int, train_cfg: dict, spec: RunSpec,
               device=None, progress: bool = False) -> dict:
    """:func:`train_run` without the weights (cached as ``ch6_run``, the released per-run results)."""
    params = _params(data, model_name, num_classes, train_cfg, spec)

    def compute():
        r = train_run(data, model_name, num_classes, train_cfg, spec, device=device, progress=progress)
        return {k: v for k, v in r.items() if k != "state_dict"}

    return get_or_compute("ch6_run", params, compute, version=CACHE_VERSION)


def run_weights(data: dict, model_name: str, num_classes: int, train_cfg: dict, spec: RunSpec,
                device=None) -> dict:
    """The trained ``state_dict`` of one run (cached as ``ch6_model``; released for the studied models)."""
    params = _params(data, model_name, num_classes, train_cfg, spec)
    return get_or_compute("ch6_model", params,
                          lambda: train_run(data, model_name, num_classes, train_cfg, spec, device=device)["state_dict"],
                          version=CACHE_VERSION)


def load_model(result: dict) -> nn.Module:
    """Rebuild a trained run from a dict with its ``model_spec`` and ``state_dict``, in eval mode."""
    m = build_from_spec(result["model_spec"])
    m.load_state_dict(result["state_dict"])
    return m.eval()
