import pytest
import torch

from repro.models import (build_from_spec, classifier_head, create_model, list_models, model_spec, pre_logits,
                          preprocess)

SMALL = ["resnet_t", "resnet_s", "vit_t", "convnext_t", "mixer_t"]


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
