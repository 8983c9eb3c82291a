"""MNIST and Fashion-MNIST from their original IDX files (gzip-compressed or not).

IDX: a big-endian header, magic ``0x000008NN`` (unsigned bytes, NN dimensions), NN 32-bit sizes,
then the raw bytes in row-major order. The loader looks in ``--data-dir`` or, without one, in
``$WGAN_DATA/<name>`` (default ``~/.cache/wgan/data/<name>``). Files missing from that cache
folder are downloaded from the publishers' mirrors and checked against the published md5 sums,
unless ``WGAN_OFFLINE=1``; a folder given with ``--data-dir`` is only read.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: Published md5 sums of the four files of each dataset.
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
MIRRORS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
MAX_IDX_BYTES = 2**31


def default_data_dir(name: str) -> Path:
    root = os.environ.get("WGAN_DATA") or Path.home() / ".cache" / "wgan" / "data"
    return Path(root) / name


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed if it starts with the gzip magic)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(raw), mode="rb") as stream:
                raw = stream.read(MAX_IDX_BYTES + 1)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt or truncated gzip stream ({err})") from None
    if len(raw) > MAX_IDX_BYTES:
        raise DataError(f"{path}: IDX data larger than {MAX_IDX_BYTES} bytes")
    if len(raw) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08 or not 1 <= ndim <= 4:
        raise DataError(f"{path}: wrong IDX magic number 0x{raw[:4].hex()} (expected "
                        "0x0000080N: unsigned bytes, N dimensions)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header truncated")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise DataError(f"{path}: IDX sizes {'x'.join(map(str, shape))} need {expected} bytes, "
                        f"file has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_files(name: str, data_dir: str | None, split: str) -> list[Path]:
    """Paths of the image and label files of ``split``, downloading them if allowed."""
    folder = Path(data_dir) if data_dir else default_data_dir(name)
    if data_dir and not folder.is_dir():
        raise DataError(f"{folder}: {name} data folder not found")
    paths = []
    for filename in FILES[split]:
        path = folder / filename
        if not path.is_file() and (folder / filename[:-3]).is_file():
            path = folder / filename[:-3]  # already decompressed
        if not path.is_file():
            if data_dir:  # the user's own folder: never download into it behind their back
                raise DataError(f"{folder}: {filename} not found; the {name} folder must hold "
                                f"{', '.join(f for pair in FILES.values() for f in pair)}")
            _download(name, folder, filename)
        paths.append(path)
    return paths


def _download(name: str, folder: Path, filename: str) -> None:
    where = (f"put {', '.join(f for pair in FILES.values() for f in pair)} in {folder} or pass "
             "--data-dir DIR")
    if os.environ.get("WGAN_OFFLINE") == "1":
        raise DataError(f"{name}: {filename} not found in {folder} and downloads are off "
                        f"(WGAN_OFFLINE=1); {where}")
    url = MIRRORS[name] + filename
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read(64 * 2**20)
    except OSError as err:
        raise DataError(f"{name}: {filename} not found in {folder} and the download from {url} "
                        f"failed ({getattr(err, 'reason', err)}); {where}") from None
    digest = hashlib.md5(data).hexdigest()
    if digest != MD5[name][filename]:
        raise DataError(f"{name}: downloaded {filename} has md5 {digest}, expected "
                        f"{MD5[name][filename]}; nothing was saved")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (filename + ".part")
    tmp.write_bytes(data)
    tmp.replace(folder / filename)


def load_idx_dataset(name: str, data_dir: str | None, split: str = "train"
                     ) -> tuple[Tensor, Tensor]:
    """``(images uint8 (N, 1, H, W), labels int64 (N,))`` of MNIST or Fashion-MNIST."""
    image_path, label_path = find_files(name, data_dir, split)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3:
        raise DataError(f"{image_path}: expected 3 IDX dimensions (N, H, W), got {images.ndim}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{label_path}: expected {images.shape[0]} labels to match "
                        f"{image_path.name}, got shape {labels.shape}")
    if images.shape[0] == 0:
        raise DataError(f"{image_path}: holds no images")
    if labels.max() > 9:
        raise DataError(f"{label_path}: labels must be 0..9, found {int(labels.max())}")
    return (torch.from_numpy(images.copy()).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)))
