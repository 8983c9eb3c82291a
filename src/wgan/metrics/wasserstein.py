"""Exact Wasserstein-1 between two empirical distributions, through POT's network simplex."""

from __future__ import annotations

import warnings

import numpy as np
import torch

#: The network simplex's first iteration limit; raised tenfold while it is hit, up to the max.
FIRST_ITERATION_LIMIT = 10_000_000
MAX_ITERATION_LIMIT = 1_000_000_000


class SolverLimitReached(RuntimeError):
    """The exact solver stopped at its iteration limit: its cost is not the optimum."""


def _as_matrix(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def w1_exact(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """W1 between the uniform empirical distributions on the rows of ``x`` and ``y`` with
    Euclidean ground cost: ``min_pi sum_ij pi_ij ||x_i - y_j||_2`` over couplings ``pi`` with
    uniform marginals (computed exactly by ``ot.emd2``). Samples are flattened per row.

    If the solver stops at its iteration limit (its cost is then not the optimum), the limit is
    raised tenfold and the problem solved again, up to :data:`MAX_ITERATION_LIMIT`; past that,
    :class:`SolverLimitReached` is raised instead of returning a wrong number."""
    x, y = _as_matrix(x), _as_matrix(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"samples differ in dimension: {x.shape[1]} vs {y.shape[1]}")
    if len(x) == 0 or len(y) == 0:
        raise ValueError("w1_exact needs at least one sample on each side")
    import ot  # with scikit-learn, which it imports, ~1.5 s: only when a distance is solved

    cost = ot.dist(x, y, metric="euclidean")
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    limit = FIRST_ITERATION_LIMIT
    while True:
        with warnings.catch_warnings():  # the limit is checked below, not left to a warning
            warnings.simplefilter("ignore")
            value, log = ot.emd2(a, b, cost, numItermax=limit, log=True)
        if log.get("warning") is None:
            return float(value)
        if limit >= MAX_ITERATION_LIMIT:
            raise SolverLimitReached(f"exact W1 between {len(x)} and {len(y)} samples: the "
                                     f"network simplex hit its iteration limit ({limit:,}) "
                                     f"before the optimum ({log['warning']})")
        limit = min(limit * 10, MAX_ITERATION_LIMIT)
