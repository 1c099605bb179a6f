"""Model zoo: small timm-built architectures for the generated 32x32 world, plus any timm name.

All models follow timm's API, which the rest of ``repro`` relies on:

- ``model.forward_features(x)`` -> unpooled features,
- ``model.forward_head(f, pre_logits=True)`` -> pre-logit features Φ(x) (the input of the last
  linear layer; what Mahalanobis/Maha++ and KNN operate on),
- ``model.get_classifier()`` -> the final ``nn.Linear`` (W, b).

Small architectures are registered with :func:`register_model` and built from timm classes,
so the ``full`` profile uses the *same* code path with ``timm.create_model(name, pretrained=True)``.
Modules in this package (e.g. ``wrn.py``) are imported automatically, so a new file that calls
``@register_model`` is available by name without editing this file.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

import torch
from torch import nn

from repro.core.registry import Registry


def _load_all() -> None:
    _import_all()


#: name -> ``fn(num_classes, **kw) -> nn.Module`` (every module of this package is imported first)
MODELS = Registry("model", loader=_load_all, set_name=False)

# Inputs are uint8 images; models see (x/255 - 0.5)/0.5, i.e. values in [-1, 1].
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def register_model(name: str):
    """Decorator registering ``fn(num_classes, **kw) -> nn.Module`` under ``name``."""

    return MODELS.register(name)


def list_models() -> list[str]:
    return MODELS.list(sorted=True)


def create_model(name: str, num_classes: int, pretrained: bool = False, **kw: Any) -> nn.Module:
    """Build a registered small model, or any timm model by name (``pretrained`` only for timm names).

    Registered models are always from scratch: asking for ``pretrained=True`` raises, because no
    weights exist for them.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if name in MODELS:
        if pretrained:
            raise ValueError(f"{name!r} is a from-scratch model of this suite; no pretrained weights exist")
        model = MODELS.get(name, num_classes=num_classes, **kw)
        # the suite's own input convention travels with the model, so code that receives uint8
        # images (e.g. repro.sharpness.measure) never has to guess it
        model.input_normalization = {"mean": MEAN, "std": STD}
        return model
    import timm

    if not timm.is_model(name):
        raise ValueError(
            f"unknown model {name!r}: neither a registered small model ({', '.join(list_models())}) "
            "nor a timm model name (see timm.list_models())"
        )
    return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kw)


def model_spec(name: str, num_classes: int, **kw: Any) -> dict:
    """A plain dict from which :func:`build_from_spec` rebuilds the architecture (for caching)."""
    return {"name": name, "num_classes": int(num_classes), "kwargs": dict(kw)}


def build_from_spec(spec: dict) -> nn.Module:
    return create_model(spec["name"], spec["num_classes"], **spec.get("kwargs", {}))


def preprocess(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """uint8 [N,3,H,W] -> normalised float32 (the only input transform of the default world)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images of shape [N, 3, H, W], got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    elif not x.is_floating_point():
        raise ValueError(f"expected uint8 or float images, got dtype {x.dtype}")
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def input_normalization(model: nn.Module) -> dict | None:
    """``{"mean": ..., "std": ...}`` the model expects on [0, 1] images, or ``None`` if it declares none.

    Read from ``model.input_normalization`` (set by :func:`create_model` for the suite's models) or
    from timm's ``pretrained_cfg`` / ``default_cfg`` (e.g. ImageNet statistics for a timm checkpoint).
    """
    own = getattr(model, "input_normalization", None)
    if isinstance(own, dict) and "mean" in own and "std" in own:
        return {"mean": tuple(own["mean"]), "std": tuple(own["std"])}
    for attr in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, attr, None)
        if isinstance(cfg, dict) and cfg.get("mean") is not None and cfg.get("std") is not None:
            return {"mean": tuple(cfg["mean"]), "std": tuple(cfg["std"])}
    return None


def classifier_head(model: nn.Module) -> nn.Linear:
    """The final linear layer; a clear error for models without one."""
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Linear):
        raise ValueError(
            f"{type(model).__name__} has no linear classifier head (get_classifier() returned "
            f"{type(head).__name__}); OOD detectors need the last nn.Linear (build the model with num_classes > 0)"
        )
    return head


def pre_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Φ(x): the input of the classifier head."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


_IMPORTED = False


def _import_all() -> None:
    global _IMPORTED
    if _IMPORTED:
        return
    _IMPORTED = True
    for m in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{m.name}")
