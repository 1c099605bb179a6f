"""Small from-scratch architectures for 32x32 inputs, each built from a timm class.

The ImageNet stems of timm (7x7 stride-2 conv + max-pool) would shrink 32 px images to 8 px
before the first block, so the ResNets get the CIFAR stem (3x3 stride-1 conv, no pool), as in
the CIFAR models of the dissertation's chapters 5 and 6.
"""
from __future__ import annotations

from torch import nn

from . import register_model


def _cifar_resnet(num_classes: int, layers, channels, stem: int, **kw) -> nn.Module:
    from timm.models.resnet import BasicBlock, ResNet

    # timm sizes bn1/layer1 by ``inplanes`` = 2*stem_width for 'deep' stems (64 otherwise); we then
    # swap the stem itself for the CIFAR one (timm's is strided and followed by max-pool).
    m = ResNet(BasicBlock, layers=list(layers), channels=tuple(channels), num_classes=num_classes,
               stem_type="deep", stem_width=stem // 2, **kw)
    m.conv1 = nn.Conv2d(3, stem, kernel_size=3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    return m


@register_model("resnet_t")
def resnet_t(num_classes: int, **kw) -> nn.Module:
    """Tiny BN ResNet (BasicBlock [1,1,1,1], widths 16-32-64-128; ~0.3M parameters)."""
    return _cifar_resnet(num_classes, (1, 1, 1, 1), (16, 32, 64, 128), stem=16, **kw)


@register_model("resnet_s")
def resnet_s(num_classes: int, **kw) -> nn.Module:
    """Small BN ResNet-18 layout (BasicBlock [2,2,2,2], widths 32-64-128-256; ~2.8M parameters)."""
    return _cifar_resnet(num_classes, (2, 2, 2, 2), (32, 64, 128, 256), stem=32, **kw)


@register_model("vit_t")
def vit_t(num_classes: int, img_size: int = 32, **kw) -> nn.Module:
    """Tiny ViT (patch 4, dim 96, depth 4, 3 heads, LayerNorm, class token)."""
    from timm.models.vision_transformer import VisionTransformer

    opts = dict(img_size=img_size, patch_size=4, embed_dim=96, depth=4, num_heads=3, mlp_ratio=2.0)
    opts.update(kw)
    return VisionTransformer(num_classes=num_classes, **opts)


@register_model("convnext_t")
def convnext_t(num_classes: int, **kw) -> nn.Module:
    """Tiny ConvNeXt (patch-2 stem, depths 1-1-2-1, dims 32-64-128-192, LayerNorm)."""
    from timm.models.convnext import ConvNeXt

    opts = dict(depths=(1, 1, 2, 1), dims=(32, 64, 128, 192), patch_size=2, kernel_sizes=5)
    opts.update(kw)
    return ConvNeXt(num_classes=num_classes, **opts)


@register_model("mixer_t")
def mixer_t(num_classes: int, img_size: int = 32, **kw) -> nn.Module:
    """Tiny MLP-Mixer (patch 4, 4 blocks, dim 96)."""
    from timm.models.mlp_mixer import MlpMixer

    opts = dict(img_size=img_size, patch_size=4, num_blocks=4, embed_dim=96)
    opts.update(kw)
    return MlpMixer(num_classes=num_classes, **opts)
