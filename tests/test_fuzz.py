"""Property-based fuzzing of every reader: random and mutated inputs must end in the reader's
documented exception (ConfigError, DataError, CheckpointError) or a valid result, never another
exception or a hang. The CLI turns those exceptions into one line and exit status 2 (tested in
test_cli.py, test_images.py and test_reliability.py with real subprocesses)."""

import gzip
import io
import json
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import idx_bytes
from wgan import Config, RunDir
from wgan.data.idx import read_idx
from wgan.data.images import load_cifar10, load_image_folder
from wgan.data.vectors import read_vectors
from wgan.errors import CheckpointError, ConfigError, DataError

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def mutate(data: bytes, edits) -> bytes:
    """Apply (position, kind, byte) edits: overwrite, delete, insert or truncate."""
    buf = bytearray(data)
    for pos, kind, value in edits:
        if not buf:
            break
        i = pos % len(buf)
        if kind == 0:
            buf[i] = value
        elif kind == 1:
            del buf[i]
        elif kind == 2:
            buf.insert(i, value)
        else:
            del buf[i:]
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.integers(0, 255)),
                 min_size=1, max_size=6)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                               max_size=3),
                           max_leaves=6)
FIELDS = list(Config.__dataclass_fields__)


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=6))
def test_config_dicts(values):
    try:
        Config.from_dict(values).resolve()
    except ConfigError as err:
        assert "\n" not in str(err)


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode), st.sampled_from([".json", ".toml"]))
def test_config_files(content, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"c{suffix}"
        path.write_bytes(content)
        try:
            Config.load(path).resolve()
        except ConfigError as err:
            assert "\n" not in str(err)


cells = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.integers(-10**30, 10**30).map(str), st.text(max_size=4), st.just(""))


@FUZZ
@given(st.lists(st.lists(cells, min_size=0, max_size=4), max_size=8), edits | st.just([]))
def test_csv_files(rows, byte_edits):
    text = "\n".join(",".join(r) for r in rows).encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.csv"
        path.write_bytes(mutate(text, byte_edits) if byte_edits and text else text)
        try:
            array = read_vectors(path)
        except DataError as err:
            assert "\n" not in str(err)
        else:
            assert array.ndim == 2 and array.size > 0 and np.isfinite(array).all()


@FUZZ
@given(st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, "U3", object]),
       st.lists(st.integers(0, 5), min_size=0, max_size=3), st.sampled_from([0.0, np.nan, np.inf, 1e300]),
       edits | st.just([]))
def test_npy_files(dtype, shape, special, byte_edits):
    array = np.full(shape, 1, dtype=dtype) if dtype is not object else np.array([{}] * 2, dtype=object)
    if array.size and array.dtype.kind == "f":
        array.flat[0] = special
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npy"
        path.write_bytes(mutate(buf.getvalue(), byte_edits) if byte_edits else buf.getvalue())
        try:
            out = read_vectors(path)
        except DataError as err:
            assert "\n" not in str(err)
        else:
            assert out.ndim == 2 and np.isfinite(out).all()


@FUZZ
@given(st.lists(st.integers(0, 6), min_size=1, max_size=3), edits, st.booleans())
def test_idx_files(shape, byte_edits, compress):
    raw = idx_bytes(np.full(shape, 7, np.uint8))
    data = mutate(gzip.compress(raw) if compress else raw, byte_edits)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x-idx3-ubyte.gz"
        path.write_bytes(data)
        try:
            array = read_idx(path)
        except DataError as err:
            assert "\n" not in str(err)
        else:
            assert array.dtype == np.uint8


def _png(size, mode):
    buf = io.BytesIO()
    Image.new(mode, size, 90).save(buf, format="PNG")
    return buf.getvalue()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.tuples(st.integers(1, 40), st.integers(1, 40)),
                          st.sampled_from(["L", "RGB", "RGBA", "P", "1", "I;16"]),
                          st.sampled_from(["ok", "empty", "mutated"]), edits), min_size=1, max_size=4))
def test_image_folders(files):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, (size, mode, kind, byte_edits) in enumerate(files):
            data = _png(size, mode)
            data = b"" if kind == "empty" else mutate(data, byte_edits) if kind == "mutated" else data
            (folder / f"{i}.png").write_bytes(data)
        try:
            ds = load_image_folder(folder, 8, None)
        except DataError as err:
            assert "\n" not in str(err)
        else:
            assert ds.data.shape[1:] in ((1, 8, 8), (3, 8, 8)) and ds.data.dtype == torch.uint8
            batch = ds.sample(4, torch.Generator().manual_seed(0))
            assert batch.min() >= -1 and batch.max() <= 1


_GOOD_CIFAR = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2)


@FUZZ
@given(edits)
def test_cifar_pickles(byte_edits):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data_batch_1").write_bytes(mutate(_GOOD_CIFAR, byte_edits))
        try:
            ds = load_cifar10(tmp, None)
        except DataError as err:
            assert "\n" not in str(err)
        else:
            assert ds.data.shape[1:] == (3, 32, 32)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    run = RunDir.create(tmp_path_factory.mktemp("ck") / "r", Config(data="ring8").resolve())
    path = run.save_checkpoint(1, {"a": torch.ones(3)}, {"x": 1}, keep=1)
    return path.read_bytes()


@FUZZ
@given(edits)
def test_checkpoint_files(checkpoint_bytes, byte_edits):
    import hashlib

    data = mutate(checkpoint_bytes, byte_edits)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "step-00000001.safetensors"
        path.write_bytes(data)
        # a matching checksum, so the parser itself is exercised
        path.with_suffix(".sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")
        try:
            tensors, meta = RunDir.read_checkpoint(path)
        except CheckpointError as err:
            assert "\n" not in str(err)
        else:
            assert isinstance(meta, dict) and json.dumps(meta)
