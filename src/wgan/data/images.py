"""Image datasets: pixels held in memory as one uint8 tensor, shape (N, C, H, W), and turned into
[-1, 1] floats batch by batch (a quarter of the memory of float32 pixels); or, for image folders
larger than a memory budget, decoded from disk batch by batch (:mod:`wgan.data.streaming`).

* ``mnist`` / ``fashion``: the original IDX gzip files (see :mod:`wgan.data.idx`);
* ``stacked-mnist``: three random MNIST digits as the R, G, B channels (1,000 modes);
* ``digits``: scikit-learn's bundled 8x8 digits (no files needed);
* ``cifar10``: the python pickle batches, read without executing any pickled code;
* a folder of PNG/JPEG images, searched recursively.

Datasets that fit in memory need no DataLoader: a batch is one indexing kernel and one conversion
on the training device.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DataError
from .base import TensorDataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_FOLDER_IMAGES = 500_000


def to_unit_range(pixels: Tensor) -> Tensor:
    """uint8 pixels -> floats (the default dtype) in [-1, 1]; floats are returned unchanged."""
    if pixels.dtype != torch.uint8:
        return pixels
    return pixels.to(torch.get_default_dtype()).div_(127.5).sub_(1.0)


def to_uint8(images: Tensor) -> Tensor:
    """Floats in [-1, 1] -> uint8 pixels (rounded)."""
    return ((images.clamp(-1.0, 1.0) + 1.0) * 127.5).round_().to(torch.uint8)


def resized_uint8(pixels: Tensor, size: int | None) -> Tensor:
    """uint8 images resized (see :func:`resize`) and quantised back to uint8."""
    if size is None or pixels.shape[-2:] == (size, size):
        return pixels
    return to_uint8(resize(to_unit_range(pixels).float(), size))


def resize(images: Tensor, size: int | None) -> Tensor:
    """Resize a (N, C, H, W) batch to ``size`` x ``size`` (antialiased bilinear), in chunks."""
    if size is None or images.shape[-2:] == (size, size):
        return images
    chunks = [F.interpolate(images[i:i + 4096], size=(size, size), mode="bilinear",
                            antialias=True, align_corners=False)
              for i in range(0, images.shape[0], 4096)]
    return torch.cat(chunks).clamp_(-1.0, 1.0)


class ImageDataset(TensorDataset):
    """Images as one tensor: uint8 pixels (converted to [-1, 1] per batch) or floats already in
    [-1, 1]. ``labels`` (if known) index the classes; ``held_out``: a test split, never trained
    on, for the evaluation."""

    def __init__(self, name: str, images: Tensor, labels: Tensor | None = None,
                 held_out: Tensor | None = None):
        super().__init__(name, images, held_out=held_out)
        self.labels = labels
        self.evaluators = ("mnist-classes", "inception") if name == "mnist" else ("inception",)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return to_unit_range(super().sample(n, generator))

    @property
    def summary(self) -> str:
        size = self.data.numel() * self.data.element_size() / 2**20
        return (f"{len(self)} images of {'x'.join(map(str, self.sample_shape))} held in memory "
                f"({size:.1f} MiB as {str(self.data.dtype).replace('torch.', '')})")

    def rows_to_samples(self, rows: Tensor) -> Tensor:
        return to_unit_range(rows)


class StackedMNIST(TensorDataset):
    """Each sample stacks three uniformly drawn MNIST digits as its three channels, so the
    distribution has 10^3 modes (the VEEGAN/PacGAN mode-collapse benchmark). Samples are composed
    on the fly from the MNIST training digits, on the training device; the evaluation's real
    triples (FID's reference) from the ``held_out`` test digits."""

    evaluators = ("stacked-mnist", "inception")

    def __init__(self, digits: Tensor, labels: Tensor, held_out: Tensor | None = None):
        super().__init__("stacked-mnist", digits, held_out=held_out)  # digits: (N, 1, H, W)
        self.labels = labels
        self.sample_shape = (3, *digits.shape[2:])

    @staticmethod
    def _stack(digits: Tensor, index: Tensor) -> Tensor:
        """Images from an (n, 3) index into ``digits``: digit ``index[i, c]`` is channel ``c``."""
        return to_unit_range(digits[index.flatten()].view(len(index), 3, *digits.shape[2:]))

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        index = torch.randint(len(self), (n, 3), device=self.data.device, generator=generator)
        return self._stack(self.data, index)

    def _reference_triples(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The evaluation's real triples, as (digits, (n, 3) index): of the held-out (test)
        digits, never trained on, where there are any (they stay where they were loaded, like
        every dataset's held-out rows); else of the training digits."""
        digits = self.data if self.held_out is None else self.held_out
        index = torch.randint(len(digits), (n, 3), device=generator.device, generator=generator)
        return digits, index.to(digits.device)

    def reference_samples(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Triples of held-out digits (the reference), then triples of training digits (the
        floor's other sample). 10,000^3 triples: two draws share (almost) no triple."""
        reference = self._stack(*self._reference_triples(n, generator))
        return reference, self.sample(n, generator)

    def reference_batches(self, n: int, generator: torch.Generator, batch: int
                          ) -> Iterator[Tensor]:
        """The first of :meth:`reference_samples` (the same triples), stacked a batch at a time.
        (The inherited one would yield single grey digits as stored: FID against the wrong
        images.)"""
        digits, index = self._reference_triples(n, generator)
        for start in range(0, n, batch):
            yield self._stack(digits, index[start:start + batch])


def load_mnist_like(name: str, data_dir: str | None, image_size: int | None) -> ImageDataset:
    """The 60,000 training images; the 10,000 test images are held out for the evaluation."""
    from .idx import load_idx_dataset

    images, labels = load_idx_dataset(name, data_dir, split="train")
    test_images, _ = load_idx_dataset(name, data_dir, split="test")
    return ImageDataset(name, resized_uint8(images, image_size), labels,
                        held_out=resized_uint8(test_images, image_size))


def load_stacked_mnist(data_dir: str | None, image_size: int | None) -> StackedMNIST:
    from .idx import load_idx_dataset

    images, labels = load_idx_dataset("mnist", data_dir, split="train")
    test_images, _ = load_idx_dataset("mnist", data_dir, split="test")
    return StackedMNIST(resized_uint8(images, image_size), labels,
                        held_out=resized_uint8(test_images, image_size))


def load_digits(image_size: int | None) -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits (grey levels 0..16)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
    images = to_uint8(pixels.div_(8.0).sub_(1.0))  # 17 grey levels, as 8-bit pixels
    return ImageDataset("digits", resized_uint8(images, image_size),
                        torch.as_tensor(bunch.target, dtype=torch.long))


# ---- CIFAR-10 ----------------------------------------------------------------------------------

class _SafeUnpickler(pickle.Unpickler):
    """Reconstructs only plain containers and NumPy arrays: any other global (the way a
    malicious pickle runs code) is refused before it is looked up."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise _Refused(f"refusing to load {module}.{name}: it could run code")


class _Refused(pickle.UnpicklingError):
    pass


def safe_unpickle(path: Path) -> object:
    """Load a pickle that may hold only dicts, lists, strings, numbers and NumPy arrays."""
    try:
        data = path.read_bytes()
        return _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    except _Refused as err:
        raise DataError(f"{path}: not a CIFAR-10 batch: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, MemoryError, OverflowError) as err:
        raise DataError(f"{path}: corrupt or truncated pickle ({type(err).__name__})") from None


CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def load_cifar10(data_dir: str | None, image_size: int | None) -> ImageDataset:
    """The five training batches of CIFAR-10's python version (``cifar-10-batches-py``)."""
    if data_dir is None:
        raise DataError("cifar10: pass --data-dir DIR, the folder holding data_batch_1 .. "
                        "data_batch_5 of the python version (cifar-10-batches-py)")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: cifar10 data folder not found")
    present = [folder / b for b in CIFAR_BATCHES if (folder / b).is_file()]
    if not present:
        raise DataError(f"{folder}: no CIFAR-10 batches (data_batch_1 .. data_batch_5) found")
    images, labels = [], []
    for path in present:
        batch = safe_unpickle(path)
        if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
            raise DataError(f"{path}: not a CIFAR-10 batch (expected a dict with data and "
                            "labels)")
        data, batch_labels = batch[b"data"], batch[b"labels"]
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != 3072:
            raise DataError(f"{path}: CIFAR-10 data must be a uint8 array of N x 3072 pixels")
        if not isinstance(batch_labels, list) or len(batch_labels) != data.shape[0] or not all(
                isinstance(v, int) and 0 <= v < 10 for v in batch_labels):
            raise DataError(f"{path}: CIFAR-10 labels must be {data.shape[0]} integers in 0..9")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.extend(batch_labels)
    return ImageDataset("cifar10", resized_uint8(torch.cat(images), image_size),
                        torch.tensor(labels))


# ---- a folder of images ------------------------------------------------------------------------

GREY_MODES = ("L", "LA", "I", "I;16", "1")


def list_images(path: Path) -> list[Path]:
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{path}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}, "
                        "recursively)")
    return files


def _bad_image(file: Path, err: Exception) -> DataError:
    from PIL import Image

    if isinstance(err, Image.DecompressionBombError):
        return DataError(f"{file}: image too large ({err})")
    reason = "empty file" if file.stat().st_size == 0 else type(err).__name__
    return DataError(f"{file}: not a readable image ({reason})")


def folder_channels(files: list[Path], channels: int | None) -> int:
    """1 if every image is grey, else 3 (from the files' headers only), unless ``channels``."""
    from PIL import Image, UnidentifiedImageError

    grey = True
    for file in files:
        try:
            with Image.open(file) as image:
                grey = grey and image.mode in GREY_MODES
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                Image.DecompressionBombError) as err:
            raise _bad_image(file, err) from None
    chosen = channels if channels is not None else (1 if grey else 3)
    if chosen not in (1, 3):
        raise DataError(f"channels must be 1 or 3 for an image folder, got {chosen}")
    return chosen


def decode_image(file: Path, size: int, channels: int) -> Tensor:
    """One image file as uint8 pixels (channels, size, size): the shorter side resized to
    ``size`` (bicubic), centre-cropped square."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image.load()
            picture = image.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as err:
        raise _bad_image(file, err) from None
    return _square(picture, size, channels)


def load_image_folder(path: Path, image_size: int | None, channels: int | None,
                      files: list[Path] | None = None) -> ImageDataset:
    """Every PNG/JPEG under ``path`` (recursively), resized so the shorter side is
    ``image_size`` (default 64) and centre-cropped square, held in memory as uint8. ``channels``
    1 or 3 (default: 1 if every image is grey, else 3). Folders larger than memory stream
    instead: :class:`wgan.data.streaming.StreamingImageFolder`, chosen by ``load_dataset``."""
    size = image_size or 64
    files = files if files is not None else list_images(path)
    if len(files) > MAX_FOLDER_IMAGES:
        raise DataError(f"{path}: {len(files)} images is more than the {MAX_FOLDER_IMAGES} an "
                        "in-memory dataset holds; lower --data-memory-mb to stream them")
    channels = folder_channels(files, channels)
    out = torch.empty(len(files), channels, size, size, dtype=torch.uint8)
    for i, file in enumerate(files):
        out[i] = decode_image(file, size, channels)
    dataset = ImageDataset(path.name or "images", out)
    dataset.source = str(path.resolve())  # what the FID statistics cache is keyed by
    return dataset


def _square(image, size: int, channels: int) -> Tensor:
    from PIL import Image

    width, height = image.size
    scale = size / min(width, height)
    new = (max(size, round(width * scale)), max(size, round(height * scale)))
    image = image.resize(new, Image.Resampling.BICUBIC)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.uint8).reshape(size, size, channels)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)
