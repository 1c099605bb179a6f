"""Theory helpers: exact Hessian of a tiny model, BN↔conv rescaling, the Fig. 1 linear model.

- :func:`flat_hessian`: exact Hessian of the batch loss w.r.t. all parameters (for Props. 1-2,
  Eqs. 2-3, Sec. 3.1 and App. A.1 of the paper in Sec. 8.3);
- :func:`asymptotic_avg`, :func:`asymptotic_worst_l2`: leading terms (ρ²/2) tr(H ⊙ |w||wᵀ|)
  (Gaussian; ρ²/6 for uniform) and (ρ²/2) λ_max(H ⊙ |w||w|ᵀ);
- :func:`rescale_bn_next_conv`: the multiplicative symmetry of the invariance lemma (Sec. 3.2);
- :func:`linear_model_sharpness`: Fig. 1 (Sec. 3.2) — closed-form worst-case ℓ2 sharpness (m = 1,
  radius ρ‖w‖₂, as the authors' released notebook) of a logistic model scaled by α.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from repro.sharpness.functional import FlatModel


def flat_hessian(model: nn.Module, x, y, logit_norm=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(w0, ∇L, ∇²L) of the batch cross-entropy over the flat parameter vector (eval mode)."""
    model.eval()
    flat = FlatModel(model, logit_norm=logit_norm)
    f = lambda w: flat.loss(w, x, y)  # noqa: E731
    w0 = flat.w0
    g = torch.func.grad(f)(w0)
    H = torch.func.hessian(f)(w0)
    return w0, g, H


def asymptotic_avg(H: torch.Tensor, w: torch.Tensor, rho: float, noise: str = "gaussian") -> float:
    """Prop. 2 / Eq. 2: S_avg ≈ (ρ²/2) tr(H ⊙ |w||w|ᵀ) (Gaussian); variance ρ²/3 for uniform noise."""
    q = float((torch.diagonal(H) * w * w).sum())
    return (rho ** 2 / 2) * q * (1.0 if noise == "gaussian" else 1.0 / 3.0)


def asymptotic_worst_l2(H: torch.Tensor, w: torch.Tensor, rho: float) -> float:
    """Eq. 3 at a critical point: S_max,ℓ2 ≈ (ρ²/2) λ_max(H ⊙ |w||w|ᵀ)."""
    a = w.abs()
    return (rho ** 2 / 2) * float(torch.linalg.eigvalsh(a[:, None] * H * a[None, :])[-1])


def first_order_worst(g: torch.Tensor, w: torch.Tensor, rho: float, norm: str) -> float:
    """Prop. 1 away from critical points: S_max,p ≈ ρ ‖∇L ⊙ |w|‖_q (q = 1 for ℓ∞, 2 for ℓ2)."""
    v = (g * w.abs())
    return rho * float(v.abs().sum() if norm == "linf" else v.norm())


@torch.no_grad()
def rescale_bn_next_conv(bn: nn.Module, conv: nn.Module, alpha: float) -> None:
    """Multiply BN's γ, β by α and divide the next conv's weight by α (ReLU in between): the network
    function is unchanged (Sec. 3.2, invariance (1)); adaptive sharpness is too (Sec. 3.1)."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0 (positive homogeneity of ReLU), got {alpha}")
    bn.weight.mul_(alpha)
    bn.bias.mul_(alpha)
    conv.weight.div_(alpha)


def linear_task(d: int = 100, n_train: int = 50, std: float = 0.025, seed: int = 0):
    """Two Gaussian classes at ±v (‖v‖ = 1), labels ±1 (the authors' released notebook)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=d)
    v /= np.linalg.norm(v)
    yl = rng.choice([-1.0, 1.0], size=n_train)
    X = yl[:, None] * v[None, :] + std * rng.normal(size=(n_train, d))
    return X, yl


def train_logistic(X, y, lr: float = 5.0, iters: int = 100, seed: int = 0):
    """GD on the logistic loss from w ~ N(0, I)/500 (the authors' released notebook)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=X.shape[1]) / 500
    for _ in range(iters):
        mgn = y * (X @ w)
        w -= lr * (-(y * (1 / (1 + np.exp(mgn))))[:, None] * X).mean(0)
    return w


def linear_model_sharpness(w, X, y, rho: float, alphas, logit_norm: bool = False) -> np.ndarray:
    """Fig. 1: worst-case sharpness of α·w with m = 1 and radius ρ‖αw‖₂ (closed form: the worst
    margin is y xᵀw − ρ‖w‖‖x‖).  With ``logit_norm`` the binary logit is replaced by its sign-scaled
    version of the authors' notebook (f / |f|), so the loss, and sharpness, do not depend on α."""
    out = []
    xn = np.linalg.norm(X, axis=1)
    for a in np.asarray(alphas, float):
        wa = a * w
        m0 = y * (X @ wa)
        m1 = m0 - rho * np.linalg.norm(wa) * xn
        if logit_norm:
            # binary logit normalization f/|f|: only the sign of the (worst) margin is left,
            # and both margins scale linearly in α, so the result does not depend on α
            m0, m1 = np.sign(m0), np.sign(m1)
        out.append(float(np.mean(np.logaddexp(0, -m1) - np.logaddexp(0, -m0))))
    return np.asarray(out)


def invariance_table(model: nn.Module, bn: nn.Module, conv: nn.Module, points, alphas=(0.1, 1.0, 10.0),
                     definitions=(("adaptive_worst_linf", 0.002), ("adaptive_worst_l2", 0.5),
                                  ("adaptive_avg_l2", 0.1), ("standard_worst_linf", 0.0005),
                                  ("standard_worst_l2", 0.25), ("standard_avg_l2", 0.05)),
                     steps: int = 20, n_samples: int = 20, seed: int = 0):
    """Sharpness of the original and of BN↔conv rescaled copies (invariance lemma, Sec. 3.1).
    Works on a deep copy of ``model`` per α (outside any APGD loop).  Returns a DataFrame with the
    value per (definition, α), the function change max|Δf|, and the relative deviation from α = 1.
    ``bn``/``conv`` = None rescales every pair of :func:`find_bn_conv_pairs` (one pair changes only a
    small share of the weights, so standard sharpness would move little).  Use a *trained* model: timm ResNets
    start with the last BN of each block at γ = 0 (zero-init), which makes the block's conv2
    irrelevant to the output, so standard sharpness would not change either."""
    import copy

    import pandas as pd

    from repro.sharpness.measure import measure

    if bn is None or conv is None:
        pairs = find_bn_conv_pairs(model)
    else:
        pairs = [(bn, conv)]
    names = {id(mm): n for n, mm in model.named_modules()}
    pair_names = [(names[id(b)], names[id(c)]) for b, c in pairs]
    rows = []
    x, y = points
    with torch.no_grad():
        base_out = model.eval()(x)
    for a in alphas:
        m = copy.deepcopy(model).eval()
        for bn_name, conv_name in pair_names:
            rescale_bn_next_conv(m.get_submodule(bn_name), m.get_submodule(conv_name), a)
        with torch.no_grad():
            df_ = float((m(x) - base_out).abs().max())
        for d, rho in definitions:
            rows.append(dict(definition=d, rho=rho, alpha=a, function_change=df_,
                             sharpness=measure(m, [points], d, rho, steps=steps, n_samples=n_samples, seed=seed)))
    df = pd.DataFrame(rows)
    ref = df[df.alpha == 1.0].set_index("definition")["sharpness"]
    df["rel_dev"] = [abs(r.sharpness - ref[r.definition]) / max(abs(ref[r.definition]), 1e-12) for r in df.itertuples()]
    return df


def fit_tiny_mlp(n: int = 60, d_in: int = 3, hidden: int = 4, k: int = 3, seed: int = 0, rounds: int = 5):
    """A float64 tanh MLP fitted by L-BFGS to a critical point of the cross-entropy (for Props. 1-2).

    Every input appears k + 1 times with conflicting labels, so the minimum has a non-zero loss at
    finite weights and a non-degenerate Hessian.  (On interpolable data L-BFGS drives the loss
    towards 0 and the weights to infinity, where H ⊙ |w||w|ᵀ degenerates to nearly rank one and
    tr = λ_max, which would make the average- and worst-case checks the same check.)  Returns (model in eval mode, x, y,
    gradient norm at the returned point)."""
    g = torch.Generator().manual_seed(int(seed))
    n_unique = max(1, n // (k + 1))
    xu = torch.randn(n_unique, d_in, generator=g, dtype=torch.float64)
    # every input carries every label once plus one random extra: the optimal logits (log label
    # frequencies) are finite, so the loss has a genuine minimum at finite weights
    x = xu.repeat_interleave(k + 1, 0)
    y = torch.cat([torch.cat([torch.arange(k), torch.randint(0, k, (1,), generator=g)]) for _ in range(n_unique)])
    torch.manual_seed(int(seed))
    model = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, k)).double()
    opt = torch.optim.LBFGS(model.parameters(), max_iter=500, tolerance_grad=1e-13, tolerance_change=1e-16,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    for _ in range(int(rounds)):
        opt.step(closure)
    model.eval()
    _, gr, _ = flat_hessian(model, x, y)
    return model, x, y, float(gr.norm())


def asymptotics_table(rhos=(0.2, 0.1, 0.05, 0.02), n_samples: int = 5000, steps: int = 100, seed: int = 0):
    """Measured adaptive sharpness of a tiny MLP vs the leading terms of Props. 1-2 (Eqs. 2-3,
    Sec. 3.1, App. A.1), for a sweep of radii ρ → 0.

    - at the critical point of :func:`fit_tiny_mlp`: average-case Gaussian vs (ρ²/2) tr(H ⊙ |w||w|ᵀ)
      (``avg_ratio``), worst-case ℓ2 (APGD, ``steps`` iterations) vs (ρ²/2) λ_max(H ⊙ |w||w|ᵀ)
      (``worst_ratio``);
    - at the untrained initialization (not a critical point): worst-case ℓ∞ vs the first-order
      term ρ‖∇L ⊙ |w|‖₁ (``first_order_ratio``).

    Returns (DataFrame with one row per ρ, dict with the gradient norm at the fitted point and
    tr/λ_max of the rescaled Hessian)."""
    import pandas as pd

    from repro.sharpness.measure import measure

    if n_samples < 1 or steps < 1:
        raise ValueError(f"n_samples and steps must be >= 1, got {n_samples}, {steps}")
    mlp, x, y, gnorm = fit_tiny_mlp(seed=seed)
    w, _, H = flat_hessian(mlp, x, y)
    init = nn.Sequential(nn.Linear(x.shape[1], 4), nn.Tanh(), nn.Linear(4, 3)).double().eval()
    wi, gi, _ = flat_hessian(init, x, y)
    rows = []
    for rho in rhos:
        rows.append(dict(
            rho=float(rho),
            avg_measured=measure(mlp, [(x, y)], "adaptive_avg_l2", rho, n_samples=n_samples, seed=seed),
            avg_theory=asymptotic_avg(H, w, rho),
            worst_l2_measured=measure(mlp, [(x, y)], "adaptive_worst_l2", rho, steps=steps, seed=seed),
            worst_l2_theory=asymptotic_worst_l2(H, w, rho),
            first_order_measured=measure(init, [(x, y)], "adaptive_worst_linf", rho * 1e-2, steps=steps,
                                         seed=seed, init="zero"),
            first_order_theory=first_order_worst(gi, wi, rho * 1e-2, "linf")))
    df = pd.DataFrame(rows)
    df["avg_ratio"] = df.avg_measured / df.avg_theory
    df["worst_ratio"] = df.worst_l2_measured / df.worst_l2_theory
    df["first_order_ratio"] = df.first_order_measured / df.first_order_theory
    a = w.abs()
    Ht = a[:, None] * H * a[None, :]
    info = dict(grad_norm=gnorm, tr_rescaled=float(torch.trace(Ht)),
                lmax_rescaled=float(torch.linalg.eigvalsh(Ht)[-1]), n_params=int(w.numel()))
    return df, info


def fig1_experiment(rhos=(0.5, 0.25, 0.1), alphas=None, ln_rho: float = 0.5, seed: int = 0):
    """Fig. 1 (Sec. 3.2): the curves of :func:`linear_model_sharpness` for several ρ plus the
    logit-normalized one, and a summary (peak, α at the peak, value at the largest α, range of the
    normalized curve).  Returns (alphas, {label: curve}, summary dict)."""
    alphas = np.logspace(-3, 3, 30) if alphas is None else np.asarray(alphas, float)
    X, y = linear_task(seed=seed)
    w = train_logistic(X, y, seed=seed)
    curves = {f"adaptive sharpness, ρ = {r}": linear_model_sharpness(w, X, y, r, alphas) for r in rhos}
    ln = linear_model_sharpness(w, X, y, ln_rho, alphas, logit_norm=True)
    main = curves[f"adaptive sharpness, ρ = {rhos[0]}"]
    curves[f"with logit normalization, ρ = {ln_rho}"] = ln
    summary = dict(rho=float(rhos[0]), peak=float(main.max()), peak_alpha=float(alphas[main.argmax()]),
                   end=float(main[-1]), ln_range=float(np.ptp(ln)),
                   interior_peak=bool(0 < main.argmax() < len(main) - 1))
    return alphas, curves, summary


def find_bn_conv_pairs(model: nn.Module) -> list:
    """Every residual block's (bn1, conv2) pair — BN → ReLU → conv in timm's/torchvision's
    BasicBlock — i.e. the places where the multiplicative symmetry of the invariance lemma applies."""
    pairs = []
    for name, mod in model.named_modules():
        bn, conv = getattr(mod, "bn1", None), getattr(mod, "conv2", None)
        if isinstance(bn, nn.modules.batchnorm._BatchNorm) and isinstance(conv, nn.Conv2d) and mod is not model:
            pairs.append((bn, conv))
    if not pairs:
        raise ValueError("no block with a BatchNorm `bn1` followed by a Conv2d `conv2` found; pass bn and conv explicitly")
    return pairs


def invariance_summary(inv) -> dict:
    """Scalars of :func:`invariance_table`: the largest relative change of any adaptive definition,
    the smallest relative change of any standard definition (over α ≠ 1), and the largest change of
    the network function (which must be ~0 for the test to be meaningful)."""
    sub = inv[inv.alpha != 1.0]
    if not len(sub):
        raise ValueError("invariance table has no α ≠ 1 rows")
    ad = sub[sub.definition.str.startswith("adaptive")]
    st = sub[sub.definition.str.startswith("standard")]
    per_std = st.groupby("definition").rel_dev.min()
    return dict(adaptive_max_rel_dev=float(ad.rel_dev.max()) if len(ad) else float("nan"),
                standard_min_rel_dev=float(per_std.min()) if len(per_std) else float("nan"),
                max_function_change=float(sub.function_change.max()))


@torch.no_grad()
def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm generic affine parameters and running statistics (γ ~ U[0.5, 1.5],
    β, μ ~ N(0, 0.2²), σ² ~ U[0.5, 2]), in place.  The invariance lemma holds at any weights; a
    freshly initialised timm ResNet is a degenerate point for checking it, because the last BN of
    every block starts at γ = 0 (zero-init), which switches the rescaled convolution off."""
    g = torch.Generator().manual_seed(int(seed))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            if m.weight is not None:
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
            if m.running_mean is not None:
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
    return model


def run_invariance(cfg: dict, data: dict, seed: int = 0, alphas=(0.1, 1.0, 10.0)):
    """Sec. 2.1 of the chapter notebook: a ``cfg["zoo"]["arch"]`` network with generic BN parameters
    (:func:`randomize_bn`), every block's BN → ReLU → conv pair rescaled by each α, sharpness on the
    zoo's sharpness points (:func:`invariance_table`).  Returns ``(table, summary)``."""
    from repro.models import create_model, preprocess
    from repro.studies.ch5_sharpness.experiment import sharpness_points

    x, y = sharpness_points(data["x_train"], data["y_train"], cfg["sharpness"]["n_points"])
    torch.manual_seed(seed)
    net = randomize_bn(create_model(cfg["zoo"]["arch"], data["num_classes"]), seed=seed).eval()
    inv = invariance_table(net, None, None, (preprocess(x), y), alphas=alphas, steps=cfg["invariance"]["steps"],
                           n_samples=cfg["invariance"]["n_samples"], seed=seed)
    return inv, invariance_summary(inv)
