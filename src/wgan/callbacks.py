"""The loop's standard callbacks: metric sinks (CSV, TensorBoard, progress bar), the run's control
(checkpoints by steps, by wall time and on signals; stopping), sample figures and the divergence
check. In a multi-process run the ranks take every control decision together.

``Trainer.fit`` installs :func:`default_callbacks`; pass your own to ``fit(callbacks=...)``.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from typing import Any

import torch
from torch import Tensor

from .errors import TrainingDiverged
from .loop import Callback, Trainer


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint."""


# ---- metric sinks ------------------------------------------------------------------------------

class ProgressBar(Callback):
    """A tqdm bar on standard error with the step rate and the live W estimate."""

    def on_fit_start(self, trainer: Trainer, total: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=trainer.step, unit="step", dynamic_ncols=True,
                        file=sys.stderr)

    def on_step_end(self, trainer: Trainer, losses: dict[str, Tensor]) -> None:
        self.bar.update(1)

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        key = "wasserstein_estimate" if trainer.objective.is_wasserstein else "critic_loss"
        self.bar.set_postfix({"W" if key.startswith("w") else "D loss": f"{row[key]:.4f}"})

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        self.bar.close()


class CSVMetrics(Callback):
    """One row of ``RUN/metrics.csv`` per logging step."""

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        trainer.run.append_metrics(row)


class TensorBoardMetrics(Callback):
    """``RUN/tensorboard``: the CSV's rows as scalars (one tag per column), the config as text,
    and the sample figure of each ``sample_every`` step as an image."""

    def on_fit_start(self, trainer: Trainer, total: int) -> None:
        from . import tensorboard

        self.tb = tensorboard
        self.writer = tensorboard.open_writer(trainer.run)
        if self.writer is not None and trainer.step == 0:
            tensorboard.log_config(self.writer, trainer.config)

    def on_step_end(self, trainer: Trainer, losses: dict[str, Tensor]) -> None:
        every = trainer.config.sample_every
        if self.writer is not None and every and trainer.step % every == 0:
            png = trainer.run.plot_dir / f"samples-step-{trainer.step:08d}.png"
            if png.is_file():  # written just before by SampleFigures
                self.tb.log_image(self.writer, "samples", png, trainer.step)

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        if self.writer is not None:
            self.tb.log_row(self.writer, row)

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        if self.writer is not None:
            self.writer.close()


# ---- safety ------------------------------------------------------------------------------------

def nonfinite(trainer: Trainer, losses: dict[str, Any] | None = None) -> str | None:
    """What is NaN or infinite in this process: a loss or either network's weights (``None``:
    nothing)."""
    for key, value in (losses or {}).items():
        if not math.isfinite(float(value)):
            return key.replace("_", " ")
    for name, module in (("critic", trainer.critic), ("generator", trainer.generator)):
        norms = torch._foreach_norm([p.detach() for p in module.parameters()])
        if not torch.isfinite(torch.stack(norms)).all():
            return f"{name} weights"
    return None


def check_finite(trainer: Trainer, losses: dict[str, Any] | None = None) -> None:
    """Raise :class:`TrainingDiverged` naming the step and the quantity if a loss or a weight of
    either network is NaN or infinite. In a multi-process run every rank must call it at the
    same step: the ranks agree, and all raise if any rank's state is not finite."""
    problem = nonfinite(trainer, losses)
    if trainer.dist is not None:
        problem = trainer.dist.first_problem(problem)
    if problem is not None:
        _diverged(trainer, problem)


def _diverged(trainer: Trainer, quantity: str) -> None:
    remedy = ("lower --lr, use a smaller --clip, or a gradient penalty (--loss wgan-gp) "
              "instead of clipping")
    saved = ""
    if trainer.run is not None and trainer.run.checkpoints():
        saved = f"; the last good checkpoint is kept in {trainer.run.checkpoint_dir}"
    raise TrainingDiverged(f"training diverged at step {trainer.step}: {quantity} is NaN or "
                           f"infinite{saved}; try: {remedy}")


class DivergenceGuard(Callback):
    """Checks the window's losses and every weight at each logging step (every rank, the same
    steps: the ranks agree)."""

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        check_finite(trainer, {k: row[k] for k in ("critic_loss", "generator_loss", "penalty")})


class RunControl(Callback):
    """Checkpoints and stopping.

    A checkpoint every ``every_steps`` steps, every ``every_minutes`` of training, at the end, and
    on SIGINT/SIGTERM, after which training stops with :class:`TrainingInterrupted` saying how
    to resume (signal handlers only in the main thread). Weights and the step's losses are checked
    first: a non-finite state is never written (so pruning never removes the last good one).

    In a multi-process run each decision is shared, so that every rank acts at the same step: at
    each step end the ranks exchange (stop requested, checkpoint due by the clock) in one small
    all-reduce, so a signal to any rank, or any rank's clock, counts for all; they agree on
    finiteness before a checkpoint; rank 0 writes it while the others wait."""

    def __init__(self, every_steps: int, every_minutes: float = 0.0):
        self.every_steps, self.every_seconds = every_steps, 60.0 * every_minutes

    def on_fit_start(self, trainer: Trainer, total: int) -> None:
        self.total, self.last_save = total, time.monotonic()
        self.received: int | None = None
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handler)
                             for s in (signal.SIGINT, signal.SIGTERM)}

    def _handler(self, signum: int, frame: Any) -> None:
        self.received = signum

    def on_step_end(self, trainer: Trainer, losses: dict[str, Tensor]) -> None:
        scheduled = trainer.step % self.every_steps == 0 or trainer.step == self.total
        by_clock = self.every_seconds > 0 and \
            time.monotonic() - self.last_save >= self.every_seconds
        stop = self.received or 0  # the signal's number
        if trainer.dist is not None:
            stop, by_clock = trainer.dist.maximum(stop, by_clock)
        if not (scheduled or by_clock or stop):
            return
        check_finite(trainer, losses)
        trainer.save_checkpoint()
        if trainer.dist is not None:
            trainer.dist.barrier()  # the checkpoint is on disk before any rank goes on or stops
        self.last_save = time.monotonic()
        if stop:
            self.received = None
            where = " by a process of this run" if trainer.dist is not None else ""
            raise TrainingInterrupted(f"{signal.Signals(stop).name} received{where}: stopped at "
                                      f"step {trainer.step} and saved a checkpoint; continue "
                                      f"with: wgan train --resume {trainer.run.path}")

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


class SampleFigures(Callback):
    """The run's figures (sample grid or 2-D scatter, W curve) every ``every`` steps (rank 0)."""

    def __init__(self, every: int):
        self.every = every

    def on_step_end(self, trainer: Trainer, losses: dict[str, Tensor]) -> None:
        if trainer.step % self.every == 0:
            if trainer.dist is not None:
                if nonfinite(trainer, losses) is None:  # the other ranks decide on divergence
                    trainer.save_figures()
                return
            check_finite(trainer, losses)  # a NaN generator has nothing to draw
            trainer.save_figures()


def default_callbacks(trainer: Trainer, progress: bool = True) -> list[Callback]:
    """What ``Trainer.fit`` installs: the divergence check always; with a run directory (on the
    process that writes, rank 0 when distributed) metrics, checkpoints, figures and the signal
    guard; a progress bar if ``progress``."""
    config = trainer.config
    callbacks: list[Callback] = [DivergenceGuard()]
    if progress and trainer.is_main_process:
        callbacks.append(ProgressBar())
    if trainer.run is not None:
        if trainer.is_main_process:
            if config.sample_every:
                callbacks.append(SampleFigures(config.sample_every))
            callbacks += [CSVMetrics(), TensorBoardMetrics()]
        callbacks.append(RunControl(config.checkpoint_every, config.checkpoint_minutes))
    return callbacks

