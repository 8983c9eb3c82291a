"""The Frechet distance between two Gaussians, behind the classifier Frechet distance and FID."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

#: The largest imaginary part of sqrtm(S1 S2) accepted as rounding, relative to its diagonal.
IMAGINARY_TOLERANCE = 1e-3


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (rows are samples) in float64."""
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
                     ) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``: the squared Frechet (W2) distance
    between two Gaussians.

    For two covariance matrices ``S1 S2`` has non-negative eigenvalues, so its square root is real
    up to rounding; near-singular products are regularised (``1e-6`` on the diagonal). An
    imaginary part above :data:`IMAGINARY_TOLERANCE` (relative) means an input is not a
    covariance matrix: ``ValueError``, rather than a number computed from its real part."""
    with warnings.catch_warnings():  # singular products are handled below
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            eps = 1e-6 * np.eye(sigma1.shape[0])
            covmean = linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
    if np.iscomplexobj(covmean):
        scale = max(1.0, float(np.abs(np.diagonal(covmean)).max()))
        imaginary = float(np.abs(covmean.imag).max())
        if imaginary > IMAGINARY_TOLERANCE * scale:
            raise ValueError(f"Frechet distance: sqrtm(S1 S2) has an imaginary part of "
                             f"{imaginary:.3g} (relative tolerance {IMAGINARY_TOLERANCE}); a "
                             "covariance matrix is not positive semi-definite")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))
