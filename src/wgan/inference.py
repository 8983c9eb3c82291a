"""A finished (or paused) run, opened for sampling and evaluation: :func:`load_run`.

Only the networks' weights and the data's standardisation are read from the checkpoint -- never
the optimizers or the training random state -- so a run trained on any device samples and
evaluates on any other.

>>> import wgan
>>> run = wgan.load_run("runs/ring8")          # doctest: +SKIP
>>> run.sample(1000).shape                     # doctest: +SKIP
torch.Size([1000, 2])
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .config import ResolvedConfig
from .constraints import build_constraint
from .data import Dataset, StoredShape, load_dataset
from .ema import ExponentialMovingAverage
from .evaluate import EvalOptions, evaluate
from .models import build_models
from .runs import RunDir
from .runtime import resolve_device
from .sampling import Sampler
from .state import load_module


class TrainedRun:
    """The newest valid checkpoint of a run directory, ready to sample and evaluate.

    Attributes:
        config: the run's resolved settings. step: the checkpoint's generator step.
        generator: what samples come from (the moving average if the run kept one), eval mode.
        critic: the critic, eval mode. checkpoint_file: the file read.
    """

    def __init__(self, path: str | Path, device: str = "auto",
                 log: Callable[[str], None] | None = None):
        self.run = RunDir.open(path)
        self.log = log or (lambda message: None)
        self.config: ResolvedConfig = self.run.load_config()
        self.device = resolve_device(device)
        self.checkpoint_file, tensors, meta = self.run.latest_checkpoint(warn=self.log)
        self.step = int(meta["step"])
        self.sample_shape = tuple(meta["sample_shape"])
        with torch.random.fork_rng(devices=[]):
            generator, critic = build_models(self.config, self.sample_shape)
            critic = build_constraint(self.config).prepare(critic)
        load_module(generator, tensors, "generator")
        load_module(critic, tensors, "critic")
        self.raw_generator = generator.to(self.device).eval()
        self.critic: nn.Module = critic.to(self.device).eval()
        self.generator = self.raw_generator
        if any(k.startswith("ema.") for k in tensors):
            average = ExponentialMovingAverage(generator, self.config.ema or 0.0)
            load_module(average, tensors, "ema")
            self.generator = average.module.to(self.device).eval()
        self.stored = StoredShape(self.sample_shape, tensors["data.mean"], tensors["data.std"])
        self._data: Dataset | None = None

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def data(self) -> Dataset:
        """The run's real data, read on first use (only evaluation needs it)."""
        if self._data is None:
            self._data = load_dataset(self.config).to(self.device)
        return self._data

    def sampler(self, raw: bool = False, data: Dataset | None = None) -> Sampler:
        """Samples of the generator (the raw one if ``raw``); ``data`` maps them to data units
        (default: the standardisation stored in the checkpoint)."""
        return Sampler(self.raw_generator if raw else self.generator, self.config.noise_dim,
                       data or self.stored, self.device, default_seed=self.config.seed + 1)

    def sample(self, n: int, seed: int | None = None, data_units: bool = True) -> Tensor:
        """``n`` samples on the CPU, in data units by default; the same seed gives the same
        samples as ``Trainer.sample`` at this step."""
        return self.sampler().sample(n, seed, data_units)

    def evaluate(self, n: int | None = None, seed: int = 12345,
                 classifier: str | Path | None = None, fid: bool = False,
                 fid_samples: int = 10_000, fid_amp: str = "fp32",
                 fid_backend: str = "auto") -> dict[str, Any]:
        """:func:`wgan.evaluate.evaluate` on the run's data; ``step`` is added."""
        data = self.data
        sampler, raw = self.sampler(data=data), self.sampler(raw=True, data=data)
        options = EvalOptions(classifier, fid, fid_samples, fid_amp, log=self.log,
                              fid_backend=fid_backend)
        results = evaluate(sampler, data, self.critic, raw, n or self.config.eval_samples, seed,
                           options)
        return {"step": self.step, **results}


def load_run(path: str | Path, device: str = "auto",
             log: Callable[[str], None] | None = None) -> TrainedRun:
    """Open the newest valid checkpoint of the run directory ``path`` on ``device``."""
    return TrainedRun(path, device, log)
