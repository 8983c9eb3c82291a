"""Mode coverage on Gaussian mixtures, as defined by VEEGAN (Srivastava et al. 2017) and PacGAN
(Lin et al. 2018): a sample is *high quality* if it lies within 3 standard deviations of its
nearest mode centre; a mode is *captured* if it is the nearest mode of at least one high-quality
sample. We also report how many modes hold at least 20 high-quality samples."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ModeCoverage:
    modes_captured: int
    modes_total: int
    high_quality_fraction: float
    modes_with_20: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def mode_coverage(samples: Tensor, centres: Tensor, std: float, threshold: float = 3.0,
                  min_count: int = 20) -> ModeCoverage:
    """Coverage of ``samples`` (N, D) over a mixture with ``centres`` (K, D) and shared ``std``."""
    samples = samples.detach().double().cpu()
    centres = centres.detach().double().cpu()
    distances = torch.cdist(samples, centres)
    nearest_distance, nearest = distances.min(dim=1)
    good = nearest_distance <= threshold * std
    counts = torch.bincount(nearest[good], minlength=len(centres))
    return ModeCoverage(
        modes_captured=int((counts >= 1).sum()),
        modes_total=len(centres),
        high_quality_fraction=float(good.double().mean()),
        modes_with_20=int((counts >= min_count).sum()),
    )
