"""The Frechet distance between two Gaussians, behind the classifier Frechet distance and FID."""

from __future__ import annotations

import numpy as np

#: Eigenvalues below ``-NEGATIVE_TOLERANCE * largest`` mean a matrix is not a covariance.
NEGATIVE_TOLERANCE = 1e-6


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (rows are samples) in float64."""
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_eigenvalues(matrix: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (clipped at 0) and eigenvectors of a symmetric positive semi-definite matrix;
    ``ValueError`` if it has a clearly negative eigenvalue."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    scale = max(float(np.abs(values).max()), 1e-300)
    if values.min() < -NEGATIVE_TOLERANCE * scale:
        raise ValueError(f"Frechet distance: {name} is not positive semi-definite (eigenvalue "
                         f"{values.min():.3g}, largest {values.max():.3g}), so (S1 S2)^(1/2) "
                         "would be imaginary: not a covariance matrix")
    return np.clip(values, 0.0, None), vectors


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
                     ) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``: the squared Frechet (W2) distance
    between two Gaussians.

    ``Tr (S1 S2)^(1/2)`` is computed as the sum of the square roots of the eigenvalues of the
    symmetric matrix ``S1^(1/2) S2 S1^(1/2)``, which has the same eigenvalues: stable for the
    singular covariances of few samples in many dimensions, where ``scipy.linalg.sqrtm(S1 S2)``
    returns large spurious imaginary parts. A matrix that is not positive semi-definite (whose
    square root would truly be imaginary) raises ``ValueError`` instead of giving a number."""
    values1, vectors1 = _psd_eigenvalues(np.asarray(sigma1, dtype=np.float64), "S1")
    root1 = (vectors1 * np.sqrt(values1)) @ vectors1.T
    _psd_eigenvalues(np.asarray(sigma2, dtype=np.float64), "S2")
    product, _ = _psd_eigenvalues(root1 @ sigma2 @ root1, "S1^(1/2) S2 S1^(1/2)")
    diff = np.asarray(mu1, dtype=np.float64) - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(product).sum())
