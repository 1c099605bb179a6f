import numpy as np
import torch

from repro.sharpness import dln


def _uv(d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    v = torch.randn(d, generator=g, dtype=torch.float64) * 2
    return u, v


def test_hessian_matches_autograd():
    X, y, _ = dln.make_task(d=6, n=4, sparsity=0.5, seed=0)
    u, v = _uv()
    f = lambda w: dln.loss(w[:6], w[6:], X, y)  # noqa: E731
    H = torch.autograd.functional.hessian(f, torch.cat([u, v]))
    assert torch.allclose(H, dln.hessian(u, v, X, y), atol=1e-10)


def test_corrected_scaling_gives_l1_and_printed_does_not():
    X, y, _ = dln.make_task(d=6, n=4, sparsity=0.5, seed=1)
    u, v = _uv(seed=2)
    beta = u * v
    half_tr = 0.5 * torch.trace(dln.rescaled_hessian(u, v, X, y, "corrected"))
    assert abs(float(half_tr) - float(beta.abs().sum())) < 1e-10  # diag(XᵀX) = 1
    half_tr_p = 0.5 * torch.trace(dln.rescaled_hessian(u, v, X, y, "printed"))
    assert abs(float(half_tr_p) - float(beta.abs().sum())) > 1e-3  # the the chapter implementation notes
    half_tr_e = 0.5 * torch.trace(dln.rescaled_hessian(u, v, X, y, "elementwise"))
    assert abs(float(half_tr_e) - float((beta ** 2).sum())) < 1e-10  # Sec. 8.3 (App. A)
    # balanced solutions: both assignments coincide
    ub = beta.abs().sqrt() * torch.sign(beta)
    vb = beta.abs().sqrt()
    assert torch.allclose(dln.rescaled_hessian(ub, vb, X, y, "corrected"), dln.rescaled_hessian(ub, vb, X, y, "printed"))


def test_lambda_max_two_linf_whitened_minimum():
    # G = I and r = 0: λ_max(∇̃²L) = 2‖β‖∞ (Eq. 9 with the corrected c)
    d = 5
    X = torch.eye(d, dtype=torch.float64)
    u, v = _uv(d, seed=3)
    y = X @ (u * v)
    lm = torch.linalg.eigvalsh(dln.rescaled_hessian(u, v, X, y))[-1]
    assert abs(float(lm) - 2 * float((u * v).abs().max())) < 1e-10
    lp = torch.linalg.eigvalsh(dln.hessian(u, v, X, y))[-1]
    assert abs(float(lp) - float((u ** 2 + v ** 2).max())) < 1e-10


def test_training_reaches_target_and_measures():
    X, y, bs = dln.make_task(d=20, n=15, sparsity=0.8, seed=0)
    run = dln.train_many(X, y, lrs=[0.1, 0.2], init_scales=[0.1, 0.5], target_loss=1e-6, max_steps=50000)
    assert run.converged.all()
    m = dln.measures(run, X, y, bs)
    assert np.allclose(m["half_tr_adaptive"], m["l1"], rtol=1e-8)
    assert (m["train_loss"] <= 1e-6).all()
