from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

#: Small, fast settings for real end-to-end runs on CPU.
TINY = ["--width", "32", "--depth", "2", "--batch-size", "32", "--noise-dim", "4", "--sample-every", "0",
        "--threads", "1", "--quiet"]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300,
            check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m wgan ARGS`` in a subprocess and capture its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "wgan", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"wgan {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def run_cli_parallel(*commands: list[str], workers: int = 2) -> None:
    """Run several ``wgan`` commands (each ``--threads 1``) ``workers`` at a time: on CI's two
    cores, independent fixture runs take about half the wall time. Raises on any failure."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(run_cli, *command, check=True) for command in commands]:
            future.result()


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def idx_bytes(array) -> bytes:
    """An uncompressed IDX file (unsigned bytes) holding ``array``."""
    import struct

    import numpy as np

    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.tobytes()


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA


def fid_weights_or_skip() -> None:
    """Skip a test that needs the Inception network file (fail instead where CI requires it)."""
    from wgan.metrics import inception

    try:
        inception.weights_path()
    except Exception as err:  # noqa: BLE001
        if os.environ.get("WGAN_REQUIRE_FID") == "1":
            pytest.fail(f"the FID tests need the fid extra (WGAN_REQUIRE_FID=1): {err}")
        pytest.skip(str(err))


def pooled_features():
    """A cheap stand-in for the Inception network, where only what surrounds it is under test:
    (N, 3, 299, 299) -> (N, 2048), each image's channel means repeated."""
    import torch

    class Pooled(torch.nn.Module):
        def forward(self, x):
            pooled = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
            return pooled.repeat(1, 683)[:, :2048]

    return Pooled()
