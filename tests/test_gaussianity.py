"""Gaussianity diagnostics of chapter 4: Lemma 3.1, Eq. 5, QQ data, norm comparisons, rejected classes."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from repro.ood import gaussianity as G


def gaussian_classes(rng, C=4, n=400, d=6, scales=None):
    """Class-conditional Gaussians with a shared covariance (scales=None) or per-class scales."""
    A = rng.normal(size=(d, d)) / np.sqrt(d)
    cov = A @ A.T + 0.5 * np.eye(d)
    L = np.linalg.cholesky(cov)
    mu = rng.normal(0, 3, (C, d))
    y = np.repeat(np.arange(C), n)
    s = np.ones(C) if scales is None else np.asarray(scales)
    x = mu[y] + (rng.standard_normal((C * n, d)) @ L.T) * s[y, None]
    return x, y, mu, cov


# ------------------------------------------------------------------ Lemma 3.1
def test_lemma31_variance_forms_agree():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(7, 7))
    cov, mu = A @ A.T, rng.normal(size=7)
    m, v = G.lemma31_moments(mu, cov)
    assert m == pytest.approx(np.trace(cov) + mu @ mu)
    assert v == pytest.approx(G.lemma31_variance_eigen(mu, cov), rel=1e-10)


def test_lemma31_monte_carlo():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5, 5))
    cov, mu = A @ A.T / 5, rng.normal(size=5)
    x = rng.multivariate_normal(mu, cov, size=400_000)
    sq = (x * x).sum(1)
    m, v = G.lemma31_moments(mu, cov)
    assert sq.mean() == pytest.approx(m, rel=5e-3)
    assert sq.var() == pytest.approx(v, rel=2e-2)


def test_lemma31_table_gaussian_vs_heavy_tailed():
    rng = np.random.default_rng(2)
    x, y, _, _ = gaussian_classes(rng, d=20, n=2000)
    t = G.lemma31_table(x, y)
    # Gaussian classes with a shared covariance: observed spread of ||phi||^2 matches the lemma
    np.testing.assert_allclose(t.sd_ratio, 1, atol=0.1)
    np.testing.assert_allclose(t.observed_mean / t.predicted_mean, 1, atol=0.02)
    # a heavy-tailed radial factor inflates the spread far beyond the lemma
    r = rng.lognormal(0, 0.6, len(x))[:, None]
    t2 = G.lemma31_table(x * r, y)
    assert (t2.sd_ratio > 1.5).all()


# ------------------------------------------------------------------ Eq. 5
def test_expected_squared_projection_closed_form_vs_monte_carlo():
    rng = np.random.default_rng(3)
    B = rng.normal(size=(6, 6))
    A = B + B.T
    assert G.expected_squared_projection(A) == pytest.approx(G.mc_expected_squared_projection(A, 400_000), rel=1e-2)


def test_sphere_moments_of_the_derivation():
    d = 5
    rng = np.random.default_rng(4)
    u = rng.standard_normal((400_000, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    assert np.mean(u[:, 0] ** 4) == pytest.approx(3 / (d * (d + 2)), rel=1e-2)
    assert np.mean(u[:, 0] ** 2 * u[:, 1] ** 2) == pytest.approx(1 / (d * (d + 2)), rel=2e-2)


def test_deviation_score_matches_direct_formula():
    rng = np.random.default_rng(5)
    x, y, _, _ = gaussian_classes(rng, scales=[0.5, 1, 1.5, 3], n=100)
    mean, per = G.deviation_score(x, y)
    # direct: Sigma^{-1/2} via scipy sqrtm, class covariances with bias (1/N_c)
    from scipy.linalg import sqrtm
    fit = G.fit_class_gaussians(x, y)
    S = np.linalg.inv(np.real(sqrtm(fit.cov)))
    ref = []
    for c in range(4):
        Ci = np.cov(x[y == c].T, bias=True)
        A = S @ (Ci - fit.cov) @ S
        ref.append((2 * np.trace(A @ A) + np.trace(A) ** 2) / (6 * 8))
    np.testing.assert_allclose(per, ref, rtol=1e-8)
    assert mean == pytest.approx(np.mean(ref))


def test_pooled_covariance_identity_and_deviation_zero_for_identical_classes():
    rng = np.random.default_rng(6)
    x, y, _, _ = gaussian_classes(rng, n=300)
    fit = G.fit_class_gaussians(x, y)
    pooled = sum(fit.counts[c] / len(x) * np.cov(x[y == c].T, bias=True) for c in range(4))
    np.testing.assert_allclose(pooled, fit.cov, rtol=1e-10)
    # identical class clouds (shifted copies): every A_i = 0
    base = rng.normal(size=(200, 5))
    xs = np.concatenate([base + k * 10 for k in range(3)])
    ys = np.repeat(np.arange(3), 200)
    assert G.deviation_score(xs, ys)[0] == pytest.approx(0, abs=1e-20)


def test_deviation_score_grows_with_class_scale_differences_and_normalization_helps():
    rng = np.random.default_rng(7)
    x, y, _, _ = gaussian_classes(rng, d=8, n=500)
    equal = G.deviation_score(x, y)[0]
    # per-sample radial factor with class-dependent scale: norms vary across and within classes
    r = np.array([0.3, 1.0, 2.0, 5.0])[y] * rng.lognormal(0, 0.4, len(y))
    xr = x * r[:, None]
    unequal = G.deviation_score(xr, y)[0]
    assert unequal > 5 * equal
    assert G.deviation_score(xr, y, normalize=True)[0] < unequal


def test_deviation_score_is_invariant_to_invertible_linear_maps():
    rng = np.random.default_rng(8)
    x, y, _, _ = gaussian_classes(rng, scales=[1, 2, 1, 0.5], n=200)
    T = rng.normal(size=(6, 6)) + 3 * np.eye(6)
    assert G.deviation_score(x @ T.T, y)[0] == pytest.approx(G.deviation_score(x, y)[0], rel=1e-7)


# ------------------------------------------------------------------ norms and sampling
def test_sampled_gaussian_has_fitted_moments():
    rng = np.random.default_rng(9)
    x, y, _, _ = gaussian_classes(rng, n=300)
    fit = G.fit_class_gaussians(x, y)
    xs, ys = G.sample_fitted_gaussian(fit, 20_000, seed=1)
    refit = G.fit_class_gaussians(xs, ys)
    np.testing.assert_allclose(refit.means, fit.means, atol=0.05)
    np.testing.assert_allclose(refit.cov, fit.cov, atol=0.05)


def test_norm_comparison_flags_heavy_tails_and_normalized_features_have_unit_norm():
    rng = np.random.default_rng(10)
    x, y, _, _ = gaussian_classes(rng, d=30, n=500)
    s_gauss = G.norm_spread_summary(G.norm_comparison(x, y))
    assert s_gauss["within_ratio"] == pytest.approx(1, abs=0.15)
    xr = x * rng.lognormal(0, 0.5, len(x))[:, None]
    s_heavy = G.norm_spread_summary(G.norm_comparison(xr, y))
    assert s_heavy["within_ratio"] > 2
    comp = G.norm_comparison(xr, y, normalize=True)
    np.testing.assert_allclose(comp["real"][0], 1.0)


def test_qq_data_of_gaussian_is_diagonal_and_heavy_tails_are_not():
    rng = np.random.default_rng(11)
    x, y, mu, _ = gaussian_classes(rng, n=3000)
    fit = G.fit_class_gaussians(x, y)
    dirs = G.qq_directions(fit, n_random=2, seed=0)
    assert set(dirs) == {"random1", "random2", "top eigendirection", "small eigendirection"}
    for u in dirs.values():
        assert np.linalg.norm(u) == pytest.approx(1)
        th, sq = G.qq_data(x, y, u)
        inner = np.abs(th) < 2
        np.testing.assert_allclose(sq[inner], th[inner], atol=0.1)
    k = G.projection_kurtosis(x, y, dirs)
    assert max(abs(v) for v in k.values()) < 0.3
    # Gaussian scale mixture around the class means: heavy-tailed, still centred
    xt = mu[y] + (x - mu[y]) * rng.lognormal(0, 0.7, (len(x), 1))
    assert min(G.projection_kurtosis(xt, y, dirs).values()) > 1


def test_class_variance_ratios_are_one_for_shared_covariance():
    rng = np.random.default_rng(12)
    x, y, _, _ = gaussian_classes(rng, n=5000)
    u = G.qq_directions(G.fit_class_gaussians(x, y))["random"]
    np.testing.assert_allclose(G.class_variance_ratios(x, y, u), 1, atol=0.1)
    r = G.class_variance_ratios(*gaussian_classes(rng, n=5000, scales=[1, 1, 1, 3])[:2], u)
    assert r[3] / r[0] == pytest.approx(9, rel=0.15)


# ------------------------------------------------------------------ rejected classes, confound
def test_rejected_classes_counts_and_uniform_expectation():
    y = np.repeat(np.arange(10), 20)
    s = np.arange(200.0)  # class 0 holds the 20 lowest scores
    out = G.rejected_classes(s, y, tpr=0.95)
    assert out["n_rejected"] == 10 and out["rejected_classes"] == 1
    # Monte Carlo reference for the expectation under uniform rejection
    rng = np.random.default_rng(0)
    mc = np.mean([len(np.unique(y[rng.choice(200, 10, replace=False)])) for _ in range(20_000)])
    assert out["expected_uniform"] == pytest.approx(mc, rel=1e-2)


def test_norm_confound_table():
    rng = np.random.default_rng(13)
    nid, nood = rng.uniform(1, 2, 300), rng.uniform(0.5, 2, 200)
    tab = G.norm_confound_table(nid, nood, {"maha": (-1 / nid, -1 / nood), "random": (rng.normal(size=300),
                                                                                     rng.normal(size=200))},
                                confidence_id=nid, correct_id=nid > 1.5)
    row = tab.set_index("quantity")
    assert row.loc["score: maha", "pooled"] == pytest.approx(1.0)
    assert abs(row.loc["score: random", "pooled"]) < 0.2
    assert row.loc["correctness (AUROC of norm)", "id"] == pytest.approx(1.0)


# ------------------------------------------------------------------ bad input
def test_bad_input_messages():
    x = np.ones((4, 3))
    with pytest.raises(ValueError, match="one entry per feature row"):
        G.fit_class_gaussians(x, np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="integer class indices"):
        G.fit_class_gaussians(x, np.zeros(4))
    with pytest.raises(ValueError, match="zero l2 norm"):
        G.fit_class_gaussians(np.zeros((4, 3)), np.zeros(4, dtype=int), normalize=True)
    with pytest.raises(ValueError, match="direction must have shape"):
        G.centred_projections(np.random.default_rng(0).normal(size=(4, 3)), np.zeros(4, dtype=int), np.ones(2))


def test_figures_build_from_diagnostics():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from repro.plots import gaussianity as P

    rng = np.random.default_rng(14)
    x, y, _, _ = gaussian_classes(rng, n=100)
    comp = {"unnormalised": G.norm_comparison(x, y), "normalised": G.norm_comparison(x, y, normalize=True)}
    dirs = G.qq_directions(G.fit_class_gaussians(x, y))
    qq = {d: {"unnormalised": G.qq_data(x, y, u), "normalised": G.qq_data(x, y, u, normalize=True)}
          for d, u in dirs.items()}
    ratios = {d: {"unnormalised": G.class_variance_ratios(x, y, u)} for d, u in dirs.items()}
    figs = [P.norm_histograms(comp), P.qq_plots(qq), P.variance_ratio_hists(ratios),
            P.maha_scatter(pd.DataFrame(dict(model=["a", "b"], maha=[40, 50], maha_pp=[30, 52]))),
            P.norm_vs_score({"Maha": dict(norm_id=[1, 2], dist_id=[3, 4], norm_ood=[1], dist_ood=[5])}),
            P.norm_scaling_curve({"Maha": pd.DataFrame(dict(alpha=[0.5, 1, 2], fpr=[1, 0.5, 0]))}),
            P.dataset_norms({"ID": rng.uniform(1, 2, 50), "OOD": rng.uniform(0, 1, 50)})]
    for f in figs:
        assert f.axes
        plt.close(f)


def test_diagnostic_figure_data_matches_the_single_functions():
    rng = np.random.default_rng(15)
    x, y, _, _ = gaussian_classes(rng, n=60, scales=[1, 2, 1, 3])
    d = G.diagnostic_figure_data(x, y, n_qq_random=2, seed=3)
    assert set(d) == {"norms", "qq", "ratios"}
    assert set(d["qq"]) == set(d["ratios"]) == {"random1", "random2", "top eigendirection", "small eigendirection"}
    dirs = G.qq_directions(G.fit_class_gaussians(x, y), n_random=2, seed=3)
    np.testing.assert_allclose(d["ratios"]["top eigendirection"]["unnormalised"],
                               G.class_variance_ratios(x, y, dirs["top eigendirection"]))
    dirs_n = G.qq_directions(G.fit_class_gaussians(x, y, normalize=True), n_random=2, seed=3)
    np.testing.assert_allclose(d["qq"]["random2"]["normalised"][1],
                               G.qq_data(x, y, dirs_n["random2"], normalize=True)[1])
    np.testing.assert_allclose(d["norms"]["l2-normalised"]["real"][0], 1.0)
    # scales differ per class, so the real norms spread more than the shared-covariance Gaussian allows
    t = d["norms"]["unnormalised"]["table"]
    assert not np.allclose(t.real_cv, t.sampled_cv)
