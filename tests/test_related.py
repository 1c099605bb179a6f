"""repro.ood.related: the defining operation of each related method (l2-normalised head, UM flooding
gradient and masks, SeTAR's rank truncation and greedy search), the claim logic, and bad input."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from repro.data.world import ImageSet
from repro.models import create_model, preprocess
from repro.ood.related import l2_training as L2
from repro.ood.related import setar as S
from repro.ood.related import unleashing as U


def _images(n=24, c=3, res=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, res, res), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % c
    return x, y


def _tiny_world(res=32):
    x, y = _images(30, 3, res, seed=0)
    xt, yt = _images(15, 3, res, seed=1)
    xo, _ = _images(12, 3, res, seed=2)
    names = ["a", "b", "c"]
    return SimpleNamespace(id_train=ImageSet(x, y, names, "id_train"), id_val=ImageSet(xt[:6], yt[:6], names, "id_val"),
                           id_test=ImageSet(xt, yt, names, "id_test"),
                           ood={"far": ImageSet(xo, torch.zeros(12, dtype=torch.int64), ["o"], "far")}, num_classes=3)


# ------------------------------------------------------------------------------------- SeTAR
@pytest.mark.parametrize("shape,r", [((12, 7), 3), ((5, 9), 1), ((8, 4, 3, 3), 5), ((6, 6), 6), ((6, 6), 0)])
def test_low_rank_keeps_exactly_the_top_singular_values(shape, r):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    m = w.reshape(shape[0], -1)
    approx = S.low_rank_approx(w, r)
    assert approx.shape == w.shape and approx.dtype == w.dtype
    sv = torch.linalg.svdvals(m)
    sv_hat = torch.linalg.svdvals(approx.reshape(shape[0], -1))
    k = min(m.shape)
    np.testing.assert_allclose(sv_hat[:r].numpy(), sv[:r].numpy(), rtol=1e-10, atol=1e-12)  # top r kept exactly
    np.testing.assert_allclose(sv_hat[r:].numpy(), np.zeros(k - r), atol=1e-10)              # minor ones removed
    # Eckart-Young: the residual is exactly the dropped components
    np.testing.assert_allclose(torch.linalg.matrix_norm(m - approx.reshape(m.shape)).item() ** 2,
                               float((sv[r:] ** 2).sum()), rtol=1e-9, atol=1e-12)


def test_low_rank_bad_input_and_reduced_rank():
    w = torch.randn(6, 4)
    with pytest.raises(ValueError, match="rank must lie"):
        S.low_rank_approx(w, 5)
    with pytest.raises(ValueError, match="matrix"):
        S.low_rank_approx(torch.randn(5), 1)
    assert S.reduced_rank(w, 0.0) == 4 and S.reduced_rank(w, 0.25) == 3 and S.reduced_rank(w, 0.4) == 2
    with pytest.raises(ValueError, match="ratio"):
        S.reduced_rank(w, 1.0)
    assert S.DEFAULT_CANDIDATES == (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


def test_setar_targets_are_w_up():
    assert S.setar_targets(create_model("vit_t", 3, img_size=16)) == [f"blocks.{i}.mlp.fc1" for i in range(4)]
    mix = S.setar_targets(create_model("mixer_t", 3, img_size=16))
    assert all(n.endswith("mlp_channels.fc1") for n in mix) and len(mix) == 4
    res = S.setar_targets(create_model("resnet_t", 3))
    assert res and all(".conv" in n for n in res)
    with pytest.raises(ValueError, match="no SeTAR target"):
        S.setar_targets(create_model("vit_t", 3, img_size=16), pattern="nothing_matches")


def test_locoop_loss_id_part_and_entropy_part():
    torch.manual_seed(0)
    m = create_model("vit_t", 3, img_size=16).eval()
    x, y = _images(6, 3, 16)
    xb = preprocess(x)
    with torch.no_grad():
        ce = F.cross_entropy(m(xb), y)
        assert torch.allclose(S.locoop_loss(m, xb, y, lam=0.0), ce)
        # top_k = 0: every region counts as background -> L = CE - lam * mean entropy of the local predictions
        loc = S.local_logits(m, m.forward_features(xb)).softmax(-1)
        ent = -(loc * loc.log()).sum(-1).mean()
        np.testing.assert_allclose(float(S.locoop_loss(m, xb, y, lam=0.5, top_k=0)), float(ce - 0.5 * ent), rtol=1e-5)
        # top_k = number of classes: no region qualifies -> ID loss only
        assert torch.allclose(S.locoop_loss(m, xb, y, lam=0.5, top_k=3), ce)
    assert S.local_logits(create_model("resnet_t", 3), torch.randn(2, 128, 2, 2)) is None


def test_setar_search_is_greedy_and_reproducible():
    torch.manual_seed(0)
    m = create_model("mixer_t", 3, img_size=16).eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x, y = _images(12, 3, 16)
    edited, res = S.setar_search(m, x, y, candidates=[0.0, 0.2, 0.4], lam=0.01, top_k=2, device="cpu")
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items()), "the input model is untouched"
    assert set(res.ratios) == set(S.setar_targets(m)) and set(res.ratios.values()) <= {0.0, 0.2, 0.4}
    assert res.loss_after <= res.loss_before
    assert len(res.trace) == 2 * len(res.ratios) and list(res.trace.layer.iloc[::2]) == list(reversed(S.setar_targets(m)))
    rebuilt = S.apply_setar(m, res.ratios)
    for k, v in edited.state_dict().items():
        assert torch.allclose(v, rebuilt.state_dict()[k], atol=1e-6), k
    # only the ratio 0 -> nothing changes
    same, r0 = S.setar_search(m, x, y, candidates=[0.0], device="cpu")
    assert all(v == 0.0 for v in r0.ratios.values()) and r0.trace.empty
    assert all(torch.equal(before[k], v) for k, v in same.state_dict().items())
    with pytest.raises(ValueError, match="ratios"):
        S.setar_search(m, x, y, candidates=[0.0, 1.5], device="cpu")


# ---------------------------------------------------------------------------------------- L2
def test_l2_net_normalises_before_the_head_and_exposes_raw_features():
    torch.manual_seed(0)
    base = create_model("convnext_t", 3)
    net = L2.L2NormalizedNet(base, scale=2.0).eval()
    x = preprocess(_images(5, 3, 32)[0])
    with torch.no_grad():
        z = base.forward_head(base.forward_features(x), pre_logits=True)
        assert torch.allclose(net.forward_head(net.forward_features(x), pre_logits=True), z)
        expect = base.get_classifier()(2.0 * z / z.norm(dim=1, keepdim=True))
        assert torch.allclose(net(x), expect, atol=1e-6)
        assert not torch.allclose(L2.L2NormalizedNet(base, scale=1.0)(x), expect)
        # rescaling the features does not change the training-time output (that is the point of Eq. 6)
        assert torch.allclose(net.get_classifier()(2.0 * F.normalize(3.0 * z, dim=1)), expect, atol=1e-6)
    assert net.get_classifier() is base.get_classifier()
    with pytest.raises(TypeError, match="timm-style"):
        L2.L2NormalizedNet(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="scale"):
        L2.L2NormalizedNet(base, scale=0.0)


def test_extract_on_l2_net_gives_unnormalised_features_and_test_time_logits():
    from repro.ood.features import extract

    torch.manual_seed(0)
    net = L2.L2NormalizedNet(create_model("convnext_t", 3)).eval()
    x, y = _images(6, 3, 32)
    f = extract(net, ImageSet(x, y, ["a", "b", "c"], "t"), device="cpu", progress=False, cache=False)
    np.testing.assert_allclose(f.logits, f.features @ f.head.W.T + f.head.b, rtol=1e-4, atol=1e-4)
    assert not np.allclose(np.linalg.norm(f.features, axis=1), 1.0)


def test_feature_norm_detector_is_registered_and_scores_the_norm():
    from repro.ood.detectors import get_detector, list_detectors

    assert "feature_norm" in list_detectors()
    rng = np.random.default_rng(0)
    tr, te = rng.normal(size=(20, 4)), rng.normal(size=(7, 4))
    s = get_detector("feature_norm").fit(tr).score(te)
    np.testing.assert_allclose(s, np.linalg.norm(te, axis=1))
    with pytest.raises(RuntimeError, match="fit"):
        get_detector("feature_norm").score(te)


def test_train_l2_model_is_cached_and_refuses_pretrained():
    from repro.studies.appendix_related.experiment import train_l2_model
    from repro.studies.ch3_ninco.zoo import zoo_entries

    w = _tiny_world()
    e = zoo_entries([{"name": "c", "arch": "convnext_t", "optimizer": "adamw", "lr": 0.002, "epochs": 1,
                      "weight_decay": 0.05, "batch_size": 16}])[0]
    a = train_l2_model(w, e, seed=0, device="cpu", progress=False)
    b = train_l2_model(w, e, seed=0, device="cpu", progress=False)
    assert isinstance(a.model, L2.L2NormalizedNet) and a.name == "c+l2" and 0 <= a.test_acc <= 1
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])
    pre = zoo_entries([{"name": "p", "arch": "resnet18", "pretrained": True}])[0]
    with pytest.raises(ValueError, match="from scratch"):
        train_l2_model(w, pre, device="cpu")


# ---------------------------------------------------------------------------------------- UM
def _lin_problem():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    x, y = torch.randn(8, 4), torch.tensor([0, 1] * 4)
    return model, x, y


@pytest.mark.parametrize("level,sign", [(1e9, -1.0), (0.0, 1.0)])
def test_flooding_gradient_is_sign_of_loss_minus_level(level, sign):
    """Eq. 3: d|L - c|/dθ = sign(L - c) dL/dθ -- ascent below the level, descent above it."""
    model, x, y = _lin_problem()
    w0 = model.weight.detach().clone()
    opt = U.FloodingOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), level)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    ref = nn.Linear(4, 2)
    ref.load_state_dict({"weight": w0, "bias": model.bias.detach().clone()})
    F.cross_entropy(ref(x), y).backward()
    opt.step(closure)
    np.testing.assert_allclose((model.weight.detach() - w0).numpy(), (-0.1 * sign * ref.weight.grad).numpy(), rtol=1e-6)
    assert opt.ascent_steps == (1 if sign < 0 else 0)
    with pytest.raises(ValueError, match="level"):
        U.FloodingOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), float("nan"))


def test_random_layer_masks_keep_the_share_per_layer():
    m = create_model("resnet_t", 3)
    masks = U.random_layer_masks(m, keep=0.9, seed=3)
    params = dict(m.named_parameters())
    assert set(masks) == set(U.maskable_weights(m))
    for k, mk in masks.items():
        assert mk.shape == params[k].shape and mk.dtype == torch.bool
        assert int((~mk).sum()) == int(round(0.1 * mk.numel()))
    again = U.random_layer_masks(m, keep=0.9, seed=3)
    other = U.random_layer_masks(m, keep=0.9, seed=4)
    assert all(torch.equal(masks[k], again[k]) for k in masks)
    assert any(not torch.equal(masks[k], other[k]) for k in masks)
    assert all(v.all() for v in U.random_layer_masks(m, keep=1.0).values())
    with pytest.raises(ValueError, match="keep"):
        U.random_layer_masks(m, keep=0.0)


def test_masked_loss_matches_plain_loss_without_masking_and_leaves_model_untouched():
    from repro.train.loop import evaluate

    torch.manual_seed(0)
    m = create_model("convnext_t", 3).eval()
    x, y = _images(10, 3, 32)
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    full = U.masked_loss(m, x, y, U.random_layer_masks(m, keep=1.0), device="cpu")
    np.testing.assert_allclose(full, evaluate(m, x, y, device="cpu")["loss"], rtol=1e-5)
    heavy = U.estimate_loss_constraint(m, x, y, keep=0.3, seed=0, n_masks=2, device="cpu")
    assert heavy != pytest.approx(full)
    assert all(torch.equal(sd[k], v) for k, v in m.state_dict().items())


def test_checkpoints_and_um_finetune():
    torch.manual_seed(0)
    m = create_model("convnext_t", 3)
    x, y = _images(20, 3, 32)
    out = U.train_with_checkpoints(m, x, y, every=1, epochs=3, lr=0.002, optimizer="adamw", batch_size=8)
    assert [e for e, _ in out["checkpoints"]] == [1, 2, 3] and len(out["history"]) == 3
    last = out["checkpoints"][-1][1]
    assert all(torch.equal(last[k], v.cpu()) for k, v in m.state_dict().items())
    assert not all(torch.equal(out["checkpoints"][0][1][k], last[k]) for k in last)
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    um, info = U.unleashing_mask_finetune(m, x, y, level=1e6, epochs=1, lr=1e-3, optimizer="adamw", batch_size=8)
    assert info["ascent_share"] == 1.0
    assert all(torch.equal(sd[k], v) for k, v in m.state_dict().items()), "the given model is untouched"
    _, info0 = U.unleashing_mask_finetune(m, x, y, level=0.0, epochs=1, lr=1e-3, optimizer="adamw", batch_size=8)
    assert info0["ascent_share"] == 0.0
