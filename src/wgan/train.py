"""The Trainer: WGAN Algorithm 1 (and its WGAN-GP / GAN variants) in one readable step.

>>> from wgan import Config, Trainer
>>> trainer = Trainer(Config(data="ring8", steps=200))
>>> trainer.fit()                       # doctest: +SKIP
>>> trainer.evaluate()["w1_exact"]      # doctest: +SKIP
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from .config import Config
from .data import Dataset, StoredShape, TensorDataset, load_dataset
from .errors import CheckpointError, ConfigError, RunDirError, TrainingDiverged
from .metrics import mode_coverage, w1_exact
from .models import build_models
from .models.layers import penalty_forward
from .objectives import clip_weights, get_objective, gradient_penalty
from .runs import RunDir

#: The official WGAN code's critic schedule (Arjovsky et al., main.py): 100 critic iterations for
#: the first 25 generator iterations and every 500th, so the critic is near-optimal early on.
BOOST_CRITIC_STEPS = 100
BOOST_FIRST_STEPS = 25
BOOST_PERIOD = 500


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available")
    return torch.device(name)


def tune_cpu_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the system.

    A training step frees and reallocates the same large activation buffers every iteration;
    by default glibc serves big blocks with ``mmap`` and unmaps them on free, so every step
    page-faults its activations in again (measured: +4-8% on a DCGAN-32 step, 2 CPU cores).
    Process-wide and only effective with glibc; returns whether it was applied. Turned off by
    ``Config.tune_malloc = False`` (``--no-tune-malloc``)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if sys.platform != "linux" or not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold,
                                                                       2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        return False


def ema_with_warmup(decay: float) -> Callable[..., None]:
    """Exponential moving average whose decay warms up as ``min(decay, (1 + t) / (10 + t))``
    after ``t`` updates, so the random initial weights do not linger in the average."""

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        t = float(num_averaged)
        weight = 1.0 - min(decay, (1.0 + t) / (10.0 + t))
        torch._foreach_lerp_(averaged, current, weight)

    return update


def _has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


class Trainer:
    """Owns the generator, the critic, their optimizers, the data and the random state of a run.

    Args:
        config: the run's settings; ``None`` fields are resolved to the loss's defaults.
        run: where to write metrics and checkpoints (``None``: keep everything in memory).
        dataset: real data to use instead of ``load_dataset(config)``.
        log: where progress messages go (default: standard error).
    """

    def __init__(self, config: Config, run: RunDir | None = None, dataset: Dataset | None = None,
                 log: Callable[[str], None] | None = None):
        self.config = config = config.resolve()
        self.run = run
        self.log = log or (lambda message: print(message, file=sys.stderr))
        self.device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.tune_malloc and self.device.type == "cpu":
            tune_cpu_allocator()
        torch.manual_seed(config.seed)  # weight initialisation
        self.data = (dataset or load_dataset(config)).to(self.device)
        self.generator, self.critic = build_models(config, self.data.sample_shape)
        self.generator.to(self.device)
        self.critic.to(self.device)
        self.objective = get_objective(config.loss)
        self.opt_critic = self._make_optimizer(self.critic.parameters(), config.lr)
        self.opt_generator = self._make_optimizer(self.generator.parameters(),
                                                  config.lr_generator)
        self.ema: AveragedModel | None = None
        if config.ema > 0:
            self.ema = AveragedModel(self.generator, multi_avg_fn=ema_with_warmup(config.ema),
                                     use_buffers=True)
        self.rng = torch.Generator(device=self.device).manual_seed(config.seed)
        self.step = 0
        # One critic forward on [real; fake] is cheaper than two, and identical unless the
        # critic normalises over the batch.
        self._joint_forward = not _has_batch_norm(self.critic)
        self._critic_params = list(self.critic.parameters())
        self._interrupted: str | None = None
        self._channels_last = config.channels_last and self.data.is_image
        if self._channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.critic.to(memory_format=torch.channels_last)
            # Stored once in channels-last, so indexed batches come out in it without a copy
            # per critic step (_layout then only checks).
            if isinstance(self.data, TensorDataset) and self.data.data.dim() == 4:
                self.data.data = self.data.data.contiguous(memory_format=torch.channels_last)
        if config.amp == "bf16" and self.device.type != "cuda":
            raise ConfigError("amp 'bf16' needs a CUDA device; use --amp none on CPU")
        self._compiled_generator = self._compiled_critic = None
        if config.compile:
            # Compiled modules share parameters with the originals, so optimizers, checkpoints
            # and EMA keep working on self.generator / self.critic.
            # A graph that fails to compile (it happened inside Inductor with torch 2.11 on
            # CUDA) then runs eagerly, with PyTorch's warning, instead of ending the run.
            from torch._dynamo import config as dynamo_config

            dynamo_config.suppress_errors = True
            self._compiled_generator = torch.compile(self.generator)
            self._compiled_critic = None if self.objective.constraint.endswith("penalty") \
                else torch.compile(self.critic)  # double backward does not compile

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.config.amp == "bf16")

    # ---- construction helpers ----------------------------------------------------------------

    def _make_optimizer(self, params: Any, lr: float) -> torch.optim.Optimizer:
        # Fused kernels where PyTorch has them (Adam, SGD: one pass over each tensor; measured
        # 1.07x on the CPU MLP step), else foreach (RMSprop has no fused kernel).
        name = self.config.optimizer
        fused = self.device.type in ("cpu", "cuda")
        if name == "adam":
            return torch.optim.Adam(params, lr=lr, betas=self.config.betas, fused=fused)
        if name == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, foreach=True)
        return torch.optim.SGD(params, lr=lr, fused=fused)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator used for samples and evaluation: the moving average when enabled."""
        return self.ema.module if self.ema is not None else self.generator

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.config.noise_dim, device=self.device,
                           generator=generator or self.rng)

    # ---- Algorithm 1 -------------------------------------------------------------------------

    def critic_iterations(self, step: int) -> int:
        """Critic steps before generator step ``step`` (counting from 0)."""
        if self.config.critic_boost and (step < BOOST_FIRST_STEPS or step % BOOST_PERIOD == 0):
            return max(BOOST_CRITIC_STEPS, self.config.n_critic)
        return self.config.n_critic

    def learning_rate_factor(self, step: int) -> float:
        if self.config.lr_decay == "linear":
            return max(0.0, 1.0 - step / self.config.steps)
        return 1.0

    def train_step(self) -> dict[str, Tensor]:
        """One generator step preceded by its critic steps. Returns detached scalar tensors
        (not read back to the host, so the step never waits on the device)."""
        cfg, objective = self.config, self.objective
        critic = self.critic if self._compiled_critic is None else self._compiled_critic
        generator = self.generator if self._compiled_generator is None else self._compiled_generator
        factor = self.learning_rate_factor(self.step)
        for opt, lr in ((self.opt_critic, cfg.lr), (self.opt_generator, cfg.lr_generator)):
            for group in opt.param_groups:
                group["lr"] = lr * factor

        critic.requires_grad_(True)
        penalty = torch.zeros((), device=self.device)
        uses_penalty = objective.constraint in ("penalty", "one-sided-penalty")
        one_sided = objective.constraint == "one-sided-penalty"
        batch = cfg.batch_size
        for _ in range(self.critic_iterations(self.step)):
            real = self._layout(self.data.sample(batch, self.rng))
            with torch.no_grad(), self._autocast():  # no gradient through the generator here
                fake = _full(generator(self.noise(batch))).to(real.dtype)
            with self._autocast():
                if self._joint_forward:  # one critic forward on [real; fake] instead of two
                    scores = _full(critic(torch.cat([real, fake])))
                    real_scores, fake_scores = scores[:batch], scores[batch:]
                else:
                    real_scores, fake_scores = _full(critic(real)), _full(critic(fake))
                if uses_penalty:
                    # Its own forward: inside the joint one, the double backward would run
                    # over all 3B rows instead of B (measured 1.3x slower).
                    with penalty_forward(cfg.fast_penalty):
                        penalty = gradient_penalty(critic, real, fake, generator=self.rng,
                                                   one_sided=one_sided)
                critic_loss = objective.critic_loss(real_scores, fake_scores)
                loss = critic_loss + cfg.gp_lambda * penalty if uses_penalty else critic_loss
            self.opt_critic.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_critic.step()
            if objective.constraint == "clip":
                clip_weights(self._critic_params, cfg.clip)

        # Generator step: the critic's weights need no gradient here.
        critic.requires_grad_(False)
        with self._autocast():
            generator_loss = objective.generator_loss(
                _full(critic(generator(self.noise(cfg.batch_size)))))
        self.opt_generator.zero_grad(set_to_none=True)
        generator_loss.backward()
        self.opt_generator.step()
        critic.requires_grad_(True)
        if self.ema is not None:
            self.ema.update_parameters(generator)
        self.step += 1
        return {"critic_loss": critic_loss.detach(), "generator_loss": generator_loss.detach(),
                "penalty": penalty.detach()}

    # ---- the loop ----------------------------------------------------------------------------

    def fit(self, steps: int | None = None, progress: bool = True) -> dict[str, float]:
        """Train until ``steps`` generator steps in total (default: ``config.steps``), logging
        and checkpointing into the run directory if there is one. Returns the last metrics row."""
        total = steps if steps is not None else self.config.steps
        cfg = self.config
        writer = self._tensorboard()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=self.step, unit="step", dynamic_ncols=True,
                       file=sys.stderr)
        sums = torch.zeros(3, device=self.device)
        window_steps, critic_steps = 0, 0
        window_start = time.perf_counter()
        row: dict[str, float] = {}
        try:
            with self._signal_guard():
                while self.step < total:
                    critic_steps += self.critic_iterations(self.step)
                    out = self.train_step()
                    sums += torch.stack([out["critic_loss"], out["generator_loss"], out["penalty"]])
                    window_steps += 1
                    if bar is not None:
                        bar.update(1)
                    last = self.step == total
                    if self.step % cfg.log_every == 0 or last:
                        row = self._log_row(sums / window_steps, critic_steps,
                                            time.perf_counter() - window_start, window_steps)
                        self._check_finite(row)
                        if writer is not None:
                            for key, value in row.items():
                                if key != "step":
                                    writer.add_scalar(key, value, self.step)
                        if self.run is not None:
                            self.run.append_metrics(row)
                        if bar is not None:
                            bar.set_postfix(W=f"{row['wasserstein_estimate']:.4f}")
                        sums.zero_()
                        window_steps, critic_steps = 0, 0
                        window_start = time.perf_counter()
                    if self.run is not None and (self.step % cfg.checkpoint_every == 0 or last):
                        self.save_checkpoint()
                    if self.run is not None and cfg.sample_every and \
                            self.step % cfg.sample_every == 0:
                        self.save_figures()
                    if self._interrupted:
                        self._stop_on_signal()
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        return row

    def _log_row(self, means: Tensor, critic_steps: int, seconds: float, steps: int
                 ) -> dict[str, float]:
        critic_loss, generator_loss, penalty = means.tolist()
        return {"step": self.step, "critic_steps": critic_steps,
                "wasserstein_estimate": -critic_loss, "critic_loss": critic_loss,
                "generator_loss": generator_loss, "penalty": penalty, "seconds": seconds,
                "steps_per_second": steps / max(seconds, 1e-9)}

    def _check_finite(self, row: dict[str, float]) -> None:
        for key in ("critic_loss", "generator_loss", "penalty"):
            if not math.isfinite(row[key]):
                self._diverged(key.replace("_", " "))
        for name, module in (("critic", self.critic), ("generator", self.generator)):
            norms = torch._foreach_norm(list(module.parameters()))
            if not torch.isfinite(torch.stack(norms)).all():
                self._diverged(f"{name} weights")

    def _diverged(self, quantity: str) -> None:
        remedy = ("lower --lr, use a smaller --clip, or a gradient penalty (--loss wgan-gp) "
                  "instead of clipping")
        saved = ""
        if self.run is not None and self.run.checkpoints():
            saved = f"; the last good checkpoint is kept in {self.run.checkpoint_dir}"
        raise TrainingDiverged(f"training diverged at step {self.step}: {quantity} is NaN or "
                               f"infinite{saved}; try: {remedy}")

    def _tensorboard(self) -> Any:
        if self.run is None:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: CSV metrics still work
            return None
        return SummaryWriter(log_dir=str(self.run.tensorboard_dir))

    @contextmanager
    def _signal_guard(self):
        """On SIGINT/SIGTERM finish the current step, save a checkpoint, then stop."""
        import threading

        if self.run is None or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            self._interrupted = signal.Signals(signum).name

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _stop_on_signal(self) -> None:
        name, self._interrupted = self._interrupted, None
        self.save_checkpoint()
        raise TrainingInterrupted(f"{name} received: stopped at step {self.step} and saved a "
                                  f"checkpoint; continue with: wgan train --resume {self.run.path}")

    # ---- state -------------------------------------------------------------------------------

    def state_tensors(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Everything needed to continue exactly: tensors, and JSON-able metadata."""
        tensors: dict[str, Tensor] = {}
        for prefix, module in (("generator", self.generator), ("critic", self.critic)):
            tensors.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        groups = {}
        for prefix, opt in (("opt_critic", self.opt_critic), ("opt_generator", self.opt_generator)):
            state = opt.state_dict()
            for index, values in state["state"].items():
                for key, value in values.items():
                    tensors[f"{prefix}.{index}.{key}"] = torch.as_tensor(value)
            groups[prefix] = state["param_groups"]
        tensors["rng"] = self.rng.get_state()
        tensors["data.mean"] = self.data.mean
        tensors["data.std"] = self.data.std
        meta = {"param_groups": groups, "sample_shape": list(self.data.sample_shape),
                "noise_dim": self.config.noise_dim, "config": self.config.to_dict(),
                "torch": torch.__version__}
        return tensors, meta

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state_tensors` saved (raises CheckpointError on mismatch)."""
        try:
            for prefix, module in (("generator", self.generator), ("critic", self.critic)):
                module.load_state_dict(_strip(tensors, prefix))
            if self.ema is not None:
                self.ema.load_state_dict(_strip(tensors, "ema"))
            for prefix, opt in (("opt_critic", self.opt_critic),
                                ("opt_generator", self.opt_generator)):
                state: dict[int, dict[str, Tensor]] = {}
                for key, value in _strip(tensors, prefix).items():
                    index, name = key.split(".", 1)
                    state.setdefault(int(index), {})[name] = value
                opt.load_state_dict({"state": state, "param_groups": meta["param_groups"][prefix]})
            self.rng.set_state(tensors["rng"])
            self.step = int(meta["step"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise CheckpointError(f"checkpoint does not match this model/config: "
                                  f"{str(err).splitlines()[0]}") from None

    def save_checkpoint(self) -> Path:
        tensors, meta = self.state_tensors()
        try:
            return self.run.save_checkpoint(self.step, tensors, meta, self.config.keep_checkpoints)
        except OSError as err:
            raise RunDirError(f"{self.run.checkpoint_dir}: cannot write checkpoint at step "
                              f"{self.step} ({err.strerror or err}); the previous checkpoint is "
                              "intact") from None

    @classmethod
    def from_run(cls, path: str | Path, need_data: bool = True,
                 log: Callable[[str], None] | None = None, **overrides: Any) -> Trainer:
        """Load a run directory's newest valid checkpoint into a Trainer that writes nothing.

        With ``need_data=False`` the real data is not opened (sampling only needs the weights
        and the standardisation stored in the checkpoint)."""
        run = RunDir.open(path)
        config = run.load_config().replace(**overrides)
        ckpt, tensors, meta = run.latest_checkpoint(warn=log)
        dataset = None
        if not need_data:
            dataset = StoredShape(tuple(meta["sample_shape"]), tensors["data.mean"],
                                  tensors["data.std"])
        trainer = cls(config, dataset=dataset, log=log)
        trainer.load_state(tensors, meta)
        trainer.checkpoint_file = ckpt
        return trainer

    @classmethod
    def resume(cls, path: str | Path, log: Callable[[str], None] | None = None,
               **overrides: Any) -> Trainer:
        """Reopen a run directory at its newest valid checkpoint to continue training.
        ``overrides`` may change only settings that leave the math alone (total steps, device,
        threads, logging and checkpoint intervals)."""
        allowed = {"steps", "device", "threads", "log_every", "checkpoint_every", "channels_last",
                   "compile", "fast_penalty", "tune_malloc", "keep_checkpoints", "sample_every",
                   "eval_samples"}
        bad = sorted(set(overrides) - allowed)
        if bad:
            raise ConfigError(f"cannot change {', '.join(bad)} when resuming; only "
                              f"{', '.join(sorted(allowed))} may change")
        trainer = cls.from_run(path, log=log, **overrides)
        trainer.run = run = RunDir.open(path)
        stored_steps = run.load_config().steps
        if trainer.config.lr_decay != "none" and stored_steps != trainer.config.steps:
            trainer.log(f"note: --lr-decay {trainer.config.lr_decay} now decays over "
                        f"{trainer.config.steps} steps instead of {stored_steps}")
        run.save_config(trainer.config)
        run.truncate_metrics(trainer.step)
        trainer.log(f"resumed {run.path} from {trainer.checkpoint_file.name} "
                    f"(step {trainer.step} of {trainer.config.steps})")
        return trainer

    # ---- using the trained model -------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, data_units: bool = True) -> Tensor:
        """``n`` samples from the (averaged) generator, on the CPU, in data units by default."""
        rng = torch.Generator(device=self.device).manual_seed(
            self.config.seed + 1 if seed is None else seed)
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        chunks = [generator(self.noise(min(1024, n - i), rng)) for i in range(0, n, 1024)]
        generator.train(was_training)
        x = torch.cat(chunks) if chunks else torch.empty(0, *self.data.sample_shape)
        return (self.data.to_data_units(x) if data_units else x).cpu()

    @torch.no_grad()
    def critic_estimate(self, n: int, seed: int) -> float:
        """``mean f(real) - mean f(fake)`` on fresh samples (the raw generator's fakes: the
        critic was trained against it)."""
        rng = torch.Generator(device=self.device).manual_seed(seed)
        total, done = 0.0, 0
        # eval mode: batch-norm running statistics must not change outside training
        modes = (self.generator.training, self.critic.training)
        self.generator.eval()
        self.critic.eval()
        while done < n:
            b = min(1024, n - done)
            real = self.data.sample(b, rng)
            fake = self.generator(self.noise(b, rng))
            total += float(self.critic(real).sum() - self.critic(fake).sum())
            done += b
        self.generator.train(modes[0])
        self.critic.train(modes[1])
        return total / n

    def evaluate(self, n: int | None = None, seed: int = 12345,
                 classifier: str | Path | None = None) -> dict[str, Any]:
        """Exact W1 of ``n`` samples against ``n`` real ones (and the real-vs-real floor), the
        critic's estimate, mode coverage for mixtures, and for MNIST and Stacked MNIST the
        classifier metrics (with the classifier at ``classifier``, default: the cached one)."""
        n = n or self.config.eval_samples
        rng = torch.Generator(device=self.device).manual_seed(seed)
        real_a = self.data.to_data_units(self.data.sample(n, rng)).cpu()
        real_b = self.data.to_data_units(self.data.sample(n, rng)).cpu()
        fake = self.sample(n, seed=seed + 1)
        results: dict[str, Any] = {
            "step": self.step,
            "n": n,
            "w1_exact": w1_exact(fake, real_a),
            "w1_floor": w1_exact(real_b, real_a),
            "critic_estimate": self.critic_estimate(n, seed + 2),
        }
        results["w1_ratio"] = results["w1_exact"] / max(results["w1_floor"], 1e-12)
        if self.data.modes is not None:
            coverage_samples = self.sample(2500, seed=seed + 3)
            results.update(mode_coverage(coverage_samples, self.data.modes.centres,
                                         self.data.modes.std).to_dict())
        results.update(self._classifier_metrics(classifier, n, seed))
        return results

    def _classifier_metrics(self, path: str | Path | None, n: int, seed: int) -> dict[str, Any]:
        from .metrics import classifier as clf

        if self.data.name not in ("mnist", "stacked-mnist"):
            if path is not None:
                raise ConfigError(f"the MNIST classifier metrics need mnist or stacked-mnist "
                                  f"data, not {self.data.name!r}")
            return {}
        if path is None:
            path = clf.default_classifier_path()
            if not path.is_file():
                self.log(f"note: no MNIST classifier at {path}, so no class metrics; train "
                         "one with: wgan classifier train")
                return {}
        model, test_accuracy = clf.load_classifier(path)
        model.to(self.device)
        results: dict[str, Any] = {"classifier_test_accuracy": test_accuracy}
        if self.data.name == "mnist":
            fake = self.sample(n, seed=seed + 4, data_units=False).to(self.device)
            real = self.data.sample(n, torch.Generator(device=self.device).manual_seed(seed + 5))
            results.update(clf.class_metrics(clf.predict(model, fake)[0]))
            results["classifier_frechet"] = clf.classifier_frechet(model, real, fake)
        else:
            fake = self.sample(clf.STACKED_SAMPLES, seed=seed + 4, data_units=False)
            results.update(clf.stacked_mnist_metrics(model, fake.to(self.device)))
        return results

    def save_figures(self) -> list[Path]:
        from .plots import save_run_figures

        return save_run_figures(self)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint."""


def _full(x: Tensor) -> Tensor:
    """Half-precision outputs of autocast regions back to float32; anything else unchanged."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def _strip(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    start = prefix + "."
    return {k[len(start):]: v for k, v in tensors.items() if k.startswith(start)}
