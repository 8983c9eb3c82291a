"""The interface every dataset implements."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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

    ``evaluators`` names the metrics that apply to this data beyond exact W1 (see
    :mod:`wgan.evaluate`): ``"modes"`` for mixtures with known ``modes``, ``"mnist-classes"``
    and ``"stacked-mnist"`` for the MNIST classifier's metrics, ``"inception"`` for images.
    """

    name: str = "dataset"
    sample_shape: tuple[int, ...] = ()
    modes: Modes | None = None
    evaluators: tuple[str, ...] = ()
    #: Read from disk batch by batch during training (a stream of its own, not ``sample``).
    streamed: bool = False

    def __init__(self) -> None:
        self.mean = torch.zeros(())
        self.std = torch.ones(())

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def to(self, device: torch.device | str) -> Dataset:
        """Move any held tensors to ``device`` (sampling then happens there)."""
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def is_image(self) -> bool:
        return len(self.sample_shape) == 3

    def to_data_units(self, x: Tensor) -> Tensor:
        return x * self.std.to(x.device) + self.mean.to(x.device)

    def reference_samples(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Two real samples of equal size for evaluation: ``reference``, which generated samples
        are compared with, and ``other``, compared with ``reference`` for the noise floor. Here
        (a distribution sampled on the fly) both are fresh samples the model never saw."""
        return self.sample(n, generator), self.sample(n, generator)

    def reference_batches(self, n: int, generator: torch.Generator, batch: int
                          ) -> Iterator[Tensor]:
        """The ``reference`` half of :meth:`reference_samples` for the same generator state (the
        same samples, in the same order), in batches of at most ``batch``: for metrics that read
        many images (Inception FID) without holding them all in memory at once."""
        reference, _ = self.reference_samples(n, generator)
        for start in range(0, len(reference), batch):
            yield reference[start:start + batch]

    @property
    def summary(self) -> str | None:
        """One line on where the samples come from (``None``: nothing worth saying)."""
        return None

    def batch_source(self, batch: int, generator: torch.Generator, seed: int = 0,
                     skip: int = 0) -> Callable[[int], Tensor]:
        """Where training batches come from: here ``sample(n, generator)``, drawing from the
        training random stream. Datasets read from disk return their own stream (``seed``,
        after ``skip`` batches of ``batch``)."""
        return lambda n: self.sample(n, generator)


class TensorDataset(Dataset):
    """Samples uniformly, with replacement, from rows held as one tensor (no DataLoader: one
    indexing kernel per batch, on the training device). ``held_out`` rows, if any, are never
    trained on and serve the evaluation."""

    def __init__(self, name: str, data: Tensor, held_out: Tensor | None = None):
        super().__init__()
        self.name = name
        self.data = data
        self.held_out = held_out
        self.sample_shape = tuple(data.shape[1:])

    def __len__(self) -> int:
        return self.data.shape[0]

    @property
    def device(self) -> torch.device:
        return self.data.device

    def to(self, device: torch.device | str) -> TensorDataset:
        self.data = self.data.to(device)
        return self

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        index = torch.randint(len(self), (n,), device=self.data.device, generator=generator)
        return self.data[index]

    def rows_to_samples(self, rows: Tensor) -> Tensor:
        """Stored rows -> samples in training units (here the same; images convert pixels)."""
        return rows

    def _reference_split(self, n: int, generator: torch.Generator
                         ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """The rows :meth:`reference_samples` returns, as (table, index) for each of the two."""
        def draw(rows: Tensor, count: int) -> tuple[Tensor, Tensor]:
            order = torch.randperm(len(rows), generator=generator, device=generator.device)
            return rows, order[:count].to(rows.device)

        if self.held_out is not None:
            n = min(n, len(self.held_out), len(self))
            return draw(self.held_out, n), draw(self.data, n)
        n = min(n, len(self) // 2)
        order = torch.randperm(len(self), generator=generator, device=generator.device)
        order = order.to(self.data.device)
        return (self.data, order[:n]), (self.data, order[n:2 * n])

    def reference_samples(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Drawn without replacement, so that no row counts twice: with held-out rows, the
        reference comes from them and the other sample from the training rows; without, the two
        are disjoint halves of the data. Either way ``n`` shrinks to what the data allows
        (the floor of W1 is biased low when the two samples share rows)."""
        (a, index_a), (b, index_b) = self._reference_split(n, generator)
        return self.rows_to_samples(a[index_a]), self.rows_to_samples(b[index_b])

    def reference_batches(self, n: int, generator: torch.Generator, batch: int
                          ) -> Iterator[Tensor]:
        (rows, index), _ = self._reference_split(n, generator)
        for start in range(0, len(index), batch):
            yield self.rows_to_samples(rows[index[start:start + batch]])


class StoredShape(Dataset):
    """Stands in for the real data when only sampling: knows the sample shape and the
    standardisation saved in a checkpoint, and refuses to produce real samples."""

    def __init__(self, sample_shape: tuple[int, ...], mean: Tensor, std: Tensor):
        super().__init__()
        self.name = "stored"
        self.sample_shape = sample_shape
        self.mean, self.std = mean, std

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        raise RuntimeError("this stands in for a run's data when sampling only; evaluation reads "
                           "the data itself (wgan.load_run(...).data)")
