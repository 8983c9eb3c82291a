"""Image folders larger than memory: decoded from disk batch by batch by DataLoader worker
processes (pinned memory on CUDA), so the resident size stays a few batches whatever the size of
the folder. ``--data-memory-mb`` sets the budget above which a folder streams.

Training batches come from their own seeded stream of file indices (uniformly, with replacement),
so that workers can decode ahead: the stream seeded with ``s`` gives the batches the in-memory
dataset's ``sample`` gives from a generator seeded with ``s``. In training, though, the in-memory
path draws its batches from the training generator it shares with the noise, so a streamed run
and an in-memory run of the same seed see different (equally random) batches; a resume that moves
between the two (a changed ``--data-memory-mb``) says so. Each process of a distributed run has
its own stream (seeded by rank), the with-replacement analogue of a ``DistributedSampler``; a
resume restarts the stream where the run left it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from ..errors import DataError
from .base import Dataset
from .images import decode_image, to_unit_range


class _Files(TorchDataset):
    def __init__(self, files: list[Path], size: int, channels: int):
        self.files, self.size, self.channels = files, size, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        return decode_image(self.files[index], self.size, self.channels)


class IndexStream(Sampler[list[int]]):
    """An endless stream of batches of file indices, uniform with replacement, from a seeded
    generator, starting after ``skip`` batches."""

    def __init__(self, count: int, batch: int, seed: int, skip: int = 0):
        self.count, self.batch, self.seed, self.skip = count, batch, seed, skip

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.skip):
            torch.randint(self.count, (self.batch,), generator=generator)
        while True:
            yield torch.randint(self.count, (self.batch,), generator=generator).tolist()


class StreamingImageFolder(Dataset):
    """The images of a folder, never all in memory. See the module docstring."""

    evaluators = ("inception",)
    streamed = True

    def __init__(self, path: Path, files: list[Path], size: int, channels: int, workers: int = 2):
        super().__init__()
        self.name = path.name or "images"
        self.source = str(path.resolve())
        self.files, self.size, self.channels, self.workers = files, size, channels, workers
        self.sample_shape = (channels, size, size)
        self._device = torch.device("cpu")

    def __len__(self) -> int:
        return len(self.files)

    @property
    def summary(self) -> str:
        size = len(self) * self.channels * self.size**2 / 2**20
        return (f"{len(self)} images of {'x'.join(map(str, self.sample_shape))} streamed from disk "
                f"by {self.workers} worker processes ({size:.1f} MiB of pixels, over the "
                "--data-memory-mb budget)")

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: torch.device | str) -> StreamingImageFolder:
        self._device = torch.device(device)
        return self

    def _decode(self, indices: list[int]) -> Tensor:
        pixels = torch.stack([decode_image(self.files[i], self.size, self.channels)
                              for i in indices])
        return to_unit_range(pixels.to(self._device))

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` images decoded now, indices drawn from ``generator`` (evaluation, figures)."""
        index = torch.randint(len(self), (n,), generator=generator, device=generator.device)
        return self._decode(index.tolist())

    def reference_samples(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        n = min(n, len(self) // 2)
        order = torch.randperm(len(self), generator=generator, device=generator.device).tolist()
        return self._decode(order[:n]), self._decode(order[n:2 * n])

    def reference_batches(self, n: int, generator: torch.Generator, batch: int
                          ) -> Iterator[Tensor]:
        """The reference images decoded ``batch`` at a time: memory stays one batch."""
        n = min(n, len(self) // 2)
        order = torch.randperm(len(self), generator=generator, device=generator.device).tolist()
        for start in range(0, n, batch):
            yield self._decode(order[start:min(start + batch, n)])

    def batch_source(self, batch: int, generator: torch.Generator, seed: int = 0,
                     skip: int = 0) -> Callable[[int], Tensor]:
        """Training batches of ``batch`` images from the stream seeded by ``seed``, after the
        first ``skip`` batches, decoded ahead by worker processes."""
        loader = DataLoader(_Files(self.files, self.size, self.channels),
                            batch_sampler=IndexStream(len(self), batch, seed, skip),
                            num_workers=self.workers, pin_memory=self._device.type == "cuda",
                            persistent_workers=self.workers > 0,
                            prefetch_factor=2 if self.workers > 0 else None)
        batches = iter(loader)

        def next_batch(n: int) -> Tensor:
            if n != batch:
                return self.sample(n, generator)
            try:
                pixels = next(batches)
            except DataError as err:  # re-raised from a worker: keep its first line
                raise DataError(_first_line(err)) from None
            except RuntimeError as err:
                raise DataError(f"{self.source}: a data worker failed "
                                f"({_first_line(err)})") from None
            return to_unit_range(pixels.to(self._device, non_blocking=True))

        return next_batch


def _first_line(err: Exception) -> str:
    """The error's own message: a worker's exception arrives with its traceback appended."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    own = [line for line in lines if line.startswith(("wgan.errors.DataError: ", "DataError: "))]
    if own:
        return own[-1].split(": ", 1)[1]
    return lines[0] if lines else type(err).__name__
