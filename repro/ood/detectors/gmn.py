"""GMM / GMN: class-conditional Gaussians with class-specific covariances, max log-likelihood score.

Dissertation Sec. 8.2 (App. G) (paper 8.2, App. G, M-Tab.4 column "GMN"): "Estimate a Gaussian mixture model on
the train features phi(x), and use the log-probabilities as OOD score. We use GMN for Gaussian
mixture model with normalized features, and GMM for Gaussian mixture model with regular features."

Implementation details follow Mukhoti et al. (2023, DDU) as used in the authors' code: one Gaussian
per class with its own unbiased covariance (1/(N_c - 1)); if a Cholesky factorisation fails, the
same jitter ``j * I`` is added to every class covariance, trying j from the ladder
``0, tiny, 1e-15, ..., 1e-1`` until all factorisations succeed; the score is
``max_c log N(phi; mu_c, Sigma_c)``.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import solve_triangular

from repro.ood.detectors.base import Detector, l2_normalize_strict, register

JITTERS = (0.0, float(np.finfo(np.float64).tiny)) + tuple(10.0 ** e for e in range(-15, 0))


def _check_labels(labels: np.ndarray) -> np.ndarray:
    classes = np.unique(labels)
    if classes[0] < 0:
        raise ValueError(f"train_labels must be non-negative class indices, got minimum {classes[0]}")
    missing = np.setdiff1d(np.arange(classes[-1] + 1), classes)
    if len(missing):
        raise ValueError(f"class label(s) {missing[:10].tolist()} missing from train_labels (labels must be "
                         f"0..C-1 with every class present); relabel the classes or add samples")
    return classes


@register("gmm")
class GMM(Detector):
    """Class-conditional Gaussian mixture (class covariances), raw features -- dissertation Sec. 8.2 (App. G)."""

    uses_features = True
    needs_labels = True

    def __init__(self, normalize: bool = False):
        self.normalize = normalize

    def _prep(self, x, name):
        return l2_normalize_strict(x, name) if self.normalize else x

    def _fit(self, features, logits, labels, head):
        classes = _check_labels(labels)
        x = self._prep(features, "train_features")
        d = x.shape[1]
        means, covs = [], []
        for c in classes:
            xc = x[labels == c]
            if len(xc) < 2:
                raise ValueError(f"gmm: class {c} has {len(xc)} training sample(s); a class covariance needs >= 2")
            means.append(xc.mean(axis=0))
            covs.append(np.cov(xc, rowvar=False, ddof=1).reshape(d, d))
        means, covs = np.stack(means), np.stack(covs)
        eye = np.eye(d)
        # jitters that cannot make every class covariance positive definite are skipped without a
        # Cholesky attempt (one eigvalsh per class instead of up to 17 failing factorisations)
        min_eig = float(np.linalg.eigvalsh(covs).min())
        for j in JITTERS:
            if min_eig + j <= 0 and j < 1e-1:
                continue
            try:
                chol = np.linalg.cholesky(covs + j * eye)
            except np.linalg.LinAlgError:
                continue
            if np.all(np.isfinite(chol)) and np.all(np.diagonal(chol, axis1=1, axis2=2) > 0):
                break
        else:
            raise ValueError("gmm: class covariances are not positive definite even with jitter 0.1; "
                             "check the features for degenerate (e.g. constant) dimensions")
        if j > 0:
            warnings.warn(f"gmm: class covariances were singular; added jitter {j:g} * I (DDU jitter ladder)",
                          RuntimeWarning, stacklevel=3)
        self.jitter_ = j
        self.means_ = means
        self.chol_ = chol
        self.logdet_ = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)

    def log_likelihoods(self, features: np.ndarray) -> np.ndarray:
        """``[N, C]`` class-conditional log-densities log N(phi; mu_c, Sigma_c)."""
        x = self._prep(np.asarray(features, dtype=np.float64), "features")
        d = x.shape[1]
        out = np.empty((len(x), len(self.means_)))
        for c, (mu, L) in enumerate(zip(self.means_, self.chol_)):
            z = solve_triangular(L, (x - mu).T, lower=True, check_finite=False)
            out[:, c] = -0.5 * (d * np.log(2 * np.pi) + self.logdet_[c] + (z * z).sum(axis=0))
        return out

    def _score(self, features, logits):
        return self.log_likelihoods(features).max(axis=1)


@register("gmn")
class GMN(GMM):
    """GMM on l2-normalised features (the "GMN" column of M-Tab.4/6)."""

    def __init__(self, normalize: bool = True):
        self.normalize = normalize
