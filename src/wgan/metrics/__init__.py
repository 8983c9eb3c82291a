"""Evaluation metrics: exact Wasserstein-1 between sample sets, and mode coverage on mixtures."""

from .modes import ModeCoverage, mode_coverage
from .wasserstein import w1_exact

__all__ = ["ModeCoverage", "mode_coverage", "w1_exact"]
