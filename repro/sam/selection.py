"""Which parameters SAM perturbs: a choice independent of the perturbation model (variants.py).

Paper: SAM-ON sets T_w^i = 0 for every non-normalization parameter (Eq. 6.4, Sec. 6.2; App. A.3, Sec. 8.4 (App. A.3));
``no_norm`` is the reverse ablation (Sec. 8.4 (Sec. 4)); block-restricted SAM-ON perturbs only the norm layers of
the last block(s) ("B3", "B2+B3"; Fig. 3, Sec. 8.4 (Sec. 4.2)); the sparse baselines are a random mask at
SAM-ON's sparsity ("SAM-rand", Sec. 8.4 (Sec. 5)) and SSAM-F / SSAM-D of Mi et al. (2022) (Table 5/12).

A selection turns a model into a list of :class:`Entry` (name, parameter, optional element mask).
Parameters absent from the list are never perturbed (T_w = 0). Whole-tensor selections have
``mask=None``; sparse ones carry a float 0/1 mask of the parameter's shape. Dynamic selections
(SSAM-F/D) update their masks from the first-pass gradients via :meth:`Selection.update`.

Normalization parameters are found by **module type** (BatchNorm, LayerNorm, GroupNorm and their
subclasses, e.g. timm's ``LayerNorm2d``), never by name: names such as torchvision's
``downsample.1`` contain neither "norm" nor "bn" (the ch. 6 implementation notes).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence, Union

import torch
from torch import nn

from repro.core.registry import Registry

__all__ = [
    "Entry", "Selection", "NORM_TYPES", "register", "get", "list_selections", "norm_parameters",
    "norm_parameter_names", "norm_fraction", "resolve",
]

NORM_TYPES: tuple[type, ...] = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


@dataclass
class Entry:
    name: str
    param: nn.Parameter
    mask: Optional[torch.Tensor] = None  # float 0/1 mask of param's shape; None = whole tensor

    @property
    def is_bias(self) -> bool:
        # BN/LN γ is a "weight" and β a "bias", as in the SAM-ON code ('weight' in name) (the ch. 6 implementation notes).
        return self.name.rsplit(".", 1)[-1] == "bias"


def _named_norm_params(model: nn.Module, norm_types=NORM_TYPES, prefixes: Optional[Sequence[str]] = None):
    seen = set()
    for mname, mod in model.named_modules():
        if not isinstance(mod, norm_types):
            continue
        if prefixes is not None and not any(mname == p or mname.startswith(p + ".") for p in prefixes):
            continue
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            yield (f"{mname}.{pname}" if mname else pname), p


def norm_parameter_names(model: nn.Module, norm_types=NORM_TYPES) -> list[str]:
    """Qualified names of the affine γ, β of every normalization layer (selected by module type)."""
    return [n for n, _ in _named_norm_params(model, norm_types)]


def norm_parameters(model: nn.Module, norm_types=NORM_TYPES) -> list[nn.Parameter]:
    return [p for _, p in _named_norm_params(model, norm_types)]


def norm_fraction(model: nn.Module, norm_types=NORM_TYPES) -> tuple[int, int]:
    """``(number of normalization parameters, number of all parameters)``; sparsity = 1 - ratio.

    WRN-28-10 on CIFAR-100: (17,952, 36,536,884) -> 99.95 % sparsity (Tables 5/12, Sec. 8.4 (Sec. 5.1)).
    """
    n_norm = sum(p.numel() for p in norm_parameters(model, norm_types))
    n_all = sum(p.numel() for p in model.parameters())
    return n_norm, n_all


def _no_norm_error(model: nn.Module, what: str) -> ValueError:
    return ValueError(
        f"{what}: {type(model).__name__} has no normalization layer with affine parameters "
        f"(looked for modules of type {', '.join(t.__name__ for t in NORM_TYPES)}). SAM-ON needs BatchNorm/"
        "LayerNorm/GroupNorm layers with affine=True; use params='all' for models without them"
    )


class Selection(abc.ABC):
    """Base class: ``build(model) -> list[Entry]``; dynamic selections also implement ``update``."""

    name = "selection"
    dynamic = False

    @abc.abstractmethod
    def build(self, model: nn.Module) -> list[Entry]:
        """The parameters to perturb, in the order SAM visits them."""

    def update(self, entries: list[Entry], step: int) -> None:
        """Called after the first (ascent) backward pass, before eps is computed."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: name -> Selection class; ``SELECTIONS.get("blocks", prefixes=["layer3"])`` builds one
SELECTIONS = Registry("parameter selection")


def register(name: str):
    return SELECTIONS.register(name)


def get(name: str, **kw) -> Selection:
    """Build a registered selection, e.g. ``get("blocks", prefixes=["layer3"])``."""
    if name not in SELECTIONS:
        raise ValueError(f"unknown parameter selection {name!r}; registered: {', '.join(list_selections())} "
                         "(or pass a Selection instance / a callable model -> iterable of parameters)")
    return SELECTIONS.get(name, **kw)


def list_selections() -> list[str]:
    return SELECTIONS.list()


def _check_sparsity(sparsity) -> None:
    if sparsity is not None and not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must lie in [0, 1) (or None for SAM-ON's sparsity), got {sparsity!r}")


def _check_every(name: str, v, minimum: int) -> None:
    if isinstance(v, bool) or int(v) != v or int(v) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")


def _trainable(model: nn.Module):
    return [(n, p) for n, p in model.named_parameters()]


@register("all")
class AllParams(Selection):
    """Conventional SAM-all: every parameter (Sec. 8.4 (Sec. 4))."""

    def build(self, model):
        return [Entry(n, p) for n, p in _trainable(model)]


@register("only_norm")
class OnlyNorm(Selection):
    """SAM-ON: only the affine γ, β of normalization layers (Eq. 6.4, Sec. 6.2)."""

    def __init__(self, norm_types: tuple = NORM_TYPES):
        self.norm_types = tuple(norm_types)

    def build(self, model):
        out = [Entry(n, p) for n, p in _named_norm_params(model, self.norm_types)]
        if not out:
            raise _no_norm_error(model, "params='only_norm'")
        return out


@register("no_norm")
class NoNorm(Selection):
    """The reverse ablation: everything except the normalization parameters (Sec. 8.4 (Sec. 4), Fig. 1)."""

    def __init__(self, norm_types: tuple = NORM_TYPES):
        self.norm_types = tuple(norm_types)

    def build(self, model):
        norm_ids = {id(p) for p in norm_parameters(model, self.norm_types)}
        return [Entry(n, p) for n, p in _trainable(model) if id(p) not in norm_ids]


@register("blocks")
class Blocks(Selection):
    """Block-restricted SAM-ON: norm layers whose module name starts with one of ``prefixes``.

    "B3" of the paper's 3-stage CIFAR nets is the last stage (Fig. 3, Sec. 8.4 (Sec. 4.3)); e.g.
    ``prefixes=["layer3", "norm"]`` for :func:`repro.models.wrn.wrn28_10`, where we count the final
    pre-pooling BN as part of the last block (its membership is unspecified in the paper, the ch. 6 implementation notes).
    """

    def __init__(self, prefixes: Union[str, Sequence[str]] = (), norm_types: tuple = NORM_TYPES):
        if isinstance(prefixes, str):
            prefixes = [s for s in prefixes.replace("+", ",").split(",") if s]
        if not prefixes:
            raise ValueError("blocks selection needs module-name prefixes, e.g. prefixes=['layer3'] "
                             "or the string 'layer2+layer3'")
        self.prefixes = list(prefixes)
        self.norm_types = tuple(norm_types)

    def build(self, model):
        out = [Entry(n, p) for n, p in _named_norm_params(model, self.norm_types, self.prefixes)]
        if not out:
            names = sorted({n.split(".")[0] for n, _ in model.named_modules() if n})
            raise ValueError(f"blocks selection {self.prefixes}: no normalization layer under these prefixes; "
                             f"top-level modules of {type(model).__name__}: {', '.join(names)}")
        return out

    def __repr__(self):
        return f"Blocks(prefixes={self.prefixes})"


def _sam_on_count(model: nn.Module) -> int:
    n = sum(p.numel() for p in norm_parameters(model))
    if n == 0:
        raise _no_norm_error(model, "a mask 'at SAM-ON sparsity'")
    return n


def _resolve_k(model: nn.Module, sparsity: Optional[float]) -> int:
    n_all = sum(p.numel() for p in model.parameters())
    if sparsity is None:
        return _sam_on_count(model)
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must lie in [0, 1), got {sparsity!r}")
    return max(1, int(round((1.0 - float(sparsity)) * n_all)))


def _masks_from_flat(entries: list[Entry], flat_mask: torch.Tensor) -> None:
    i = 0
    for e in entries:
        n = e.param.numel()
        e.mask = flat_mask[i:i + n].view_as(e.param).to(e.param.dtype)
        i += n


@register("random_mask")
class RandomMask(Selection):
    """SAM-rand: a random element mask with SAM-ON's sparsity by default (Sec. 8.4 (Sec. 5), Sec. 8.4 (Sec. 5.1), Table 5).

    Whether the paper's mask was fixed or resampled is not stated (the ch. 6 implementation notes); ``resample_every``
    = 0 keeps it fixed (default), k > 0 draws a new one every k steps.
    """

    dynamic = True

    def __init__(self, sparsity: Optional[float] = None, seed: int = 0, resample_every: int = 0):
        _check_sparsity(sparsity)
        _check_every("resample_every", resample_every, 0)
        self.sparsity, self.seed, self.resample_every = sparsity, int(seed), int(resample_every)
        self._gen = torch.Generator().manual_seed(self.seed)

    def _draw(self, entries):
        n = sum(e.param.numel() for e in entries)
        flat = torch.zeros(n)
        flat[torch.randperm(n, generator=self._gen)[: self.k_]] = 1.0
        _masks_from_flat(entries, flat.to(entries[0].param.device))

    def build(self, model):
        self.k_ = _resolve_k(model, self.sparsity)
        entries = [Entry(n, p) for n, p in _trainable(model)]
        self._draw(entries)
        return entries

    def update(self, entries, step):
        if self.resample_every and step > 0 and step % self.resample_every == 0:
            self._draw(entries)


def _topk_flat(scores: list[torch.Tensor], k: int) -> torch.Tensor:
    flat = torch.cat([s.reshape(-1).float() for s in scores])
    mask = torch.zeros_like(flat)
    mask[torch.topk(flat, k, sorted=False).indices] = 1.0
    return mask


@register("ssam_f")
class SSAMFisher(Selection):
    """SSAM-F (Mi et al. 2022): perturb the k entries with the largest empirical Fisher information.

    Deviation (documented): the Fisher diagonal is approximated by an exponential moving average of
    the squared *mini-batch* gradients of the ascent pass, not by per-sample gradients on N_F extra
    samples; the mask is recomputed every ``update_every`` steps (T_m in Mi et al.).
    """

    dynamic = True

    def __init__(self, sparsity: Optional[float] = None, update_every: int = 10, beta: float = 0.9):
        _check_sparsity(sparsity)
        _check_every("update_every", update_every, 1)   # 0 used to raise ZeroDivisionError mid-training
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"beta (Fisher EMA) must lie in [0, 1), got {beta!r}")
        self.sparsity, self.update_every, self.beta = sparsity, int(update_every), float(beta)

    def build(self, model):
        self.k_ = _resolve_k(model, self.sparsity)
        entries = [Entry(n, p) for n, p in _trainable(model)]
        self._fisher = None
        _masks_from_flat(entries, torch.zeros(sum(e.param.numel() for e in entries), device=entries[0].param.device))
        return entries

    def update(self, entries, step):
        g2 = [(e.param.grad.detach().float() ** 2) if e.param.grad is not None else torch.zeros_like(e.param, dtype=torch.float)
              for e in entries]
        if self._fisher is None:
            self._fisher = g2
        else:
            self._fisher = [self.beta * f + (1 - self.beta) * g for f, g in zip(self._fisher, g2)]
        if step == 0 or step % self.update_every == 0:
            _masks_from_flat(entries, _topk_flat(self._fisher, self.k_))


@register("ssam_d")
class SSAMDynamic(Selection):
    """SSAM-D (Mi et al. 2022): dynamic sparse mask, drop-by-gradient / grow-at-random.

    Every ``update_every`` steps a fraction ``drop_fraction`` (cosine-annealed to 0 over
    ``total_steps`` when given) of the active entries with the smallest |g| is dropped and as
    many inactive entries are grown at random, keeping the sparsity fixed. Starts from a random mask.
    """

    dynamic = True

    def __init__(self, sparsity: Optional[float] = None, update_every: int = 10, drop_fraction: float = 0.5,
                 total_steps: Optional[int] = None, seed: int = 0):
        _check_sparsity(sparsity)
        _check_every("update_every", update_every, 1)   # 0 used to raise ZeroDivisionError mid-training
        if not 0.0 <= float(drop_fraction) <= 1.0:
            raise ValueError(f"drop_fraction must lie in [0, 1], got {drop_fraction!r}")
        if total_steps is not None:
            _check_every("total_steps", total_steps, 1)
        self.sparsity, self.update_every = sparsity, int(update_every)
        self.drop_fraction, self.total_steps = float(drop_fraction), total_steps
        self._gen = torch.Generator().manual_seed(int(seed))

    def build(self, model):
        self.k_ = _resolve_k(model, self.sparsity)
        entries = [Entry(n, p) for n, p in _trainable(model)]
        n = sum(e.param.numel() for e in entries)
        flat = torch.zeros(n)
        flat[torch.randperm(n, generator=self._gen)[: self.k_]] = 1.0
        _masks_from_flat(entries, flat.to(entries[0].param.device))
        return entries

    def update(self, entries, step):
        if step == 0 or step % self.update_every:
            return
        import math

        frac = self.drop_fraction
        if self.total_steps:
            frac *= 0.5 * (1 + math.cos(math.pi * min(1.0, step / self.total_steps)))
        n_drop = int(frac * self.k_)
        if n_drop == 0:
            return
        mask = torch.cat([e.mask.reshape(-1) for e in entries]).clone()
        g = torch.cat([(e.param.grad.detach().abs().reshape(-1).float() if e.param.grad is not None
                        else torch.zeros(e.param.numel(), device=mask.device)) for e in entries])
        active = mask.nonzero().squeeze(1)
        drop = active[torch.topk(g[active], n_drop, largest=False).indices]
        inactive = (mask == 0).nonzero().squeeze(1)
        grow = inactive[torch.randperm(len(inactive), generator=self._gen)[:n_drop].to(inactive.device)]
        mask[drop] = 0.0
        mask[grow] = 1.0
        _masks_from_flat(entries, mask)


class _CallableSelection(Selection):
    def __init__(self, fn: Callable[[nn.Module], Iterable[nn.Parameter]]):
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")

    def build(self, model):
        chosen = {id(p) for p in self.fn(model)}
        out = [Entry(n, p) for n, p in model.named_parameters() if id(p) in chosen]
        if not out:
            raise ValueError(f"params callable {self.name!r} selected no parameter of the model")
        return out


def resolve(params: Union[str, Selection, Callable]) -> Selection:
    """``"all"`` / ``"only_norm"`` / ``"blocks:layer2+layer3"`` / a Selection / a callable(model)."""
    if isinstance(params, Selection):
        return params
    if isinstance(params, str):
        if params.startswith("blocks:"):
            return get("blocks", prefixes=params.split(":", 1)[1])
        return get(params)
    if callable(params):
        return _CallableSelection(params)
    raise ValueError(f"params must be a selection name ({', '.join(list_selections())}), a Selection or a "
                     f"callable model -> iterable of parameters; got {type(params).__name__}")
