"""Drawing samples from a trained generator."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .data import Dataset
from .models import eval_mode


class Sampler:
    """``n`` samples from ``generator`` (in eval mode, in chunks, with its own seeded noise: the
    training random state is never touched), in data units by default, on the CPU."""

    def __init__(self, generator: nn.Module, noise_dim: int, data: Dataset,
                 device: torch.device, default_seed: int = 1, chunk: int = 1024):
        self.generator, self.noise_dim, self.data = generator, noise_dim, data
        self.device, self.default_seed, self.chunk = device, default_seed, chunk

    def noise(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, self.noise_dim, device=self.device, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, data_units: bool = True) -> Tensor:
        rng = torch.Generator(device=self.device).manual_seed(
            self.default_seed if seed is None else seed)
        with eval_mode(self.generator):
            chunks = [self.generator(self.noise(min(self.chunk, n - i), rng))
                      for i in range(0, n, self.chunk)]
        x = torch.cat(chunks) if chunks else torch.empty(0, *self.data.sample_shape)
        return (self.data.to_data_units(x) if data_units else x).cpu()

    __call__ = sample
