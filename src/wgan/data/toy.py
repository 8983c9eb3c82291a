"""Built-in 2-D distributions, sampled exactly and on the fly (an infinite dataset).

Geometry below is in data units; the networks see each mixture standardised per coordinate
(``Dataset.mean`` / ``Dataset.std`` map back), so one recipe fits every scale.

- ``ring8``: 8 Gaussians with std 0.01 centred on the unit circle at angles 2*pi*k/8.
- ``grid25``: 25 Gaussians with std 0.05 centred on {-4, -2, 0, 2, 4}^2.
- ``grid16-rotated``: 16 Gaussians with std 0.05 on a 4 x 4 grid of spacing 2 ({-3, -1, 1, 3}^2),
  rotated by 30 degrees about the origin: data to search recipes on (``wgan tune``), with the same
  mode metrics, so that ``ring8`` and ``grid25``, which recipes are judged on, stay unseen.
- ``swissroll``: the 2-D swiss roll ``t (cos t, sin t)`` with ``t ~ U(1.5 pi, 4.5 pi)``,
  scaled by 1/7.5 and with Gaussian noise of std 0.25/7.5 (the WGAN-GP toy experiment's roll).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Dataset, Modes


class GaussianMixture(Dataset):
    """Equal-weight mixture of isotropic Gaussians with a shared std."""

    sample_shape = (2,)
    evaluators = ("modes",)

    def __init__(self, name: str, centres: Tensor, std: float):
        super().__init__()
        self.name = name
        self.modes = Modes(centres.clone(), std)
        # Training units: the mixture standardised per coordinate (exact moments).
        self.mean = centres.mean(0)
        self.std = (centres.var(0, unbiased=False) + std**2).sqrt()
        self.centres = (centres - self.mean) / self.std
        self.component_std = std / self.std

    def to(self, device: torch.device | str) -> GaussianMixture:
        self.centres = self.centres.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.centres.device

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        device = self.centres.device
        which = torch.randint(len(self.centres), (n,), device=device, generator=generator)
        noise = torch.randn(n, 2, device=device, generator=generator)
        return self.centres[which] + self.component_std.to(device) * noise


def ring8() -> GaussianMixture:
    angles = torch.arange(8) * (2 * math.pi / 8)
    return GaussianMixture("ring8", torch.stack([angles.cos(), angles.sin()], dim=1), std=0.01)


def grid25() -> GaussianMixture:
    axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    centres = torch.cartesian_prod(axis, axis)
    return GaussianMixture("grid25", centres, std=0.05)


def grid16_rotated() -> GaussianMixture:
    axis = torch.tensor([-3.0, -1.0, 1.0, 3.0])
    angle = math.radians(30)
    rotation = torch.tensor([[math.cos(angle), math.sin(angle)],
                             [-math.sin(angle), math.cos(angle)]])
    return GaussianMixture("grid16-rotated", torch.cartesian_prod(axis, axis) @ rotation, std=0.05)


class SwissRoll(Dataset):
    name = "swissroll"
    sample_shape = (2,)

    def __init__(self) -> None:
        super().__init__()
        self._device = torch.device("cpu")

    def to(self, device: torch.device | str) -> SwissRoll:
        self._device = torch.device(device)
        return self

    @property
    def device(self) -> torch.device:
        return self._device

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, device=self.device, generator=generator))
        roll = torch.stack([t * t.cos(), t * t.sin()], dim=1)
        noise = 0.25 * torch.randn(n, 2, device=self.device, generator=generator)
        return (roll + noise) / 7.5


TOY_DATASETS = {"ring8": ring8, "grid25": grid25, "grid16-rotated": grid16_rotated,
                "swissroll": SwissRoll}
