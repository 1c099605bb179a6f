"""Small from-scratch architectures for 32x32 inputs, each built from a timm class.

The ImageNet stems of timm (7x7 stride-2 conv + max-pool) would shrink 32 px images to 8 px
before the first block, so the ResNets get the CIFAR stem (3x3 stride-1 conv, no pool), as in
the CIFAR models of the dissertation's chapters 5 and 6.
"""
from __future__ import annotations

from torch import nn

from repro.models import register_model


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


@register_model("preact_resnet18")
def preact_resnet18(num_classes: int, width: int = 64, **kw) -> nn.Module:
    """PreActResNet-18 (He et al. 2016, identity mappings; BatchNorm) with the CIFAR stem: the
    model of chapter 5's CIFAR-10 zoo (App. H, width 64; ~11.2M parameters).  timm's ``resnetv2_18``
    (pre-activation basic blocks) with its 7x7/stride-2 stem and max-pool replaced by a 3x3/stride-1
    conv, as in the released code's ``PreActResNet18``, and timm's 1x1-conv classifier (a BiT
    convention) replaced by the paper's linear head on globally pooled features."""
    import timm
    from timm.layers import ClassifierHead

    m = timm.create_model("resnetv2_18", num_classes=num_classes, stem_chs=width,
                          channels=tuple(width * f for f in (1, 2, 4, 8)), **kw)
    m.stem.conv = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
    m.stem.pool = nn.Identity()
    m.head = ClassifierHead(m.num_features, num_classes, pool_type="avg", use_conv=False)
    return m


@register_model("simple_vit")
def simple_vit(num_classes: int, img_size: int = 32, patch_size: int = 4, embed_dim: int = 512, depth: int = 6,
               num_heads: int = 16, mlp_dim: int = 1024, **kw) -> nn.Module:
    """SimpleViT (Beyer et al. 2022) as in chapter 5's CIFAR-10 ViT zoo (App. H; released code:
    ``SimpleViT(image_size=32, patch_size=4, dim=512, depth=6, heads=16, mlp_dim=1024)`` of
    vit-pytorch): no class token, fixed 2-D sin-cos position embedding (a buffer, so it is neither
    trained nor perturbed by sharpness), global average pooling, LayerNorm + linear head, no qkv bias.
    Built from timm's ``VisionTransformer``; one difference: timm's attention splits ``embed_dim``
    into heads (16 x 32), vit-pytorch uses 16 heads of 64 (inner width 1024)."""
    import torch
    from timm.layers import build_sincos2d_pos_embed
    from timm.models.vision_transformer import VisionTransformer

    m = VisionTransformer(img_size=img_size, patch_size=patch_size, num_classes=num_classes, embed_dim=embed_dim,
                          depth=depth, num_heads=num_heads, mlp_ratio=mlp_dim / embed_dim, qkv_bias=False,
                          class_token=False, global_pool="avg", fc_norm=True, **kw)
    grid = img_size // patch_size
    pe = build_sincos2d_pos_embed([grid, grid], dim=embed_dim).reshape(1, grid * grid, embed_dim)
    del m.pos_embed
    m.register_buffer("pos_embed", pe.to(torch.float32), persistent=True)
    return m
