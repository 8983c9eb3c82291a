"""The run directory: where a run keeps its config, metrics, checkpoints, plots and evaluation.

Layout::

    RUN/
      config.json                 the resolved Config (what --resume reads back)
      metrics.csv                 one row per logging step
      tensorboard/                TensorBoard event files (same metrics)
      checkpoints/
        step-00001000.safetensors tensors (weights, optimizer state, RNG state) + JSON metadata
        step-00001000.sha256      checksum of the file beside it
      plots/                      figures
      eval.json                   the last evaluation

Nothing here can execute code on load: tensors are safetensors, everything else JSON/CSV.
Checkpoints are written atomically (temporary file, fsync, rename), so a crash at any moment
leaves either the previous checkpoint or the new one, never a half-written file as the newest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import Tensor

from .config import Config, ResolvedConfig
from .errors import CheckpointError, ConfigError, RunDirError
from .files import write_atomic

CHECKPOINT_FORMAT = 1
#: Fields added after runs were saved without them, and the value such a run trained with: a
#: recipe that later gained the field must not change an old run when it resumes.
TRAINED_BEFORE_FIELD: dict[str, Any] = {"penalty_every": 1}
_CHECKPOINT_NAME = re.compile(r"^step-(\d{8,})\.safetensors$")
METRIC_COLUMNS = ("step", "critic_steps", "wasserstein_estimate", "critic_loss",
                  "generator_loss", "penalty", "critic_grad_norm", "generator_grad_norm",
                  "seconds", "steps_per_second")


def default_run_path(config: Config, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(config.data).stem)
    base = Path(root) / f"{stamp}-{config.loss}-{data}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


class RunDir:
    """Paths and file I/O of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._columns: tuple[str, ...] | None = None  # of metrics.csv, read once

    # ---- creating and opening ----------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path | None, config: Config) -> RunDir:
        """Make a fresh run directory (refusing one that already holds files) and save config."""
        path = Path(path) if path is not None else default_run_path(config)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path}: exists and is not a directory")
        if path.is_dir() and any(path.iterdir()):
            raise RunDirError(f"{path}: run directory already exists and is not empty; "
                              f"use --resume {path} to continue it, or choose another --out")
        try:
            path.mkdir(parents=True, exist_ok=True)
            run = cls(path)
            run.checkpoint_dir.mkdir()
            run.plot_dir.mkdir()
            run.save_config(config)
        except OSError as err:
            raise RunDirError(f"{path}: cannot create run directory ({err.strerror})") from None
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Open an existing run directory; it must hold a config.json."""
        path = Path(path)
        if not path.is_dir():
            raise RunDirError(f"{path}: run directory not found")
        run = cls(path)
        if not run.config_path.is_file():
            raise RunDirError(f"{path}: not a wgan run directory (no config.json)")
        return run

    def save_config(self, config: Config) -> None:
        write_atomic(self.config_path, json.dumps(config.to_dict(), indent=2) + "\n")

    def load_config(self) -> ResolvedConfig:
        try:
            values = json.loads(self.config_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"{self.config_path}: unreadable config ({err})") from None
        if isinstance(values, dict):  # a field newer than the run: what the run trained with
            values = {**TRAINED_BEFORE_FIELD, **values}
        return Config.from_dict(values, source=str(self.config_path)).resolve()

    # ---- paths -------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def eval_path(self) -> Path:
        return self.path / "eval.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def plot_dir(self) -> Path:
        return self.path / "plots"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    # ---- checkpoints -------------------------------------------------------------------------

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoint_dir / f"step-{step:08d}.safetensors"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Every checkpoint file present, oldest first (validity not checked)."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = []
        for entry in self.checkpoint_dir.iterdir():
            match = _CHECKPOINT_NAME.match(entry.name)
            # A symlink could point outside the run directory: checkpoints are only ever
            # regular files written here, so links are ignored.
            if match and entry.is_file() and not entry.is_symlink():
                found.append((int(match.group(1)), entry))
        return sorted(found)

    def save_checkpoint(self, step: int, tensors: dict[str, Tensor], meta: dict[str, Any],
                        keep: int) -> Path:
        """Write a checkpoint atomically with its checksum, then prune to the newest ``keep``."""
        meta = {**meta, "format": CHECKPOINT_FORMAT, "step": step}
        data = safetensors.torch.save(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
            metadata={"wgan": json.dumps(meta)})
        path = self.checkpoint_path(step)
        digest = hashlib.sha256(data).hexdigest()
        # The checksum goes first: a checkpoint file is never the newest without its checksum.
        write_atomic(path.with_suffix(".sha256"), f"{digest}  {path.name}\n")
        write_atomic(path, data)
        self._prune(keep)
        return path

    def _prune(self, keep: int) -> None:
        for _, old in self.checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
            old.with_suffix(".sha256").unlink(missing_ok=True)

    @staticmethod
    def checkpoint_digest(path: Path) -> str | None:
        """The checksum recorded beside a checkpoint (``None`` if unreadable)."""
        try:
            return path.with_suffix(".sha256").read_text().split()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            return None

    def newest_checkpoint_meta(self) -> dict[str, Any] | None:
        """The metadata of the newest checkpoint file, read from its header only (``None`` if
        there is none or it is unreadable): what a resume needs to know before building."""
        for _, path in reversed(self.checkpoints()):
            try:
                with safetensors.safe_open(path, framework="pt") as handle:
                    return json.loads((handle.metadata() or {})["wgan"])
            except Exception:  # noqa: BLE001 -- a bad file: try the one before
                continue
        return None

    @staticmethod
    def read_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Verify a checkpoint's checksum and read it; raise :class:`CheckpointError` if bad."""
        try:
            data = path.read_bytes()
        except OSError as err:
            raise CheckpointError(f"{path}: cannot read checkpoint ({err.strerror})") from None
        sums = path.with_suffix(".sha256")
        try:
            expected = sums.read_text().split()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            raise CheckpointError(f"{path}: checksum file {sums.name} missing or unreadable") \
                from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise CheckpointError(f"{path}: checksum mismatch (corrupt or half-written file)")
        try:
            tensors = safetensors.torch.load(data)
            with safetensors.safe_open(path, framework="pt") as handle:
                header = handle.metadata() or {}
            meta = json.loads(header["wgan"])
        except Exception as err:  # safetensors raises several private types
            raise CheckpointError(f"{path}: not a wgan checkpoint ({err})") from None
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: unsupported checkpoint format")
        return tensors, meta

    def latest_checkpoint(self, warn: Callable[[str], None] | None = None
                          ) -> tuple[Path, dict[str, Tensor], dict[str, Any]]:
        """The newest checkpoint that verifies; older ones are tried when newer ones are bad."""
        candidates = self.checkpoints()
        if not candidates:
            raise RunDirError(f"{self.path}: run directory has no checkpoint")
        for _, path in reversed(candidates):
            try:
                tensors, meta = self.read_checkpoint(path)
            except CheckpointError as err:
                if warn:
                    warn(f"skipping bad checkpoint: {err}")
                continue
            return path, tensors, meta
        raise RunDirError(f"{self.path}: no valid checkpoint (all {len(candidates)} are corrupt)")

    # ---- metrics -----------------------------------------------------------------------------

    def truncate_metrics(self, last_step: int) -> None:
        """Drop metric rows after ``last_step`` (written by a run that died after its last
        checkpoint), so a resumed run does not log those steps twice."""
        if not self.metrics_path.exists():
            return
        with open(self.metrics_path, newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            return
        kept = [rows[0]] + [r for r in rows[1:] if r and _int_or_none(r[0]) is not None
                            and int(r[0]) <= last_step]
        if len(kept) != len(rows):
            text = "".join(",".join(r) + "\n" for r in kept)
            write_atomic(self.metrics_path, text)

    def append_metrics(self, row: dict[str, float]) -> None:
        new = not self.metrics_path.exists()
        if new:
            self._columns = METRIC_COLUMNS
        elif self._columns is None:  # a run started by an earlier version keeps its columns
            with open(self.metrics_path, newline="") as handle:
                header = next(csv.reader(handle), None)
            self._columns = tuple(header) if header else METRIC_COLUMNS
        columns = self._columns
        with open(self.metrics_path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore",
                                    lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(v) for k, v in row.items()})

    def read_metrics(self) -> list[dict[str, float]]:
        if not self.metrics_path.exists():
            return []
        with open(self.metrics_path, newline="") as handle:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                    for row in csv.DictReader(handle)]

    def write_eval(self, results: dict[str, Any]) -> None:
        write_atomic(self.eval_path, json.dumps(results, indent=2) + "\n")


def _int_or_none(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def _fmt(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}"
