"""The 17 OOD unit tests of paper 8.1 (Sec. 3.3; paper 8.1 Sec. 3.2, recipes in its App. G).

Each test is a synthetic OOD "class" of 400 images that a good detector should reject easily;
a detector *fails* a test when its FPR@95%TPR on it exceeds 10 % (paper 8.1 Sec. 3.2). Pixel values are
generated in [0, 1] per RGB channel and clipped where necessary (paper 8.1 App. G), then stored as uint8.

Recipes (paper 8.1 App. G), with the table abbreviations in brackets:

1  uniform [Uni]          each channel/pixel i.i.d. U[0, 1]
2  gaussian [Gauss]       sigma ~ {0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5} per image; N(0.5, sigma); clip
3  rademacher [Rad]       each channel/pixel in {0, 1} with p = 0.5
4  pixel_perm [PsPerm]    a natural ID image with its pixels shuffled (RGB triplets kept)
5  black [bla]            all 0          6  white [whi]   all 1
7  grey [gre]             all channels one value ~ U[0, 1]
8  monochrome [mon]       all pixels one RGB colour ~ U([0, 1]^3)
9  tricolour [Tri]        3 equal stripes, vertical or horizontal (p = 0.5), each a uniform RGB colour
10 primary_tricolour      as 9, each channel of each stripe colour in {0, 1}
11 hstripes [hor]         n ~ {4, 5, 7, 10, 15, 20} equal horizontal stripes, independent colours
12 vstripes [Ver]         as 11, vertical
13 smooth_noise [SmN]     sigma ~ {10, 15, 25, 40, 60, 85}; Gaussian-filtered uniform noise; global min/max -> [0, 1]
14 smooth_noise_plus [SmN+] as 13 with per-channel min/max rescaling
15 smooth_colour [SmCol]  as 13; delta ~ U[0.1, 0.3], colour c ~ U([0,1]^3); per channel rescale so that the
                          2.5th/97.5th percentiles are c - delta / c + delta; clip
16 smooth_pixel_perm [SmPsPerm] sigma ~ {1, 1.5, 2, 3, 4, 6, 8}; Gaussian-filtered pixel permutation (4)
17 blobs [Blob]           sigma ~ {1.5, 2, 2.5, 3, 3.5, 4}; each channel/pixel 1 w.p. 0.7 else 0; filtered;
                          values < 0.75 set to 0

The paper's images mirror the sizes of random ImageNet images (paper 8.1 App. G), so the filter widths are
in pixels of a ~``ref_size``-pixel image. Here images are ``size`` x ``size``; every sigma is
scaled by ``size / ref_size`` so that a 32 px test looks like a downscaled paper image (at
``size == ref_size`` the recipes are used verbatim). "Gaussian filter with a size of sigma
pixels" is read as standard deviation sigma (our reading; the paper does not say).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

__all__ = ["UNIT_TESTS", "ABBREV", "make_unit_tests", "unit_test", "canonical_name"]

GAUSS_SIGMAS = (0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)
SMOOTH_SIGMAS = (10, 15, 25, 40, 60, 85)
SMOOTH_PERM_SIGMAS = (1, 1.5, 2, 3, 4, 6, 8)
BLOB_SIGMAS = (1.5, 2, 2.5, 3, 3.5, 4)
STRIPE_COUNTS = (4, 5, 7, 10, 15, 20)
REF_SIZE = 400  # typical side of an ImageNet image, in pixels

ABBREV = {
    "uniform": "Uni", "gaussian": "Gauss", "rademacher": "Rad", "pixel_perm": "PsPerm", "black": "bla",
    "white": "whi", "grey": "gre", "monochrome": "mon", "tricolour": "Tri", "primary_tricolour": "PTri",
    "hstripes": "hor", "vstripes": "Ver", "smooth_noise": "SmN", "smooth_noise_plus": "SmN+",
    "smooth_colour": "SmCol", "smooth_pixel_perm": "SmPsPerm", "blobs": "Blob",
}

# spellings of the tests in the paper's tables (N-Tab.2, 10-12) and folder names of the NINCO archive
# (``NINCO_OOD_unit_tests/<abbrev>/``), normalised to lower-case letters, digits and '+'
_ALIASES = {"uni": "uniform", "gauss": "gaussian", "rad": "rademacher", "rade": "rademacher",
            "psperm": "pixel_perm", "pperm": "pixel_perm", "perm": "pixel_perm", "bla": "black", "whi": "white",
            "gre": "grey", "gray": "grey", "mon": "monochrome", "mono": "monochrome", "tri": "tricolour",
            "tricolor": "tricolour", "ptri": "primary_tricolour", "pvtri": "primary_tricolour",
            "primarytricolor": "primary_tricolour", "hor": "hstripes", "ver": "vstripes", "smn": "smooth_noise",
            "smn+": "smooth_noise_plus", "smn2": "smooth_noise_plus", "smnplus": "smooth_noise_plus",
            "smcol": "smooth_colour", "smoothcolor": "smooth_colour", "smpsperm": "smooth_pixel_perm",
            "smpperm": "smooth_pixel_perm", "blob": "blobs"}


def canonical_name(name: str) -> str:
    """Our key (``UNIT_TESTS``) for a unit test named as in the paper's tables or the NINCO archive's
    folders (``bla`` -> ``black``, ``SmN+`` -> ``smooth_noise_plus``); unknown names come back unchanged."""
    if name in UNIT_TESTS:
        return name
    k = "".join(c for c in str(name).lower() if c.isalnum() or c == "+")
    for key, ab in ABBREV.items():
        if k in (key.replace("_", ""), "".join(c for c in ab.lower() if c.isalnum() or c == "+")):
            return key
    return _ALIASES.get(k, name)


def _filter(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian filter of one [H, W, 3] image over the spatial axes only."""
    return gaussian_filter(img, sigma=(sigma_px, sigma_px, 0), mode="reflect")


def _stripes(n_img, size, rng, counts_choice, primary=False, orientation=None):
    out = np.empty((n_img, size, size, 3))
    for i in range(n_img):
        k = int(rng.choice(counts_choice))
        cols = rng.integers(0, 2, (k, 3)).astype(float) if primary else rng.random((k, 3))
        # equal stripes: row r belongs to stripe floor(r * k / size)
        band = (np.arange(size) * k) // size
        horiz = orientation == "h" or (orientation is None and rng.random() < 0.5)
        img = cols[band][:, None, :].repeat(size, 1)  # [size(rows), size, 3], constant along a row
        out[i] = img if horiz else img.transpose(1, 0, 2)
    return out


def _permuted(src: np.ndarray, n, size, rng):
    """Random source images with their pixels shuffled; RGB triplets stay together."""
    idx = rng.integers(0, len(src), n)
    out = np.empty((n, size, size, 3))
    for i, j in enumerate(idx):
        flat = src[j].reshape(-1, 3)
        out[i] = flat[rng.permutation(len(flat))].reshape(size, size, 3)
    return out


def _smooth(n, size, rng, scale, mode, sigmas=SMOOTH_SIGMAS):
    out = np.empty((n, size, size, 3))
    for i in range(n):
        sig = float(rng.choice(sigmas)) * scale
        img = _filter(rng.random((size, size, 3)), sig)
        if mode == "global":
            lo, hi = img.min(), img.max()
            img = (img - lo) / max(hi - lo, 1e-12)
        elif mode == "channel":
            lo, hi = img.min(axis=(0, 1)), img.max(axis=(0, 1))
            img = (img - lo) / np.maximum(hi - lo, 1e-12)
        elif mode == "colour":
            delta = rng.uniform(0.1, 0.3)
            c = rng.random(3)
            lo, hi = np.percentile(img, [2.5, 97.5], axis=(0, 1))
            img = (img - lo) / np.maximum(hi - lo, 1e-12) * (2 * delta) + (c - delta)
        out[i] = img
    return out


def _gen(name: str) -> Callable:
    def gen(n, size, rng, scale, src):
        if name == "uniform":
            return rng.random((n, size, size, 3))
        if name == "gaussian":
            sig = rng.choice(GAUSS_SIGMAS, n)[:, None, None, None]
            return 0.5 + sig * rng.standard_normal((n, size, size, 3))
        if name == "rademacher":
            return rng.integers(0, 2, (n, size, size, 3)).astype(float)
        if name == "pixel_perm":
            return _permuted(src, n, size, rng)
        if name == "black":
            return np.zeros((n, size, size, 3))
        if name == "white":
            return np.ones((n, size, size, 3))
        if name == "grey":
            return np.broadcast_to(rng.random((n, 1, 1, 1)), (n, size, size, 3)).copy()
        if name == "monochrome":
            return np.broadcast_to(rng.random((n, 1, 1, 3)), (n, size, size, 3)).copy()
        if name == "tricolour":
            return _stripes(n, size, rng, (3,))
        if name == "primary_tricolour":
            return _stripes(n, size, rng, (3,), primary=True)
        if name == "hstripes":
            return _stripes(n, size, rng, STRIPE_COUNTS, orientation="h")
        if name == "vstripes":
            return _stripes(n, size, rng, STRIPE_COUNTS, orientation="v")
        if name == "smooth_noise":
            return _smooth(n, size, rng, scale, "global")
        if name == "smooth_noise_plus":
            return _smooth(n, size, rng, scale, "channel")
        if name == "smooth_colour":
            return _smooth(n, size, rng, scale, "colour")
        if name == "smooth_pixel_perm":
            imgs = _permuted(src, n, size, rng)
            sig = rng.choice(SMOOTH_PERM_SIGMAS, n) * scale
            return np.stack([_filter(im, s) for im, s in zip(imgs, sig)])
        if name == "blobs":
            out = np.empty((n, size, size, 3))
            for i in range(n):
                sig = float(rng.choice(BLOB_SIGMAS)) * scale
                img = _filter((rng.random((size, size, 3)) < 0.7).astype(float), sig)
                img[img < 0.75] = 0.0
                out[i] = img
            return out
        raise AssertionError(name)

    return gen


UNIT_TESTS: dict[str, Callable] = {name: _gen(name) for name in ABBREV}


def _to_uint8(a: np.ndarray) -> torch.Tensor:
    a = np.clip(a, 0.0, 1.0)  # "clipped to [0, 1] where necessary" (paper 8.1 App. G)
    return torch.from_numpy(np.round(a * 255).astype(np.uint8)).permute(0, 3, 1, 2).contiguous()


def _source(source_images, size: int, seed: int) -> np.ndarray:
    if source_images is None:
        from repro.data.world import ID_SHAPES, render_images

        g = torch.Generator().manual_seed(int(seed) + 7919)
        shapes = [ID_SHAPES[i] for i in torch.randint(0, len(ID_SHAPES), (64,), generator=g).tolist()]
        source_images = render_images(shapes, size, g=g)
    x = source_images.x if hasattr(source_images, "x") else source_images
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3 or len(x) == 0:
        raise ValueError("source_images must be a non-empty uint8 tensor [N, 3, H, W] (e.g. world.id_val.x)")
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy().astype(np.float64) / 255.0


def unit_test(name: str, n: int = 400, size: int = 32, seed: int = 0, source_images=None,
              ref_size: int = REF_SIZE) -> torch.Tensor:
    """One unit test as uint8 [n, 3, size, size]. Seeded per (seed, test), so a test's images do
    not depend on which other tests are generated."""
    if name not in UNIT_TESTS:
        raise ValueError(f"unknown unit test {name!r}; the 17 tests are: {', '.join(UNIT_TESTS)}")
    if int(n) < 1 or int(size) < 4:
        raise ValueError(f"need n >= 1 images and size >= 4 pixels, got n={n}, size={size}")
    idx = list(UNIT_TESTS).index(name)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), idx]))
    src = _source(source_images, size, seed) if "perm" in name else None
    return _to_uint8(UNIT_TESTS[name](int(n), int(size), rng, size / ref_size, src))


def make_unit_tests(n: int = 400, size: int = 32, seed: int = 0, names: Optional[list] = None,
                    source_images=None, ref_size: int = REF_SIZE) -> dict:
    """All 17 OOD unit tests (paper 8.1, App. G): ``{name: uint8 tensor [n, 3, size, size]}``.

    ``source_images`` (uint8 [N,3,H,W] or an ImageSet, e.g. the ID validation set, as the paper
    uses IN-1K val) feed the two pixel-permutation tests; by default ID-world images are rendered.
    """
    names = list(UNIT_TESTS) if names is None else list(names)
    if source_images is None and any("perm" in k for k in names):
        source_images = torch.from_numpy(_to_uint8(_source(None, size, seed)).numpy())
    return {k: unit_test(k, n, size, seed, source_images, ref_size) for k in names}
