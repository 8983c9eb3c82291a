"""Real data: built-in distributions and datasets by name, or a user's file by path.

:func:`load_dataset` turns ``config.data`` into a :class:`Dataset`. Built-in names are listed by
:func:`dataset_names`; anything else is treated as a path to a ``.npy`` or ``.csv`` file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError
from . import images
from .base import Dataset, Modes, StoredShape, TensorDataset
from .toy import TOY_DATASETS
from .vectors import VECTOR_SUFFIXES, VectorDataset, read_vectors

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["Dataset", "Modes", "StoredShape", "TensorDataset", "VectorDataset", "dataset_names", "load_dataset",
           "read_vectors"]


IMAGE_DATASETS = ("mnist", "fashion", "stacked-mnist", "digits", "cifar10")


def dataset_names() -> list[str]:
    return sorted(TOY_DATASETS) + list(IMAGE_DATASETS)


def load_dataset(config: Config) -> Dataset:
    """The dataset ``config.data`` names: a built-in name, a folder of images, or a vector
    file (``.npy``/``.csv``)."""
    name, size = config.data, config.image_size
    if name in TOY_DATASETS:
        return TOY_DATASETS[name]()
    if name in ("mnist", "fashion"):
        return images.load_mnist_like(name, config.data_dir, size)
    if name == "stacked-mnist":
        return images.load_stacked_mnist(config.data_dir, size)
    if name == "digits":
        return images.load_digits(size)
    if name == "cifar10":
        return images.load_cifar10(config.data_dir, size)
    path = Path(name)
    if path.is_dir():
        files = images.list_images(path)
        side = size or 64
        channels = images.folder_channels(files, config.channels)
        if len(files) * channels * side * side > config.data_memory_mb * 2**20:
            from .streaming import StreamingImageFolder  # larger than the memory budget

            return StreamingImageFolder(path, files, side, channels, config.data_workers)
        return images.load_image_folder(path, size, channels, files)
    if path.suffix.lower() in VECTOR_SUFFIXES or path.exists():
        return VectorDataset(path)
    raise DataError(f"unknown data {name!r}: not a built-in dataset ({', '.join(dataset_names())}),"
                    " an image folder, or a .npy/.csv file")
