"""Ablations of the SAM-ON paper as plain functions (App. B.7-B.9; dissertation Sec. 8.4 (App. B.7)).

- :func:`fix_norm`: γ = 1, β = 0 and frozen (Fig. 10, Sec. 8.4 (App. B.7));
- :func:`only_norm_training`: freeze everything except the normalization layers (Table 17, Sec. 8.4 (App. B.8));
- :func:`weight_decay_groups` / :func:`rebuild_with_weight_decay_scope`: weight decay on all
  parameters, all but the normalization parameters, or none (Fig. 11 right, Sec. 8.4 (App. B.9)).
"""
from __future__ import annotations

import torch
from torch import nn

from repro.sam.selection import NORM_TYPES, norm_parameters

__all__ = ["fix_norm", "only_norm_training", "weight_decay_groups", "rebuild_with_weight_decay_scope",
           "WD_SCOPES"]

WD_SCOPES = ("all", "all_but_norm", "none")


@torch.no_grad()
def fix_norm(model: nn.Module, norm_types=NORM_TYPES) -> nn.Module:
    """Set every normalization layer to the identity affine map (γ = 1, β = 0) and freeze it."""
    found = False
    for m in model.modules():
        if isinstance(m, norm_types):
            if getattr(m, "weight", None) is not None:
                m.weight.fill_(1.0)
                m.weight.requires_grad_(False)
                found = True
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
                m.bias.requires_grad_(False)
                found = True
    if not found:
        raise ValueError(f"fix_norm: {type(model).__name__} has no affine normalization layer")
    return model


def only_norm_training(model: nn.Module, norm_types=NORM_TYPES) -> nn.Module:
    """Frankle et al.'s setting: only the affine normalization parameters stay trainable."""
    keep = {id(p) for p in norm_parameters(model, norm_types)}
    if not keep:
        raise ValueError(f"only_norm_training: {type(model).__name__} has no affine normalization layer")
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return model


def weight_decay_groups(model: nn.Module, weight_decay: float, scope: str = "all", norm_types=NORM_TYPES) -> list[dict]:
    """Parameter groups for a base optimizer with weight decay on ``scope`` (Fig. 11 right)."""
    if scope not in WD_SCOPES:
        raise ValueError(f"weight-decay scope must be one of {WD_SCOPES}, got {scope!r}")
    if scope == "all":
        return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    if scope == "none":
        return [{"params": list(model.parameters()), "weight_decay": 0.0}]
    norm_ids = {id(p) for p in norm_parameters(model, norm_types)}
    return [
        {"params": [p for p in model.parameters() if id(p) not in norm_ids], "weight_decay": weight_decay},
        {"params": [p for p in model.parameters() if id(p) in norm_ids], "weight_decay": 0.0},
    ]


def rebuild_with_weight_decay_scope(model: nn.Module, base: torch.optim.Optimizer, scope: str) -> torch.optim.Optimizer:
    """A fresh optimizer of ``base``'s class and defaults whose weight decay covers only ``scope``.

    Used inside a ``make_optimizer`` hook, where the trainer has already built ``base`` over all params.
    """
    wd = float(base.defaults.get("weight_decay", 0.0))
    return type(base)(weight_decay_groups(model, wd, scope), **base.defaults)
