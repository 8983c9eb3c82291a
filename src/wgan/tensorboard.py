"""TensorBoard output of a run (``RUN/tensorboard``): the metric rows as scalars (tags are the
``metrics.csv`` columns), the resolved config as text, the sample figures as images, and at the
end the hyper-parameters with the final metrics, so that ``tensorboard --logdir runs/`` compares
runs in its HPARAMS tab."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .config import Config
    from .runs import RunDir


def open_writer(run: RunDir) -> Any:
    """A ``SummaryWriter`` on ``RUN/tensorboard``, or ``None`` when TensorBoard is missing (the CSV
    metrics still work)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(run.tensorboard_dir))


def log_row(writer: Any, row: dict[str, float]) -> None:
    for key, value in row.items():
        if key != "step":
            writer.add_scalar(key, value, row["step"])


def log_config(writer: Any, config: Config) -> None:
    text = json.dumps(config.to_dict(), indent=2)
    writer.add_text("config", "    " + text.replace("\n", "\n    "), 0)  # markdown code block


def log_image(writer: Any, tag: str, png: Path, step: int) -> None:
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"))
    writer.add_image(tag, pixels, step, dataformats="HWC")


def hparams(config: Config) -> dict[str, Any]:
    """The settings, as TensorBoard's hparams accept them (numbers, strings, booleans)."""
    out = {}
    for key, value in config.to_dict().items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        out[key] = "none" if value is None else value
    return out


def write_hparams(run: RunDir, config: Config, results: dict[str, Any]) -> None:
    """The run's settings with its final metrics (the finite numbers among ``results``)."""
    metrics = {f"final/{k}": float(v) for k, v in results.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"
               and math.isfinite(float(v))}
    writer = open_writer(run)
    if writer is None:
        return
    with writer:
        writer.add_hparams(hparams(config), metrics, run_name=".")
