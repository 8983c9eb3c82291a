"""Writing files so that a reader (or a crash) never sees half of one: the one helper every file
the project writes goes through."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over
    ``path`` (readers see the old file or the new one, never a mix); on failure it is removed
    and ``path`` is untouched. For writers that want a file name (NumPy, PIL, safetensors)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def cache_root() -> Path:
    """Where wgan caches what it computes once (the MNIST classifier, FID statistics):
    ``$WGAN_CACHE``, default ``~/.cache/wgan``."""
    return Path(os.environ.get("WGAN_CACHE") or Path.home() / ".cache" / "wgan")


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically; see :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
