"""Chapter-4 detectors (ASH-S, NNGuide, NeCo, GMM/GMN, GEN, fDBD, SSC, SSD+): brute-force /
closed-form references, hyperparameter sensitivity, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp, softmax
from scipy.stats import multivariate_normal

from repro.ood.detectors import Head, get_detector

C, D = 6, 12


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(C), 40)
    mu = rng.normal(0, 2, (C, D))
    # ReLU-like positive features with class-dependent scale, as pre-logits of a CNN
    f = np.abs(mu[y] + rng.normal(0, 1, (len(y), D)) * rng.uniform(0.5, 2, (len(y), 1)))
    W = rng.normal(0, 1, (C, D))
    b = rng.normal(0, 0.5, C)
    ft = np.abs(rng.normal(1, 2, (30, D)))
    return dict(f=f, y=y, head=Head(W, b), lg=f @ W.T + b, ft=ft, lgt=ft @ W.T + b)


def fit_score(name, data, **hp):
    det = get_detector(name, **hp).fit(data["f"], data["lg"], data["y"], data["head"])
    return det.score(data["ft"], data["lgt"])


# ------------------------------------------------------------------ hyperparameters change scores
@pytest.mark.parametrize("name,hp_a,hp_b", [
    ("ash_s", dict(percentile=90), dict(percentile=65)),
    ("nnguide", dict(k=10), dict(k=3)),
    ("nnguide", dict(bank_fraction=0.2), dict(bank_fraction=0.5)),
    ("nnguide", dict(bank_fraction=0.2, seed=0), dict(bank_fraction=0.2, seed=1)),
    ("neco", dict(variance_explained=0.9), dict(variance_explained=0.5)),
    ("gmm", dict(normalize=False), dict(normalize=True)),
    ("gmn", dict(normalize=True), dict(normalize=False)),
    ("gen", dict(gamma=0.1), dict(gamma=0.5)),
    ("gen", dict(M=2), dict(M=4)),
    ("ssc", dict(t=1.0), dict(t=10.0)),
    ("ssd_plus", dict(n_clusters=1), dict(n_clusters=4)),
    ("ssd_plus", dict(n_clusters=8, seed=0), dict(n_clusters=8, seed=3)),
])
def test_every_hyperparameter_changes_scores(data, name, hp_a, hp_b):
    sa, sb = fit_score(name, data, **hp_a), fit_score(name, data, **hp_b)
    assert sa.shape == (len(data["ft"]),) and np.isfinite(sa).all()
    assert not np.allclose(sa, sb), f"{name}: {hp_a} and {hp_b} give the same scores"


def test_defaults_are_the_dissertation_settings():
    assert get_detector("ash_s").percentile == 90
    nng = get_detector("nnguide")
    assert (nng.k, nng.bank_fraction) == (10, 0.01)
    assert get_detector("neco").variance_explained == 0.90
    g = get_detector("gen")
    assert (g.gamma, g.M) == (0.1, 100)
    assert get_detector("ssc").t == 1.0
    assert get_detector("gmn").normalize and not get_detector("gmm").normalize


# ------------------------------------------------------------------ brute-force references
def test_ash_s_matches_per_sample_loop(data):
    p = 90
    det = get_detector("ash_s", percentile=p).fit(None, None, None, data["head"])
    W, b = data["head"]
    ref = []
    for x in data["ft"]:
        k = D - int(np.round(D * p / 100))
        keep = np.sort(x)[::-1][:k]
        h = np.where(x >= keep[-1], x, 0.0)  # no ties in continuous data
        h = h * np.exp(x.sum() / h.sum())
        ref.append(logsumexp(W @ h + b))
    np.testing.assert_allclose(det.score(data["ft"]), ref, rtol=1e-12)


def test_ash_s_percentile_zero_is_energy_of_scaled_features(data):
    # p = 0 keeps everything, s1 = s2, so the features are multiplied by e
    det = get_detector("ash_s", percentile=0).fit(None, None, None, data["head"])
    W, b = data["head"]
    np.testing.assert_allclose(det.score(data["ft"]), logsumexp(np.e * data["ft"] @ W.T + b, axis=1), rtol=1e-12)


def test_nnguide_matches_brute_force(data):
    k = 5
    det = get_detector("nnguide", k=k, bank_fraction=1.0).fit(data["f"], data["lg"], data["y"])
    z = data["f"] / np.linalg.norm(data["f"], axis=1, keepdims=True)
    bank = z * logsumexp(data["lg"], axis=1)[:, None]
    ref = []
    for x, o in zip(data["ft"], data["lgt"]):
        sims = np.sort(bank @ (x / np.linalg.norm(x)))[::-1]
        ref.append(sims[:k].mean() * logsumexp(o))
    np.testing.assert_allclose(det.score(data["ft"], data["lgt"]), ref, rtol=1e-12)


def test_neco_matches_sklearn_pca(data):
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    det = get_detector("neco").fit(data["f"], data["lg"])
    ss = StandardScaler().fit(data["f"])
    pca = PCA(D).fit(ss.transform(data["f"]))
    d = int(np.argmax(np.cumsum(pca.explained_variance_ratio_) >= 0.9) + 1)
    assert det.n_components_ == d
    zt = ss.transform(data["ft"])
    ref = np.linalg.norm(pca.transform(zt)[:, :d], axis=1) / np.linalg.norm(zt, axis=1) * data["lgt"].max(1)
    np.testing.assert_allclose(det.score(data["ft"], data["lgt"]), ref, rtol=1e-8)


@pytest.mark.parametrize("normalize", [False, True])
def test_gmm_matches_scipy_logpdf(data, normalize):
    det = get_detector("gmm", normalize=normalize).fit(data["f"], None, data["y"])
    assert det.jitter_ == 0.0
    f, ft = data["f"], data["ft"]
    if normalize:
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        ft = ft / np.linalg.norm(ft, axis=1, keepdims=True)
    ll = np.stack([multivariate_normal(f[data["y"] == c].mean(0), np.cov(f[data["y"] == c].T)).logpdf(ft)
                   for c in range(C)], axis=1)
    np.testing.assert_allclose(det.score(data["ft"]), ll.max(1), rtol=1e-9)


def test_gmm_singular_class_covariance_uses_jitter_with_warning():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(2 * 5, 8))  # 5 samples per class in 8 dims: singular class covariances
    y = np.repeat([0, 1], 5)
    with pytest.warns(RuntimeWarning, match="jitter"):
        det = get_detector("gmm").fit(f, None, y)
    assert det.jitter_ > 0 and np.isfinite(det.score(rng.normal(size=(4, 8)))).all()


def test_gen_closed_form():
    logits = np.array([[2.0, 0.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    det = get_detector("gen", gamma=0.5, M=2).fit(None, logits)
    p = softmax(logits, axis=1)
    top = np.sort(p, axis=1)[:, -2:]
    np.testing.assert_allclose(det.score(None, logits), -np.sum(np.sqrt(top * (1 - top)), axis=1))
    # uniform softmax over 4 classes, M = 2: -2 * sqrt(0.25 * 0.75)
    assert det.score(None, logits)[1] == pytest.approx(-2 * np.sqrt(0.1875))


def test_fdbd_matches_loop(data):
    det = get_detector("fdbd").fit(data["f"], data["lg"], data["y"], data["head"])
    W, b = data["head"]
    mu = data["f"].mean(0)
    ref = []
    for x, o in zip(data["ft"], data["lgt"]):
        yhat = int(np.argmax(o))
        d = [abs(o[c] - o[yhat]) / np.linalg.norm(W[c] - W[yhat]) for c in range(C) if c != yhat]
        ref.append(np.mean(d) / np.linalg.norm(x - mu))
    np.testing.assert_allclose(det.score(data["ft"], data["lgt"]), ref, rtol=1e-12)


def test_fdbd_is_distance_to_boundary_in_2d():
    # two classes with w = +-e1, no bias: boundary is x1 = 0, distance |x1|; the train mean is 0
    head = Head(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.zeros(2))
    f = np.array([[1.0, 1.0], [-1.0, -1.0]])
    det = get_detector("fdbd").fit(f, f @ head.W.T, None, head)
    x = np.array([[3.0, 4.0]])
    # |o_1 - o_0| / ||w_1 - w_0|| = 6 / 2 = 3 = |x1|; divided by ||x - 0|| = 5
    assert det.score(x, x @ head.W.T)[0] == pytest.approx(3 / 5)


def test_ssc_closed_form(data):
    det = get_detector("ssc", t=2.0).fit(None, None, None, data["head"])
    W = data["head"].W
    cos = (data["ft"] @ W.T) / np.linalg.norm(data["ft"], axis=1, keepdims=True) / np.linalg.norm(W, axis=1)
    np.testing.assert_allclose(det.score(data["ft"]), softmax(2 * cos, axis=1).max(1), rtol=1e-12)
    # invariant to the feature norm (cosine)
    np.testing.assert_allclose(det.score(3 * data["ft"]), det.score(data["ft"]), rtol=1e-12)


def test_ssd_plus_one_cluster_is_global_mahalanobis(data):
    det = get_detector("ssd_plus", n_clusters=1).fit(data["f"])
    z = data["f"] / np.linalg.norm(data["f"], axis=1, keepdims=True)
    m, s = z.mean(0), z.std(0) + 1e-10
    z = (z - m) / s
    zt = (data["ft"] / np.linalg.norm(data["ft"], axis=1, keepdims=True) - m) / s
    P = np.linalg.pinv(np.cov(z.T, bias=True))
    ref = -np.array([(x - z.mean(0)) @ P @ (x - z.mean(0)) for x in zt])
    np.testing.assert_allclose(det.score(data["ft"]), ref, rtol=1e-8)


# ------------------------------------------------------------------ bad input
def test_zero_norm_features_are_a_clear_error(data):
    det = get_detector("nnguide", bank_fraction=0.5).fit(data["f"], data["lg"])
    bad = data["ft"].copy()
    bad[3] = 0
    with pytest.raises(ValueError, match="zero l2 norm"):
        det.score(bad, data["lgt"])
    with pytest.raises(ValueError, match="zero l2 norm"):
        get_detector("gmn").fit(np.vstack([data["f"], np.zeros((1, D))]), None, np.append(data["y"], 0))


def test_missing_class_label_is_a_clear_error(data):
    y = data["y"].copy()
    y[y == 2] = 3
    with pytest.raises(ValueError, match="missing from train_labels"):
        get_detector("gmm").fit(data["f"], None, y)


@pytest.mark.parametrize("name", ["ash_s", "nnguide", "neco", "gmm", "fdbd", "ssc", "ssd_plus"])
def test_mismatched_feature_dimension_is_a_clear_error(data, name):
    hp = dict(n_clusters=2) if name == "ssd_plus" else {}
    det = get_detector(name, **hp).fit(data["f"], data["lg"], data["y"], data["head"])
    with pytest.raises(ValueError, match="dimension"):
        det.score(data["ft"][:, :-1], data["lgt"])


def test_bad_hyperparameters_are_clear_errors(data):
    with pytest.raises(ValueError, match="percentile"):
        get_detector("ash_s", percentile=100).fit(None, None, None, data["head"])
    with pytest.raises(ValueError, match="k must be"):
        get_detector("nnguide", k=10_000).fit(data["f"], data["lg"])
    with pytest.raises(ValueError, match="train_logits"):
        get_detector("nnguide").fit(data["f"])
    with pytest.raises(ValueError, match="variance_explained"):
        get_detector("neco", variance_explained=0).fit(data["f"], data["lg"])
    with pytest.raises(ValueError, match="n_clusters"):
        get_detector("ssd_plus", n_clusters=0).fit(data["f"])
