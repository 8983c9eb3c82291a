"""Real data: built-in distributions and datasets by name, or a user's file by path.

:func:`load_dataset` turns ``config.data`` into a :class:`Dataset`. Built-in names are listed by
:func:`dataset_names`; anything else is treated as a path to a ``.npy`` or ``.csv`` file.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..errors import DataError
from .base import Dataset, Modes, StoredShape, TensorDataset
from .toy import TOY_DATASETS
from .vectors import VectorDataset, read_vectors

__all__ = ["Dataset", "Modes", "StoredShape", "TensorDataset", "VectorDataset", "dataset_names", "load_dataset",
           "read_vectors"]


def dataset_names() -> list[str]:
    return sorted(TOY_DATASETS)


def load_dataset(config: Config) -> Dataset:
    name = config.data
    if name in TOY_DATASETS:
        return TOY_DATASETS[name]()
    path = Path(name)
    if path.suffix.lower() in (".npy", ".csv", ".txt") or path.exists():
        return VectorDataset(path)
    raise DataError(f"unknown data {name!r}: not a built-in dataset ({', '.join(dataset_names())})"
                    " and not a .npy/.csv file")
