"""Small-ρ asymptotics (Props. 1-2, Eqs. 2-3) against the exact Hessian, and the Fig. 1 model."""
import numpy as np
import torch
from torch import nn

from repro.sharpness import measure
from repro.studies.ch5_sharpness import theory

torch.set_num_threads(1)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double().eval()


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(10, 3, generator=g, dtype=torch.float64), torch.randint(0, 3, (10,), generator=g)


def _critical():
    """The MLP at a genuine minimum with a non-degenerate rescaled Hessian (conflicting labels, see
    theory.fit_tiny_mlp): at an interpolating near-minimum tr = λ_max and the two checks coincide."""
    m, x, y, gnorm = theory.fit_tiny_mlp()
    assert gnorm < 1e-4
    return m, x, y


def test_average_case_matches_trace_term():
    m, x, y = _critical()
    w, g, H = theory.flat_hessian(m, x, y)
    rho = 0.02
    # with many samples the Monte-Carlo estimate converges to (ρ²/2) tr(H ⊙ |w||w|ᵀ) + O(ρ³)
    est = measure(m, [(x, y)], "adaptive_avg_l2", rho, n_samples=20000, seed=0)
    ref = theory.asymptotic_avg(H, w, rho)
    assert abs(est - ref) < 0.15 * abs(ref)
    est_u = measure(m, [(x, y)], "adaptive_avg_linf", rho, n_samples=20000, seed=0)
    assert abs(est_u - theory.asymptotic_avg(H, w, rho, "uniform")) < 0.15 * abs(ref) / 3


def test_worst_case_l2_matches_lambda_max_at_critical_point():
    m, x, y = _critical()
    w, g, H = theory.flat_hessian(m, x, y)
    rho = 0.01
    assert theory.first_order_worst(g, w, rho, "l2") < 0.05 * theory.asymptotic_worst_l2(H, w, rho)
    est = measure(m, [(x, y)], "adaptive_worst_l2", rho, steps=100)
    ref = theory.asymptotic_worst_l2(H, w, rho)
    assert abs(est - ref) < 0.1 * ref, (est, ref)


def test_worst_case_first_order_term():
    m = _mlp()
    x, y = _data()
    w, g, H = theory.flat_hessian(m, x, y)
    for norm, rho in (("linf", 1e-4), ("l2", 1e-4)):
        est = measure(m, [(x, y)], f"adaptive_worst_{norm}", rho, steps=20, init="zero")
        ref = theory.first_order_worst(g, w, rho, norm)
        assert abs(est - ref) < 0.05 * ref, (norm, est, ref)


def test_rescale_bn_next_conv_keeps_function():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3)).eval()
    x = torch.randn(2, 3, 8, 8)
    a = net(x)
    theory.rescale_bn_next_conv(net[1], net[3], 3.0)
    assert torch.allclose(a, net(x), atol=1e-5)


def test_fig1_linear_model_scale_sensitivity():
    X, y = theory.linear_task()
    w = theory.train_logistic(X, y)
    alphas = np.logspace(-3, 2, 12)
    s = theory.linear_model_sharpness(w, X, y, 0.5, alphas)
    assert s.argmax() not in (0, len(s) - 1)  # rises, then decays
    assert s[-1] < 1e-3 * s.max()
    s_ln = theory.linear_model_sharpness(w, X, y, 0.5, alphas, logit_norm=True)
    assert np.ptp(s_ln) < 1e-12
