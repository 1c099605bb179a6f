"""Unit tests of repro.sam (chapter 6): perturbation geometry, exact restore, runtime mode, BN,
AMP, bad input, norm-parameter counts, and the convergence bound of Theorem C.5."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import repro.sam as rs
from repro.models import create_model
from repro.sam import SAM
from repro.sam.selection import norm_parameter_names

torch.set_num_threads(1)

L2_VARIANTS = ["sam", "elementwise_l2", "elementwise_l2_orig", "layerwise_l2", "fisher"]


class TinyBN(nn.Module):
    """conv-BN-relu-conv-BN-pool-LN-linear: BN and LN, with non-zero γ/β so every T_w is non-trivial."""

    def __init__(self, c=4, k=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.ln = nn.LayerNorm(c)
        self.fc = nn.Linear(c, k)
        with torch.no_grad():
            for m in (self.bn1, self.bn2, self.ln):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(self.ln(x.mean((2, 3))))


def _data(n=16, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, k, (n,), generator=g)


def _loss(model, x, y):
    return F.cross_entropy(model(x), y)


def _eps_after_first_step(model, opt, x, y):
    """Run pass 1 + first_step; return {name: eps} and the gradients at w (before the step)."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.zero_grad()
    _loss(model, x, y).backward()
    grads = {n: (p.grad.detach().clone() if p.grad is not None else None) for n, p in model.named_parameters()}
    opt.first_step(zero_grad=True)
    eps = {n: p.detach() - before[n] for n, p in model.named_parameters()}
    return eps, grads, before


def _T(variant, name, w, g, eta, normalize_bias):
    """Independent re-statement of Table 9 (used to check the library)."""
    is_bias = name.endswith("bias")
    if variant == "sam":
        return torch.ones_like(w)
    if variant in ("elementwise_l2", "elementwise_linf"):
        return w.abs() + eta if (normalize_bias or not is_bias) else torch.ones_like(w)
    if variant == "elementwise_l2_orig":
        return torch.ones_like(w) if is_bias else w.abs() + eta
    if variant == "layerwise_l2":
        return torch.full_like(w, float(w.norm()) + eta)
    if variant == "fisher":
        return (1 + eta * g ** 2) ** -0.5
    raise AssertionError(variant)


@pytest.mark.parametrize("params", ["all", "only_norm", "no_norm"])
@pytest.mark.parametrize("variant", L2_VARIANTS)
def test_l2_geometry_budget_on_perturbed_set(variant, params):
    torch.manual_seed(0)
    model = TinyBN()
    x, y = _data()
    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=0.1), rho=0.3, variant=variant, params=params)
    eps, grads, w0 = _eps_after_first_step(model, opt, x, y)
    norm_names = set(norm_parameter_names(model))
    chosen = {"all": set(eps), "only_norm": norm_names, "no_norm": set(eps) - norm_names}[params]
    v = rs.variants.get(variant)
    sq = 0.0
    for n, e in eps.items():
        if n not in chosen:
            assert torch.count_nonzero(e) == 0, f"{n} perturbed although not selected"
            continue
        T = _T(variant, n, w0[n], grads[n], v.default_eta, v.normalize_bias)
        nz = T != 0
        sq += float(((e[nz] / T[nz]).double() ** 2).sum())
        assert torch.count_nonzero(e[~nz]) == 0
    # ||T^{-1} eps||_2 = rho over the perturbed set (paper Eq. 5, App. A.3 Sec. 8.4 (App. A.3))
    assert math.isclose(math.sqrt(sq), 0.3, rel_tol=1e-4)


@pytest.mark.parametrize("params", ["all", "only_norm"])
def test_linf_formula_and_on_equals_all_on_norm_params(params):
    torch.manual_seed(0)
    model = TinyBN()
    x, y = _data()
    ref = copy.deepcopy(model)
    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05, variant="elementwise_linf", params=params)
    eps, grads, w0 = _eps_after_first_step(model, opt, x, y)
    norm_names = set(norm_parameter_names(model))
    for n, e in eps.items():
        expect = 0.05 * w0[n].abs() * torch.sign(grads[n])
        if params == "only_norm" and n not in norm_names:
            expect = torch.zeros_like(e)
        torch.testing.assert_close(e, expect, rtol=1e-5, atol=1e-7)
    # At equal rho el-ℓ∞ ON perturbs γ, β exactly as el-ℓ∞ all does (the the chapter implementation notes item 2).
    opt2 = SAM(ref, torch.optim.SGD(ref.parameters(), lr=0.1), rho=0.05, variant="elementwise_linf", params="all")
    eps2, _, _ = _eps_after_first_step(ref, opt2, x, y)
    for n in norm_names:
        torch.testing.assert_close(eps[n], eps2[n])


def test_sam_step_equals_foret_update_computed_independently():
    """Full SAM step with SGD+momentum vs a hand-written Foret et al. update (torch.func, no SAM code)."""
    torch.manual_seed(1)
    model = TinyBN().eval()  # eval: BN uses running stats, so the functional reference is exact
    x, y = _data()
    names = [n for n, _ in model.named_parameters()]
    w = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}

    def f(wd):
        return F.cross_entropy(torch.func.functional_call(model, (wd, buffers), (x,)), y)

    g = torch.func.grad(f)(w)
    gn = torch.sqrt(sum((g[n] ** 2).sum() for n in names))
    g_adv = torch.func.grad(f)({n: w[n] + 0.2 * g[n] / gn for n in names})
    lr, mom, wd = 0.05, 0.9, 5e-4
    expect = {n: w[n] - lr * (g_adv[n] + wd * w[n]) for n in names}  # first momentum step = plain step

    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=lr, momentum=mom, weight_decay=wd), rho=0.2)

    def closure():
        opt.zero_grad()
        loss = _loss(model, x, y)
        loss.backward()
        return loss

    opt.step(closure)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expect[n], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("params", ["all", "only_norm", "random_mask"])
@pytest.mark.parametrize("variant", ["sam", "elementwise_l2_orig", "elementwise_linf", "fisher"])
def test_restore_is_exact_and_descent_updates_all_params(variant, params):
    torch.manual_seed(2)
    model = TinyBN()
    x, y = _data()
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=0.0), rho=0.5, variant=variant, params=params)
    opt.zero_grad()
    _loss(model, x, y).backward()
    opt.first_step()
    _loss(model, x, y).backward()
    g_adv = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.second_step()
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), w0[n]), f"{n} not restored bit-exactly"
    # the descent gradient exists for every parameter (all are updated, Sec. 8.4 (App. A.3) / App. C Eq. 11)
    assert all(g is not None and torch.count_nonzero(g) > 0 for g in g_adv.values())


def test_descent_uses_gradient_at_perturbed_point():
    torch.manual_seed(3)
    model = TinyBN()
    x, y = _data()
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=0.1), rho=1.0, params="only_norm")
    opt.zero_grad()
    _loss(model, x, y).backward()
    opt.first_step()
    w_adv = {n: p.detach().clone() for n, p in model.named_parameters()}
    _loss(model, x, y).backward()
    g_adv = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.second_step()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), w0[n] - 0.1 * g_adv[n])
    assert any(not torch.equal(w_adv[n], w0[n]) for n in norm_parameter_names(model))


@pytest.mark.parametrize("params", ["only_norm", "blocks:bn2+ln", "all"])
def test_runtime_mode_gives_same_update(params):
    torch.manual_seed(4)
    a = TinyBN()
    b = copy.deepcopy(a)
    x, y = _data()
    opts = []
    for m, rt in ((a, False), (b, True)):
        opt = SAM(m, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9), rho=0.7, params=params, runtime_mode=rt)
        opts.append(opt)
        for _ in range(3):
            def closure(m=m, opt=opt):
                opt.zero_grad()
                loss = _loss(m, x, y)
                loss.backward()
                return loss
            opt.step(closure)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
        assert q.requires_grad, f"runtime mode left {n} without requires_grad"


def test_runtime_mode_skips_weight_grads_in_ascent():
    model = TinyBN()
    x, y = _data()
    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=0.1), rho=0.5, params="only_norm", runtime_mode=True)
    with opt.ascent_pass():
        _loss(model, x, y).backward()
    assert model.conv1.weight.grad is None and model.fc.weight.grad is None
    assert model.bn1.weight.grad is not None


def test_bn_running_stats_frozen_in_second_pass():
    torch.manual_seed(5)
    model = TinyBN()
    x, y = _data()
    ref = copy.deepcopy(model)
    ref(x)  # one forward in train mode = one running-stat update
    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=0.0), rho=0.5)

    def closure():
        opt.zero_grad()
        loss = _loss(model, x, y)
        loss.backward()
        return loss

    opt.step(closure)
    for n in ("bn1", "bn2"):
        torch.testing.assert_close(getattr(model, n).running_mean, getattr(ref, n).running_mean)
        torch.testing.assert_close(getattr(model, n).running_var, getattr(ref, n).running_var)
        assert int(getattr(model, n).num_batches_tracked) == 1
        assert getattr(model, n).momentum == 0.1
    # the SAM-ON code's behaviour (update twice) stays available as a switch
    model2 = copy.deepcopy(ref)
    opt2 = SAM(model2, torch.optim.SGD(model2.parameters(), lr=0.0), rho=0.5, bn_second_pass="update")
    opt2.zero_grad(); _loss(model2, x, y).backward(); opt2.first_step(); _loss(model2, x, y).backward(); opt2.second_step()
    assert int(model2.bn1.num_batches_tracked) == 3


def test_grad_scaler_two_step_api_matches_fp32():
    """AMP: with GradScaler (scale 2^10) the explicit two-step update equals the unscaled one."""
    torch.manual_seed(6)
    a = TinyBN()
    b = copy.deepcopy(a)
    x, y = _data()
    for variant in ("sam", "fisher"):
        oa = SAM(a, torch.optim.SGD(a.parameters(), lr=0.1), rho=0.3, variant=variant, max_grad_norm=5.0)
        ob = SAM(b, torch.optim.SGD(b.parameters(), lr=0.1), rho=0.3, variant=variant, max_grad_norm=5.0)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        oa.zero_grad(); _loss(a, x, y).backward(); oa.first_step(); _loss(a, x, y).backward(); oa.second_step()
        ob.zero_grad()
        scaler.scale(_loss(b, x, y)).backward()
        ob.first_step(scaler=scaler)
        scaler.scale(_loss(b, x, y)).backward()
        ob.second_step(scaler=scaler)
        scaler.update()
        for p, q in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_grad_scaler_overflow_skips_step():
    model = TinyBN()
    x, y = _data()
    w0 = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=0.1), rho=0.3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    opt.zero_grad()
    (scaler.scale(_loss(model, x, y)) * float("inf")).backward()
    opt.first_step(scaler=scaler)
    (scaler.scale(_loss(model, x, y)) * float("inf")).backward()
    opt.second_step(scaler=scaler)
    scaler.update()
    assert opt.skipped_ascents == 1 and scaler.get_scale() < 2.0 ** 10
    for p, q in zip(model.parameters(), w0):
        assert torch.equal(p.detach(), q)


def test_bad_inputs_fail_clearly():
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    base = torch.optim.SGD(mlp.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no normalization layer"):
        SAM(mlp, base, rho=0.1, params="only_norm")
    with pytest.raises(ValueError, match="rho must be a positive"):
        SAM(mlp, base, rho=0.0)
    with pytest.raises(ValueError, match="rho must be a positive"):
        SAM(mlp, base, rho=-1.0)
    with pytest.raises(ValueError, match="unknown SAM variant 'asam'.*elementwise_l2"):
        SAM(mlp, base, rho=0.1, variant="asam")
    with pytest.raises(ValueError, match="unknown parameter selection"):
        SAM(mlp, base, rho=0.1, params="norms")
    with pytest.raises(TypeError, match="constructed torch.optim.Optimizer"):
        SAM(mlp, torch.optim.SGD, rho=0.1)
    with pytest.raises(ValueError, match="no normalization layer under these prefixes"):
        SAM(TinyBN(), torch.optim.SGD(TinyBN().parameters(), lr=0.1), rho=0.1, params="blocks:layer9")


def test_nan_gradient_reported_with_step_number():
    model = TinyBN()
    x, y = _data()
    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1)

    def closure():
        opt.zero_grad()
        loss = _loss(model, x, y)
        loss.backward()
        return loss

    opt.step(closure)
    opt.step(closure)

    def bad():
        opt.zero_grad()
        loss = _loss(model, x, y) * float("nan")
        loss.backward()
        return loss

    w = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError, match="step 2"):
        opt.step(bad)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), w))


def test_norm_parameter_counts_wrn28_10_meta():
    with torch.device("meta"):
        m = create_model("wrn28_10", 100)
    assert rs.norm_fraction(m) == (17_952, 36_536_884)


def test_selection_by_type_finds_shortcut_bn():
    """timm ResNet's projection shortcut BN is ``downsample.1``: a name rule ('norm'/'bn') misses it."""
    m = create_model("resnet_t", 10)
    names = norm_parameter_names(m)
    by_name = [n for n, _ in m.named_parameters() if "norm" in n or "bn" in n]
    assert any("downsample.1" in n for n in names)
    assert set(by_name) < set(names)
    n_norm = sum(mod.weight.numel() * 2 for mod in m.modules() if isinstance(mod, nn.BatchNorm2d))
    assert rs.norm_fraction(m)[0] == n_norm


def test_layernorm_selected_in_vit():
    m = create_model("vit_t", 10)
    names = norm_parameter_names(m)
    assert names and all(("norm" in n) for n in names)
    assert len(names) == 2 * (2 * 4 + 1)  # norm1/norm2 per block + final norm


def test_sparse_masks_have_sam_on_sparsity():
    torch.manual_seed(7)
    model = TinyBN()
    x, y = _data()
    k = rs.norm_fraction(model)[0]
    for params in ("random_mask", "ssam_f", "ssam_d"):
        opt = SAM(model, torch.optim.SGD(model.parameters(), lr=0.01), rho=0.1, params=params)
        for _ in range(12):
            def closure():
                opt.zero_grad()
                loss = _loss(model, x, y)
                loss.backward()
                return loss
            opt.step(closure)
        assert opt.n_perturbed() == k, params
    with pytest.raises(ValueError, match="sparsity must lie"):
        SAM(model, torch.optim.SGD(model.parameters(), lr=0.01), rho=0.1,
            params=rs.selection.get("random_mask", sparsity=1.5))


def test_ssam_f_mask_picks_largest_squared_gradients():
    torch.manual_seed(8)
    model = TinyBN()
    x, y = _data()
    sel = rs.selection.get("ssam_f", sparsity=0.9)
    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=0.0), rho=0.1, params=sel)
    opt.zero_grad()
    _loss(model, x, y).backward()
    g2 = torch.cat([p.grad.reshape(-1) ** 2 for p in model.parameters()])
    opt.first_step()
    mask = torch.cat([e.mask.reshape(-1) for e in opt.entries])
    assert g2[mask > 0].min() >= g2[mask == 0].max()
    opt.second_step()


def test_lr_scheduler_and_state_dict_roundtrip():
    model = TinyBN()
    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), rho=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x, y = _data()
    for _ in range(2):
        opt.step(lambda: (opt.zero_grad(), _loss(model, x, y).backward())[-1] or torch.zeros(()))
        sched.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.025)
    sd = opt.state_dict()
    opt2 = SAM(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), rho=0.1)
    opt2.load_state_dict(sd)
    assert opt2.step_count == 2 and opt2.param_groups[0]["lr"] == pytest.approx(0.025)


def test_ablations_fix_norm_only_norm_training_and_wd_scope():
    model = TinyBN()
    rs.ablations.fix_norm(model)
    assert torch.all(model.bn1.weight == 1) and torch.all(model.bn1.bias == 0) and not model.bn1.weight.requires_grad
    model = TinyBN()
    rs.ablations.only_norm_training(model)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(norm_parameter_names(model))
    model = TinyBN()
    base = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-3)
    new = rs.ablations.rebuild_with_weight_decay_scope(model, base, "all_but_norm")
    wd_of = {id(p): g["weight_decay"] for g in new.param_groups for p in g["params"]}
    assert wd_of[id(model.bn1.weight)] == 0.0 and wd_of[id(model.conv1.weight)] == 1e-3
    with pytest.raises(ValueError, match="scope"):
        rs.ablations.weight_decay_groups(model, 1e-3, "norm_only")


def test_trainer_integration_and_make_sam():
    from repro.train.loop import train_classifier

    model = create_model("resnet_t", 4)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 4, (32,), generator=g)
    hook = rs.make_sam(0.5, "layerwise_l2", "only_norm", wd_scope="all_but_norm", runtime_mode=True)
    out = train_classifier(model, x, y, epochs=1, lr=0.05, batch_size=16, make_optimizer=hook, progress=False)
    assert len(out["history"]) == 1 and all(p.requires_grad for p in model.parameters())


def test_convergence_bound_theorem_c5():
    """Theorem C.5 (Eq. 12, Sec. 8.4 (App. C)): (1/T) Σ ||∇f(w_t)||² <= 2(f(w0)-f*)/(hT) + 2LhM + L²ρ²(1+Lh)
    for the SAM-ON iteration (Eq. 10-11) with single-sample gradients, on a least-squares problem
    whose first k coordinates play the role of the normalization parameters."""
    g = torch.Generator().manual_seed(0)
    n, d, k = 32, 6, 2
    A = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)

    class LSQ(nn.Module):
        def __init__(self):
            super().__init__()
            self.wN = nn.Parameter(torch.full((k,), 2.0, dtype=torch.float64))
            self.wA = nn.Parameter(torch.full((d - k,), -2.0, dtype=torch.float64))

        def w(self):
            return torch.cat([self.wN, self.wA])

    def f_full(w):
        return 0.5 * ((A @ w - b) ** 2).mean()

    model = LSQ()
    L = float((A ** 2).sum(1).max())  # each f_i = ½(a_i·w − b_i)² is ||a_i||²-smooth
    h, rho, T = 0.5 / L, 0.05, 400
    opt = SAM(model, torch.optim.SGD(model.parameters(), lr=h), rho=rho, params=lambda m: [m.wN])
    w_star = torch.linalg.lstsq(A, b.unsqueeze(1)).solution.squeeze(1)
    f0, fstar = float(f_full(model.w().detach())), float(f_full(w_star))
    gsq, M = [], 0.0
    idx = torch.randint(0, n, (T,), generator=g)
    for t in range(T):
        w = model.w().detach()
        wg = w.clone().requires_grad_(True)
        gsq.append(float(torch.autograd.grad(f_full(wg), wg)[0].pow(2).sum()))
        i = int(idx[t])
        # M (Assumption C.2) measured on the trajectory, at w_t and at the perturbed point
        M = max(M, float(((A @ w - b)[:, None] * A).pow(2).sum(1).max()))

        def closure(i=i):
            opt.zero_grad()
            loss = 0.5 * (A[i] @ model.w() - b[i]) ** 2
            loss.backward()
            return loss

        opt.zero_grad()
        closure().detach()
        opt.first_step()
        wp = model.w().detach()
        M = max(M, float(((A @ wp - b)[:, None] * A).pow(2).sum(1).max()))
        assert float((wp - w).norm()) == pytest.approx(rho, rel=1e-9)  # Eq. 18: ||w^{t+1/2} − w^t|| = ρ
        assert torch.equal(wp[k:], w[k:])  # non-norm coordinates are not perturbed (Eq. 10)
        closure()
        opt.second_step()
    lhs = sum(gsq) / T
    rhs = 2 * (f0 - fstar) / (h * T) + 2 * L * h * M + L ** 2 * rho ** 2 * (1 + L * h)
    assert lhs <= rhs
    assert lhs < gsq[0]  # and training actually made progress


def test_adamw_base_steps_with_perturbed_gradient():
    """With AdamW the 'borrowed' gradient from w + eps replaces the usual one (Sec. 2.3)."""
    torch.manual_seed(9)
    a = TinyBN()
    b = copy.deepcopy(a)
    x, y = _data()
    opt = SAM(a, torch.optim.AdamW(a.parameters(), lr=1e-2, weight_decay=0.1), rho=0.5, variant="layerwise_l2",
              params="only_norm")
    opt.zero_grad()
    _loss(a, x, y).backward()
    opt.first_step()
    _loss(a, x, y).backward()
    g_adv = [p.grad.clone() for p in a.parameters()]
    opt.second_step()
    ref = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=0.1)
    for p, g in zip(b.parameters(), g_adv):
        p.grad = g
    ref.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


# ------------------------------------------------------------------ issue 19 Sec. 2: inert / crashing hyperparameters
def _tiny():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    return m, torch.optim.SGD(m.parameters(), lr=0.1)


@pytest.mark.parametrize("variant,kw,param", [("sam", dict(eta=0.5), "eta"), ("sam", dict(normalize_bias=False), "normalize_bias"),
                                              ("fisher", dict(normalize_bias=False), "normalize_bias")])
def test_sam_rejects_inert_hyperparameters(variant, kw, param):
    """Before: SAM(variant='sam', eta=0.5) and normalize_bias for sam/fisher were silently ignored."""
    m, base = _tiny()
    with pytest.raises(ValueError, match=param):
        SAM(m, base, rho=0.1, variant=variant, **kw)
    SAM(m, base, rho=0.1, variant="elementwise_l2", eta=0.5, normalize_bias=False)   # used there


@pytest.mark.parametrize("name,kw,param", [("ssam_f", dict(update_every=0), "update_every"),
                                           ("ssam_d", dict(update_every=0), "update_every"),
                                           ("random_mask", dict(resample_every=-1), "resample_every"),
                                           ("ssam_f", dict(sparsity=1.5), "sparsity")])
def test_selection_bad_values_raise_at_construction(name, kw, param):
    """Before: update_every=0 raised ZeroDivisionError at the first update step."""
    with pytest.raises(ValueError, match=param):
        rs.selection.get(name, **kw)
