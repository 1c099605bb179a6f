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

from repro.ood.detectors.base import Detector, register

log = logging.getLogger("repro.ood.related")

__all__ = ["L2NormalizedNet", "FeatureNorm"]



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
