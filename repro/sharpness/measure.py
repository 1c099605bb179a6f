"""Public entry point: ``measure(model, batches, definition, rho)`` (Eq. 5.1 / Def. 2.3).

m-sharpness (Def. 2.1 in Sec. 2.2; Sec. 8.3, App. B and App. H): sharpness is computed independently on
each batch of m training points (no augmentation; the same points for all models) and averaged over
batches.

Inputs: float tensors are taken as model-ready. uint8 images are normalised with the statistics
the model declares (:func:`repro.models.input_normalization`: the suite's models and timm models
carry them) or with an explicit ``preprocess``; a model that declares none is an error, never a
guess (a timm checkpoint expects ImageNet statistics, the suite's models (0.5, 0.5)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

from repro.sharpness.apgd import apgd_sharpness
from repro.sharpness.average import average_loss
from repro.sharpness.definitions import Definition, get
from repro.sharpness.functional import DEFAULT_LOGIT_NORM, LOGIT_NORMS, FlatModel, eval_mode


@dataclass
class SharpnessResult:
    """``value`` = mean over batches of (perturbed loss − clean loss); ``per_batch`` the batch values."""
    value: float
    definition: str
    rho: float
    per_batch: list = field(default_factory=list)
    clean_loss: float = float("nan")
    n_evals: int = 0
    settings: dict = field(default_factory=dict)


REMAINDERS = ("error", "drop", "use")


def _uint8_preprocess(model):
    from repro.models import input_normalization, preprocess

    norm = input_normalization(model)
    if norm is None:
        raise ValueError(
            f"uint8 images were given but {type(model).__name__} declares no input normalization "
            "(no model.input_normalization, no timm pretrained_cfg mean/std); pass preprocess=<callable "
            "uint8 -> model-ready float>, e.g. functools.partial(repro.models.preprocess, mean=..., std=...), "
            "or pass float inputs that are already normalized")
    return lambda x: preprocess(x, norm["mean"], norm["std"])


def _prepare_batches(batches, m, device, model=None, preprocess=None, remainder="error"):
    if remainder not in REMAINDERS:
        raise ValueError(f"remainder must be one of {REMAINDERS}, got {remainder!r}")
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], torch.Tensor):
        batches = [batches]
    out = []
    auto = None
    for b in batches:
        if not (isinstance(b, (tuple, list)) and len(b) >= 2):
            raise ValueError("batches must yield (x, y) pairs of tensors")
        x, y = b[0], b[1]
        if preprocess is not None:
            x = preprocess(x)
        elif x.dtype == torch.uint8:
            auto = auto or _uint8_preprocess(model)
            x = auto(x)
        out.append((x, y.long()))
    n_total = sum(len(y) for _, y in out)
    if not out:
        raise ValueError("no batches given: pass a non-empty list/loader of (x, y) training batches")
    if m is not None:
        if int(m) < 1:
            raise ValueError(f"m must be a positive batch size, got {m}")
        X = torch.cat([b[0] for b in out])
        Y = torch.cat([b[1] for b in out])
        n = (len(X) // m) * m
        if n == 0:
            raise ValueError(f"m={m} exceeds the number of sharpness points ({len(X)})")
        rest = len(X) - n
        if rest and remainder == "error":
            raise ValueError(f"m={m} does not divide the {len(X)} sharpness points ({rest} left over); use a "
                             "multiple of m points, or remainder='drop' (ignore them) / 'use' (one smaller last "
                             "batch)")
        end = len(X) if remainder == "use" else n
        out = [(X[i:i + m], Y[i:i + m]) for i in range(0, end, m)]
    return [(x.to(device), y.to(device)) for x, y in out], n_total


def measure_detailed(
    model: nn.Module,
    batches: Iterable,
    definition: str | Definition,
    rho: float,
    *,
    m: int | None = None,
    steps: int = 20,
    n_samples: int = 100,
    logit_norm: str | None = None,
    seed: int = 0,
    device=None,
    mode: str = "faithful",
    init: str | None = None,
    batched_noise: bool | None = None,
    chunk: int | None = None,
    preprocess=None,
    remainder: str = "error",
) -> SharpnessResult:
    """Sharpness of ``model`` on ``batches`` for a registered ``definition`` and radius ``rho``.

    - ``batches``: list/loader of (x, y) training batches. Float inputs are used as given; uint8
      images are normalized with the model's declared statistics (:func:`repro.models.input_normalization`)
      or an explicit ``preprocess`` callable (applied to every batch when given); no declaration and
      no ``preprocess`` is an error. ``m`` re-splits them into batches of size m (m-sharpness); when m
      does not divide the number of points, ``remainder`` = ``"error"`` (default), ``"drop"`` or
      ``"use"`` (a smaller last batch); ``settings`` records ``n_points`` and ``n_dropped``.
    - worst-case definitions: Auto-PGD with ``steps`` iterations (Algorithm 1; ``mode`` =
      ``"faithful"`` or ``"code_compat"``, ``init`` = ``"random"``/``"zero"``).
    - average-case definitions: ``n_samples`` noise draws per batch (``batched_noise``: vmap
      ``chunk`` draws at once; default: on CUDA only).
    - ``logit_norm``: convention for the ``*_ln`` definitions, ``"std"`` (default; Eq. 5 of the
      dissertation) or ``"l2"`` (the released code; = Eq. 5 / √K).  Ignored for definitions
      without logit normalization.
    - the model is evaluated in eval mode (warned and switched if needed, restored afterwards);
      it is never copied: weights are substituted with ``torch.func.functional_call``.
    """
    d = get(definition)
    if not isinstance(rho, (int, float)) or not math.isfinite(rho) or rho <= 0:
        raise ValueError(f"rho must be a positive finite number, got {rho!r}")
    if d.kind == "worst" and (isinstance(steps, bool) or int(steps) != steps or steps < 1):
        raise ValueError(f"steps (Auto-PGD iterations) must be an integer >= 1, got {steps!r}")
    if d.kind == "avg" and (isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1):
        raise ValueError(f"n_samples (noise draws) must be an integer >= 1, got {n_samples!r}")
    if logit_norm is not None and logit_norm not in LOGIT_NORMS:
        raise ValueError(f"logit_norm must be None or one of {LOGIT_NORMS}, got {logit_norm!r}")
    from repro.core.config import device as _device

    dev = _device(device) if (device is None or isinstance(device, str)) else torch.device(device)
    conv = (logit_norm or DEFAULT_LOGIT_NORM) if d.logit_norm else None
    data, n_total = _prepare_batches(batches, m, dev, model=model, preprocess=preprocess, remainder=remainder)
    n_given = sum(len(y) for _, y in data)
    with eval_mode(model):
        flat = FlatModel(model, logit_norm=conv)
        flat.w0 = flat.w0.to(dev)
        flat.buffers = {k: v.to(dev) for k, v in flat.buffers.items()}
        with flat.bound():
            r = _measure(flat, d, data, dev, float(rho), m=m, steps=steps, n_samples=n_samples, conv=conv,
                         seed=seed, mode=mode, init=init, batched_noise=batched_noise, chunk=chunk)
    r.settings.update(n_points=n_given, n_dropped=n_total - n_given, remainder=remainder)
    return r


def _measure(flat, d, data, dev, rho, *, m, steps, n_samples, conv, seed, mode, init, batched_noise, chunk):
    """One sharpness value per batch, averaged (the model is already in eval mode and bound)."""
    c = flat.w0.abs() if d.adaptive else torch.ones_like(flat.w0)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    per_batch, cleans, n_evals = [], [], 0
    for x, y in data:
        if d.kind == "worst":
            r = apgd_sharpness(
                lambda w: flat.loss_and_grad(w, x, y),
                lambda w: flat.loss_value(w, x, y),
                flat.w0, c, float(rho), d.norm, n_iter=steps, mode=mode, init=init, generator=gen,
            )
            per_batch.append(r.f_max - r.f_clean)
            cleans.append(r.f_clean)
            n_evals += r.n_evals
        else:
            L0 = float(flat.loss_value(flat.w0, x, y))
            if not math.isfinite(L0):
                raise FloatingPointError("non-finite clean loss; check the model and the inputs")
            # vmap over noise draws pays off on GPUs; on CPU a plain loop is as fast (see
            # benchmarks/bench_sharpness.py), so "auto" (None) batches only on CUDA.
            bn = (dev.type == "cuda") if batched_noise is None else bool(batched_noise)
            La = average_loss(flat, x, y, c, float(rho), d.norm, n_samples=n_samples,
                              chunk=chunk, batched=bn, generator=gen)
            per_batch.append(La - L0)
            cleans.append(L0)
            n_evals += n_samples + 1
    return SharpnessResult(
        value=float(sum(per_batch) / len(per_batch)), definition=d.name, rho=float(rho),
        per_batch=per_batch, clean_loss=float(sum(cleans) / len(cleans)), n_evals=n_evals,
        settings=dict(m=m, steps=steps, n_samples=n_samples, logit_norm=conv, seed=seed, mode=mode,
                      init=init, n_batches=len(data)),
    )


def measure(model, batches, definition, rho, *, m=None, steps=20, n_samples=100, logit_norm=None,
            seed=0, device=None, **kw) -> float:
    """Sharpness value (a float); see :func:`measure_detailed` for the arguments and the full result."""
    return measure_detailed(model, batches, definition, rho, m=m, steps=steps, n_samples=n_samples,
                            logit_norm=logit_norm, seed=seed, device=device, **kw).value


def cache_params(definition, rho, *, m=None, steps=20, n_samples=100, logit_norm=None, seed=0, mode="faithful",
                 init=None, device=None) -> dict:
    """Every setting a cached sharpness value depends on, for a cache key (beside the model and the
    points). Settings a definition does not read are ``None`` so they cannot split the cache; the
    device type is always included: noise draws and reductions differ between CPU and CUDA
    generators, so an average-case value from one is not the other's (issue 20 item 6)."""
    from repro.core.config import device as _device

    d = get(definition)
    # an explicit device names itself (a key can be computed for a device this machine lacks)
    dev = _device(device) if device in (None, "auto") else torch.device(device)
    return dict(definition=d.name, rho=float(rho), m=None if m is None else int(m),
                steps=int(steps) if d.kind == "worst" else None,
                n_samples=int(n_samples) if d.kind == "avg" else None,
                logit_norm=(logit_norm or DEFAULT_LOGIT_NORM) if d.logit_norm else None,
                mode=mode if d.kind == "worst" else None, init=init if d.kind == "worst" else None,
                seed=int(seed), device=dev.type)
