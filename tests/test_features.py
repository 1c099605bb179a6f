"""repro.ood.features: extraction matches a bare forward pass, head consistency, caching, bad input."""
import numpy as np
import pytest
import torch
from torch import nn

from repro.core.cache import EVENTS
from repro.ood.features import extract, extract_uncached
from repro.models import create_model, preprocess


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("mixer_t", 5).eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (37, 3, 32, 32), dtype=torch.uint8, generator=g)


def test_matches_bare_forward_and_head(model, images):
    f = extract_uncached(model, images, batch_size=8, device="cpu")
    with torch.no_grad():
        xb = preprocess(images)
        ref_logits = model(xb).numpy()
        ref_feats = model.forward_head(model.forward_features(xb), pre_logits=True).numpy()
    assert f.features.shape == (37, model.num_features) and f.logits.shape == (37, 5)
    np.testing.assert_allclose(f.logits, ref_logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f.features, ref_feats, rtol=1e-4, atol=1e-5)
    # the head reproduces the logits from the features (what ViM/ReAct rely on)
    np.testing.assert_allclose(f.features @ f.head.W.T + f.head.b, f.logits, rtol=1e-4, atol=1e-4)
    assert f.labels is None


def test_imageset_labels_and_batch_invariance(model, images):
    from repro.data.world import ImageSet

    s = ImageSet(images, torch.arange(37) % 5, list("abcde"), "toy")
    a = extract_uncached(model, s, batch_size=5, device="cpu")
    b = extract_uncached(model, s, batch_size=64, device="cpu")
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-5)
    assert a.labels.tolist() == (np.arange(37) % 5).tolist()


def test_cached_second_call_hits(model, images, tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path))
    n0 = len(EVENTS)
    a = extract(model, images, batch_size=16, device="cpu", progress=False)
    b = extract(model, images, batch_size=16, device="cpu", progress=False)
    kinds = [e[2] for e in EVENTS[n0:]]
    assert kinds == ["miss", "hit"]
    np.testing.assert_array_equal(a.features, b.features)
    # other data -> other key
    extract(model, images[:5], batch_size=16, device="cpu", progress=False)
    assert EVENTS[-1][2] == "miss"


def test_model_mode_restored(model, images):
    model.train()
    extract_uncached(model, images[:4], device="cpu")
    assert model.training
    model.eval()


def test_bad_input(model, images):
    with pytest.raises(ValueError, match="uint8"):
        extract_uncached(model, images.float(), device="cpu")
    with pytest.raises(ValueError, match="empty"):
        extract_uncached(model, images[:0], device="cpu")
    headless = create_model("mixer_t", 5)
    headless.reset_classifier(0)
    with pytest.raises(ValueError, match="classifier head"):
        extract_uncached(headless, images, device="cpu")
    with pytest.raises(ValueError, match="transform_id"):
        extract(model, images, transform=lambda x: x.float())


def test_timm_model_without_weights():
    # the full-profile path: any timm name, created without downloading weights
    m = create_model("resnet18", 3, pretrained=False).eval()
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    f = extract_uncached(m, x, device="cpu")
    assert f.features.shape == (2, 512) and f.logits.shape == (2, 3)


def test_zoo_trains_once_and_reloads(tmp_path, monkeypatch):
    # repro.studies.ch3_ninco.zoo: a cached entry is rebuilt from (state_dict, spec) with identical features
    from repro.data.world import make_world
    from repro.studies.ch3_ninco.zoo import trained_zoo, zoo_entries

    monkeypatch.setenv("REPRO_CACHE", str(tmp_path))
    w = make_world(seed=0, n_train_per_class=3, n_val_per_class=1, n_test_per_class=2, ood_scale=0.05,
                   n_near_per_class=0, n_far_per_class=0, n_popular=0)
    ents = zoo_entries({"zoo": [{"name": "m", "arch": "mixer_t", "epochs": 1, "batch_size": 16}]})
    n0 = len(EVENTS)
    a = trained_zoo(w, ents, progress=False)[0]
    b = trained_zoo(w, ents, progress=False)[0]
    assert [e[2] for e in EVENTS[n0:]] == ["miss", "hit"]
    assert a.test_acc == b.test_acc and a.entry.recipe == "sgd"
    fa = extract_uncached(a.model, w.id_test, device="cpu")
    fb = extract_uncached(b.model, w.id_test, device="cpu")
    np.testing.assert_array_equal(fa.features, fb.features)
    with pytest.raises(ValueError, match="unknown key"):
        zoo_entries([{"name": "x", "arch": "mixer_t", "epoch": 3}])


def test_resize_normalize_transform_and_cache_key(images):
    from repro.ood.features import ResizeNormalize

    t = ResizeNormalize(48, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), interpolation="bilinear")
    y = t(images[:2])
    assert y.shape == (2, 3, 48, 48) and y.dtype == torch.float32
    # constant images stay constant through resizing; normalisation is per channel
    c = torch.full((1, 3, 16, 16), 255, dtype=torch.uint8)
    np.testing.assert_allclose(t(c)[0, :, 0, 0].numpy(), [(1 - 0.5) / 0.2, (1 - 0.4) / 0.25, (1 - 0.3) / 0.3], rtol=1e-5)
    same = ResizeNormalize(images.shape[-1], (0.5,) * 3, (0.5,) * 3)
    torch.testing.assert_close(same(images[:2]), preprocess(images[:2]))  # no resize at the stored size
    assert t.id != same.id and "48" in t.id
    with pytest.raises(ValueError, match="mean/std"):
        ResizeNormalize(32, (0.5, 0.5), (0.5, 0.5, 0.5))


def test_pretrained_entry_needs_matching_classes(tmp_path, monkeypatch):
    # hub weights with 1000 classes on a 10-class world would get a re-initialised head: refuse
    import timm

    from repro.studies.ch3_ninco.zoo import ZooEntry, _create_pretrained

    sd = tmp_path / "w.pth"
    torch.save(timm.create_model("test_vit", num_classes=4).state_dict(), sd)
    m = _create_pretrained(ZooEntry("a", "test_vit", pretrained=True, checkpoint=str(sd)), 4)
    assert m.get_classifier().out_features == 4
    with pytest.raises(ValueError, match="do not fit"):
        _create_pretrained(ZooEntry("a", "test_vit", pretrained=True, checkpoint=str(sd)), 7)


def test_conv_classifier_becomes_linear_with_identical_outputs():
    # BiT-m (timm ResNetV2) has a 1x1-conv head; the detectors need it as a Linear (W, b)
    import timm

    from repro.models import classifier_head
    from repro.studies.ch3_ninco.zoo import ConvAsLinear, _linear_head

    torch.manual_seed(0)
    m = timm.create_model("resnetv2_18", num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = m(x)
    _linear_head(m)
    assert isinstance(classifier_head(m), ConvAsLinear)
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref)  # the model's own forward is unchanged
        f = m.forward_head(m.forward_features(x), pre_logits=True)
        torch.testing.assert_close(classifier_head(m)(f), ref)
    f2 = extract_uncached(m, (x.clamp(-1, 1) * 127.5 + 127.5).to(torch.uint8), device="cpu")
    assert f2.head.W.shape == (3, f.shape[1])


def test_feature_cache_key_changes_with_every_input(model, images):
    """Issue 20 item 6: the key had no device or dtype, so CPU fp32 and CUDA bf16-autocast entries
    were shared. Each input of the key is perturbed and must change it."""
    import copy

    from repro.core.cache import fingerprint
    from repro.ood.features import extraction_mode, feature_cache_params

    base = feature_cache_params(model, images, "cpu")
    assert extraction_mode(model, "cpu") == {"device": "cpu", "dtype": "float32", "autocast": None}
    assert extraction_mode(model, "cuda") == {"device": "cuda", "dtype": "float32", "autocast": "bfloat16"}
    m2 = copy.deepcopy(model)
    with torch.no_grad():
        next(m2.parameters()).add_(1e-3)
    imgs2 = images.clone()
    imgs2[0, 0, 0, 0] ^= 1
    variants = {
        "device": feature_cache_params(model, images, "cuda"),
        "dtype": feature_cache_params(copy.deepcopy(model).double(), images, "cpu"),
        "weights": feature_cache_params(m2, images, "cpu"),
        "images": feature_cache_params(model, imgs2, "cpu"),
        "transform": feature_cache_params(model, images, "cpu", transform_id="other"),
    }
    k0 = fingerprint(base)   # the cache key hashes these params (with the code fingerprint)
    for what, p in variants.items():
        assert fingerprint(p) != k0, what
