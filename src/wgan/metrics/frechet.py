"""The Frechet distance between two Gaussians, behind the classifier Frechet distance and FID."""

from __future__ import annotations

import numpy as np

#: Eigenvalues below ``-NEGATIVE_TOLERANCE * largest`` mean a matrix is not a covariance.
NEGATIVE_TOLERANCE = 1e-6


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (rows are samples) in float64."""
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_eigenvalues(matrix: np.ndarray, name: str, vectors: bool = False
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Eigenvalues (clipped at 0) of a symmetric positive semi-definite matrix, and its
    eigenvectors if asked (the values alone cost a third as much at 2,048 dimensions);
    ``ValueError`` if it has a clearly negative eigenvalue."""
    symmetric = (matrix + matrix.T) / 2
    if vectors:
        values, basis = np.linalg.eigh(symmetric)
    else:
        values, basis = np.linalg.eigvalsh(symmetric), None
    scale = max(float(np.abs(values).max()), 1e-300)
    if values.min() < -NEGATIVE_TOLERANCE * scale:
        raise ValueError(f"Frechet distance: {name} is not positive semi-definite (eigenvalue "
                         f"{values.min():.3g}, largest {values.max():.3g}), so (S1 S2)^(1/2) "
                         "would be imaginary: not a covariance matrix")
    return np.clip(values, 0.0, None), basis


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
                     ) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``: the squared Frechet (W2) distance
    between two Gaussians.

    ``Tr (S1 S2)^(1/2)`` is computed as the sum of the square roots of the eigenvalues of the
    symmetric matrix ``S1^(1/2) S2 S1^(1/2)``, which has the same eigenvalues: stable for the
    singular covariances of few samples in many dimensions, where ``scipy.linalg.sqrtm(S1 S2)``
    returns large spurious imaginary parts. A matrix that is not positive semi-definite (whose
    square root would truly be imaginary) raises ``ValueError`` instead of giving a number."""
    values1, vectors1 = _psd_eigenvalues(np.asarray(sigma1, dtype=np.float64), "S1", True)
    root1 = (vectors1 * np.sqrt(values1)) @ vectors1.T
    _psd_eigenvalues(np.asarray(sigma2, dtype=np.float64), "S2")
    product, _ = _psd_eigenvalues(root1 @ sigma2 @ root1, "S1^(1/2) S2 S1^(1/2)")
    diff = np.asarray(mu1, dtype=np.float64) - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(product).sum())


def frechet_distance_of_samples(a: np.ndarray, b: np.ndarray) -> float:
    """The Frechet distance between Gaussians fitted to two sets of samples (rows), as
    ``frechet_distance(*gaussian_stats(a), *gaussian_stats(b))`` -- exactly, but without
    d x d matrix functions when a set has fewer samples than dimensions.

    With centred samples ``X`` (n1 x d) and ``Y`` (n2 x d), ``S1 S2 = X'X Y'Y / ((n1-1)(n2-1))``
    shares its non-zero eigenvalues with ``(X Y')(X Y')'``, so ``Tr (S1 S2)^(1/2)`` is the sum of
    the singular values of ``X Y'`` over ``sqrt((n1-1)(n2-1))``: an n1 x n2 problem. With 1,000
    Inception features a side that is one 1,000 x 1,000 SVD instead of eigendecompositions of
    2,048 x 2,048 matrices; with more samples than dimensions the covariances are used."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if min(len(x), len(y)) >= x.shape[1]:
        return frechet_distance(*gaussian_stats(x), *gaussian_stats(y))
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    x, y = x - mean_x, y - mean_y
    scale = (len(x) - 1) * (len(y) - 1)
    trace_root = np.linalg.svd(x @ y.T, compute_uv=False).sum() / np.sqrt(scale)
    diff = mean_x - mean_y
    return float(diff @ diff + (x * x).sum() / (len(x) - 1) + (y * y).sum() / (len(y) - 1)
                 - 2 * trace_root)
