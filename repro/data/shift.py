"""Common-corruption shifts for the CIFAR-10-C analogue (paper App. H, Sec. 8.3 (App. A); the ch. 5 implementation notes).

CIFAR-10-C (Hendrycks & Dietterich 2019) applies 15 corruptions at 5 severities; the released
code evaluates severity 5.  Here a subset of corruption families that are well-defined at any
resolution is implemented on uint8 tensors [N, 3, H, W], seeded and vectorised:
noise (gaussian, shot, impulse), blur (gaussian/defocus-like, motion), weather-free photometric
ones (contrast, brightness, saturate) and digital ones (pixelate, jpeg-like quantization).
Severity parameters follow the spirit of the CIFAR-10-C tables (monotone in severity 1-5).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from repro.core.registry import Registry

#: name -> ``fn(x_uint8, severity, generator) -> x_uint8``
CORRUPTIONS = Registry("corruption", set_name=False)
SEVERITIES = (1, 2, 3, 4, 5)


def register(name: str):
    return CORRUPTIONS.register(name)


def list_corruptions() -> list[str]:
    return CORRUPTIONS.list()


def get(name: str) -> Callable:
    """The corruption function itself (called with (x, severity, generator))."""
    return CORRUPTIONS.entry(name)


def _f(x):
    return x.float() / 255.0


def _u8(x):
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@register("gaussian_noise")
def gaussian_noise(x, s, g):
    c = (0.04, 0.06, 0.08, 0.09, 0.10)[s - 1]
    return _u8(_f(x) + c * torch.randn(x.shape, generator=g))


@register("shot_noise")
def shot_noise(x, s, g):
    c = (500, 250, 100, 75, 50)[s - 1]
    return _u8(torch.poisson(_f(x) * c, generator=g) / c)


@register("impulse_noise")
def impulse_noise(x, s, g):
    p = (0.01, 0.02, 0.03, 0.05, 0.07)[s - 1]
    u = torch.rand(x.shape, generator=g)
    out = _f(x).clone()
    out[u < p / 2] = 0.0
    out[(u >= p / 2) & (u < p)] = 1.0
    return _u8(out)


def _conv_per_channel(xf, k):
    k = k.to(xf.dtype)
    C = xf.shape[1]
    w = k[None, None].repeat(C, 1, 1, 1)
    pad = (k.shape[1] // 2, k.shape[1] // 2, k.shape[0] // 2, k.shape[0] // 2)
    return F.conv2d(F.pad(xf, pad, mode="reflect"), w, groups=C)


@register("gaussian_blur")
def gaussian_blur(x, s, g):
    sig = (0.4, 0.6, 0.8, 1.0, 1.3)[s - 1] * x.shape[-1] / 32
    r = max(1, int(round(2.5 * sig)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k1 = torch.exp(-t ** 2 / (2 * sig ** 2))
    k = torch.outer(k1, k1)
    return _u8(_conv_per_channel(_f(x), k / k.sum()))


@register("motion_blur")
def motion_blur(x, s, g):
    L = (3, 3, 5, 5, 7)[s - 1]
    k = torch.zeros(L, L)
    k[L // 2, :] = 1.0  # horizontal streak
    return _u8(_conv_per_channel(_f(x), k / k.sum()))


@register("contrast")
def contrast(x, s, g):
    c = (0.75, 0.5, 0.4, 0.3, 0.15)[s - 1]
    xf = _f(x)
    m = xf.mean((1, 2, 3), keepdim=True)
    return _u8((xf - m) * c + m)


@register("brightness")
def brightness(x, s, g):
    c = (0.05, 0.1, 0.15, 0.2, 0.3)[s - 1]
    return _u8(_f(x) + c)


@register("saturate")
def saturate(x, s, g):
    c = (0.3, 0.1, 2.0, 5.0, 20.0)[s - 1]
    xf = _f(x)
    gray = xf.mean(1, keepdim=True)
    return _u8(gray + c * (xf - gray))


@register("pixelate")
def pixelate(x, s, g):
    c = (0.95, 0.9, 0.85, 0.75, 0.65)[s - 1]
    H, W = x.shape[-2:]
    h, w = max(1, int(H * c)), max(1, int(W * c))
    small = F.interpolate(_f(x), size=(h, w), mode="area")
    return _u8(F.interpolate(small, size=(H, W), mode="nearest"))


@register("jpeg_quantize")
def jpeg_quantize(x, s, g):
    """Coarse colour quantization + 2x2 block averaging (a JPEG-like loss of detail, no codec)."""
    levels = (32, 16, 12, 8, 6)[s - 1]
    xf = _f(x)
    H, W = x.shape[-2:]
    blk = F.interpolate(F.avg_pool2d(xf, 2, ceil_mode=True), size=(H, W), mode="nearest")
    mix = 0.5 + 0.1 * (s - 1)
    y = (1 - mix) * xf + mix * blk
    return _u8(torch.round(y * (levels - 1)) / (levels - 1))


def corrupt(x: torch.Tensor, name: str, severity: int = 5, seed: int = 0) -> torch.Tensor:
    """Apply one corruption at ``severity`` ∈ {1..5} to uint8 images [N, 3, H, W] (returns uint8)."""
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(
            f"expected uint8 images of shape [N, 3, H, W], got "
            f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"
        )
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    fn = get(name)
    g = torch.Generator().manual_seed(int(seed))
    return fn(x.cpu(), int(severity), g)


def corrupted_set(x: torch.Tensor, y: torch.Tensor, names=None, severity: int = 5, seed: int = 0):
    """The CIFAR-10-C analogue: every image once under every corruption (concatenated), as the
    released code evaluates a pooled corruption set.  Returns (x_c, y_c, corruption_index)."""
    names = list(names) if names is not None else list_corruptions()
    if not names:
        raise ValueError("need at least one corruption name")
    xs, ys, cs = [], [], []
    for i, n in enumerate(names):
        xs.append(corrupt(x, n, severity, seed + i))
        ys.append(y)
        cs.append(torch.full((len(y),), i, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys), torch.cat(cs)
