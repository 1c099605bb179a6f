"""CLIP ViT-B/32 ImageNet fine-tunes of model soups (Wortsman et al. 2022): a ``ModelWrapper`` state
dict as a timm image tower with a normalized-feature head (the CLIP zoo of Table 1, App. F of Sec. 8.3)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class NormalizedFeatureClassifier(nn.Module):
    """Image tower -> L2-normalized features -> linear head (model soups' ``ModelWrapper`` with
    ``normalize=True``)."""

    def __init__(self, visual: nn.Module, head: nn.Linear):
        super().__init__()
        self.visual = visual
        self.head = head

    def forward(self, x):
        f = self.visual(x)
        return self.head(f / f.norm(dim=-1, keepdim=True))


def load_clip_soup(path, arch: str = "vit_base_patch32_clip_quickgelu_224", **kwargs) -> NormalizedFeatureClassifier:
    """A model-soups checkpoint (state dict of ``ModelWrapper``: OpenAI-CLIP ``model.visual.*`` plus
    ``classification_head.{weight,bias}``) as a timm CLIP ViT-B/32 image tower (OpenAI weights are
    QuickGELU, hence the ``_quickgelu`` variant) + bias-free projection + normalized-feature head.
    The text tower's leftovers are dropped; timm's ``checkpoint_filter_fn`` converts the names."""
    import timm
    from timm.models.vision_transformer import checkpoint_filter_fn

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model-soups checkpoint {path} does not exist")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    anchor = [k for k in sd if k.endswith("visual.class_embedding")]
    heads = [k for k in sd if k.endswith("classification_head.weight")]
    if len(anchor) != 1 or len(heads) != 1:
        raise ValueError(f"{path}: not a model-soups checkpoint (expected one '*visual.class_embedding' and one "
                         f"'*classification_head.weight' key, found {len(anchor)} and {len(heads)})")
    pfx = anchor[0][: -len("visual.class_embedding")]
    vis = {k[len(pfx):]: v.float() for k, v in sd.items() if k.startswith(pfx + "visual.")}
    hw = sd[heads[0]].float()
    hb = sd[heads[0][: -len("weight")] + "bias"].float()
    out_dim = vis["visual.proj"].shape[1]
    visual = timm.create_model(arch, pretrained=False, num_classes=out_dim, **kwargs)
    conv = checkpoint_filter_fn(vis, visual)
    conv.pop("head.bias", None)                       # CLIP's projection has no bias
    visual.head = nn.Linear(visual.embed_dim, out_dim, bias=False)
    visual.load_state_dict(conv, strict=True)
    head = nn.Linear(hw.shape[1], hw.shape[0])
    head.load_state_dict({"weight": hw, "bias": hb})
    return NormalizedFeatureClassifier(visual, head).eval()
