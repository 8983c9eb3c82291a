"""TensorBoard output of a run (``RUN/tensorboard``): scalars while training; the resolved config as
text, sample images, and hparams with the final metrics, so that ``tensorboard --logdir runs/``
compares runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runs import RunDir


def open_writer(run: RunDir) -> Any:
    """A ``SummaryWriter`` on ``RUN/tensorboard``, or ``None`` when TensorBoard is missing (the CSV
    metrics still work)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(run.tensorboard_dir))
