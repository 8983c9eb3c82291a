"""A user's own vectors from a ``.npy`` or ``.csv`` file, standardised per column for training
and mapped back to data units for sampling and evaluation."""

from __future__ import annotations

import csv
import io
import tokenize
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import TensorDataset

MAX_BYTES = 2**31  # a vector file larger than this is refused rather than read into memory


def read_vectors(path: str | Path) -> np.ndarray:
    """Read a 2-D float array (rows = samples) from ``.npy`` or ``.csv``; raise
    :class:`DataError` naming the file and problem for anything else."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: data file is empty")
    if path.stat().st_size > MAX_BYTES:
        raise DataError(f"{path}: data file is larger than {MAX_BYTES} bytes")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = _read_npy(path)
    elif suffix in (".csv", ".txt"):
        array = _read_csv(path)
    else:
        raise DataError(f"{path}: unsupported data file type {suffix!r}; use .npy or .csv")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DataError(f"{path}: expected a 2-D array (samples x features), got shape "
                        f"{array.shape}")
    if array.shape[0] < 2 or array.shape[1] < 1:
        raise DataError(f"{path}: need at least 2 samples and 1 feature, got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(array[row, col]) else "infinite value"
        raise DataError(f"{path}: {kind} at row {row + 1}, column {col + 1} "
                        f"({int(bad.sum())} non-finite values in all)")
    return array


def _read_npy(path: Path) -> np.ndarray:
    try:
        # allow_pickle=False: a .npy holding Python objects is refused, never unpickled.
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise DataError(f"{path}: not a numeric .npy array ({str(err).splitlines()[0]})") from None
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read .npy file ({str(err).splitlines()[0]})") from None
    except (SyntaxError, TypeError, KeyError, MemoryError, OverflowError, tokenize.TokenError) as err:
        # a mangled header: NumPy parses it with ast.literal_eval
        raise DataError(f"{path}: corrupt .npy header ({type(err).__name__})") from None
    if not isinstance(array, np.ndarray) or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"{path}: .npy array must be numeric, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise DataError(f"{path}: .npy array must be real, got dtype {array.dtype}")
    return array.astype(np.float64)


def _read_csv(path: Path) -> np.ndarray:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{path}: data file has no rows")
    if not _is_numeric_row(rows[0]):
        rows = rows[1:]  # a header line
    if not rows:
        raise DataError(f"{path}: data file has a header but no data rows")
    width = len(rows[0])
    values = np.empty((len(rows), width))
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(f"{path}: row {i + 1} of the data has {len(row)} columns, "
                            f"expected {width}")
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise DataError(f"{path}: non-numeric value {cell.strip()[:40]!r} at data row "
                                f"{i + 1}, column {j + 1}") from None
    return values


def _is_numeric_row(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


class VectorDataset(TensorDataset):
    """Rows of a vector file, standardised: ``x_train = (x - mean) / std`` per column."""

    def __init__(self, path: str | Path):
        array = read_vectors(path)
        data = torch.from_numpy(array).float()
        mean = data.mean(0)
        std = data.std(0)
        std = torch.where(std > 0, std, torch.ones_like(std))
        super().__init__(Path(path).name, (data - mean) / std)
        self.mean, self.std = mean, std
