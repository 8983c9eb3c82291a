"""The interface every dataset implements."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Modes:
    """Mixture geometry for mode-coverage metrics: component centres (data units) and std."""

    centres: Tensor  # (K, D)
    std: float


class Dataset:
    """A source of real samples in *training units*.

    Training units are what the networks see (standardised vectors, pixels in [-1, 1]);
    ``mean`` and ``std`` map them back to data units: ``x_data = x * std + mean``.
    Subclasses implement :meth:`sample`; all sampling goes through the given
    ``torch.Generator`` so a run is reproducible and resumable.
    """

    name: str = "dataset"
    sample_shape: tuple[int, ...] = ()
    modes: Modes | None = None

    def __init__(self) -> None:
        self.mean = torch.zeros(())
        self.std = torch.ones(())

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def to(self, device: torch.device | str) -> Dataset:
        """Move any held tensors to ``device`` (sampling then happens there)."""
        return self

    @property
    def is_image(self) -> bool:
        return len(self.sample_shape) == 3

    def to_data_units(self, x: Tensor) -> Tensor:
        return x * self.std.to(x.device) + self.mean.to(x.device)


class TensorDataset(Dataset):
    """Samples uniformly, with replacement, from rows held as one tensor (no DataLoader: one
    indexing kernel per batch, on the training device)."""

    def __init__(self, name: str, data: Tensor):
        super().__init__()
        self.name = name
        self.data = data
        self.sample_shape = tuple(data.shape[1:])

    def __len__(self) -> int:
        return self.data.shape[0]

    def to(self, device: torch.device | str) -> TensorDataset:
        self.data = self.data.to(device)
        return self

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        index = torch.randint(len(self), (n,), device=self.data.device, generator=generator)
        return self.data[index]


class StoredShape(Dataset):
    """Stands in for the real data when only sampling: knows the sample shape and the
    standardisation saved in a checkpoint, and refuses to produce real samples."""

    def __init__(self, sample_shape: tuple[int, ...], mean: Tensor, std: Tensor):
        super().__init__()
        self.name = "stored"
        self.sample_shape = sample_shape
        self.mean, self.std = mean, std

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        raise RuntimeError("this run was loaded without its data; load it with need_data=True")
