"""Diagnostics of the Gaussian assumptions behind the Mahalanobis score (chapter 4, paper 8.2 Sec. 3).

The Mahalanobis detector models every class as N(mu_c, Sigma) with one shared covariance
(Assumption I: class-conditional Gaussians; Assumption II: shared covariance; dissertation
Sec. 8.2 (Sec. 3.1)). This module measures how far pre-logit features are from that model, with and
without the l2 normalisation of Mahalanobis++ (Eq. 6, Sec. 8.2 (Sec. 4)):

- :func:`fit_class_gaussians` -- class means and the shared ML covariance (Eq. 1-2, Sec. 8.2 (Sec. 3.1)),
- :func:`sample_fitted_gaussian` / :func:`norm_comparison` -- per-class feature norms of real
  features vs samples from N(mu_c, Sigma) (Fig. 4.1 / M-Fig. 3, M-Fig. 8),
- :func:`lemma31_moments`, :func:`lemma31_variance_eigen`, :func:`lemma31_table` -- Lemma 3.1
  (Sec. 8.2 (Sec. 3.2)): ||Phi||^2 of Gaussian features concentrates at tr(Sigma) + ||mu||^2,
- :func:`qq_directions`, :func:`qq_data`, :func:`projection_kurtosis` -- QQ plots of class-centred,
  standardised projections against N(0, 1) (Fig. 4.2 / M-Fig. 4, M-Fig. 9; Sec. 8.2 (Sec. 3.2)),
- :func:`deviation_score` -- the variance-alignment deviation of Eq. 5 (Sec. 8.2 (Sec. 3.2), derivation
  App. C Sec. 8.2 (App. C); M-Tab. 1 and M-Tab. 7), with :func:`expected_squared_projection`,
- :func:`class_variance_ratios` -- class variance / shared variance along one direction (M-Fig. 11),
- :func:`diagnostic_figure_data` -- the data of the three per-model figures above, raw and normalised,
- :func:`rejected_classes` -- distinct ID classes among the samples rejected at 95 % TPR (Sec. 8.2 (Sec. 4)),
- :func:`norm_confound` -- correlation of the feature norm with scores, confidence and correctness
  (Fig. 4.3 / M-Fig. 5, M-Fig. 7),
- :func:`norm_scaling_fpr` -- FPR when OOD features are scaled by alpha (M-Fig. 6).

All computations are float64 on arrays; nothing here knows about models or datasets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from repro.ood.detectors.base import l2_normalize_strict
from scipy.special import gammaln


# --------------------------------------------------------------------------- input checks
def _features_labels(features, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"features must be a non-empty 2-D array [N, D], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or inf values")
    y = np.asarray(labels)
    if y.shape != (len(x),):
        raise ValueError(f"labels must be 1-D with one entry per feature row ({len(x)}), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    classes = np.unique(y)
    return x, y, classes


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """phi / ||phi||_2 (Eq. 6, Sec. 8.2 (Sec. 4)); a zero vector has no direction and is an error."""
    return l2_normalize_strict(x, "features")


def feature_norms(features) -> np.ndarray:
    """||phi(x)||_2 per row."""
    return np.linalg.norm(np.asarray(features, dtype=np.float64), axis=1)


# --------------------------------------------------------------------------- Gaussian fit
@dataclass
class GaussianFit:
    """Class means ``[C, D]``, shared ML covariance ``[D, D]`` (Eq. 1-2) and class counts."""

    classes: np.ndarray
    means: np.ndarray
    cov: np.ndarray
    counts: np.ndarray
    normalized: bool


def fit_class_gaussians(features, labels, normalize: bool = False) -> GaussianFit:
    """Eq. 1-2 (Sec. 8.2 (Sec. 3.1)): mu_c = class means, Sigma = (1/N) sum_c sum_{y_i=c} (phi_i - mu_c)(...)^T.

    ``normalize=True`` fits on phi / ||phi|| (Mahalanobis++, Eq. 6); the means are not re-normalised.
    """
    x, y, classes = _features_labels(features, labels)
    if normalize:
        x = l2_normalize(x)
    d = x.shape[1]
    means = np.empty((len(classes), d))
    counts = np.empty(len(classes), dtype=np.int64)
    cov = np.zeros((d, d))
    for i, c in enumerate(classes):
        xc = x[y == c]
        means[i] = xc.mean(axis=0)
        counts[i] = len(xc)
        r = xc - means[i]
        cov += r.T @ r
    return GaussianFit(classes, means, cov / len(x), counts, normalize)


def _psd_factor(cov: np.ndarray) -> np.ndarray:
    """A matrix L with L L^T = cov for a symmetric PSD (possibly singular) covariance."""
    w, V = np.linalg.eigh(cov)
    return V * np.sqrt(np.clip(w, 0, None))


def sample_fitted_gaussian(fit: GaussianFit, n_per_class, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw from N(mu_c, Sigma) for every class (the "simulated" panel of Fig. 4.1 / M-Fig. 3).

    ``n_per_class``: an int, or None for the class's own training count N_c (the natural choice;
    the paper does not state it). Returns (samples [M, D], labels [M]).
    """
    rng = np.random.default_rng(seed)
    L = _psd_factor(fit.cov)
    counts = fit.counts if n_per_class is None else np.full(len(fit.classes), int(n_per_class))
    xs, ys = [], []
    for c, mu, n in zip(fit.classes, fit.means, counts):
        xs.append(mu + rng.standard_normal((n, len(mu))) @ L.T)
        ys.append(np.full(n, c))
    return np.concatenate(xs), np.concatenate(ys)


def norm_comparison(features, labels, normalize: bool = False, n_per_class=None, seed: int = 0) -> dict:
    """Real vs Gaussian-sampled per-class feature norms (Fig. 4.1 / M-Fig. 3; M-Fig. 8 scaling).

    With ``normalize=True`` the real features have norm 1 by construction; the Gaussian fitted to
    them is sampled to show how the Gaussian model of Mahalanobis++ sees the unit sphere.
    Norms are divided by the global average real norm (as in M-Fig. 8), so models are comparable.

    Returns ``dict(real=(norms, labels), sampled=(norms, labels), table=DataFrame)`` where the table
    has per class the mean / std / 5 % / 95 % quantile of both, and their coefficient of variation.
    """
    x, y, classes = _features_labels(features, labels)
    fit = fit_class_gaussians(x, y, normalize=normalize)
    real = feature_norms(l2_normalize(x) if normalize else x)
    xs, ys = sample_fitted_gaussian(fit, n_per_class, seed)
    sampled = feature_norms(xs)
    scale = real.mean()
    real, sampled = real / scale, sampled / scale
    rows = []
    for c in classes:
        r, s = real[y == c], sampled[ys == c]
        rows.append(dict(cls=int(c), real_mean=r.mean(), real_std=r.std(), real_q05=np.quantile(r, 0.05),
                         real_q95=np.quantile(r, 0.95), sampled_mean=s.mean(), sampled_std=s.std(),
                         sampled_q05=np.quantile(s, 0.05), sampled_q95=np.quantile(s, 0.95)))
    table = pd.DataFrame(rows)
    table["real_cv"] = table.real_std / table.real_mean
    table["sampled_cv"] = table.sampled_std / table.sampled_mean
    return dict(real=(real, y), sampled=(sampled, ys), table=table, scale=scale)


def norm_spread_summary(comparison: dict) -> dict:
    """Scalars for one model: spread of norms within classes and of class means across classes.

    ``within`` = mean over classes of std(norm)/mean(norm); ``across`` = std over classes of the
    class-mean norm divided by its mean. ``*_ratio`` = real / sampled (1 = as Gaussian, >1 = wider).
    """
    t = comparison["table"]
    within_real, within_s = float(t.real_cv.mean()), float(t.sampled_cv.mean())
    across_real = float(t.real_mean.std() / t.real_mean.mean())
    across_s = float(t.sampled_mean.std() / t.sampled_mean.mean())
    return dict(within_real=within_real, within_sampled=within_s, within_ratio=within_real / within_s,
                across_real=across_real, across_sampled=across_s, across_ratio=across_real / max(across_s, 1e-300))


# --------------------------------------------------------------------------- Lemma 3.1
def lemma31_moments(mu, cov) -> tuple[float, float]:
    """E||X||^2 = tr(Sigma) + ||mu||^2 and Var||X||^2 = 2 tr(Sigma^2) + 4 mu^T Sigma mu, X ~ N(mu, Sigma).

    Lemma 3.1 (Sec. 8.2 (Sec. 3.2)); the variance is the simplified form of the lemma's expression
    (see :func:`lemma31_variance_eigen`, which is equal).
    """
    mu = np.asarray(mu, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    return float(np.trace(cov) + mu @ mu), float(2 * np.sum(cov * cov) + 4 * mu @ cov @ mu)


def lemma31_variance_eigen(mu, cov) -> float:
    """The lemma's own expression sum_i (3 l_i^2 + 6 m_i^2 l_i + m_i^4) - (l_i + m_i^2)^2 (Sec. 8.2 (Sec. 3.2)),
    with (l_i) the eigenvalues of Sigma and m = U^T mu the mean in the eigenbasis (the proof's Z = U^T X)."""
    lam, U = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    m = U.T @ np.asarray(mu, dtype=np.float64)
    return float(np.sum(3 * lam**2 + 6 * m**2 * lam + m**4 - (lam + m**2) ** 2))


def lemma31_table(features, labels, normalize: bool = False) -> pd.DataFrame:
    """Per class: the Gaussian prediction of ||phi||^2 (mean, sd from Lemma 3.1 under N(mu_c, Sigma))
    next to the observed mean and sd of ||phi||^2 of the real class features.

    ``sd_ratio`` = observed sd / predicted sd: ~1 if the class were Gaussian with the shared
    covariance, >> 1 for the heavy-tailed norms of Fig. 4.1.
    """
    x, y, classes = _features_labels(features, labels)
    fit = fit_class_gaussians(x, y, normalize=normalize)
    if normalize:
        x = l2_normalize(x)
    sq = np.sum(x * x, axis=1)
    rows = []
    for c, mu in zip(classes, fit.means):
        m, v = lemma31_moments(mu, fit.cov)
        o = sq[y == c]
        rows.append(dict(cls=int(c), predicted_mean=m, predicted_sd=np.sqrt(v), observed_mean=o.mean(),
                         observed_sd=o.std()))
    t = pd.DataFrame(rows)
    t["sd_ratio"] = t.observed_sd / t.predicted_sd
    t["predicted_rel_sd"] = t.predicted_sd / t.predicted_mean
    t["observed_rel_sd"] = t.observed_sd / t.observed_mean
    return t


# --------------------------------------------------------------------------- QQ plots
def qq_directions(fit: GaussianFit, n_random: int = 1, seed: int = 0, rtol: float = 1e-8) -> dict[str, np.ndarray]:
    """Unit directions for QQ plots and variance ratios (the paper does not state its three
    directions; we use random ones plus the largest and the smallest non-degenerate eigendirection
    of the shared covariance, as in M-Fig. 11)."""
    rng = np.random.default_rng(seed)
    d = fit.cov.shape[0]
    out = {}
    for i in range(n_random):
        u = rng.standard_normal(d)
        out[f"random{i + 1}" if n_random > 1 else "random"] = u / np.linalg.norm(u)
    w, V = np.linalg.eigh(fit.cov)
    keep = w > rtol * w.max()
    out["top eigendirection"] = V[:, -1]
    out["small eigendirection"] = V[:, np.argmax(keep)]
    return out


def centred_projections(features, labels, direction, normalize: bool = False) -> np.ndarray:
    """u^T (phi_i - mu_{c[i]}) standardised by its empirical standard deviation (Sec. 8.2 (Sec. 3.2))."""
    x, y, classes = _features_labels(features, labels)
    if normalize:
        x = l2_normalize(x)
    u = np.asarray(direction, dtype=np.float64)
    if u.shape != (x.shape[1],):
        raise ValueError(f"direction must have shape ({x.shape[1]},), got {u.shape}")
    p = x @ u
    for c in classes:
        m = y == c
        p[m] -= p[m].mean()
    sd = p.std()
    if sd == 0:
        raise ValueError("the class-centred projections are constant along this direction; pick another direction")
    return p / sd


def qq_data(features, labels, direction, normalize: bool = False, n_points: int | None = 2000):
    """(theoretical N(0,1) quantiles, sample quantiles) of the standardised class-centred projection.

    ``n_points`` evenly spaced plotting positions (None: every sample). Plotting positions
    (i - 0.5) / n (Hazen)."""
    p = np.sort(centred_projections(features, labels, direction, normalize))
    n = len(p)
    probs = (np.arange(1, n + 1) - 0.5) / n
    if n_points is not None and n > n_points:
        idx = np.unique(np.round(np.linspace(0, n - 1, n_points)).astype(int))
        p, probs = p[idx], probs[idx]
    return stats.norm.ppf(probs), p


def projection_kurtosis(features, labels, directions: dict, normalize: bool = False) -> dict[str, float]:
    """Excess kurtosis of the standardised class-centred projections per direction: 0 for a
    Gaussian, > 0 for the heavy tails the QQ plots show (a scalar summary of Fig. 4.2)."""
    return {k: float(stats.kurtosis(centred_projections(features, labels, u, normalize)))
            for k, u in directions.items()}


# --------------------------------------------------------------------------- Eq. 5
def expected_squared_projection(A) -> float:
    """E_u[(u^T A u)^2] = (2 tr(A^2) + tr(A)^2) / (d (d + 2)), u uniform on S^{d-1} (Eq. 5 / Eq. 8)."""
    A = np.asarray(A, dtype=np.float64)
    d = A.shape[0]
    return float((2 * np.sum(A * A.T) + np.trace(A) ** 2) / (d * (d + 2)))


def mc_expected_squared_projection(A, n: int = 100_000, seed: int = 0) -> float:
    """Monte Carlo estimate of E_u[(u^T A u)^2] (reference for the closed form)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n, A.shape[0]))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return float(np.mean(np.einsum("nd,de,ne->n", u, A, u) ** 2))


def _inv_sqrt_psd(cov: np.ndarray, rtol: float) -> np.ndarray:
    """Sigma^{-1/2} on the range of Sigma (pseudo-inverse square root; eigenvalues below
    rtol * max are treated as 0, as a pseudo-inverse does)."""
    w, V = np.linalg.eigh(cov)
    keep = w > rtol * w.max()
    return (V[:, keep] / np.sqrt(w[keep])) @ V[:, keep].T


def deviation_score(features, labels, normalize: bool = False, rtol: float = 1e-10) -> tuple[float, np.ndarray]:
    """Variance-alignment deviation score, Eq. 5 (Sec. 8.2 (Sec. 3.2)), averaged over classes (M-Tab. 1, 7).

    For each class i, A_i = Sigma^{-1/2} (Sigma_i - Sigma) Sigma^{-1/2} with the class covariance
    Sigma_i = (1/N_i) sum (phi - mu_i)(phi - mu_i)^T and the shared Sigma of Eq. 2; the score is
    E_u[(u^T A_i u)^2] = (2 tr(A_i^2) + tr(A_i)^2) / (d (d + 2)). Returns (mean over classes, per class).

    Computed in whitened coordinates w = Sigma^{-1/2} phi, where Sigma_i becomes the class covariance
    of w and Sigma becomes the projector onto its range, so no d x d product per class is needed
    beyond the class covariance itself.
    """
    x, y, classes = _features_labels(features, labels)
    fit = fit_class_gaussians(x, y, normalize=normalize)
    if normalize:
        x = l2_normalize(x)
    S = _inv_sqrt_psd(fit.cov, rtol)
    M = S @ fit.cov @ S  # = projector onto range(Sigma) (identity when Sigma is full rank)
    d = x.shape[1]
    out = np.empty(len(classes))
    for i, (c, mu) in enumerate(zip(classes, fit.means)):
        w = (x[y == c] - mu) @ S
        A = w.T @ w / len(w) - M
        out[i] = (2 * np.sum(A * A) + np.trace(A) ** 2) / (d * (d + 2))
    return float(out.mean()), out


def class_variance_ratios(features, labels, direction, normalize: bool = False) -> np.ndarray:
    """var_c(u^T phi) / (u^T Sigma u) for every class c along a unit direction u (M-Fig. 11).

    1 for every class if the shared covariance described each class along u."""
    x, y, classes = _features_labels(features, labels)
    fit = fit_class_gaussians(x, y, normalize=normalize)
    if normalize:
        x = l2_normalize(x)
    u = np.asarray(direction, dtype=np.float64)
    shared = u @ fit.cov @ u
    p = x @ u
    return np.array([p[y == c].var() for c in classes]) / shared


def diagnostic_figure_data(features, labels, n_qq_random: int = 1, n_per_class=None, seed: int = 0) -> dict:
    """Everything the per-model diagnostic figures of Sec. 3 need, raw and l2-normalised:

    ``norms``: {"unnormalised", "l2-normalised"} -> :func:`norm_comparison` (Fig. 4.1 / M-Fig. 3, 8);
    ``qq``: {direction: {"unnormalised", "normalised"} -> :func:`qq_data`} (Fig. 4.2 / M-Fig. 4, 9);
    ``ratios``: {direction: {...} -> :func:`class_variance_ratios`} (M-Fig. 11). The directions
    (:func:`qq_directions`) come from the shared covariance of the raw resp. normalised features.
    """
    x, y, _ = _features_labels(features, labels)
    norms = {"unnormalised": norm_comparison(x, y, n_per_class=n_per_class, seed=seed),
             "l2-normalised": norm_comparison(x, y, normalize=True, n_per_class=n_per_class, seed=seed)}
    dirs = qq_directions(fit_class_gaussians(x, y), n_random=n_qq_random, seed=seed)
    dirs_n = qq_directions(fit_class_gaussians(x, y, normalize=True), n_random=n_qq_random, seed=seed)
    qq = {d: {"unnormalised": qq_data(x, y, dirs[d]), "normalised": qq_data(x, y, dirs_n[d], normalize=True)}
          for d in dirs}
    ratios = {d: {"unnormalised": class_variance_ratios(x, y, dirs[d]),
                  "normalised": class_variance_ratios(x, y, dirs_n[d], normalize=True)} for d in dirs}
    return dict(norms=norms, qq=qq, ratios=ratios)


# --------------------------------------------------------------------------- rejected classes
def rejected_classes(scores_id, labels_id, tpr: float = 0.95) -> dict:
    """Distinct ID classes among the ID test samples rejected at the TPR threshold (Sec. 8.2 (Sec. 4)).

    Threshold = the (1 - tpr) quantile of the ID scores (the FPR@95 convention: accept s >= t).
    ``expected_uniform``: expected number of distinct classes if the same number of rejected
    samples were drawn uniformly without replacement from the ID test set (the paper's "ideal").
    """
    s = np.asarray(scores_id, dtype=np.float64)
    y = np.asarray(labels_id)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores_id and labels_id must be 1-D of equal length, got {s.shape} and {y.shape}")
    t = np.quantile(s, 1 - tpr)
    rej = s < t
    classes, counts = np.unique(y, return_counts=True)
    n, r = len(s), int(rej.sum())
    # P(class c untouched) = C(n - n_c, r) / C(n, r)
    logp0 = (gammaln(n - counts + 1) - gammaln(n - counts - r + 1) - gammaln(n + 1) + gammaln(n - r + 1))
    p0 = np.where(n - counts >= r, np.exp(logp0), 0.0)
    return dict(n_rejected=r, n_classes=len(classes), rejected_classes=int(len(np.unique(y[rej]))),
                expected_uniform=float(np.sum(1 - p0)))


# --------------------------------------------------------------------------- norm confound
def norm_confound(norms, values) -> float:
    """Spearman rank correlation between the feature norm and another per-sample quantity."""
    a, b = np.asarray(norms, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"norms and values must have the same shape, got {a.shape} and {b.shape}")
    return float(stats.spearmanr(a, b).statistic)


def norm_confound_table(norms_id, norms_ood, scores: dict, confidence_id=None, correct_id=None) -> pd.DataFrame:
    """Correlation of ||phi|| with each detector's score on ID, on OOD and pooled (Fig. 4.3, M-Fig. 7).

    ``scores``: name -> (scores_id, scores_ood). Optional ``confidence_id`` (e.g. max softmax) and
    ``correct_id`` (bool) add rows: Spearman(norm, confidence) and AUROC of the norm for
    separating correct from wrong ID predictions (0.5 = no relation).
    """
    from sklearn.metrics import roc_auc_score

    rows = []
    pooled_norm = np.concatenate([norms_id, norms_ood])
    for name, (sid, sood) in scores.items():
        rows.append(dict(quantity=f"score: {name}", id=norm_confound(norms_id, sid),
                         ood=norm_confound(norms_ood, sood),
                         pooled=norm_confound(pooled_norm, np.concatenate([sid, sood]))))
    if confidence_id is not None:
        rows.append(dict(quantity="confidence (MSP)", id=norm_confound(norms_id, confidence_id), ood=np.nan,
                         pooled=np.nan))
    if correct_id is not None:
        c = np.asarray(correct_id, dtype=bool)
        auc = roc_auc_score(c, norms_id) if 0 < c.sum() < len(c) else np.nan
        rows.append(dict(quantity="correctness (AUROC of norm)", id=auc, ood=np.nan, pooled=np.nan))
    return pd.DataFrame(rows)


def norm_scaling_fpr(detector, features_id, features_ood, alphas, logits_id=None, logits_ood=None) -> pd.DataFrame:
    """FPR@95%TPR when the OOD features are multiplied by alpha, direction unchanged (M-Fig. 6).

    Only the features are scaled; ``detector`` must be fitted and feature-based (logits, if it
    needs them, are passed unchanged)."""
    from repro.ood.metrics import fpr_at_95tpr

    sid = detector.score(features_id, logits_id)
    rows = []
    for a in alphas:
        sood = detector.score(np.asarray(features_ood, dtype=np.float64) * a, logits_ood)
        rows.append(dict(alpha=float(a), fpr=float(fpr_at_95tpr(sid, sood))))
    return pd.DataFrame(rows)
