import pytest
import torch

from repro.models import (build_from_spec, classifier_head, create_model, list_models, model_spec, pre_logits,
                          preprocess)

SMALL = ["resnet_t", "resnet_s", "vit_t", "convnext_t", "mixer_t", "preact_resnet18", "simple_vit"]


@pytest.mark.parametrize("name", SMALL)
def test_small_models_follow_timm_api(name):
    m = create_model(name, 7).eval()
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    z = preprocess(x)
    logits = m(z)
    feats = pre_logits(m, z)
    head = classifier_head(m)
    assert logits.shape == (4, 7)
    assert feats.shape == (4, head.in_features)
    # The classifier head applied to the pre-logit features gives the logits.
    torch.testing.assert_close(head(feats), logits, rtol=1e-5, atol=1e-5)


def test_preact_resnet18_is_the_papers_cifar_model():
    """Chapter 5's CIFAR zoo model: pre-activation basic blocks, BN, 3x3 stride-1 stem, ~11.17M
    parameters at width 64 (PreActResNet-18 of the released code: 11.17M for 10 classes)."""
    from timm.models.resnetv2 import PreActBasic

    m = create_model("preact_resnet18", 10)
    n = sum(p.numel() for p in m.parameters())
    assert 11.1e6 < n < 11.25e6, n
    assert sum(isinstance(b, PreActBasic) for b in m.modules()) == 8
    assert any(isinstance(b, torch.nn.BatchNorm2d) for b in m.modules())
    assert m.stem.conv.stride == (1, 1) and isinstance(m.stem.pool, torch.nn.Identity)
    assert pre_logits(m.eval(), torch.zeros(1, 3, 32, 32)).shape == (1, 512)


def test_simple_vit_is_the_papers_cifar_vit():
    """Chapter 5's CIFAR ViT: no class token, fixed sin-cos positions (a buffer: not trained, not
    perturbed by sharpness), mean pooling then LayerNorm + linear head, no qkv bias."""
    from timm.layers import build_sincos2d_pos_embed

    m = create_model("simple_vit", 10)
    names = dict(m.named_parameters())
    assert "pos_embed" not in names and "cls_token" not in names
    assert torch.equal(m.pos_embed[0], build_sincos2d_pos_embed([8, 8], dim=512))
    assert m.blocks[0].attn.qkv.bias is None and len(m.blocks) == 6
    assert isinstance(m.fc_norm, torch.nn.LayerNorm) and isinstance(m.norm, torch.nn.Identity)
    x = torch.randn(2, 3, 32, 32)
    perm = torch.randperm(64)
    # without position embedding the model would be patch-permutation invariant; with it, it is not
    patches = x.unfold(2, 4, 4).unfold(3, 4, 4).reshape(2, 3, 64, 4, 4)[:, :, perm].reshape(2, 3, 8, 8, 4, 4)
    xp = patches.permute(0, 1, 2, 4, 3, 5).reshape(2, 3, 32, 32)
    assert not torch.allclose(m.eval()(x), m(xp), atol=1e-4)


def test_registry_and_spec_roundtrip():
    assert set(SMALL) <= set(list_models())
    spec = model_spec("resnet_t", 5)
    a = build_from_spec(spec)
    assert classifier_head(a).out_features == 5


def test_errors():
    with pytest.raises(ValueError, match="unknown model"):
        create_model("no_such_net", 10)
    with pytest.raises(ValueError, match="no pretrained weights"):
        create_model("resnet_t", 10, pretrained=True)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        preprocess(torch.zeros(3, 32, 32, dtype=torch.uint8))
    m = create_model("resnet_t", 10)
    m.reset_classifier(0)
    with pytest.raises(ValueError, match="no linear classifier head"):
        classifier_head(m)


def test_timm_names_pass_through_without_weights():
    m = create_model("resnet18", 10)  # built from config, no download
    assert classifier_head(m).out_features == 10


def test_preprocess_range():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    z = preprocess(x)
    assert z.min() == -1 and z.max() == 1
