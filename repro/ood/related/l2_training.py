"""ℓ2-normalised training (Haas, Yolland & Rabus, TMLR 2024, "Exploring simple, high quality
out-of-distribution detection with L2 normalization"; ``reference/related/l2_normalization_ood.txt``).

The paper's change is two lines in the forward pass (its Algorithm 1 / Fig. 1): the encoder's
features z are ℓ2-normalised before the linear classifier,

    z_norm = z / max(||z||_2, eps)          (Eq. 6),     logits = W (s · z_norm) + b,

and the *pre-normalisation* norm ||z||_2 is the OOD score ("smaller norms are more likely to be
OoD", Fig. 1). ``s`` is an optional fixed scale (1 in Haas et al.; T2FNorm, which the paper cites as
concurrent work, uses 1/τ). Normalisation is turned off at test time for the other scores (App. A.2:
"in order to maximize the benefits of feature magnitudes, normalization must be turned off at test
time"): :class:`L2NormalizedNet` exposes z as its pre-logit features and the unchanged classifier
(W, b), so every chapter-4 detector sees logits W z + b, exactly what a conventionally trained
model gives them, and the harness needs no special case. Its ``forward`` (used in training and for
accuracy) is the normalised one.
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from repro.core.cache import fingerprint, get_or_compute
from repro.ood.detectors.base import Detector, register

log = logging.getLogger("repro.ood.related")

__all__ = ["L2NormalizedNet", "FeatureNorm", "train_l2_model", "L2_VERSION"]

L2_VERSION = "1"


class L2NormalizedNet(nn.Module):
    """A timm-style classifier whose head sees ℓ2-normalised features (Haas et al. Eq. 6, Fig. 1).

    ``forward(x) = fc(scale · z / max(||z||, eps))`` with ``z = backbone.forward_head(
    backbone.forward_features(x), pre_logits=True)``. ``forward_head(f, pre_logits=True)`` returns
    the *unnormalised* z (the paper's OOD score is its norm) and ``get_classifier()`` the
    backbone's ``nn.Linear``, so :func:`repro.ood.features.extract` gives features z and logits W z + b
    (normalisation off at test time, paper App. A.2).
    """

    def __init__(self, backbone: nn.Module, scale: float = 1.0, eps: float = 1e-12):
        super().__init__()
        for attr in ("forward_features", "forward_head", "get_classifier"):
            if not callable(getattr(backbone, attr, None)):
                raise TypeError(f"L2NormalizedNet wraps timm-style models; {type(backbone).__name__} lacks {attr}()")
        if not isinstance(backbone.get_classifier(), nn.Linear):
            raise ValueError(f"{type(backbone).__name__}.get_classifier() is not an nn.Linear; build it with num_classes > 0")
        if not scale > 0:
            raise ValueError(f"scale must be > 0 (the fixed factor applied after normalisation), got {scale}")
        self.backbone = backbone
        self.scale = float(scale)
        self.eps = float(eps)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        z = self.backbone.forward_head(x, pre_logits=True)
        if pre_logits:
            return z
        return self.get_classifier()(self.scale * F.normalize(z, p=2, dim=1, eps=self.eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.backbone.get_classifier()


@register("feature_norm")
class FeatureNorm(Detector):
    """Feature-norm score s(x) = ||z(x)||_2 of the pre-logit features (Haas et al. Fig. 1, Sec. 2.1:
    "These norms are the OoD score: smaller norms are more likely to be OoD")."""

    def _score(self, features, logits):
        return np.linalg.norm(features, axis=1)

    def needs_training_features(self) -> bool:
        return False


def train_l2_model(world, entry, seed: int = 0, scale: float = 1.0, device=None, progress: bool = True):
    """Train ``entry`` (a from-scratch :class:`repro.studies.ch3_ninco.zoo.ZooEntry`) with ℓ2-normalised features on
    ``world.id_train``.

    Same recipe, seed and training loop (:func:`repro.train.loop.train_classifier`) as the
    conventional zoo model, so the pair differs only by the two lines of Eq. 6. Haas et al. train
    from scratch (their App. A.1), so ``pretrained`` entries are refused. Cached under (ID
    train/test images, entry, seed, scale). Returns a :class:`repro.studies.ch3_ninco.zoo.ZooModel`.
    """
    from repro.models import build_from_spec, model_spec
    from repro.train.loop import evaluate, train_classifier
    from repro.studies.ch3_ninco.zoo import _RECIPE_KEYS, ZooModel, _entry_params

    if entry.pretrained:
        raise ValueError(f"zoo entry {entry.name!r} is pretrained; l2-normalised training (Haas et al.) trains from "
                         "scratch: list from-scratch entries under l2.models in repro/profiles/appendix.yaml")
    nc = world.num_classes
    spec = model_spec(entry.arch, nc, **entry.model_kwargs)

    def compute():
        torch.manual_seed(int(seed))
        model = L2NormalizedNet(build_from_spec(spec), scale=scale)
        recipe = {k: getattr(entry, k) for k in _RECIPE_KEYS}
        hist = train_classifier(model, world.id_train.x, world.id_train.y, seed=int(seed), device=device,
                                progress=progress, desc=f"{entry.name}+l2", **recipe)["history"]
        acc = evaluate(model, world.id_test.x, world.id_test.y, device=device)["accuracy"]
        sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return {"state_dict": sd, "spec": spec, "test_acc": float(acc), "history": hist}

    params = {"id_train": fingerprint(world.id_train), "id_test": fingerprint(world.id_test),
              "entry": _entry_params(entry), "seed": int(seed), "scale": float(scale)}
    d = get_or_compute("related_l2_model", params, compute, version=L2_VERSION)
    model = L2NormalizedNet(build_from_spec(d["spec"]), scale=scale)
    model.load_state_dict(d["state_dict"])
    model.eval()
    return ZooModel(f"{entry.name}+l2", model, d["test_acc"], entry, d["spec"], d["history"])
