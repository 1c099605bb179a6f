"""The chapter 3/4 model zoo: (architecture, training recipe) entries, trained once and cached.

Paper 8.1 evaluates 28 ImageNet checkpoints of many architectures and pretraining/training
schemes (N-Tab.8; ``ninco_T8_models.csv``); its findings are about how *training* (pretraining,
augmentation, objective) changes OOD behaviour (L476, L485, L1236-1238). The small-scale analogue
trains several ``repro.models`` architectures from scratch on the generated world with different
recipes (SGD vs AdamW, augmentation, label smoothing, mixup). In ``full`` the entries are timm
names with ``pretrained: true`` and no training.

Entries come from ``repro/profiles/ch3.yaml`` (key ``zoo``): a list of dicts

    {name: resnet_t-sgd-aug, arch: resnet_t, optimizer: sgd, lr: 0.05, epochs: 6, augment: true,
     label_smoothing: 0.0, mixup_alpha: 0.0, weight_decay: 5e-4, batch_size: 128}

Each trained model is cached as (state_dict, model spec, test accuracy) under the key
(ID train/test image fingerprints, entry, seed): chapter 4 calling :func:`trained_zoo` with the same world and
entries gets the same models without retraining.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
from torch import nn

from .cache import fingerprint, get_or_compute

log = logging.getLogger("repro.zoo")

__all__ = ["ZooEntry", "ZooModel", "zoo_entries", "train_zoo_model", "trained_zoo", "ZOO_VERSION"]

ZOO_VERSION = "1"
_RECIPE_KEYS = ("optimizer", "lr", "epochs", "weight_decay", "augment", "label_smoothing", "mixup_alpha",
                "batch_size", "warmup_epochs")


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
        out.append(ZooEntry(**it))
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise ValueError(f"zoo entry names must be unique, got {names}")
    return out


@dataclass
class ZooModel:
    name: str
    model: nn.Module
    test_acc: float
    entry: ZooEntry
    spec: dict
    history: list = field(default_factory=list)


def _entry_params(entry: ZooEntry) -> dict:
    d = asdict(entry)
    d.pop("name")  # renaming an entry must not retrain it
    return d


def train_zoo_model(world, entry: ZooEntry, seed: int = 0, device=None, progress: bool = True) -> ZooModel:
    """Train (or load pretrained) one entry on ``world.id_train`` and report ``world.id_test`` accuracy.

    Cached under (ID train and test images, entry without its display name, seed).
    """
    from .models import build_from_spec, model_spec
    from .training import evaluate, train_classifier

    nc = world.num_classes
    spec = model_spec(entry.arch, nc, **entry.model_kwargs)

    def compute():
        if entry.pretrained:
            import timm

            model = timm.create_model(entry.arch, pretrained=True, num_classes=nc, **entry.model_kwargs)
            hist = []
        else:
            torch.manual_seed(int(seed))
            model = build_from_spec(spec)
            recipe = {k: getattr(entry, k) for k in _RECIPE_KEYS}
            hist = train_classifier(model, world.id_train.x, world.id_train.y, seed=int(seed), device=device,
                                    progress=progress, desc=entry.name, **recipe)["history"]
        acc = evaluate(model, world.id_test.x, world.id_test.y, device=device)["accuracy"]
        sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return {"state_dict": sd, "spec": spec, "test_acc": float(acc), "history": hist}

    # the model depends on the ID training images only (its reported accuracy on the ID test set):
    # changing the OOD sets of the world must not retrain the zoo
    params = {"id_train": fingerprint(world.id_train), "id_test": fingerprint(world.id_test),
              "entry": _entry_params(entry), "seed": int(seed)}
    d = get_or_compute("zoo_model", params, compute, version=ZOO_VERSION)
    if entry.pretrained:
        import timm

        model = timm.create_model(entry.arch, pretrained=False, num_classes=nc, **entry.model_kwargs)
    else:
        model = build_from_spec(d["spec"])
    model.load_state_dict(d["state_dict"])
    model.eval()
    return ZooModel(entry.name, model, d["test_acc"], entry, d["spec"], d["history"])


def trained_zoo(world, entries, seed: int = 0, device=None, progress: bool = True) -> list[ZooModel]:
    """All zoo members, trained once and cached (see :func:`train_zoo_model`)."""
    entries = zoo_entries(entries) if not (entries and isinstance(entries[0], ZooEntry)) else entries
    out = []
    for e in entries:
        zm = train_zoo_model(world, e, seed=seed, device=device, progress=progress)
        log.info("zoo %s (%s, %s): test accuracy %.3f", e.name, e.arch, e.recipe, zm.test_acc)
        out.append(zm)
    return out
