"""Mode coverage on Gaussian mixtures, as defined by VEEGAN (Srivastava et al. 2017) and PacGAN
(Lin et al. 2018): a sample is *high quality* if it lies within 3 standard deviations of its
nearest mode centre; a mode is *captured* if it is the nearest mode of at least one high-quality
sample. We also report how many modes hold at least 20 high-quality samples, and PacGAN's
*reverse KL*: KL(generated || real) between the distributions over modes, the generated one being
the histogram of the high-quality samples' nearest modes (a missed mode adds nothing to it; the
mass it lacks raises the others' share, so dropping half the modes of a uniform mixture gives
log 2)."""

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
    reverse_kl: float | None

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def mode_coverage(samples: Tensor, centres: Tensor, std: float, threshold: float = 3.0,
                  min_count: int = 20, weights: Tensor | None = None) -> ModeCoverage:
    """Coverage of ``samples`` (N, D) over a mixture with ``centres`` (K, D), shared ``std`` and
    mode ``weights`` (K,; equal when not given). With no high-quality sample at all the reverse KL
    is ``None`` (undefined)."""
    samples = samples.detach().double().cpu()
    centres = centres.detach().double().cpu()
    distances = torch.cdist(samples, centres)
    nearest_distance, nearest = distances.min(dim=1)
    good = nearest_distance <= threshold * std
    counts = torch.bincount(nearest[good], minlength=len(centres))
    real = (torch.full((len(centres),), 1.0 / len(centres), dtype=torch.float64)
            if weights is None else weights.detach().double().cpu() / weights.sum())
    if counts.sum() == 0:
        reverse_kl = None
    else:
        generated = counts.double() / counts.sum()
        seen = generated > 0
        reverse_kl = float((generated[seen] * (generated[seen] / real[seen]).log()).sum())
    return ModeCoverage(
        modes_captured=int((counts >= 1).sum()),
        modes_total=len(centres),
        high_quality_fraction=float(good.double().mean()),
        modes_with_20=int((counts >= min_count).sum()),
        reverse_kl=reverse_kl,
    )
