"""Batched extraction of pre-logit features, logits and the classifier head.

Every detector of chapters 3-4 works on the pre-logit features Φ(x) (the input of the last
linear layer, Sec. 8.1 (App. C) and Sec. 8.2 (Sec. 3.1)), the logits, and the head (W, b) (timm's
``forward_head(forward_features(x), pre_logits=True)``). Extraction is separated from scoring
(DESIGN.md, "feature extraction apart from scoring"): features are computed once per
(model, data, transform), cached through :mod:`repro.core.cache`, and every detector reads arrays.

On CUDA the loop uses autocast (bf16), channels_last and pinned host memory with non-blocking
copies; on CPU it is a plain float32 loop. Features and logits are returned as float32 (the
NINCO code stores float32 and casts to float64 for the statistics; detectors do that cast).
bf16 autocast changes the numbers (many more tied logits), so the cache key holds the device type,
the weights' dtype and the autocast mode (:func:`extraction_mode`): a CPU fp32 entry and a CUDA
bf16 entry are never shared.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from repro.core.cache import fingerprint, get_or_compute
from repro.ood.detectors.base import Head

__all__ = ["Features", "ResizeNormalize", "extract", "extract_uncached", "extraction_mode", "feature_cache_params",
           "FEATURES_VERSION"]

FEATURES_VERSION = "1"


@dataclass
class Features:
    """Pre-logit features [N, D], logits [N, C] (float32), labels [N] (or None) and the head."""

    features: np.ndarray
    logits: np.ndarray
    labels: Optional[np.ndarray]
    head: Head

    def __len__(self) -> int:
        return len(self.features)

    def subset(self, idx) -> "Features":
        return Features(self.features[idx], self.logits[idx], None if self.labels is None else self.labels[idx],
                        self.head)


def _images_and_labels(data):
    x = getattr(data, "x", data)
    y = getattr(data, "y", None)
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
        got = f"{type(x).__name__} {getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}"
        raise ValueError(f"extract expects an ImageSet or a uint8 tensor [N, 3, H, W], got {got}")
    if len(x) == 0:
        raise ValueError("extract got an empty dataset (0 images); check the dataset split/paths")
    return x, y


class ResizeNormalize:
    """uint8 [N, 3, H, W] -> float, resized to ``size`` and normalised with ``mean``/``std``.

    The input transform of a pretrained timm checkpoint in the ``full`` profile: images are
    stored once, centre-cropped at the benchmark's resolution (``repro.data.imagefolder``), and
    each model gets its own input size, interpolation and normalisation from its
    ``pretrained_cfg`` (timm ``resolve_model_data_config``). Resizing is antialiased so a 384 px
    store feeds a 224 px model like a direct resize would. ``id`` names the transform in the
    feature cache key.
    """

    def __init__(self, size, mean, std, interpolation: str = "bicubic"):
        size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)[-2:]
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be an int or (H, W), got {size}")
        if interpolation not in ("bilinear", "bicubic", "nearest"):
            # timm also knows 'lanczos'/'box'; torch's interpolate does not, bicubic is the closest
            interpolation = "bicubic"
        self.size, self.interpolation = size, interpolation
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean/std must be 3 values (std > 0), got {mean}, {std}")

    @property
    def id(self) -> str:
        return f"resize{self.size}-{self.interpolation}-mean{self.mean}-std{self.std}"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from repro.models import preprocess

        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        if tuple(x.shape[-2:]) != self.size:
            aa = self.interpolation != "nearest"
            x = torch.nn.functional.interpolate(x, size=self.size, mode=self.interpolation, antialias=aa,
                                                **({} if self.interpolation == "nearest" else {"align_corners": False}))
            x = x.clamp_(0, 1)
        return preprocess(x, self.mean, self.std)

    def __repr__(self) -> str:
        return f"ResizeNormalize({self.id})"


def _default_transform(x: torch.Tensor) -> torch.Tensor:
    from repro.models import preprocess

    return preprocess(x)


def _resolve_device(device) -> torch.device:
    from repro.core.config import device as pick_device

    return pick_device("auto") if device is None else torch.device(device)


def extraction_mode(model: nn.Module, device=None) -> dict:
    """How :func:`extract_uncached` computes on ``device``: device type, weight dtype, autocast dtype.
    Part of the feature cache key (a result depends on all three)."""
    dev = _resolve_device(device)
    p = next(model.parameters(), None)
    return {"device": dev.type, "dtype": str(p.dtype).replace("torch.", "") if p is not None else None,
            "autocast": "bfloat16" if dev.type == "cuda" else None}


def extract_uncached(model: nn.Module, data, batch_size: int = 256, device=None,
                     transform: Optional[Callable] = None, progress: bool = False) -> Features:
    """Run the model over ``data`` (ImageSet or uint8 tensor) and collect features and logits."""
    from repro.models import classifier_head

    x, y = _images_and_labels(data)
    lin = classifier_head(model)  # clear error for a model without a linear head
    dev = _resolve_device(device)
    transform = transform or _default_transform
    cuda = extraction_mode(model, dev)["autocast"] is not None
    was_training = model.training
    model.eval().to(dev)
    if cuda:
        model.to(memory_format=torch.channels_last)
    feats, logits = [], []
    it = range(0, len(x), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="features", total=(len(x) + batch_size - 1) // batch_size, leave=False)
    with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
        for i in it:
            xb = x[i:i + batch_size]
            if cuda:
                xb = xb.pin_memory().to(dev, non_blocking=True)
            xb = transform(xb)
            if cuda:
                xb = xb.contiguous(memory_format=torch.channels_last)
            f = model.forward_head(model.forward_features(xb), pre_logits=True)
            feats.append(f.float().cpu())
            logits.append(lin(f).float().cpu())
    model.train(was_training)
    F = torch.cat(feats).numpy()
    if F.ndim != 2:
        raise ValueError(f"pre-logit features must be [N, D], the model returned shape {F.shape}; "
                         "use a model whose forward_head(..., pre_logits=True) pools to vectors")
    L = torch.cat(logits).numpy()
    if not (np.isfinite(F).all() and np.isfinite(L).all()):
        raise ValueError("the model produced NaN/inf features or logits; check the weights and input range")
    return Features(F, L, None if y is None else y.numpy().astype(np.int64), Head.from_module(lin))


def feature_cache_params(model: nn.Module, data, device=None,
                         transform_id: str = "preprocess(mean=0.5,std=0.5)") -> dict:
    """Everything a cached feature entry depends on: weights, architecture, images, labels,
    transform and the :func:`extraction_mode` (device type, weight dtype, autocast)."""
    x, y = _images_and_labels(data)
    xfp = data.pixels_fingerprint() if hasattr(data, "pixels_fingerprint") else fingerprint(x)
    return {"model": fingerprint(model), "arch": type(model).__qualname__, "images": xfp,
            "labels": None if y is None else fingerprint(y), "transform": transform_id,
            **extraction_mode(model, device)}


def extract(model: nn.Module, data, batch_size: int = 256, device=None, transform: Optional[Callable] = None,
            transform_id: str = "preprocess(mean=0.5,std=0.5)", progress: bool = True, cache: bool = True) -> Features:
    """Cached :func:`extract_uncached`. The key is (model weights + class, data content, transform id):
    the same trained model on the same images hits the cache from any chapter. Pass a distinct
    ``transform_id`` with a custom ``transform``."""
    if transform is not None and transform_id == "preprocess(mean=0.5,std=0.5)":
        raise ValueError("a custom transform needs its own transform_id (it is part of the cache key)")
    if not cache:
        return extract_uncached(model, data, batch_size, device, transform, progress)
    params = feature_cache_params(model, data, device, transform_id)

    def compute():
        f = extract_uncached(model, data, batch_size, device, transform, progress)
        return {"features": f.features, "logits": f.logits, "labels": f.labels, "W": f.head.W, "b": f.head.b}

    d = get_or_compute("features", params, compute, version=FEATURES_VERSION)
    return Features(d["features"], d["logits"], d["labels"], Head(d["W"], d["b"]))
