"""Unit tests of repro.sharpness: definitions, APGD, logit normalization, invariance, bad input."""
import math
import warnings

import pytest
import torch
from torch import nn

from repro.sharpness import get, list_definitions, logit_normalize, measure, measure_detailed
from repro.sharpness.apgd import _project_ellipsoid, apgd_sharpness, checkpoints

torch.set_num_threads(1)


class TinyBN(nn.Module):
    """conv -> BN -> ReLU -> conv -> pool -> linear: has the BN(γ,β) ↔ next-conv symmetry."""

    def __init__(self, k=3):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 5, 3, padding=1)
        self.fc = nn.Linear(5, k)

    def forward(self, x):
        h = torch.relu(self.bn(self.c1(x)))
        h = torch.relu(self.c2(h)).mean((2, 3))
        return self.fc(h)


def _model(seed=0):
    torch.manual_seed(seed)
    m = TinyBN()
    with torch.no_grad():
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-0.2, 0.2)
        m.bn.running_mean.uniform_(-0.1, 0.1)
        m.bn.running_var.uniform_(0.5, 1.5)
    return m.eval().double()


def _data(n=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def test_twelve_definitions_registered():
    names = list_definitions()
    assert len(names) == 12 and len(set(names)) == 12
    ds = [get(n) for n in names]
    assert sum(d.kind == "worst" for d in ds) == 6
    assert sum(d.adaptive for d in ds) == 8
    assert sum(d.logit_norm for d in ds) == 4
    assert all(d.adaptive for d in ds if d.logit_norm)


def test_checkpoints_match_released_code():
    # the the chapter implementation notes (derived from the released code's formula)
    assert checkpoints(20) == [5, 9, 12, 15, 16, 18, 19, 20]
    assert checkpoints(50) == [11, 21, 29, 35, 40, 44, 47, 50]


@pytest.mark.parametrize("conv,k", [("std", 1.0), ("l2", None)])
def test_logit_normalization(conv, k):
    z = torch.randn(7, 10, dtype=torch.float64)
    a = logit_normalize(z, conv)
    # positive scaling and shifts of the logits do not change the normalized logits (Sec. 8.3 (Sec. 3.2))
    assert torch.allclose(a, logit_normalize(3.7 * z + 2.0, conv))
    if conv == "std":
        assert torch.allclose(a.pow(2).mean(-1), torch.ones(7, dtype=torch.float64))
    else:
        assert torch.allclose(a.norm(dim=-1), torch.ones(7, dtype=torch.float64))
        assert torch.allclose(a * math.sqrt(10), logit_normalize(z, "std"))


def _rescale_bn(m, alpha):
    """BN γ, β × α and next conv × 1/α: the function is unchanged (ReLU is 1-homogeneous)."""
    with torch.no_grad():
        m.bn.weight.mul_(alpha)
        m.bn.bias.mul_(alpha)
        m.c2.weight.div_(alpha)
    return m


@pytest.mark.parametrize("definition,rho", [("adaptive_worst_linf", 0.01), ("adaptive_worst_linf_ln", 0.01),
                                            ("adaptive_worst_l2", 0.2)])
def test_invariance_lemma_worst_case(definition, rho):
    x, y = _data()
    m1, m2 = _model(), _rescale_bn(_model(), 7.0)
    assert torch.allclose(m1(x), m2(x), atol=1e-12)
    s1 = measure(m1, [(x, y)], definition, rho, seed=3)
    s2 = measure(m2, [(x, y)], definition, rho, seed=3)
    assert s1 > 0
    assert abs(s1 - s2) <= 1e-9 * max(1.0, abs(s1))
    std = definition.replace("adaptive", "standard").replace("_ln", "")
    t1 = measure(m1, [(x, y)], std, rho / 10, seed=3)
    t2 = measure(m2, [(x, y)], std, rho / 10, seed=3)
    assert abs(t1 - t2) > 1e-3 * abs(t1)


def test_invariance_lemma_average_case():
    x, y = _data()
    m1, m2 = _model(), _rescale_bn(_model(), 0.2)
    a1 = measure(m1, [(x, y)], "adaptive_avg_l2", 0.1, n_samples=8, seed=5)
    a2 = measure(m2, [(x, y)], "adaptive_avg_l2", 0.1, n_samples=8, seed=5)
    assert abs(a1 - a2) < 1e-9
    b1 = measure(m1, [(x, y)], "standard_avg_l2", 0.05, n_samples=8, seed=5)
    b2 = measure(m2, [(x, y)], "standard_avg_l2", 0.05, n_samples=8, seed=5)
    assert abs(b1 - b2) > 1e-3 * abs(b1)


def test_logit_norm_removes_head_scale_sensitivity():
    x, y = _data()
    m1 = _model()
    m2 = _model()
    with torch.no_grad():
        m2.fc.weight.mul_(5.0)
        m2.fc.bias.mul_(5.0)
    ln = [measure(m, [(x, y)], "adaptive_worst_linf_ln", 0.01, seed=0) for m in (m1, m2)]
    no = [measure(m, [(x, y)], "adaptive_worst_linf", 0.01, seed=0) for m in (m1, m2)]
    assert abs(ln[0] - ln[1]) < 1e-9
    assert abs(no[0] - no[1]) > 1e-3


def test_apgd_beats_random_and_stays_feasible():
    # quadratic objective with known maximum over the ℓ∞ box: L = ½‖w‖² maximized at a corner
    w0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    c = w0.abs()
    seen = []

    def lg(w):
        seen.append(w.clone())
        return 0.5 * (w * w).sum(), w.clone()

    def lo(w):
        seen.append(w.clone())
        return 0.5 * (w * w).sum()

    r = apgd_sharpness(lg, lo, w0, c, 0.1, "linf", n_iter=20)
    best = 0.5 * ((w0.abs() * 1.1) ** 2).sum()
    assert abs(r.f_max - float(best)) < 1e-9
    for w in seen:
        assert ((w - w0).abs() <= 0.1 * c + 1e-12).all()
    r2 = apgd_sharpness(lg, lo, w0, torch.ones(3, dtype=torch.float64), 0.3, "l2", n_iter=20)
    # max of ½‖w0+δ‖² over ‖δ‖₂≤ρ: ½(‖w0‖+ρ)²
    assert abs(r2.f_max - 0.5 * (float(w0.norm()) + 0.3) ** 2) < 1e-6


def test_ellipsoid_projection_is_feasible_and_nearest():
    g = torch.Generator().manual_seed(0)
    c = torch.rand(20, generator=g, dtype=torch.float64) + 0.1
    d = torch.randn(20, generator=g, dtype=torch.float64)
    p = _project_ellipsoid(d, c, 0.5, tol=1e-10)
    assert float((p / c).norm()) <= 0.5 + 1e-6
    # any other feasible point on the boundary is not closer
    for _ in range(50):
        q = torch.randn(20, generator=g, dtype=torch.float64) * c
        q = q / (q / c).norm() * 0.5
        assert (d - p).norm() <= (d - q).norm() + 1e-9


def test_code_compat_runs_and_is_nonnegative():
    x, y = _data()
    m = _model()
    for d, rho in [("adaptive_worst_l2", 0.3), ("adaptive_worst_linf_ln", 0.01), ("standard_worst_l2", 0.1)]:
        s = measure(m, [(x, y)], d, rho, mode="code_compat")
        assert s >= 0 and math.isfinite(s)


def test_batched_noise_equals_loop():
    x, y = _data()
    m = _model()
    a = measure(m, [(x, y)], "adaptive_avg_linf_ln", 0.2, n_samples=6, seed=1, batched_noise=True, chunk=3)
    b = measure(m, [(x, y)], "adaptive_avg_linf_ln", 0.2, n_samples=6, seed=1, batched_noise=False)
    assert abs(a - b) < 1e-10


def test_m_sharpness_splits_batches():
    x, y = _data(32)
    m = _model()
    r = measure_detailed(m, [(x, y)], "adaptive_worst_linf", 0.01, m=8)
    assert len(r.per_batch) == 4
    assert abs(r.value - sum(r.per_batch) / 4) < 1e-12


def test_worst_case_dominates_average_case_same_ball():
    x, y = _data()
    m = _model()
    w = measure(m, [(x, y)], "adaptive_worst_linf", 0.05)
    a = measure(m, [(x, y)], "adaptive_avg_linf", 0.05, n_samples=20)
    assert w >= a


def test_does_not_modify_model_and_restores_train_mode():
    x, y = _data()
    m = _model().train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.warns(UserWarning, match="eval mode"):
        measure(m, [(x, y)], "adaptive_worst_linf", 0.01)
    assert m.training
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_uint8_inputs_use_the_models_declared_normalization():
    """Issue 19 Sec. 2: uint8 input used to be normalised with the suite's (0.5, 0.5) whatever the model;
    now the model's declared statistics (or an explicit ``preprocess``) are used and a model that
    declares none is an error."""
    from functools import partial

    from repro.models import preprocess
    g = torch.Generator().manual_seed(0)
    xu = torch.randint(0, 256, (8, 3, 6, 6), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 3, (8,), generator=g)
    m = _model().float()
    with pytest.raises(ValueError, match="declares no input normalization"):
        measure(m, [(xu, y)], "adaptive_worst_linf", 0.01)
    imagenet = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    b = measure(m, [(preprocess(xu, **imagenet), y)], "adaptive_worst_linf", 0.01)
    m.pretrained_cfg = dict(imagenet)          # what a timm checkpoint carries
    a = measure(m, [(xu, y)], "adaptive_worst_linf", 0.01)
    assert abs(a - b) < 1e-6
    c = measure(m, [(xu, y)], "adaptive_worst_linf", 0.01, preprocess=partial(preprocess, **imagenet))
    assert abs(c - b) < 1e-6
    suite = measure(m, [(preprocess(xu), y)], "adaptive_worst_linf", 0.01)
    assert abs(suite - a) > 1e-6                # the old guess would have given this value


def test_suite_models_declare_their_normalization():
    from repro.models import MEAN, STD, create_model, input_normalization

    assert input_normalization(create_model("resnet_t", 3)) == {"mean": MEAN, "std": STD}


def test_remainder_batch_is_an_error_or_explicit():
    """Issue 19 Sec. 2: m not dividing n used to drop the remainder silently."""
    x, y = _data(n=20)
    m = _model()
    with pytest.raises(ValueError, match="does not divide"):
        measure(m, [(x, y)], "adaptive_avg_l2", 0.1, m=8, n_samples=2)
    drop = measure_detailed(m, [(x, y)], "adaptive_avg_l2", 0.1, m=8, n_samples=2, remainder="drop")
    use = measure_detailed(m, [(x, y)], "adaptive_avg_l2", 0.1, m=8, n_samples=2, remainder="use")
    assert drop.settings["n_dropped"] == 4 and drop.settings["n_points"] == 16 and len(drop.per_batch) == 2
    assert use.settings["n_dropped"] == 0 and len(use.per_batch) == 3


@pytest.mark.parametrize("kw,err", [
    (dict(rho=0.0), "rho must be a positive"),
    (dict(rho=-1.0), "rho must be a positive"),
    (dict(rho=float("nan")), "rho must be a positive"),
    (dict(definition="adaptive_worst_l3"), "unknown sharpness definition"),
    (dict(logit_norm="softmax"), "logit_norm must be"),
    (dict(batches=[]), "no batches"),
    (dict(m=1000), "exceeds"),
])
def test_bad_input(kw, err):
    x, y = _data()
    args = dict(model=_model(), batches=[(x, y)], definition="adaptive_worst_linf", rho=0.01)
    args.update(kw)
    with pytest.raises(ValueError, match=err):
        measure(**args)


def test_non_finite_loss_raises():
    x, y = _data()
    m = _model()
    with torch.no_grad():
        m.fc.bias.fill_(float("inf"))
    with pytest.raises(FloatingPointError, match="non-finite"):
        measure(m, [(x, y)], "standard_worst_linf", 0.01)


def test_bound_path_equals_functional_path_and_restores_the_model():
    """The flat-buffer fast path (FlatModel.bound) gives the same loss and gradient as the pure
    functional_call path, leaves the model's parameter storage, values and .grad as they were, also
    when the body raises."""
    from repro.sharpness import FlatModel

    x, y = _data()
    m = _model()
    m.fc.weight.grad = torch.full_like(m.fc.weight, 7.0)  # a user's pending gradient must survive
    ptrs = [p.data_ptr() for p in m.parameters()]
    before = {k: v.clone() for k, v in m.state_dict().items()}
    flat = FlatModel(m, logit_norm="std")
    w = flat.w0 + 1e-2 * torch.randn_like(flat.w0)
    L_f, g_f = flat.loss_and_grad(w, x, y)
    with flat.bound():
        L_b, g_b = flat.loss_and_grad(w, x, y)
        L_b2, g_b2 = flat.loss_and_grad(w, x, y)  # gradient buffer is zeroed between calls
        v_b = flat.loss_value(w, x, y)
    assert torch.allclose(L_f, L_b, rtol=0, atol=1e-12) and torch.allclose(g_f, g_b, rtol=0, atol=1e-12)
    assert torch.equal(g_b, g_b2) and g_b.data_ptr() != g_b2.data_ptr()  # fresh tensors, not the buffer
    assert abs(float(v_b) - float(L_f)) < 1e-12
    with pytest.raises(RuntimeError, match="boom"):
        with flat.bound():
            flat.loss_and_grad(w, x, y)
            raise RuntimeError("boom")
    assert [p.data_ptr() for p in m.parameters()] == ptrs
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(m.fc.weight.grad, torch.full_like(m.fc.weight, 7.0))
    assert m.c1.weight.grad is None


def test_measure_is_the_same_with_and_without_the_bound_path(monkeypatch):
    """measure() through the fast path == measure() with bound() disabled (pure functional_call)."""
    from contextlib import contextmanager

    from repro.sharpness import FlatModel

    x, y = _data()
    vals = {d: measure(_model(), [(x, y)], d, 0.02, steps=5, n_samples=4)
            for d in ("adaptive_worst_linf_ln", "standard_worst_l2", "adaptive_avg_l2")}

    @contextmanager
    def no_bind(self):
        yield self

    monkeypatch.setattr(FlatModel, "bound", no_bind)
    for d, v in vals.items():
        assert abs(measure(_model(), [(x, y)], d, 0.02, steps=5, n_samples=4) - v) < 1e-10, d


def test_sharpness_cache_params_change_with_every_input():
    """Issue 20 item 6: average-case keys lacked the device."""
    from repro.sharpness.measure import cache_params

    base = cache_params("adaptive_avg_l2", 0.1, m=8, n_samples=20, device="cpu")
    assert base["device"] == "cpu" and base["steps"] is None
    for kw in [dict(device="cuda"), dict(rho=0.2), dict(m=16), dict(n_samples=10), dict(seed=1)]:
        args = dict(m=8, n_samples=20, device="cpu", rho=0.1)
        args.update(kw)
        rho = args.pop("rho")
        assert cache_params("adaptive_avg_l2", rho, **args) != base, kw
    assert cache_params("adaptive_worst_linf", 0.1, steps=10, device="cpu") != \
        cache_params("adaptive_worst_linf", 0.1, steps=20, device="cpu")
    # settings a definition does not read do not split the cache
    assert cache_params("adaptive_avg_l2", 0.1, steps=5, device="cpu") == cache_params("adaptive_avg_l2", 0.1, device="cpu")
