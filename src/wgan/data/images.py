"""Image datasets held in memory as one tensor of pixels in [-1, 1], shape (N, C, H, W).

* ``mnist`` / ``fashion``: the original IDX gzip files (see :mod:`wgan.data.idx`);
* ``stacked-mnist``: three random MNIST digits as the R, G, B channels (1,000 modes);
* ``digits``: scikit-learn's bundled 8x8 digits (no files needed);
* ``cifar10``: the python pickle batches, read without executing any pickled code;
* a folder of PNG/JPEG images, searched recursively.

Small datasets fit in memory, so a batch is one indexing kernel on the training device instead
of a DataLoader round trip.
"""

from __future__ import annotations

import io
import pickle
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
    """uint8 pixels -> float32 in [-1, 1]."""
    return pixels.float().div_(127.5).sub_(1.0)


def resize(images: Tensor, size: int | None) -> Tensor:
    """Resize a (N, C, H, W) batch to ``size`` x ``size`` (antialiased bilinear), in chunks."""
    if size is None or images.shape[-2:] == (size, size):
        return images
    chunks = [F.interpolate(images[i:i + 4096], size=(size, size), mode="bilinear",
                            antialias=True, align_corners=False)
              for i in range(0, images.shape[0], 4096)]
    return torch.cat(chunks).clamp_(-1.0, 1.0)


class ImageDataset(TensorDataset):
    """Pixels in [-1, 1] as one tensor; ``labels`` (if known) index the classes; ``held_out``:
    a test split, never trained on, for the evaluation."""

    def __init__(self, name: str, images: Tensor, labels: Tensor | None = None,
                 held_out: Tensor | None = None):
        super().__init__(name, images, held_out=held_out)
        self.labels = labels
        self.evaluators = ("mnist-classes", "inception") if name == "mnist" else ("inception",)


class StackedMNIST(TensorDataset):
    """Each sample stacks three uniformly drawn MNIST digits as its three channels, so the
    distribution has 10^3 modes (the VEEGAN/PacGAN mode-collapse benchmark). Samples are composed
    on the fly from the MNIST tensor, on the training device."""

    evaluators = ("stacked-mnist", "inception")

    def __init__(self, digits: Tensor, labels: Tensor):
        super().__init__("stacked-mnist", digits)  # digits: (N, 1, H, W)
        self.labels = labels
        self.sample_shape = (3, *digits.shape[2:])

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        index = torch.randint(len(self), (n, 3), device=self.data.device, generator=generator)
        return self.data[index.flatten()].view(n, 3, *self.data.shape[2:])

    def reference_samples(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        # 60,000^3 triples: two fresh samples share (almost) nothing.
        return self.sample(n, generator), self.sample(n, generator)


def load_mnist_like(name: str, data_dir: str | None, image_size: int | None) -> ImageDataset:
    """The 60,000 training images; the 10,000 test images are held out for the evaluation."""
    from .idx import load_idx_dataset

    images, labels = load_idx_dataset(name, data_dir, split="train")
    test_images, _ = load_idx_dataset(name, data_dir, split="test")
    return ImageDataset(name, resize(to_unit_range(images), image_size), labels,
                        held_out=resize(to_unit_range(test_images), image_size))


def load_stacked_mnist(data_dir: str | None, image_size: int | None) -> StackedMNIST:
    from .idx import load_idx_dataset

    images, labels = load_idx_dataset("mnist", data_dir, split="train")
    return StackedMNIST(resize(to_unit_range(images), image_size), labels)


def load_digits(image_size: int | None) -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits (grey levels 0..16)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
    images = pixels.div_(8.0).sub_(1.0)
    return ImageDataset("digits", resize(images, image_size),
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
    pixels = to_unit_range(torch.cat(images))
    return ImageDataset("cifar10", resize(pixels, image_size), torch.tensor(labels))


# ---- a folder of images ------------------------------------------------------------------------

def load_image_folder(path: Path, image_size: int | None, channels: int | None) -> ImageDataset:
    """Every PNG/JPEG under ``path`` (recursively), resized so the shorter side is
    ``image_size`` (default 64) and centre-cropped square. ``channels`` 1 or 3 (default: 1 if
    every image is greyscale, else 3)."""
    from PIL import Image, UnidentifiedImageError

    size = image_size or 64
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{path}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}, "
                        "recursively)")
    if len(files) > MAX_FOLDER_IMAGES:
        raise DataError(f"{path}: {len(files)} images is more than the {MAX_FOLDER_IMAGES} an "
                        "in-memory dataset holds")
    pictures = []
    for file in files:
        try:
            with Image.open(file) as image:
                image.load()
                pictures.append(image.copy())
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            reason = "empty file" if file.stat().st_size == 0 else type(err).__name__
            raise DataError(f"{file}: not a readable image ({reason})") from None
        except Image.DecompressionBombError as err:
            raise DataError(f"{file}: image too large ({err})") from None
    if channels is None:
        channels = 1 if all(p.mode in ("L", "LA", "I", "I;16", "1") for p in pictures) else 3
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3 for an image folder, got {channels}")
    mode = "L" if channels == 1 else "RGB"
    out = torch.empty(len(pictures), channels, size, size, dtype=torch.uint8)
    for i, picture in enumerate(pictures):
        out[i] = _square(picture.convert(mode), size, channels)
    dataset = ImageDataset(path.name or "images", to_unit_range(out))
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
