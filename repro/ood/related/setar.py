"""SeTAR: training-free OOD detection by selective low-rank approximation (Li et al., NeurIPS 2024,
"SeTAR: Out-of-Distribution Detection with Selective Low-Rank Approximation";
``reference/related/setar.txt``).

* **Low-rank approximation** (Eq. 4-5, Eckart-Young-Mirsky): W = U Σ Vᵀ, Ŵ = Σ_{i≤r} σ_i u_i v_iᵀ,
  keeping the top ``r`` singular values ("principal singular components") and dropping the minor
  ones; r = round((1 − Θ)·rank(W)) for a rank-reduction ratio Θ (Sec. 3.1).
* **Which matrices**: the MLP up-projection W_up of every block ("most effective according to our
  preliminary experiment", Sec. 3.1). For the vision-only zoo: ``*.mlp.fc1`` (ViT, ConvNeXt) and the
  channel-mixing ``mlp_channels.fc1`` (MLP-Mixer); a model without such layers (ResNet) gets its
  block convolutions, reshaped to [C_out, C_in·k·k] (the paper's ResNet-50 variant acts on "the
  in- and out-feature dimensions of the convolutional layers", Sec. 4.5).
* **Greedy search** (Algorithm 1): visit the layers from top to bottom; for each, try every ratio
  of the candidate list (the paper: 0 to 40 % in 5 % steps, Θ_0 = 0 = unchanged) with the layers
  above already fixed, and keep the ratio with the lowest validation loss if it beats the best loss
  so far.
* **Loss** (App. B, Eq. 9-12, LoCoOp): L = L_id + λ·L_ood with L_id the cross-entropy on ID
  validation images and L_ood = −H(p_j) averaged over local regions j whose true class is not in
  their top-K predictions (pseudo-OOD background patches). Local predictions exist for token/
  feature-map models (ViT tokens, Mixer tokens, ConvNeXt positions through the model's own head);
  for others only L_id is used, as the paper does for ResNet ("we conduct experiments using only ID
  loss", Sec. 4.5).
* **Score**: the modified model is then scored with any post-hoc detector (the paper uses MSP and
  Energy for Swin, MCM/GL-MCM for CLIP).
"""
from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("repro.ood.related")

__all__ = ["low_rank_approx", "reduced_rank", "setar_targets", "local_logits", "locoop_loss", "setar_search",
           "apply_setar", "SetarResult", "DEFAULT_CANDIDATES"]

#: Sec. 4.1: "rank reduction ratio candidates range from 0 to 40% in 5% intervals"
DEFAULT_CANDIDATES = tuple(round(0.05 * i, 2) for i in range(9))


def _as_matrix(w: torch.Tensor) -> torch.Tensor:
    if w.ndim < 2:
        raise ValueError(f"low-rank approximation needs a matrix (or a conv kernel), got shape {tuple(w.shape)}")
    return w.reshape(w.shape[0], -1)


def low_rank_approx(w: torch.Tensor, rank: int) -> torch.Tensor:
    """Best rank-``rank`` approximation Σ_{i≤rank} σ_i u_i v_iᵀ of ``w`` (Eq. 5), same shape as ``w``
    (conv kernels are treated as [C_out, C_in·k·k]). Computed in float64."""
    m = _as_matrix(w).double()
    full = min(m.shape)
    if not 0 <= int(rank) <= full:
        raise ValueError(f"rank must lie in [0, {full}] for a {tuple(m.shape)} matrix, got {rank}")
    U, S, Vh = torch.linalg.svd(m, full_matrices=False)
    r = int(rank)
    approx = (U[:, :r] * S[:r]) @ Vh[:r]
    return approx.reshape(w.shape).to(w.dtype)


def reduced_rank(w: torch.Tensor, theta: float) -> int:
    """r(Ŵ) = round((1 − Θ)·rank(W)) (Sec. 3.1)."""
    if not 0 <= theta < 1:
        raise ValueError(f"the rank-reduction ratio Θ must lie in [0, 1), got {theta}")
    rk = int(torch.linalg.matrix_rank(_as_matrix(w).double()))
    return int(round((1 - theta) * rk))


def setar_targets(model: nn.Module, pattern: Optional[str] = None) -> list[str]:
    """Names of the modules SeTAR may replace, bottom to top (module order).

    ``pattern``: a regex on module names (default: W_up = ``mlp.fc1`` / ``mlp_channels.fc1``;
    block convolutions ``layer*.conv*`` when the model has no such layer)."""
    mods = dict(model.named_modules())
    if pattern:
        names = [n for n, m in mods.items() if re.search(pattern, n) and isinstance(m, (nn.Linear, nn.Conv2d))]
    else:
        names = [n for n, m in mods.items() if isinstance(m, nn.Linear) and re.search(r"(^|\.)mlp(_channels)?\.fc1$", n)]
        if not names:
            names = [n for n, m in mods.items() if isinstance(m, nn.Conv2d) and re.search(r"layer\d+\.\d+\.conv\d$", n)]
    if not names:
        raise ValueError(f"no SeTAR target layers found in {type(model).__name__} (pattern {pattern!r}); "
                         "pass a regex matching its MLP up-projections")
    return names


def local_logits(model: nn.Module, feats: torch.Tensor) -> Optional[torch.Tensor]:
    """Per-region logits [B, R, C] through the model's own head, or None when the model has no
    local features (then the LoCoOp loss reduces to the ID loss)."""
    from timm.models.convnext import ConvNeXt
    from timm.models.mlp_mixer import MlpMixer
    from timm.models.vision_transformer import VisionTransformer

    if isinstance(model, VisionTransformer) and feats.ndim == 3:
        tok = feats[:, getattr(model, "num_prefix_tokens", 1):]
        return model.head(model.fc_norm(tok))
    if isinstance(model, MlpMixer) and feats.ndim == 3:
        return model.head(feats)
    if type(model).__name__ in ("SwinTransformer", "SwinTransformerV2") and feats.ndim == 4:
        return model.head.fc(feats.flatten(1, 2))  # timm Swin features are NHWC after the final norm
    if isinstance(model, ConvNeXt) and feats.ndim == 4:
        h = model.head.norm(feats) if hasattr(model.head, "norm") else feats
        return model.head.fc(h.flatten(2).transpose(1, 2))
    return None


def locoop_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lam: float = 0.01, top_k: int = 3) -> torch.Tensor:
    """L = L_id + λ·L_ood (Eq. 12) on preprocessed images ``x``.

    L_ood = −mean_j H(softmax(local logits_j)) over regions j whose label ``y`` ranks below the top-K
    (Eq. 10-11); 0 when the model has no local features or no region qualifies."""
    feats = model.forward_features(x)
    logits = model.forward_head(feats)
    loss = F.cross_entropy(logits, y)
    if lam == 0:
        return loss
    loc = local_logits(model, feats)
    if loc is None:
        return loss
    p = loc.float().softmax(-1)                                   # [B, R, C]
    p_true = p.gather(-1, y.view(-1, 1, 1).expand(-1, p.shape[1], 1))
    rank = (p > p_true).sum(-1) + 1                               # 1 = the true class is the top prediction
    sel = rank > int(top_k)
    if sel.any():
        ent = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)
        loss = loss - lam * ent[sel].mean()
    return loss


@torch.no_grad()
def _val_loss(model, xv, yv, lam, top_k, batch_size, transform, dev):
    tot, n = 0.0, 0
    for i in range(0, len(xv), batch_size):
        xb, yb = transform(xv[i:i + batch_size].to(dev)), yv[i:i + batch_size].to(dev)
        tot += float(locoop_loss(model, xb, yb, lam, top_k)) * len(xb)
        n += len(xb)
    return tot / n


@dataclass
class SetarResult:
    ratios: dict            # module name -> chosen Θ (0 = unchanged)
    trace: pd.DataFrame     # one row per (layer, candidate): loss, accepted
    loss_before: float
    loss_after: float


def _weight(model, name):
    return dict(model.named_modules())[name].weight


def setar_search(model: nn.Module, x_val: torch.Tensor, y_val: torch.Tensor, candidates: Sequence[float] = DEFAULT_CANDIDATES,
                 lam: float = 0.01, top_k: int = 3, pattern: Optional[str] = None, batch_size: int = 256,
                 device=None, transform=None) -> tuple[nn.Module, SetarResult]:
    """Algorithm 1: greedy top-to-bottom search of one rank-reduction ratio per target layer.

    ``x_val``/``y_val``: ID validation images (uint8) and labels; ``transform``: the model's input
    transform (default :func:`repro.models.preprocess`). Returns the modified copy of the model
    (the input is untouched) and the :class:`SetarResult`."""
    from repro.core.config import device as pick_device
    from repro.models import preprocess

    cands = sorted({float(c) for c in candidates} | {0.0})
    if any(not 0 <= c < 1 for c in cands):
        raise ValueError(f"rank-reduction ratios must lie in [0, 1), got {list(candidates)}")
    dev = pick_device("auto") if device is None else torch.device(device)
    m = copy.deepcopy(model).to(dev).eval()
    transform = transform or preprocess
    names = setar_targets(m, pattern)
    best = _val_loss(m, x_val, y_val, lam, top_k, batch_size, transform, dev)
    loss0 = best
    ratios, rows = {}, []
    with torch.no_grad():
        for name in reversed(names):  # top to bottom
            w = _weight(m, name)
            orig = w.detach().clone()
            chosen, chosen_w = 0.0, orig
            for th in cands[1:]:
                r = reduced_rank(orig, th)
                w_hat = low_rank_approx(orig, r)
                w.copy_(w_hat)
                loss = _val_loss(m, x_val, y_val, lam, top_k, batch_size, transform, dev)
                ok = loss < best
                rows.append({"layer": name, "theta": th, "rank": r, "loss": loss, "best_before": best, "accepted": ok})
                if ok:
                    best, chosen, chosen_w = loss, th, w_hat
            w.copy_(chosen_w)
            ratios[name] = chosen
    trace = pd.DataFrame(rows)
    if not trace.empty:
        # a later candidate of the same layer may replace an earlier accepted one: mark the final choice
        trace["chosen"] = [ratios[r.layer] == r.theta for r in trace.itertuples()]
    return m, SetarResult(ratios, trace, float(loss0), float(best))


@torch.no_grad()
def apply_setar(model: nn.Module, ratios: dict) -> nn.Module:
    """A copy of ``model`` with every layer in ``ratios`` replaced by its low-rank approximation
    (rebuilds a searched model from the cached ratios without re-running the search)."""
    m = copy.deepcopy(model)
    mods = dict(m.named_modules())
    for name, th in ratios.items():
        if name not in mods:
            raise ValueError(f"layer {name!r} is not in {type(model).__name__}")
        if th > 0:
            w = mods[name].weight
            w.copy_(low_rank_approx(w.detach(), reduced_rank(w.detach(), th)))
    return m.eval()
