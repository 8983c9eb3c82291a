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
VECTOR_SUFFIXES = (".npy", ".csv", ".txt")
#: Rows held out of training for evaluation (exact W1 and its floor on data the model never saw)
HELD_OUT_FRACTION = 0.1
MIN_ROWS_TO_HOLD_OUT = 20


def peek_dimension(path: str | Path) -> int | None:
    """The width of the rows of a vector file, read from its header or first lines only; ``None``
    when ``path`` is not a readable vector file (the full reader then says why)."""
    path = Path(path)
    if path.suffix.lower() not in VECTOR_SUFFIXES or not path.is_file():
        return None
    try:
        if path.suffix.lower() == ".npy":
            with open(path, "rb") as handle:
                major, _ = np.lib.format.read_magic(handle)
                read_header = (np.lib.format.read_array_header_1_0 if major == 1
                               else np.lib.format.read_array_header_2_0)
                shape, _, _ = read_header(handle)
            return 1 if len(shape) == 1 else int(shape[1]) if len(shape) == 2 else None
        with open(path, newline="") as handle:
            for row in csv.reader(line for _, line in zip(range(50), handle)):
                if any(cell.strip() for cell in row):
                    return len(row)
    except Exception:  # noqa: BLE001  (any unreadable file: the reader reports it properly)
        return None
    return None


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
    elif suffix in VECTOR_SUFFIXES:
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
    """Rows of a vector file, standardised: ``x_train = (x - mean) / std`` per column.

    A fixed 10% of the rows (from 20 rows up; the same rows every time) is held out of training,
    so that the evaluation measures samples and the real-against-real floor on data the model
    never saw."""

    def __init__(self, path: str | Path):
        array = read_vectors(path)
        data = torch.from_numpy(array).float()
        held_out = None
        if len(data) >= MIN_ROWS_TO_HOLD_OUT:
            order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
            cut = max(1, int(round(HELD_OUT_FRACTION * len(data))))
            data, held_out = data[order[cut:]], data[order[:cut]]
        mean = data.mean(0)
        std = data.std(0)
        std = torch.where(std > 0, std, torch.ones_like(std))
        super().__init__(Path(path).name, (data - mean) / std,
                         held_out=None if held_out is None else (held_out - mean) / std)
        self.mean, self.std = mean, std
