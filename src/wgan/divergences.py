"""Divergences and distances between probability distributions, with natural logarithms.

- :func:`kl_divergence`, :func:`js_divergence`: discrete distributions or histograms.
- :func:`wasserstein_1d`: exact W1 between 1-D empirical samples or weighted points (CDFs).
- :func:`wasserstein_discrete`: exact W1 between masses on points with a ground cost (POT).
- :func:`wasserstein_empirical`: exact W1 between n-D samples (POT's network simplex).
- :func:`sinkhorn_distance`, :func:`sliced_wasserstein`: approximations for large n.

Masses need not sum to one where the mathematics allows it: the earth-mover distance between
two piles of equal total mass (10 shovelfuls, say) is the work of moving one onto the other.
Invalid input raises :class:`ValueError` with a one-line message.
"""

from __future__ import annotations

import numpy as np
import ot
from scipy.special import rel_entr

ArrayLike = np.ndarray | list | tuple


def _masses(p: ArrayLike, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {p.shape}")
    if p.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} holds NaN or infinite values")
    if np.any(p < 0):
        raise ValueError(f"{name} has negative mass at index {int(np.argmax(p < 0))}")
    if p.sum() <= 0:
        raise ValueError(f"{name} has zero total mass")
    return p


def _pair(p: ArrayLike, q: ArrayLike, normalise: bool) -> tuple[np.ndarray, np.ndarray]:
    p, q = _masses(p, "p"), _masses(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q differ in length: {p.size} vs {q.size}")
    if normalise:
        p, q = p / p.sum(), q / q.sum()
    return p, q


def kl_divergence(p: ArrayLike, q: ArrayLike, normalise: bool = True) -> float:
    """``KL(p || q) = sum_i p_i log(p_i / q_i)``, with ``0 log 0 = 0``.

    ``+inf`` when p puts mass where q has none (the support of p is not inside that of q),
    never NaN. Histograms (counts) are normalised first unless ``normalise=False``.
    """
    p, q = _pair(p, q, normalise)
    return float(np.sum(rel_entr(p, q)))


def js_divergence(p: ArrayLike, q: ArrayLike, normalise: bool = True) -> float:
    """``JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2``; in [0, log 2],
    equal to ``log 2`` exactly when the supports are disjoint."""
    p, q = _pair(p, q, normalise)
    m = 0.5 * (p + q)
    return float(0.5 * np.sum(rel_entr(p, m)) + 0.5 * np.sum(rel_entr(q, m)))


def wasserstein_1d(u: ArrayLike, v: ArrayLike, u_weights: ArrayLike | None = None,
                   v_weights: ArrayLike | None = None) -> float:
    """Exact W1 between 1-D distributions: ``int |F_u(x) - F_v(x)| dx`` over the merged support.

    ``u``, ``v`` are sample positions; weights default to uniform and are normalised. Agrees with
    :func:`scipy.stats.wasserstein_distance`.
    """
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    for name, x in (("u", u), ("v", v)):
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} holds NaN or infinite values")
    uw = np.ones_like(u) if u_weights is None else _masses(u_weights, "u_weights")
    vw = np.ones_like(v) if v_weights is None else _masses(v_weights, "v_weights")
    if uw.shape != u.shape or vw.shape != v.shape:
        raise ValueError("weights must have the same length as their positions")
    uw, vw = uw / uw.sum(), vw / vw.sum()
    points = np.sort(np.concatenate([u, v]))
    # CDF of each distribution just after each merged point
    cdf_u = _cdf(u, uw, points[:-1])
    cdf_v = _cdf(v, vw, points[:-1])
    return float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(points)))


def _cdf(x: np.ndarray, w: np.ndarray, at: np.ndarray) -> np.ndarray:
    order = np.argsort(x)
    cumulative = np.concatenate([[0.0], np.cumsum(w[order])])
    return cumulative[np.searchsorted(x[order], at, side="right")]


def earth_mover_running_cost(p: ArrayLike, q: ArrayLike) -> tuple[np.ndarray, float]:
    """For masses on unit-spaced positions 0..n-1: the dirt carried past each position while
    turning ``p`` into ``q`` (``delta_{i+1} = delta_i + p_i - q_i``, starting at 0), and the
    total work ``W = sum_i |delta_i|``. Masses must have equal totals (not necessarily 1)."""
    p, q = _pair(p, q, normalise=False)
    if not np.isclose(p.sum(), q.sum()):
        raise ValueError(f"p and q must have equal total mass, got {p.sum():g} and {q.sum():g}")
    running = np.concatenate([[0.0], np.cumsum(p - q)])
    return running, float(np.abs(running).sum())


def wasserstein_discrete(p: ArrayLike, q: ArrayLike, cost: np.ndarray | None = None,
                         positions: ArrayLike | None = None) -> float:
    """Exact optimal-transport cost between masses ``p`` and ``q`` (equal totals) under a ground
    ``cost`` matrix, or ``|x_i - x_j|`` on ``positions`` (default: 0, 1, ..., n-1); through
    POT's ``ot.emd2``. Unnormalised masses give the total work (W times the total mass)."""
    p, q = _masses(p, "p"), _masses(q, "q")
    if not np.isclose(p.sum(), q.sum()):
        raise ValueError(f"p and q must have equal total mass, got {p.sum():g} and {q.sum():g}")
    if cost is None:
        if p.size != q.size and positions is None:
            raise ValueError(f"p and q differ in length ({p.size} vs {q.size}); give a cost")
        x = np.arange(p.size, dtype=np.float64) if positions is None else np.asarray(
            positions, dtype=np.float64)
        if x.shape != p.shape:
            raise ValueError(f"positions must have length {p.size}, got {x.size}")
        cost = np.abs(x[:, None] - x[None, :])
    cost = np.asarray(cost, dtype=np.float64)
    if cost.shape != (p.size, q.size):
        raise ValueError(f"cost must have shape {(p.size, q.size)}, got {cost.shape}")
    total = p.sum()
    return float(ot.emd2(p / total, q / total, cost, numItermax=10_000_000)) * total


def _samples(x: ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, d) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def wasserstein_empirical(x: ArrayLike, y: ArrayLike) -> float:
    """Exact W1 between the uniform empirical distributions of the rows of ``x`` and ``y``,
    Euclidean ground cost, via ``ot.emd2``. O(n^3) time: use for n up to a few thousand."""
    from .metrics import w1_exact

    x, y = _samples(x, "x"), _samples(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y differ in dimension: {x.shape[1]} vs {y.shape[1]}")
    return w1_exact(x, y)


def sinkhorn_distance(x: ArrayLike, y: ArrayLike, reg: float = 0.05) -> float:
    """Entropic approximation ``<pi_reg, C>`` of W1 (Cuturi 2013) via ``ot.sinkhorn2``.

    Bias: the entropic plan spreads mass, so the transport cost it reports is *above* the exact
    W1, by an amount that grows with ``reg`` (relative to the cost scale); it tends to W1 as
    ``reg -> 0``, at the price of more iterations. ``reg`` is relative to the largest cost.
    """
    x, y = _samples(x, "x"), _samples(y, "y")
    if reg <= 0:
        raise ValueError(f"reg must be > 0, got {reg}")
    cost = ot.dist(x, y, metric="euclidean")
    scale = cost.max() or 1.0
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    plan = ot.sinkhorn(a, b, cost / scale, reg, numItermax=10_000, stopThr=1e-9)
    return float(np.sum(plan * cost))


def sliced_wasserstein(x: ArrayLike, y: ArrayLike, n_projections: int = 200,
                       seed: int = 0) -> float:
    """Sliced W1: the mean over random unit directions of the exact 1-D W1 of the projections
    (``ot.sliced_wasserstein_distance`` computes the p=2 version; this is p=1).

    Bias: it is a *lower* bound of W1 (a projection never lengthens a transport), by a factor that
    depends on the dimension (about ``E|theta_1| = sqrt(2 / (pi d))`` for isotropic shifts); it
    compares distributions in O(n log n) per direction, with Monte-Carlo noise ~ 1/sqrt(n_proj).
    """
    x, y = _samples(x, "x"), _samples(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y differ in dimension: {x.shape[1]} vs {y.shape[1]}")
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_projections, x.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return float(np.mean([wasserstein_1d(x @ d, y @ d) for d in directions]))
