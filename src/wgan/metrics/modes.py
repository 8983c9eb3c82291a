"""Mode coverage on Gaussian mixtures, as defined by VEEGAN (Srivastava et al. 2017) and PacGAN
(Lin et al. 2018): a sample is *high quality* if it lies within 3 standard deviations of its
nearest mode centre; a mode is *captured* if it is the nearest mode of at least one high-quality
sample. We also report how many modes hold at least 20 high-quality samples, and PacGAN's
*reverse KL*: KL(generated || real) between the distributions over modes, the generated one being
the histogram of the high-quality samples' nearest modes (a missed mode adds nothing to it; the
mass it lacks raises the others' share, so dropping half the modes of a uniform mixture gives
log 2).

Neither counts a generator that shrinks each mode towards its centre: such samples are all high
quality. ``mode_spread`` does: the root-mean-square distance of the high-quality samples from
their mode's centre, per coordinate and in units of the mode's std, over what the mixture itself
gives inside the same 3-std ball. 1 for samples of the mixture, 0 for samples at the centres,
about 0.5 for modes half as wide."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from scipy.stats import chi2
from torch import Tensor


@dataclass(frozen=True)
class ModeCoverage:
    modes_captured: int
    modes_total: int
    high_quality_fraction: float
    modes_with_20: int
    reverse_kl: float | None
    mode_spread: float | None

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
        reverse_kl = spread = None
    else:
        spread = _spread(nearest_distance[good] / std, samples.shape[1], threshold)
        generated = counts.double() / counts.sum()
        seen = generated > 0
        reverse_kl = float((generated[seen] * (generated[seen] / real[seen]).log()).sum())
    return ModeCoverage(
        modes_captured=int((counts >= 1).sum()),
        modes_total=len(centres),
        high_quality_fraction=float(good.double().mean()),
        modes_with_20=int((counts >= min_count).sum()),
        reverse_kl=reverse_kl,
        mode_spread=spread,
    )


def _spread(radii: Tensor, dim: int, threshold: float) -> float:
    """rms of ``radii`` (distances in stds, all within ``threshold``) per coordinate, over a
    standard ``dim``-D Gaussian's inside the same ball: there ``r^2`` is chi-square with ``dim``
    degrees of freedom, and ``E[r^2; r^2 < t] = dim * P(chi2_{dim+2} < t)``."""
    t = threshold**2
    truth = float(chi2.cdf(t, dim + 2) / chi2.cdf(t, dim))      # E[r^2 | r^2 < t] / dim
    return float(((radii**2).mean() / dim / truth).sqrt())
