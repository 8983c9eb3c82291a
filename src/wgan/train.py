"""The Trainer: builds a run's parts from its config and orchestrates them.

What a training step computes is :class:`wgan.algorithm.Algorithm`; how it runs fast,
:class:`wgan.runtime.Runtime`; the loop and its I/O, :mod:`wgan.loop` and :mod:`wgan.callbacks`;
evaluation, :func:`wgan.evaluate.evaluate`; the run directory, :class:`wgan.runs.RunDir`.

>>> from wgan import Config, Trainer
>>> trainer = Trainer(Config(data="ring8", steps=200))
>>> trainer.fit()                       # doctest: +SKIP
>>> trainer.evaluate()["w1_exact"]      # doctest: +SKIP
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import distributed, loop
from .algorithm import Algorithm, LearningRateSchedule
from .callbacks import TrainingInterrupted, default_callbacks
from .config import Config, resumable_fields
from .constraints import build_constraint, has_stateful_forward
from .data import Dataset, load_dataset
from .ema import ExponentialMovingAverage
from .errors import ConfigError, RunDirError, SharedCheckpointError
from .evaluate import EvalOptions, evaluate
from .models import build_models
from .models.packing import PackedCritic, pack_size
from .objectives import LOSSES
from .runs import RunDir
from .runtime import Runtime
from .sampling import Sampler
from .state import (
    load_module,
    load_optimizer,
    module_tensors,
    optimizer_tensors,
    restore_rng,
    rng_device_type,
)

__all__ = ["Trainer", "TrainingInterrupted", "make_optimizer"]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_optimizer(name: str, params: Iterable[Tensor], lr: float, betas: tuple[float, float],
                   device: torch.device) -> torch.optim.Optimizer:
    """Fused kernels where PyTorch has them (Adam, SGD: one pass over each tensor; measured 1.07x
    on the CPU MLP step), else foreach (RMSprop has no fused kernel)."""
    fused = device.type in ("cpu", "cuda")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, foreach=True)
    return torch.optim.SGD(params, lr=lr, fused=fused)


def create_run(out: str | Path, config: Config, dist: distributed.Distributed | None) -> RunDir:
    """A fresh run directory; in a distributed run rank 0 makes it and every rank gets its path."""
    if dist is None:
        return RunDir.create(out, config)
    path = dist.broadcast(str(out))
    run = RunDir.create(path, config) if dist.is_main else RunDir(path)
    dist.barrier()
    return run


def _resume_overrides(run: RunDir, stored: Config, overrides: dict[str, Any]) -> dict[str, Any]:
    """The settings a resume may change: the resumable fields, and ``batch_size`` only when the
    number of processes changes (so the global batch can stay what it was)."""
    allowed = resumable_fields()
    bad = sorted(set(overrides) - set(allowed) - {"batch_size"})
    if bad:
        raise ConfigError(f"cannot change {', '.join(bad)} when resuming; only "
                          f"{', '.join(allowed)} may change (and batch_size with another number "
                          "of processes)")
    overrides = dict(overrides)
    batch = overrides.pop("batch_size", None)
    if batch is not None and batch != stored.batch_size:
        meta = run.newest_checkpoint_meta() or {}
        before, now = meta.get("world_size", 1), distributed.world_size_from_env()
        if before == now:
            raise ConfigError(f"cannot change batch_size when resuming with the same number of "
                              f"processes ({now}): --batch-size may change on a resume only with "
                              "another number of processes, to keep the global batch")
        overrides["batch_size"] = batch
    return overrides


def _resume_notes(trainer: Trainer, stored: Config, meta: dict[str, Any]) -> list[str]:
    """What changed on this resume that changes the training from here on, one line each."""
    notes = []
    before, now = meta.get("world_size", 1), trainer.dist.world_size if trainer.dist else 1
    if before != now:
        batch = trainer.config.batch_size
        notes.append(f"note: trained with {before} process(es), continuing with {now}: the global "
                     f"batch was {stored.batch_size} x {before} = {stored.batch_size * before}, "
                     f"now {batch} x {now} = {batch * now}")
    streamed = meta.get("data_streamed")
    if streamed is not None and streamed != trainer.data.streamed:
        def where(on_disk: bool) -> str:
            return "streamed from disk" if on_disk else "held in memory"

        notes.append(f"note: the images were {where(streamed)} and are now "
                     f"{where(trainer.data.streamed)} (--data-memory-mb): the training batches from "
                     "here on are another random sequence than an uninterrupted run would draw")
    return notes


class Trainer:
    """Owns a run's networks, optimizers, data, random state and run directory.

    Args:
        config: the settings; resolved here (once) against the data's sample shape.
        run: the run directory to write into (``None`` and no ``out``: nothing is written).
        dataset: real data to use instead of ``load_dataset(config)``.
        log: where one-line messages go (default: standard error).
        out: create a fresh run directory here once everything else is built (so bad input
            never leaves a half-made run behind).
        generator, critic: your own ``nn.Module``s instead of the registered ``config.model``
            (the generator maps ``(B, noise_dim)`` noise to samples, the critic samples to
            ``(B,)`` scores; with ``config.pack`` m > 1, packs of m to one score: PackedCritic).
    """

    def __init__(self, config: Config, run: RunDir | None = None, dataset: Dataset | None = None,
                 log: Callable[[str], None] | None = None, *, out: str | Path | None = None,
                 generator: nn.Module | None = None, critic: nn.Module | None = None):
        config.validate()  # bad values fail before any data is read
        self.dist = distributed.setup(config.device)  # under torchrun: this process's rank
        self.rank = self.dist.rank if self.dist else 0
        self.is_main_process = self.rank == 0
        self.log = (log or _stderr) if self.is_main_process else (lambda message: None)
        data = dataset if dataset is not None else load_dataset(config)
        self.config = config = config.resolve(data.sample_shape)
        self.runtime = Runtime.from_config(config, self.log)
        self.device = self.runtime.device
        self.objective, self.constraint = LOSSES[config.loss], build_constraint(config)
        with torch.random.fork_rng(devices=[]):  # initialise from the seed, not global state
            torch.manual_seed(config.seed)
            if generator is None or critic is None:
                built = build_models(config, data.sample_shape)
                generator, critic = generator or built[0], critic or built[1]
            if config.pack > 1 and pack_size(critic) == 1:  # a critic given for packs
                critic = PackedCritic(critic, data.sample_shape, config.pack)
            critic = self.constraint.prepare(critic)
        if config.sync_batch_norm and self.dist:
            if self.runtime.device.type != "cuda":
                raise ConfigError("--sync-batch-norm needs CUDA: PyTorch's SyncBatchNorm runs on "
                                  "GPUs only (on CPU, batch norm uses each process's batch)")
            generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
        self.generator, self.critic = generator, critic
        self.data = self.runtime.place(data, generator, critic)
        self.opt_critic = make_optimizer(config.optimizer, critic.parameters(), config.lr,
                                         config.betas, self.device)
        self.opt_generator = make_optimizer(config.optimizer, generator.parameters(),
                                            config.lr_generator, config.betas, self.device)
        self.schedule = LearningRateSchedule({self.opt_critic: config.lr,
                                              self.opt_generator: config.lr_generator},
                                             config.lr_decay, config.steps,
                                             constant=(self.opt_critic,))
        self.ema = ExponentialMovingAverage(generator, config.ema) if config.ema > 0 else None
        self.rng = torch.Generator(device=self.device).manual_seed(config.seed)
        self.step = 0
        self._batches: Callable[[int], Tensor] | None = None  # made at the first step
        # DDP wraps the modules for the generator's forward and the critic step; the generator
        # step runs the bare critic (constant weights: no gradient to average). A penalty
        # differentiates the critic twice, which torch.compile cannot compile.
        wrap = (lambda m: self.dist.wrap(m, self.device)) if self.dist else (lambda m: m)
        no_compile = self.constraint.needs_double_backward
        self.algorithm = self._algorithm(
            self.runtime.forward(wrap(generator), "generator"),
            self.runtime.forward(wrap(critic), "critic", not no_compile),
            self.runtime.forward(critic, "critic", not no_compile) if self.dist else None)
        self.run = create_run(out, config, self.dist) if out is not None else run
        if self.data.summary:
            self.log(f"data: {self.data.name}: {self.data.summary}")
        if self.dist:
            self.log(f"distributed: {self.dist.world_size} processes ({self.dist.backend}), "
                     f"global batch {config.batch_size} x {self.dist.world_size} = "
                     f"{config.batch_size * self.dist.world_size}")

    def finish_distributed(self) -> None:
        """End this process's part in a distributed run: wait for the others, drop the DDP
        wrappers, then leave the process group (in that order: a wrapper outliving its group can
        abort the process at exit). The Trainer then works alone (rank 0 evaluates)."""
        if self.dist is None:
            return
        self.dist.barrier()
        no_compile = self.constraint.needs_double_backward
        self.algorithm = self._algorithm(self.runtime.forward(self.generator, "generator"),
                                         self.runtime.forward(self.critic, "critic",
                                                              not no_compile))
        self.dist = None
        gc.collect()
        distributed.teardown()

    def _algorithm(self, generate: Callable[[Tensor], Tensor],
                   criticize: Callable[[Tensor], Tensor],
                   criticize_frozen: Callable[[Tensor], Tensor] | None = None) -> Algorithm:
        config, runtime = self.config, self.runtime
        return Algorithm(
            self.generator, self.critic, self.opt_critic, self.opt_generator, self.objective,
            self.constraint, real_batch=lambda n: runtime.layout(self._batches(n)),
            noise=lambda n: self.noise(n), rng=self.rng, batch_size=config.batch_size,
            n_critic=config.n_critic, critic_boost=config.critic_boost, generate=generate,
            criticize=criticize, criticize_frozen=criticize_frozen,
            joint_forward=not has_stateful_forward(self.critic))

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.config.noise_dim, device=self.device,
                           generator=generator or self.rng)

    # ---- training ----------------------------------------------------------------------------

    def critic_iterations(self, step: int) -> int:
        return self.algorithm.critic_iterations(step)

    def train_step(self) -> dict[str, Tensor]:
        """One generator step and its critic steps (with the learning-rate schedule and the
        moving average). Returns detached scalar losses, left on the device."""
        self.schedule.apply(self.step)
        if self._batches is None:  # a stream read from disk continues where the run is
            skip = sum(self.critic_iterations(t) for t in range(self.step))
            self._batches = self.data.batch_source(
                self.config.batch_size, self.rng, distributed.step_seed(self.config.seed,
                                                                        self.rank, -1), skip)
        if self.dist:  # each rank its own stream, reproducible whatever the number of ranks
            self.rng.manual_seed(distributed.step_seed(self.config.seed, self.rank, self.step))
        losses = self.algorithm.step(self.step)
        if self.ema is not None:
            self.ema.update(self.generator)
        self.step += 1
        return losses

    def fit(self, steps: int | None = None, callbacks: Iterable[loop.Callback] = (),
            progress: bool = True, defaults: bool = True) -> dict[str, Any]:
        """Train until ``steps`` generator steps in total (default: ``config.steps``) with the
        standard callbacks (``defaults``) and ``callbacks``. Returns the last metrics row."""
        extra = list(callbacks)
        chosen = (default_callbacks(self, progress) if defaults else []) + extra
        return loop.fit(self, steps if steps is not None else self.config.steps, chosen,
                        self.config.log_every)

    # ---- checkpoints -------------------------------------------------------------------------

    def state_tensors(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Everything needed to continue exactly: tensors, and JSON-able metadata."""
        tensors = {**module_tensors("generator", self.generator),
                   **module_tensors("critic", self.critic)}
        if self.ema is not None:
            tensors.update(module_tensors("ema", self.ema))
        groups = {}
        for prefix, opt in (("opt_critic", self.opt_critic), ("opt_generator", self.opt_generator)):
            values, groups[prefix] = optimizer_tensors(prefix, opt)
            tensors.update(values)
        tensors.update({"rng": self.rng.get_state(), "data.mean": self.data.mean,
                        "data.std": self.data.std})
        meta = {"param_groups": groups, "sample_shape": list(self.data.sample_shape),
                "noise_dim": self.config.noise_dim, "config": self.config.to_dict(),
                "torch": torch.__version__, "rng_device": self.device.type,
                "world_size": self.dist.world_size if self.dist else 1,
                "data_streamed": self.data.streamed, "precision": self.runtime.precision}
        return tensors, meta

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state_tensors` saved, on whatever device this Trainer uses."""
        load_module(self.generator, tensors, "generator")
        load_module(self.critic, tensors, "critic")
        if self.ema is not None:
            load_module(self.ema, tensors, "ema")
        for prefix, opt in (("opt_critic", self.opt_critic), ("opt_generator", self.opt_generator)):
            load_optimizer(opt, tensors, prefix, meta["param_groups"][prefix])
        self.step = int(meta["step"])
        note = restore_rng(self.rng, tensors["rng"], rng_device_type(tensors["rng"],
                                                                     meta.get("rng_device")),
                           self.config.seed, self.step)
        if note:
            self.log(note)

    def save_checkpoint(self) -> Path | None:
        if self.run is None or not self.is_main_process:
            return None
        tensors, meta = self.state_tensors()
        try:
            return self.run.save_checkpoint(self.step, tensors, meta, self.config.keep_checkpoints)
        except OSError as err:
            raise RunDirError(f"{self.run.checkpoint_dir}: cannot write checkpoint at step "
                              f"{self.step} ({err.strerror or err}); the previous checkpoint is "
                              "intact") from None

    @classmethod
    def resume(cls, path: str | Path, log: Callable[[str], None] | None = None,
               **overrides: Any) -> Trainer:
        """Reopen a run directory at its newest valid checkpoint (or at step 0 if it was stopped
        before its first one) to continue training. ``overrides`` may change the settings whose
        role leaves the trained function alone (:func:`wgan.config.resumable_fields`), and
        ``batch_size`` when the number of processes changes. In a multi-process run every rank
        loads the checkpoint rank 0 chose (:func:`wgan.distributed.shared_checkpoint`)."""
        run = RunDir.open(path)
        stored = run.load_config()
        overrides = _resume_overrides(run, stored, overrides)
        trainer = cls(stored.replace(**overrides), run=run, log=log)
        try:
            found = distributed.shared_checkpoint(trainer.dist, run, trainer.log)
        except SharedCheckpointError:
            trainer.finish_distributed()  # every rank is here: leave the group cleanly
            raise
        if found is not None:
            checkpoint, tensors, meta = found
            trainer.load_state(tensors, meta)
            where = f"from {checkpoint.name}"
            for note in _resume_notes(trainer, stored, meta):
                trainer.log(note)
        else:
            where = "from step 0: it has no checkpoint yet"
        if trainer.config.lr_decay != "none" and stored.steps != trainer.config.steps:
            trainer.log(f"note: --lr-decay {trainer.config.lr_decay} now decays over "
                        f"{trainer.config.steps} steps instead of {stored.steps}")
        if trainer.is_main_process:
            run.save_config(trainer.config)
            run.truncate_metrics(trainer.step)
        trainer.log(f"resumed {run.path} {where} (step {trainer.step} of {trainer.config.steps})")
        return trainer

    # ---- using the trained model -------------------------------------------------------------

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator used for samples and evaluation: the moving average when enabled."""
        return self.ema.module if self.ema is not None else self.generator

    def sampler(self, raw: bool = False) -> Sampler:
        generator = self.generator if raw else self.sampling_generator
        return Sampler(generator, self.config.noise_dim, self.data, self.device,
                       default_seed=self.config.seed + 1)

    def sample(self, n: int, seed: int | None = None, data_units: bool = True) -> Tensor:
        """``n`` samples from the (averaged) generator, on the CPU, in data units by default."""
        return self.sampler().sample(n, seed, data_units)

    def evaluate(self, n: int | None = None, seed: int = 12345,
                 classifier: str | Path | None = None, fid: bool = False,
                 fid_samples: int = 10_000, fid_amp: str = "fp32",
                 fid_backend: str = "auto") -> dict[str, Any]:
        """See :func:`wgan.evaluate.evaluate`; ``step`` is added."""
        options = EvalOptions(classifier, fid, fid_samples, fid_amp, log=self.log,
                              fid_backend=fid_backend)
        results = evaluate(self.sampler(), self.data, self.critic, self.sampler(raw=True),
                           n or self.config.eval_samples, seed, options)
        return {"step": self.step, **results}

    def save_figures(self) -> list[Path]:
        if self.run is None or not self.is_main_process:
            return []
        from .plots import save_run_figures

        return save_run_figures(self.run.plot_dir, self.sampler(), self.critic, self.data,
                                self.step, self.run.read_metrics(),
                                f"{self.config.loss} on {Path(self.config.data).name}")
