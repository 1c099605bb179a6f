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

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

# Inputs are uint8 images; models see (x/255 - 0.5)/0.5, i.e. values in [-1, 1].
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def register_model(name: str):
    """Decorator registering ``fn(num_classes, **kw) -> nn.Module`` under ``name``."""

    def deco(fn):
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, pretrained: bool = False, **kw: Any) -> nn.Module:
    """Build a registered small model, or any timm model by name (``pretrained`` only for timm names).

    Registered models are always from scratch: asking for ``pretrained=True`` raises, because no
    weights exist for them.
    """
    _import_all()
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if name in _REGISTRY:
        if pretrained:
            raise ValueError(f"{name!r} is a from-scratch model of this suite; no pretrained weights exist")
        return _REGISTRY[name](num_classes=num_classes, **kw)
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
