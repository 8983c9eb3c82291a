"""The training loop: steps, and hooks around them.

:func:`fit` runs generator steps until a total is reached, averages the losses over each logging
window, and calls its callbacks; everything else -- metric files, TensorBoard, the progress bar,
checkpoints, figures, the divergence check, signals -- is a :class:`Callback`
(:mod:`wgan.callbacks`). Demos, benchmarks and tests pass their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .algorithm import Algorithm
from .distributed import Distributed
from .objectives import Objective
from .runs import RunDir


class Trainer(Protocol):
    """What the loop and its callbacks use of a trainer (:class:`wgan.train.Trainer` is one);
    spelled out here so that the loop does not depend on the Trainer that runs it."""

    step: int
    config: Any
    device: torch.device
    generator: nn.Module
    critic: nn.Module
    algorithm: Algorithm
    objective: Objective
    run: RunDir | None
    dist: Distributed | None
    is_main_process: bool

    def train_step(self) -> dict[str, Tensor]: ...

    def save_checkpoint(self) -> Path | None: ...

    def save_figures(self) -> list[Path]: ...


class StopTraining(Exception):
    """Raised by a callback to end :func:`fit` early and cleanly (``on_fit_end`` still runs)."""


class Callback:
    """Hooks called by :func:`fit`; override the ones you need.

    Order of calls: ``on_fit_start``; per step ``on_step_end``, then on logging steps
    ``on_log`` with the window's averaged row; ``on_fit_end`` last, always (``error`` is the
    exception that ended the loop, or ``None``).
    """

    def on_fit_start(self, trainer: Trainer, total: int) -> None:
        pass

    def on_step_end(self, trainer: Trainer, losses: dict[str, Tensor]) -> None:
        pass

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        pass

    def on_fit_end(self, trainer: Trainer, error: BaseException | None) -> None:
        pass


class MetricWindow:
    """Sums the step losses on the device and turns them into one row per logging window."""

    KEYS = ("critic_loss", "generator_loss", "penalty")

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(len(self.KEYS), device=device)
        self.reset()

    def reset(self) -> None:
        self.sums.zero_()
        self.steps = self.critic_steps = 0
        self.start = time.perf_counter()

    def add(self, losses: dict[str, Tensor], critic_steps: int) -> None:
        self.sums += torch.stack([losses[k].float() for k in self.KEYS])
        self.steps += 1
        self.critic_steps += critic_steps

    def row(self, step: int, wasserstein: bool = True,
            reduce: Callable[[Tensor], Tensor] | None = None) -> dict[str, Any]:
        """The window's mean losses (averaged over the processes by ``reduce``, if given)."""
        means = self.sums / max(self.steps, 1)
        if reduce is not None:
            means = reduce(means)
        critic_loss, generator_loss, penalty = means.tolist()
        seconds = time.perf_counter() - self.start
        row = {"step": step, "critic_steps": self.critic_steps,
               "wasserstein_estimate": -critic_loss if wasserstein else float("nan"),
               "critic_loss": critic_loss, "generator_loss": generator_loss, "penalty": penalty,
               "seconds": seconds, "steps_per_second": self.steps / max(seconds, 1e-9)}
        self.reset()
        return row


def gradient_norms(trainer: Trainer) -> dict[str, float]:
    """The L2 norm of each network's gradient from its last update (the last critic iteration,
    the generator iteration), over all its parameters."""
    norms = {}
    for name, module in (("critic", trainer.critic), ("generator", trainer.generator)):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        total = torch.stack(torch._foreach_norm(grads)).norm() if grads else None
        norms[f"{name}_grad_norm"] = float(total) if total is not None else float("nan")
    return norms


def fit(trainer: Trainer, total: int, callbacks: list[Callback], log_every: int
        ) -> dict[str, Any]:
    """Train ``trainer`` until ``total`` generator steps, calling ``callbacks``. Returns the last
    logged row (empty if none was logged)."""
    window = MetricWindow(trainer.device)
    row: dict[str, Any] = {}
    error: BaseException | None = None
    for callback in callbacks:
        callback.on_fit_start(trainer, total)
    try:
        while trainer.step < total:
            critic_steps = trainer.algorithm.critic_iterations(trainer.step)
            losses = trainer.train_step()
            window.add(losses, critic_steps)
            for callback in callbacks:
                callback.on_step_end(trainer, losses)
            if trainer.step % log_every == 0 or trainer.step == total:
                reduce = trainer.dist.mean if trainer.dist else None
                row = {**window.row(trainer.step, trainer.objective.is_wasserstein, reduce),
                       **gradient_norms(trainer)}
                for callback in callbacks:
                    callback.on_log(trainer, row)
    except StopTraining:
        pass
    except BaseException as err:
        error = err
        raise
    finally:
        for callback in callbacks:
            callback.on_fit_end(trainer, error)
    return row
