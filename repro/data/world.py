"""The generated image world: a seeded, download-free stand-in for ImageNet + NINCO.

Chapter 3 (paper 8.1, "In or Out?", dissertation Sec. 8.1) needs

* an in-distribution (ID) classification task (ImageNet-1k analogue),
* OOD classes that contain **no ID object** (the NINCO analogue, Sec. 3.3; paper 8.1 Sec. 3),
  with NINCO-like uneven class sizes (N-Tab.9: 31-176 images, most 100),
* near- and far-OOD variants,
* "popular OOD datasets" whose images contain ID objects in a *known* fraction ``p``
  (N-Tab.1 / Tab.3.1), both *categorical* (the source class overlaps an ID class) and
  *incidental* (a small ID object in the background) contamination (Sec. 3.3; paper 8.1 Sec. 1, Fig. 1),
  plus their cleaned versions, with a per-image contamination flag.

Every image is one object (or none) drawn as an anti-aliased shape in normalised
coordinates ([-1, 1]^2) on a cluttered background, so the same code renders 32, 64 or 224 px.
Class identity is the *shape*; colour, texture, pose, clutter, occlusion and noise are
nuisances, which keeps small CNNs well below 100 % accuracy. OOD shapes are chosen so that
none of them contains an ID shape under the ID pose distribution (isotropic scale, rotation,
translation): e.g. an X-cross is *not* OOD because it is a rotated plus, so it is excluded.

Generation is vectorised in torch, seeded by a ``torch.Generator`` (bit-identical across runs),
and takes a few seconds for the ``cpu`` profile.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

__all__ = [
    "ImageSet",
    "World",
    "make_world",
    "render_images",
    "ID_SHAPES",
    "OOD_SHAPES",
    "NEAR_SHAPES",
    "FAR_TEXTURES",
    "CONTAMINATION",
    "first_per_class",
]

# Contamination flag values (per image) of the "popular dataset" analogues.
CONTAMINATION = {0: "clean", 1: "categorical", 2: "incidental"}


# ----------------------------------------------------------------------------- ImageSet
@dataclass
class ImageSet:
    """A set of images with labels.

    ``x``: uint8 tensor [N, 3, H, W]; ``y``: int64 tensor [N] (ID class index for ID sets,
    OOD class index for OOD sets); ``class_names``: names indexed by ``y``;
    ``flags``: optional int8 tensor [N] with the contamination type (see ``CONTAMINATION``);
    ``meta``: free-form provenance (generator parameters).
    """

    x: torch.Tensor
    y: torch.Tensor
    class_names: list
    name: str
    flags: Optional[torch.Tensor] = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.x, torch.Tensor) or self.x.dtype != torch.uint8 or self.x.ndim != 4 or self.x.shape[1] != 3:
            got = f"{type(self.x).__name__} {getattr(self.x, 'dtype', '')} {tuple(getattr(self.x, 'shape', ()))}"
            raise ValueError(
                f"ImageSet {self.name!r}: x must be a uint8 torch tensor [N, 3, H, W], got {got}; "
                "convert float images with (x.clamp(0, 1) * 255).round().to(torch.uint8)"
            )
        if not isinstance(self.y, torch.Tensor) or self.y.dtype != torch.int64 or self.y.shape != (self.x.shape[0],):
            raise ValueError(
                f"ImageSet {self.name!r}: y must be an int64 tensor of shape [{self.x.shape[0]}], "
                f"got {getattr(self.y, 'dtype', type(self.y))} {tuple(getattr(self.y, 'shape', ()))}"
            )
        if self.flags is not None and self.flags.shape != (self.x.shape[0],):
            raise ValueError(f"ImageSet {self.name!r}: flags must have shape [{self.x.shape[0]}]")
        if len(self.y) and int(self.y.max()) >= len(self.class_names):
            raise ValueError(f"ImageSet {self.name!r}: label {int(self.y.max())} has no class name "
                             f"({len(self.class_names)} names)")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.x.shape[-1])

    def subset(self, idx, name: Optional[str] = None) -> "ImageSet":
        """The images at ``idx`` (bool mask or index array), same class names."""
        idx = torch.as_tensor(idx)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        meta = dict(self.meta)
        if isinstance(meta.get("files"), list) and len(meta["files"]) == len(self):
            meta["files"] = [meta["files"][i] for i in idx.tolist()]  # per-image provenance follows the images
        return ImageSet(self.x[idx], self.y[idx], list(self.class_names), name or self.name,
                        None if self.flags is None else self.flags[idx], meta)

    def per_class(self) -> dict:
        """Number of images per class name."""
        counts = torch.bincount(self.y, minlength=len(self.class_names)).tolist()
        return dict(zip(self.class_names, counts))

    def first_per_class(self, k: int = 1) -> tuple[torch.Tensor, list]:
        """The first ``k`` images of every class (in class order) and their class names, for galleries."""
        return first_per_class(self, k)

    def pixels_fingerprint(self) -> str:
        """``repro.core.cache.fingerprint(self.x)``, memoised (the feature cache keys on it once per model
        and set; hashing a paper-scale set takes seconds)."""
        fp = getattr(self, "_xfp", None)
        if fp is None:
            from repro.core.cache import fingerprint

            fp = self._xfp = fingerprint(self.x)
        return fp

    def __fingerprint__(self) -> str:
        # lets repro.core.cache.fingerprint hash an ImageSet by content (memoised: tensors are not
        # mutated after construction in this suite)
        fp = getattr(self, "_fp", None)
        if fp is None:
            from repro.core.cache import fingerprint

            fp = fingerprint((self.x, self.y, list(self.class_names), self.name, self.flags))
            self._fp = fp
        return fp


def first_per_class(s: ImageSet, k: int = 1) -> tuple[torch.Tensor, list]:
    """The first ``k`` images of every class of ``s`` (classes in index order; a class with fewer
    images gives what it has) as ``(uint8 [n, 3, H, W], [class name per image])``."""
    if int(k) < 1:
        raise ValueError(f"k must be >= 1 images per class, got {k}")
    idx = [int(i) for c in range(len(s.class_names)) for i in torch.nonzero(s.y == c).flatten()[: int(k)]]
    return s.x[idx], [s.class_names[int(s.y[i])] for i in idx]


# ----------------------------------------------------------------------------- shapes
# Every shape is a signed-distance-like function f(u, v) in the object's local frame
# (object radius ~ 1); f < 0 inside. Vectorised over [n, H, W] tensors.
def _polar(u, v):
    return torch.sqrt(u * u + v * v + 1e-12), torch.atan2(v, u)


def _polygon(n):
    def f(u, v):
        r, t = _polar(u, v)
        seg = 2 * math.pi / n
        R = math.cos(math.pi / n) / torch.cos(torch.remainder(t, seg) - math.pi / n)
        return r - R
    return f


def _star(k, a):
    def f(u, v):
        r, t = _polar(u, v)
        s = torch.remainder(t, 2 * math.pi / k) / (2 * math.pi / k)
        return r - (a + (1 - a) * torch.abs(1 - 2 * s))
    return f


def _flower(k, a):
    def f(u, v):
        r, t = _polar(u, v)
        return r - (1 - a + a * torch.cos(k * t))
    return f


def _box(u, v, hx, hy):
    return torch.maximum(torch.abs(u) - hx, torch.abs(v) - hy)


def _union(*fs):
    out = fs[0]
    for f in fs[1:]:
        out = torch.minimum(out, f)
    return out


def _minus(a, b):
    return torch.maximum(a, -b)


def _disk(u, v, cx=0.0, cy=0.0, r=1.0):
    return torch.sqrt((u - cx) ** 2 + (v - cy) ** 2 + 1e-12) - r


SHAPES: dict[str, Callable] = {
    # --- ID shapes (the "ImageNet-1k classes")
    "disk": lambda u, v: _disk(u, v),
    "triangle": _polygon(3),
    "square": lambda u, v: _box(u, v, 0.8, 0.8),
    "plus": lambda u, v: _union(_box(u, v, 1.0, 0.3), _box(u, v, 0.3, 1.0)),
    "ring": lambda u, v: torch.abs(_disk(u, v, r=0.72)) - 0.26,
    "star5": _star(5, 0.45),
    "crescent": lambda u, v: _minus(_disk(u, v), _disk(u, v, 0.55, 0.0, 0.85)),
    "bar": lambda u, v: _box(u, v, 1.0, 0.32),
    "tee": lambda u, v: _union(_box(u, v - 0.7, 1.0, 0.28), _box(u, v + 0.15, 0.28, 0.85)),
    "heart": lambda u, v: _union(_disk(u, v, -0.42, -0.3, 0.5), _disk(u, v, 0.42, -0.3, 0.5),
                                 _polygon(3)(-v * 1.0 - 0.25, u * 1.0) + 0.05),
    # --- OOD object shapes (the "NINCO classes"): none contains an ID shape
    "ellipse": lambda u, v: _disk(u / 1.0, v / 0.5) * 0.6,
    "pentagon": _polygon(5),
    "octagon": _polygon(8),
    "star4": _star(4, 0.35),
    "star8": _star(8, 0.55),
    "flower6": _flower(6, 0.3),
    "semicircle": lambda u, v: torch.maximum(_disk(u, v), -v),
    "quarter_disk": lambda u, v: torch.maximum(_disk(u + 0.5, v + 0.5, r=1.3), torch.maximum(-(u + 0.5), -(v + 0.5))),
    "rhombus": lambda u, v: (torch.abs(u) / 1.0 + torch.abs(v) / 0.45 - 1) * 0.45,
    "bowtie": lambda u, v: torch.maximum(torch.abs(v) - torch.abs(u) * 0.8, torch.abs(u) - 0.95),
    "ell": lambda u, v: _union(_box(u + 0.55, v, 0.28, 1.0), _box(u, v - 0.72, 0.83, 0.28)),
    "frame": lambda u, v: torch.maximum(_box(u, v, 0.85, 0.85), -_box(u, v, 0.55, 0.55)),
    "chevron": lambda u, v: _minus(_polygon(3)(u, v), _polygon(3)(u + 0.55, v)),
    "lens": lambda u, v: torch.maximum(_disk(u, v, 0, 0.55, 1.0), _disk(u, v, 0, -0.55, 1.0)),
    "tripod": lambda u, v: _union(*[_box(u * math.cos(a) + v * math.sin(a) - 0.45, -u * math.sin(a) + v * math.cos(a), 0.5, 0.14)
                                    for a in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)]),
    "aitch": lambda u, v: _union(_box(u + 0.65, v, 0.2, 0.95), _box(u - 0.65, v, 0.2, 0.95), _box(u, v, 0.65, 0.16)),
    "horseshoe": lambda u, v: torch.maximum(torch.abs(_disk(u, v, r=0.7)) - 0.18, -(v + 0.2)),
    "zigzag": lambda u, v: torch.maximum(torch.abs(v - 0.45 * torch.sign(torch.sin(u * 4.0)) * 0 - 0.5 * torch.abs(torch.remainder(u * 1.5, 2.0) - 1.0) + 0.25) - 0.16, torch.abs(u) - 1.0),
    "trapezoid": lambda u, v: torch.maximum(torch.abs(v) - 0.5, (torch.abs(u) - (0.5 + 0.45 * (v + 0.5))) * 0.9),
    "hexagon": _polygon(6),
    "wave": lambda u, v: torch.maximum((torch.abs(v - 0.35 * torch.sin(u * 3.5)) - 0.24) * 0.7, torch.abs(u) - 1.0),
    "kite": lambda u, v: torch.maximum((torch.abs(u) / 0.55 + (v + 0.35) / 1.35 - 1) * 0.5,
                                       (torch.abs(u) / 0.55 - (v + 0.35) / 0.65 - 1) * 0.5),
    "asterisk": lambda u, v: _union(*[_box(u * math.cos(a) + v * math.sin(a), -u * math.sin(a) + v * math.cos(a), 1.0, 0.11)
                                      for a in (0.0, math.pi / 3, 2 * math.pi / 3)]),
    "cog": _flower(10, 0.12),
}

ID_SHAPES = ["disk", "triangle", "square", "plus", "ring", "star5", "crescent", "bar", "tee", "heart"]
# Near-OOD: look-alikes of ID shapes (hard, like NINCO's fur seal vs sea lion);
# the rest are further away. All are OOD (no ID object).
NEAR_SHAPES = ["ellipse", "pentagon", "hexagon", "octagon", "cog", "star4", "star8", "flower6",
               "semicircle", "frame", "horseshoe", "lens"]
OOD_SHAPES = NEAR_SHAPES + ["quarter_disk", "rhombus", "bowtie", "kite", "ell", "chevron",
                            "tripod", "aitch", "zigzag", "wave", "trapezoid", "asterisk"]
# Objectless far-OOD "scenes".
FAR_TEXTURES = ["grating", "checker", "scribbles", "plasma", "gradient", "speckle"]

# Each object class has a typical colour (like real classes: most oranges are orange): the fill
# colour is drawn around it with spread ``colour_spread``. ID hues are evenly spaced; a near-OOD
# shape gets the colour of the ID shape it resembles (so it is hard), the other OOD shapes get
# colours of their own at lower saturation.
LOOKALIKE = {"ellipse": "disk", "pentagon": "disk", "hexagon": "disk", "octagon": "disk", "cog": "star5",
             "star4": "plus", "star8": "star5", "flower6": "star5", "semicircle": "crescent",
             "frame": "square", "horseshoe": "ring", "lens": "crescent"}


def _hsv(h, s, v):
    import colorsys

    return torch.tensor(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=torch.float32)


def _colour_table() -> dict:
    table = {name: _hsv(i / len(ID_SHAPES), 0.8, 0.9) for i, name in enumerate(ID_SHAPES)}
    for name, twin in LOOKALIKE.items():
        table[name] = _hsv(ID_SHAPES.index(twin) / len(ID_SHAPES) + 0.03, 0.75, 0.85)
    for i, name in enumerate(OOD_SHAPES):
        if name not in table:
            table[name] = _hsv(0.05 + 0.618 * i, 0.45, 0.7)
    return table


SHAPE_COLOUR = _colour_table()

# NINCO per-class image counts (N-Tab.9, 64 classes, sum 5,880), used to give the OOD
# analogue NINCO's uneven class sizes (31..176, mostly 100).
NINCO_COUNTS = [46, 97, 96, 88, 100, 100, 100, 100, 100, 100, 100, 100, 99, 80, 100, 100, 100, 100, 100, 100,
                100, 100, 67, 96, 106, 100, 100, 100, 100, 91, 99, 89, 56, 99, 51, 31, 100, 100, 100, 33,
                100, 67, 100, 82, 100, 100, 100, 100, 100, 67, 99, 100, 68, 99, 67, 100, 100, 176, 61, 99,
                100, 71, 100, 100]


# ----------------------------------------------------------------------------- rendering
def _grid(res: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return xx, yy


def _smooth_field(n: int, res: int, cells: int, g: torch.Generator, channels: int = 1) -> torch.Tensor:
    """Smooth random field in [0,1]: low-res uniform noise upsampled bicubically (resolution-free)."""
    low = torch.rand(n, channels, cells, cells, generator=g)
    out = torch.nn.functional.interpolate(low, size=(res, res), mode="bicubic", align_corners=False)
    return out.clamp(0, 1)


def _background(n, res, g, clutter: float):
    """Two-colour smooth background plus random line segments (clutter that is no ID shape)."""
    grey = torch.rand(n, 1, 1, 1, generator=g) * 0.6 + 0.2
    c1 = grey + (torch.rand(n, 3, 1, 1, generator=g) - 0.5) * 0.5
    c2 = grey + (torch.rand(n, 3, 1, 1, generator=g) - 0.5) * 0.5
    t = _smooth_field(n, res, 4, g)
    img = c1 * (1 - t) + c2 * t
    xx, yy = _grid(res)
    n_lines = 4
    for _ in range(n_lines):
        on = (torch.rand(n, 1, 1, generator=g) < clutter).float()
        p = torch.rand(n, 4, generator=g) * 2 - 1
        col = torch.rand(n, 3, 1, 1, generator=g)
        ax, ay, bx, by = (p[:, i].view(n, 1, 1) for i in range(4))
        dx, dy = bx - ax, by - ay
        L2 = dx * dx + dy * dy + 1e-6
        s = (((xx - ax) * dx + (yy - ay) * dy) / L2).clamp(0, 1)
        d = torch.sqrt((xx - ax - s * dx) ** 2 + (yy - ay - s * dy) ** 2)
        width = 0.035 + 0.0 * d
        m = ((width - d) * res / 2 + 0.5).clamp(0, 1) * on
        img = img * (1 - m[:, None]) + col * m[:, None]
    return img


def _contrast_colour(n, g, ref):
    """Random RGB colours, pushed away from the reference colour so the object stays visible."""
    c = torch.rand(n, 3, generator=g)
    close = (c - ref).abs().mean(1, keepdim=True) < 0.25
    return torch.where(close, 1 - c, c)


def _draw_objects(img, shapes: list, g, *, scale=(0.42, 0.68), center=0.3, corner=False,
                  texture_p=0.3, occlusion_p=0.0, colour_spread=0.15):
    """Draw one object per image (``shapes[i]`` a key of SHAPES, or None for no object).

    Pose: isotropic scale, rotation, translation (the ID pose distribution). ``corner=True``
    puts a small object near a random corner (incidental contamination).
    """
    n, _, res, _ = img.shape
    xx, yy = _grid(res)
    s = torch.empty(n, 1, 1).uniform_(scale[0], scale[1], generator=g)
    rot = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    if corner:
        sx = torch.randint(0, 2, (n, 1, 1), generator=g).float() * 2 - 1
        sy = torch.randint(0, 2, (n, 1, 1), generator=g).float() * 2 - 1
        cx = sx * (1 - s * 1.05)
        cy = sy * (1 - s * 1.05)
    else:
        cx = (torch.rand(n, 1, 1, generator=g) * 2 - 1) * center
        cy = (torch.rand(n, 1, 1, generator=g) * 2 - 1) * center
    dx, dy = (xx - cx) / s, (yy - cy) / s
    u = dx * torch.cos(rot) + dy * torch.sin(rot)
    v = -dx * torch.sin(rot) + dy * torch.cos(rot)
    sdf = torch.full((n, res, res), 10.0)
    names = np.asarray(shapes, dtype=object)
    for name in set(x for x in shapes if x is not None):
        idx = torch.as_tensor(np.nonzero(names == name)[0])
        sdf[idx] = SHAPES[name](u[idx], v[idx])
    # anti-aliased coverage: distance in pixels = sdf * s * res / 2
    mask = (0.5 - sdf * s * res / 2).clamp(0, 1)
    ref = img.mean(dim=(2, 3))
    fg = _contrast_colour(n, g, ref)
    typical = torch.stack([SHAPE_COLOUR.get(x, torch.full((3,), float("nan"))) for x in shapes])
    jitter = (typical + colour_spread * torch.randn(n, 3, generator=g)).clamp(0, 1)
    fg = torch.where(torch.isnan(typical), fg, jitter).view(n, 3, 1, 1)
    fg2 = torch.rand(n, 3, 1, 1, generator=g)
    has_tex = (torch.rand(n, 1, 1, 1, generator=g) < texture_p).float()
    freq = torch.empty(n, 1, 1).uniform_(2.0, 5.0, generator=g)
    ang = torch.rand(n, 1, 1, generator=g) * math.pi
    stripes = (torch.sin((u * torch.cos(ang) + v * torch.sin(ang)) * freq * math.pi) > 0).float()[:, None]
    colour = fg * (1 - has_tex * stripes * 0.6) + fg2 * has_tex * stripes * 0.6
    out = img * (1 - mask[:, None]) + colour * mask[:, None]
    if occlusion_p > 0:
        # Occlusion by the background (part of the object cut away behind a straight edge),
        # never by a solid patch: a solid square occluder would itself be an ID object.
        occ = (torch.rand(n, 1, 1, generator=g) < occlusion_p).float()
        beta = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
        off = torch.empty(n, 1, 1).uniform_(0.25, 0.7, generator=g)
        d = (xx - cx) * torch.cos(beta) + (yy - cy) * torch.sin(beta) - s * off
        om = ((d * res / 2 + 0.5).clamp(0, 1) * occ)[:, None]
        out = out * (1 - om) + img * om
    return out


def _far_scene(kinds: list, res, g):
    """Objectless textures (far-OOD): gratings, checkerboards, scribbles, plasma, gradients, speckle."""
    n = len(kinds)
    xx, yy = _grid(res)
    c1 = torch.rand(n, 3, 1, 1, generator=g)
    c2 = torch.rand(n, 3, 1, 1, generator=g)
    ang = torch.rand(n, 1, 1, generator=g) * math.pi
    freq = torch.empty(n, 1, 1).uniform_(3.0, 9.0, generator=g)
    proj = xx * torch.cos(ang) + yy * torch.sin(ang)
    proj2 = -xx * torch.sin(ang) + yy * torch.cos(ang)
    t = torch.zeros(n, res, res)
    kinds_a = np.asarray(kinds, dtype=object)

    def sel(k):
        return torch.as_tensor(np.nonzero(kinds_a == k)[0], dtype=torch.long)

    i = sel("grating")
    t[i] = 0.5 + 0.5 * torch.sin(proj[i] * freq[i] * math.pi)
    i = sel("checker")
    t[i] = ((torch.sin(proj[i] * freq[i] * 1.5) * torch.sin(proj2[i] * freq[i] * 1.5)) > 0).float()
    i = sel("plasma")
    if len(i):
        t[i] = _smooth_field(len(i), res, 8, g)[:, 0]
    i = sel("gradient")
    t[i] = ((proj[i] + 1.5) / 3).clamp(0, 1)
    i = sel("speckle")
    if len(i):
        low = (torch.rand(len(i), 1, max(res // 2, 4), max(res // 2, 4), generator=g) < 0.3).float()
        t[i] = torch.nn.functional.interpolate(low, size=(res, res), mode="nearest")[:, 0]
    img = c1 * (1 - t[:, None]) + c2 * t[:, None]
    i = sel("scribbles")
    if len(i):
        img[i] = _background(len(i), res, g, clutter=1.0)
        img[i] = _background(len(i), res, g, clutter=1.0) * 0.5 + img[i] * 0.5
    return img


def _finish(img, g, noise=(0.0, 0.08)):
    n = img.shape[0]
    sigma = torch.empty(n, 1, 1, 1).uniform_(noise[0], noise[1], generator=g)
    img = img + sigma * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def render_images(shapes: list, res: int = 32, seed: int = 0, *, clutter: float = 0.5,
                  occlusion_p: float = 0.25, noise=(0.0, 0.08), colour_spread: float = 0.15,
                  incidental: Optional[list] = None,
                  g: Optional[torch.Generator] = None) -> torch.Tensor:
    """Render one image per entry of ``shapes`` (SHAPES keys, FAR_TEXTURES keys, or None).

    ``incidental[i]``, when given and not None, adds a small ID object near a corner of
    image i (incidental contamination, paper 8.1 Sec. 1). Returns uint8 [N, 3, res, res].
    """
    if res < 8:
        raise ValueError(f"resolution must be >= 8 pixels, got {res}")
    if g is None:
        g = torch.Generator().manual_seed(int(seed))
    n = len(shapes)
    if n == 0:
        return torch.zeros(0, 3, res, res, dtype=torch.uint8)
    far = [s in FAR_TEXTURES for s in shapes]
    bad = [s for s in shapes if s is not None and s not in SHAPES and s not in FAR_TEXTURES]
    if bad:
        raise ValueError(f"unknown shape(s) {sorted(set(bad))[:5]}; known: {sorted(SHAPES) + FAR_TEXTURES}")
    img = _background(n, res, g, clutter)
    if any(far):
        idx = torch.as_tensor([i for i, f in enumerate(far) if f])
        img[idx] = _far_scene([shapes[i] for i in idx.tolist()], res, g)
    obj = [None if f else s for s, f in zip(shapes, far)]
    img = _draw_objects(img, obj, g, occlusion_p=occlusion_p, colour_spread=colour_spread)
    if incidental is not None and any(s is not None for s in incidental):
        idx = torch.as_tensor([i for i, s in enumerate(incidental) if s is not None])
        img[idx] = _draw_objects(img[idx], [incidental[i] for i in idx.tolist()], g,
                                 scale=(0.22, 0.3), corner=True, texture_p=0.0,
                                 colour_spread=colour_spread)
    return _finish(img, g, noise)


# ----------------------------------------------------------------------------- the world
@dataclass
class World:
    """The generated world (see module docstring). ``ood`` maps set names to ImageSets:

    ``ninco``: NINCO analogue, y = OOD class index, uneven class sizes;
    ``near`` / ``far``: look-alike shapes / objectless textures;
    ``pop_<name>`` and ``pop_<name>_clean``: popular-dataset analogues with contamination
    flags (0 clean, 1 categorical, 2 incidental) and their cleaned versions.

    The ``full`` profile builds the same object from image folders
    (:func:`repro.studies.ch3_ninco.experiment.load_ood_benchmark`): ``source`` is then ``"imagefolder"``, the
    OOD sets are NINCO and its cleaned popular-dataset subsamples (``pop_<name>_clean``, no
    flags), and ``unit_tests`` holds the unit-test images shipped with NINCO.
    """

    id_train: ImageSet
    id_val: ImageSet
    id_test: ImageSet
    ood: dict
    seed: int
    resolution: int
    params: dict
    unit_tests: Optional[dict] = None
    source: str = "generated"

    @property
    def num_classes(self) -> int:
        return len(self.id_train.class_names)

    @property
    def class_names(self) -> list:
        return list(self.id_train.class_names)

    def __fingerprint__(self) -> str:
        from repro.core.cache import fingerprint

        if self.source == "generated":
            # a generated world is a pure function of (generator version, seed, resolution, params)
            return fingerprint(("World", WORLD_VERSION, self.seed, self.resolution, self.params))
        return fingerprint(("World", self.source, self.id_train, self.id_val, self.id_test,
                            sorted(self.ood.items()), sorted((self.unit_tests or {}).items())))

    def popular(self, name: str, n: int, p: float, incidental_share: float = 0.5, seed: int = 0) -> ImageSet:
        """A fresh popular-dataset analogue with ID fraction ``p`` (see ``make_popular``)."""
        if self.source != "generated":
            raise ValueError(f"popular-dataset analogues with a controlled ID fraction exist only in the generated "
                             f"world; this world was loaded from {self.source} (no per-image contamination flags)")
        return make_popular(name, n=n, p=p, incidental_share=incidental_share, res=self.resolution,
                            seed=zlib.crc32(f"{self.seed}/{seed}/{name}".encode()), **self._nuisance())

    def _nuisance(self):
        return {k: self.params[k] for k in ("clutter", "occlusion_p", "noise", "colour_spread")}


WORLD_VERSION = "3"  # 2: NINCO class counts copied from ninco_T9_classes.csv; 3: generic popular-set sources

GENERIC_OOD_SOURCES = [s for s in OOD_SHAPES if s not in NEAR_SHAPES][:6]

# Popular-dataset analogues: (source OOD classes, ID fraction p as in N-Tab.1, share of the
# contamination that is incidental). p values copied from N-Tab.1 (Tab.3.1).
POPULAR = {
    "places": (["plasma", "gradient", "scribbles", "trapezoid", "frame"], 0.595, 0.5),
    "species": (["flower6", "star8", "kite", "lens", "tripod", "ellipse"], 0.570, 0.3),
    "textures": (["grating", "checker", "speckle", "zigzag"], 0.256, 0.7),
    "inat_plants": (["flower6", "star4", "tripod", "lens"], 0.025, 0.5),
}


def make_popular(name: str, n: int, p: float, incidental_share: float = 0.5, res: int = 32,
                 seed: int = 0, sources: Optional[list] = None, clutter: float = 0.5,
                 occlusion_p: float = 0.25, noise=(0.0, 0.08), colour_spread: float = 0.15) -> ImageSet:
    """A "popular OOD dataset" analogue with a controlled ID fraction ``p`` (N-Tab.1).

    A share ``1 - incidental_share`` of the contaminated images is *categorical* (the image's
    main object is an ID shape: the source class overlaps an ID class) and the rest is
    *incidental* (an OOD image with a small ID object near a corner). ``flags`` records which.
    ``y`` is the source class (the dataset's own label), as in the real sets.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"contamination fraction p must lie in [0, 1], got {p}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    # default sources (e.g. the contamination-study pool): OOD shapes that are no look-alike of an ID
    # shape; with near-OOD look-alikes the clean images alone are accepted at ~95 % and contamination
    # could not show
    sources = sources or POPULAR.get(name, (GENERIC_OOD_SOURCES, p, incidental_share))[0]
    g = torch.Generator().manual_seed(int(seed))
    n_cont = int(round(p * n))
    n_inc = int(round(incidental_share * n_cont))
    flags = torch.zeros(n, dtype=torch.int8)
    perm = torch.randperm(n, generator=g)
    flags[perm[: n_cont - n_inc]] = 1
    flags[perm[n_cont - n_inc: n_cont]] = 2
    y = torch.randint(0, len(sources), (n,), generator=g)
    id_pick = torch.randint(0, len(ID_SHAPES), (n,), generator=g).tolist()
    shapes, inc = [], []
    for i in range(n):
        f = int(flags[i])
        shapes.append(ID_SHAPES[id_pick[i]] if f == 1 else sources[int(y[i])])
        inc.append(ID_SHAPES[id_pick[i]] if f == 2 else None)
    x = render_images(shapes, res, incidental=inc, g=g, clutter=clutter, occlusion_p=occlusion_p, noise=noise,
                      colour_spread=colour_spread)
    return ImageSet(x, y.to(torch.int64), list(sources), f"pop_{name}", flags,
                    {"p": p, "incidental_share": incidental_share, "seed": seed})


def _class_counts(n_classes: int, scale: float) -> list:
    """NINCO-like uneven class sizes: class i takes N-Tab.9 count i (cycled), times ``scale``."""
    return [max(4, int(round(NINCO_COUNTS[(i * 7) % len(NINCO_COUNTS)] * scale))) for i in range(n_classes)]


def _labelled(shapes_per_class: list, counts: list, res, g, nuis, name, names) -> ImageSet:
    y = torch.repeat_interleave(torch.arange(len(counts)), torch.as_tensor(counts))
    perm = torch.randperm(len(y), generator=g)
    y = y[perm]
    shapes = [shapes_per_class[i] for i in y.tolist()]
    x = render_images(shapes, res, g=g, **nuis)
    return ImageSet(x, y.to(torch.int64), list(names), name)


def make_world(seed: int = 0, resolution: int = 32, n_train_per_class: int = 500,
               n_val_per_class: int = 50, n_test_per_class: int = 200, n_classes: int = 10,
               n_ood_classes: int = 24, ood_scale: float = 1.0, n_near_per_class: int = 40,
               n_far_per_class: int = 40, n_popular: int = 400,
               clutter: float = 0.5, occlusion_p: float = 0.25, noise=(0.0, 0.08),
               colour_spread: float = 0.15) -> World:
    """Generate the world (module docstring). Seeded: same arguments -> bit-identical tensors.

    ``ood_scale`` multiplies the NINCO class sizes (1.0 gives 31..176 images per class).
    ``n_popular`` images per popular-dataset analogue (the paper inspected 400 per set, N-Tab. 1).
    """
    if not 2 <= n_classes <= len(ID_SHAPES):
        raise ValueError(f"n_classes must be in [2, {len(ID_SHAPES)}], got {n_classes}")
    if not 1 <= n_ood_classes <= len(OOD_SHAPES):
        raise ValueError(f"n_ood_classes must be in [1, {len(OOD_SHAPES)}], got {n_ood_classes}")
    for k, v in dict(n_train_per_class=n_train_per_class, n_val_per_class=n_val_per_class,
                     n_test_per_class=n_test_per_class).items():
        if int(v) < 1:
            raise ValueError(f"{k} must be >= 1, got {v}")
    noise = tuple(float(a) for a in noise)
    params = dict(n_train_per_class=n_train_per_class, n_val_per_class=n_val_per_class,
                  n_test_per_class=n_test_per_class, n_classes=n_classes, n_ood_classes=n_ood_classes,
                  ood_scale=ood_scale, n_near_per_class=n_near_per_class, n_far_per_class=n_far_per_class,
                  n_popular=n_popular, clutter=clutter, occlusion_p=occlusion_p, noise=noise,
                  colour_spread=colour_spread)
    nuis = dict(clutter=clutter, occlusion_p=occlusion_p, noise=noise, colour_spread=colour_spread)
    ids = ID_SHAPES[:n_classes]

    def gen(k):  # one generator per split: changing one split's size leaves the others unchanged
        return torch.Generator().manual_seed(int(seed) * 1000 + k)

    id_train = _labelled(ids, [n_train_per_class] * n_classes, resolution, gen(1), nuis, "id_train", ids)
    id_val = _labelled(ids, [n_val_per_class] * n_classes, resolution, gen(2), nuis, "id_val", ids)
    id_test = _labelled(ids, [n_test_per_class] * n_classes, resolution, gen(3), nuis, "id_test", ids)
    ood_names = OOD_SHAPES[:n_ood_classes]
    ood = {"ninco": _labelled(ood_names, _class_counts(n_ood_classes, ood_scale), resolution, gen(4), nuis,
                              "ninco", ood_names)}
    if n_near_per_class > 0:
        ood["near"] = _labelled(NEAR_SHAPES, [n_near_per_class] * len(NEAR_SHAPES), resolution, gen(5), nuis,
                                "near", NEAR_SHAPES)
    if n_far_per_class > 0:
        ood["far"] = _labelled(FAR_TEXTURES, [n_far_per_class] * len(FAR_TEXTURES), resolution, gen(6), nuis,
                               "far", FAR_TEXTURES)
    if n_popular > 0:
        for j, (pname, (sources, p, inc_share)) in enumerate(POPULAR.items()):
            pop = make_popular(pname, n_popular, p, inc_share, resolution, seed=int(seed) * 1000 + 10 + j,
                               sources=sources, **nuis)
            ood[f"pop_{pname}"] = pop
            ood[f"pop_{pname}_clean"] = pop.subset(pop.flags == 0, name=f"pop_{pname}_clean")
    return World(id_train, id_val, id_test, ood, int(seed), int(resolution), params)
