"""The chapter 3/4 model zoo: (architecture, training recipe) entries, trained once and cached.

Paper 8.1 evaluates 28 ImageNet checkpoints of many architectures and pretraining/training
schemes (N-Tab.8; ``ninco_T8_models.csv``); its findings are about how *training* (pretraining,
augmentation, objective) changes OOD behaviour (Sec. 3.3). The small-scale analogue
trains several ``repro.models`` architectures from scratch on the generated world with different
recipes (SGD vs AdamW, augmentation, label smoothing, mixup). In ``full`` the entries are timm
names with ``pretrained: true`` and no training.

Entries come from ``repro/profiles/ch3.yaml`` (key ``zoo``): a list of dicts

    {name: resnet_t-sgd-aug, arch: resnet_t, optimizer: sgd, lr: 0.05, epochs: 6, augment: true,
     label_smoothing: 0.0, mixup_alpha: 0.0, weight_decay: 5e-4, batch_size: 128}

Each trained model is cached as (state_dict, model spec, test accuracy) under the key
(ID train/test image fingerprints, entry, seed): chapter 4 calling :func:`trained_zoo` with the same world and
entries gets the same models without retraining.

``pretrained: true`` entries (the ``full`` profile) are timm checkpoints, never trained:

    {name: ViT-B-384-21k, arch: vit_base_patch16_384.augreg_in21k_ft_in1k, pretrained: true}
    {name: my-vit, arch: vit_base_patch16_384, pretrained: true, checkpoint: /models/vit.safetensors}

Weights come from the local Hugging Face / timm cache (nothing is downloaded when ``HF_HUB_OFFLINE=1``)
or from the local file ``checkpoint`` (timm ``pretrained_cfg_overlay=dict(file=...)``, so timm's own
checkpoint filters apply). Each such model gets its checkpoint's input transform
(:class:`repro.ood.features.ResizeNormalize` from timm's ``resolve_model_data_config``: input size,
interpolation, mean/std); use :meth:`ZooModel.features` so extraction uses it. Its accuracy is
computed from the cached ID-test logits; the weights themselves are not copied into the cache.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from repro.core.cache import fingerprint, get_or_compute
from repro.studies.ch3_ninco.zoo_train import RECIPE_KEYS

log = logging.getLogger("repro.studies.ch3_ninco.zoo")

__all__ = ["ZooEntry", "ZooModel", "zoo_entries", "train_zoo_model", "trained_zoo", "pretrained_transform",
           "data_config", "input_mismatch", "check_input_pipeline", "CropResizeNormalize", "ZOO_VERSION"]

ZOO_VERSION = "1"
_RECIPE_KEYS = RECIPE_KEYS  # the name the appendix study imports


@dataclass(frozen=True)
class ZooEntry:
    """One zoo member: an architecture and how it is trained (or ``pretrained`` timm weights)."""

    name: str
    arch: str
    optimizer: str = "sgd"
    lr: float = 0.05
    epochs: int = 5
    weight_decay: float = 5e-4
    augment: bool = False
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    batch_size: int = 128
    warmup_epochs: float = 0.0
    pretrained: bool = False
    checkpoint: Optional[str] = None
    model_kwargs: dict = field(default_factory=dict, hash=False)

    @property
    def recipe(self) -> str:
        """A short human-readable description of the recipe (for tables and legends)."""
        if self.pretrained:
            return "pretrained (timm)"
        parts = [self.optimizer]
        if self.augment:
            parts.append("aug")
        if self.label_smoothing:
            parts.append(f"ls{self.label_smoothing:g}")
        if self.mixup_alpha:
            parts.append(f"mixup{self.mixup_alpha:g}")
        return "+".join(parts)


def zoo_entries(cfg_or_list) -> list[ZooEntry]:
    """Entries from a profile dict (key ``zoo``) or a list of dicts; clear errors for typos."""
    items = cfg_or_list.get("zoo") if isinstance(cfg_or_list, dict) else cfg_or_list
    if not items:
        raise ValueError("the profile has no 'zoo' list; add entries like {name: ..., arch: resnet_t, epochs: 5}")
    allowed = set(ZooEntry.__dataclass_fields__)
    out = []
    for it in items:
        if isinstance(it, str):
            it = {"name": it, "arch": it}
        bad = set(it) - allowed
        if bad:
            raise ValueError(f"zoo entry {it.get('name', it)!r} has unknown key(s) {sorted(bad)}; allowed: {sorted(allowed)}")
        if "arch" not in it:
            raise ValueError(f"zoo entry {it!r} needs an 'arch' (a repro.models name or a timm name)")
        it = dict(it)
        it.setdefault("name", it["arch"])
        if it.get("checkpoint") and not it.get("pretrained"):
            raise ValueError(f"zoo entry {it['name']!r} has a 'checkpoint' but not 'pretrained: true'; "
                             "a checkpoint is only read for pretrained entries")
        out.append(ZooEntry(**it))
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise ValueError(f"zoo entry names must be unique, got {names}")
    return out


@dataclass
class ZooModel:
    """A zoo member ready for feature extraction (``transform`` None = the world's default input
    transform :func:`repro.models.preprocess`)."""

    name: str
    model: nn.Module
    test_acc: float
    entry: ZooEntry
    spec: dict
    history: list = field(default_factory=list)
    transform: Optional[object] = None
    #: accuracy on the un-augmented ID training images (NaN for pretrained entries: their train set is not ours)
    train_acc: float = float("nan")

    def features(self, data, device=None, progress: bool = False, batch_size: int = 256):
        """Cached pre-logit features/logits/head of ``data`` with this model's own input transform."""
        from repro.ood.features import extract

        if self.transform is None:
            return extract(self.model, data, batch_size=batch_size, device=device, progress=progress)
        return extract(self.model, data, batch_size=batch_size, device=device, progress=progress,
                       transform=self.transform, transform_id=self.transform.id)


def _entry_params(entry: ZooEntry) -> dict:
    d = asdict(entry)
    d.pop("name")  # renaming an entry must not retrain it
    if d.get("checkpoint") is None:
        d.pop("checkpoint")  # keeps the cache keys of trained entries from before the field existed
    return d


def _create_pretrained(entry: ZooEntry, num_classes: int) -> nn.Module:
    """A timm model with the entry's pretrained weights (local cache or ``entry.checkpoint``)."""
    import timm

    kw = dict(entry.model_kwargs)
    if entry.checkpoint:
        path = Path(entry.checkpoint).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"zoo entry {entry.name!r}: checkpoint file {path} does not exist; give the path of "
                                    "a saved state_dict (.pth/.bin/.safetensors) of the timm model "
                                    f"{entry.arch!r}, or drop 'checkpoint' to use the Hugging Face/timm cache")
        # num_classes in the overlay tells timm the file's head matches, so it keeps (not drops) the head
        kw["pretrained_cfg_overlay"] = {**kw.get("pretrained_cfg_overlay", {}), "file": str(path),
                                        "num_classes": int(num_classes)}
    try:
        model = timm.create_model(entry.arch, pretrained=True, num_classes=int(num_classes), **kw)
    except RuntimeError as e:  # size mismatch when loading the checkpoint
        raise ValueError(f"zoo entry {entry.name!r}: the weights do not fit {entry.arch!r} with {num_classes} classes "
                         f"({str(e).splitlines()[0]}); the ID set must have the checkpoint's classes") from e
    except Exception as e:  # noqa: BLE001 -- hub/network/file errors: say what to do
        if entry.checkpoint:
            raise
        raise RuntimeError(
            f"zoo entry {entry.name!r}: cannot load the pretrained timm weights of {entry.arch!r} ({type(e).__name__}: "
            f"{e}). Put them in the local Hugging Face cache (e.g. `python -c \"import timm; "
            f"timm.create_model('{entry.arch}', pretrained=True)\"` on a machine with internet, then copy $HF_HOME), "
            "or give a local file in the zoo entry: `checkpoint: /path/to/weights`.") from e
    _linear_head(model)
    ncls = model.pretrained_cfg.get("num_classes")
    if not entry.checkpoint and ncls is not None and int(ncls) != int(num_classes):
        raise ValueError(f"zoo entry {entry.name!r}: the checkpoint {entry.arch!r} has {ncls} classes but the ID set has "
                         f"{num_classes}; timm would re-initialise the classifier head (the detectors need the trained "
                         "head). Use the checkpoint's ID set (ImageNet-1k) or a `checkpoint:` file with matching classes")
    return model


class ConvAsLinear(nn.Linear):
    """A 1x1-conv classifier (BiT / timm ResNetV2 heads) as the ``nn.Linear`` the detectors read (W, b).

    Accepts the conv's [N, C, 1, 1] input too, so the model's own ``forward`` still works."""

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "ConvAsLinear":
        lin = cls(conv.in_channels, conv.out_channels, bias=conv.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(conv.weight.flatten(1))
            if conv.bias is not None:
                lin.bias.copy_(conv.bias)
        return lin.to(conv.weight.device, conv.weight.dtype)

    def forward(self, x):
        if x.ndim == 4:
            return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return super().forward(x)


def _linear_head(model: nn.Module) -> nn.Module:
    """Swap a 1x1-conv classifier for the equivalent :class:`ConvAsLinear` (same outputs)."""
    head = model.get_classifier() if callable(getattr(model, "get_classifier", None)) else None
    if isinstance(head, nn.Conv2d) and head.kernel_size == (1, 1) and head.groups == 1:
        name = next(n for n, m in model.named_modules() if m is head)
        parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
        setattr(parent, name.rpartition(".")[2], ConvAsLinear.from_conv(head))
    return model


def data_config(entry: ZooEntry) -> dict:
    """The checkpoint's own evaluation pipeline (timm ``resolve_data_config`` of its pretrained_cfg, with the
    entry's ``pretrained_cfg_overlay``): input_size, interpolation, mean, std, crop_pct, crop_mode. Reads
    timm's registry only (no weights)."""
    import timm
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(entry.arch)
    if cfg is None:
        raise ValueError(f"zoo entry {entry.name!r}: timm knows no pretrained config for {entry.arch!r}; use a timm "
                         "name with its tag (e.g. vit_base_patch16_384.augreg_in21k_ft_in1k)")
    d = {**cfg.to_dict(), **(entry.model_kwargs.get("pretrained_cfg_overlay") or {})}
    return timm.data.resolve_data_config(pretrained_cfg=d)


def input_mismatch(entry: ZooEntry, resolution: int, crop_pct: float) -> Optional[str]:
    """Why images stored as centre crops (``crop_pct`` of the shorter side at ``resolution`` px, the full
    benchmark's store) cannot give ``entry`` its own timm evaluation input; None when they can.

    timm's eval transform resizes the shorter side to ``input / crop_pct_model`` and centre-crops ``input``:
    the model sees the central ``crop_pct_model`` of the shorter side at ``input`` px. From the store that is
    the central ``crop_pct_model / crop_pct`` of a stored image, resized to ``input``; it is exact up to
    the resampling order if the model's crop lies inside the stored one, the mode is 'center', and the
    region is not upsampled.
    """
    dc = data_config(entry)
    size, c_m, mode = int(dc["input_size"][-1]), float(dc["crop_pct"]), dc.get("crop_mode", "center")
    if mode != "center":
        return (f"{entry.name} ({entry.arch}) evaluates with crop_mode={mode!r} (the whole image "
                f"{'squashed' if mode == 'squash' else 'padded'} to {size} px); the store keeps centre crops only")
    if c_m > crop_pct + 1e-9:
        return (f"{entry.name} ({entry.arch}) sees the central {c_m:g} of the shorter side, more than the stored "
                f"centre crop ({crop_pct:g}); set benchmark.crop_pct >= {c_m:g}")
    region = resolution * c_m / crop_pct
    if region + 0.5 < size:
        return (f"{entry.name} ({entry.arch}) needs {size} px from a {region:.0f} px region of the {resolution} px "
                f"store (upsampling); set benchmark.resolution >= {int(-(-size * crop_pct // c_m))}")
    return None


def check_input_pipeline(entries, resolution: int, crop_pct: float) -> None:
    """Refuse (ValueError listing every offending entry) pretrained entries whose own timm input pipeline
    the stored centre crops cannot give (see :func:`input_mismatch`): their features would come from a
    crop or resolution the checkpoint was not evaluated with."""
    bad = [m for e in entries if e.pretrained for m in [input_mismatch(e, resolution, crop_pct)] if m]
    if bad:
        raise ValueError(f"{len(bad)} zoo entr{'y' if len(bad) == 1 else 'ies'} cannot be evaluated with their own "
                         f"input pipeline from the benchmark's {resolution} px / crop {crop_pct:g} store:\n  - "
                         + "\n  - ".join(bad) + "\nRaise the benchmark's resolution/crop_pct in the profile, or "
                         "remove these entries (the remaining models keep their exact pipelines).")


class CropResizeNormalize:
    """A checkpoint's timm eval transform applied to a stored centre crop: keep the central ``crop_frac``
    (= model crop_pct / store crop_pct), resize to the model's input and normalise
    (:class:`repro.ood.features.ResizeNormalize`). ``id`` names it in the feature cache key."""

    def __init__(self, size, mean, std, interpolation: str = "bicubic", crop_frac: float = 1.0):
        from repro.ood.features import ResizeNormalize

        if not 0 < crop_frac <= 1:
            raise ValueError(f"crop_frac must lie in (0, 1], got {crop_frac}")
        self.resize, self.crop_frac = ResizeNormalize(size, mean, std, interpolation), float(crop_frac)
        self.size, self.mean, self.std = self.resize.size, self.resize.mean, self.resize.std

    @property
    def id(self) -> str:
        # crop_frac 1 keeps the plain resize's id, so cached features from before stay valid
        return self.resize.id if self.crop_frac == 1.0 else f"centre{self.crop_frac:.4f}-{self.resize.id}"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.crop_frac < 1.0:
            h, w = x.shape[-2:]
            ch, cw = max(1, int(round(h * self.crop_frac))), max(1, int(round(w * self.crop_frac)))
            t, l = (h - ch) // 2, (w - cw) // 2
            x = x[..., t:t + ch, l:l + cw]
        return self.resize(x)

    def __repr__(self) -> str:
        return f"CropResizeNormalize({self.id})"


def pretrained_transform(model: nn.Module, store_crop_pct: float = 1.0):
    """The checkpoint's own input transform (size, interpolation, mean/std, centre crop) from its timm
    pretrained_cfg, for images stored as centre crops of ``store_crop_pct``."""
    import timm

    cfg = timm.data.resolve_model_data_config(model)
    frac = min(1.0, float(cfg.get("crop_pct", store_crop_pct)) / float(store_crop_pct)) \
        if cfg.get("crop_mode", "center") == "center" else 1.0
    return CropResizeNormalize(cfg["input_size"][-2:], cfg["mean"], cfg["std"], cfg.get("interpolation", "bicubic"),
                               crop_frac=frac)


def train_zoo_model(world, entry: ZooEntry, seed: int = 0, device=None, progress: bool = True) -> ZooModel:
    """Train (or load pretrained) one entry on ``world.id_train`` and report ``world.id_test`` accuracy.

    Trained models are cached under (ID train and test images, entry without its display name, seed).
    Pretrained entries are loaded from the local timm/Hugging Face cache or ``entry.checkpoint``
    (no training); their accuracy comes from the cached ID-test logits.
    """
    from repro.models import build_from_spec, model_spec

    nc = world.num_classes
    if entry.pretrained:
        model = _create_pretrained(entry, nc)
        model.eval()
        store_crop = float((getattr(world, "params", None) or {}).get("crop_pct", 1.0))
        zm = ZooModel(entry.name, model, float("nan"), entry, {"name": entry.arch, "num_classes": nc, "timm": True},
                      [], pretrained_transform(model, store_crop))
        f = zm.features(world.id_test, device=device, progress=progress)
        zm.test_acc = float((f.logits.argmax(1) == f.labels).mean())
        return zm

    spec = model_spec(entry.arch, nc, **entry.model_kwargs)

    def compute():
        from repro.studies.ch3_ninco.zoo_train import train_entry

        return train_entry(spec, {k: getattr(entry, k) for k in RECIPE_KEYS}, world.id_train.x, world.id_train.y,
                           world.id_test.x, world.id_test.y, seed=int(seed), device=device, progress=progress,
                           desc=entry.name)

    # the model depends on the ID training images only (its reported accuracy on the ID test set):
    # changing the OOD sets of the world must not retrain the zoo
    params = {"id_train": fingerprint(world.id_train), "id_test": fingerprint(world.id_test),
              "entry": _entry_params(entry), "seed": int(seed)}
    # keyed by the training code only (zoo_train: models + training loop), not by this module's feature access
    d = get_or_compute("zoo_model", params, compute, version=ZOO_VERSION, code="repro.studies.ch3_ninco.zoo_train")
    model = build_from_spec(d["spec"])
    model.load_state_dict(d["state_dict"])
    model.eval()
    return ZooModel(entry.name, model, d["test_acc"], entry, d["spec"], d["history"],
                    train_acc=float(d.get("train_acc", float("nan"))))


def trained_zoo(world, entries, seed: int = 0, device=None, progress: bool = True) -> list[ZooModel]:
    """All zoo members, trained once and cached (see :func:`train_zoo_model`)."""
    entries = zoo_entries(entries) if not (entries and isinstance(entries[0], ZooEntry)) else entries
    out = []
    for e in entries:
        zm = train_zoo_model(world, e, seed=seed, device=device, progress=progress)
        log.info("zoo %s (%s, %s): train accuracy %.3f, test accuracy %.3f", e.name, e.arch, e.recipe,
                 zm.train_acc, zm.test_acc)
        out.append(zm)
    return out
