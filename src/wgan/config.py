"""The one configuration object of a run: fields, validation, files.

A :class:`Config` holds what the user asked for; fields left at ``None`` are filled by
:meth:`Config.resolve` from the recipes of :mod:`wgan.presets` (the chosen preset, the
constraint's and the loss's defaults -- the papers' settings -- and the architecture's). The
result is a frozen :class:`ResolvedConfig`, made once per run: it is what a run saves as
``config.json``, what ``--resume`` reads back, and what every part of the library takes.
Resolving a resolved config returns it unchanged.

Every field carries a *role* (data, model, algorithm, length, runtime, logging). A resume may
change the fields whose role leaves the trained function alone: :func:`resumable_fields`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from .algorithm import boosted_critic_iterations
from .constraints import CONSTRAINTS
from .errors import ConfigError
from .objectives import LOSSES
from .presets import PRESETS, fill_defaults

OPTIMIZERS = ("rmsprop", "adam", "sgd")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "tanh", "silu")
LR_DECAYS = ("none", "linear", "linear-generator")
DEVICES = ("auto", "cpu", "cuda")
AMP = ("none", "bf16", "auto")
CRITIC_NORMS = ("none", "layer", "batch")
ROLES = ("data", "model", "algorithm", "length", "runtime", "logging")
#: Roles of the fields a resume may change: they leave the trained function alone.
RESUMABLE_ROLES = ("length", "runtime", "logging")

def _field(role: str, text: str, **kw: Any) -> Any:
    return field(metadata={"help": text, "role": role}, **kw)


@dataclass(frozen=True, eq=False)
class Config:
    """Every setting of a training run. ``None`` means "the default for this loss/preset"."""

    # What to train on.
    data: str = _field("data", "built-in dataset (ring8, grid25, grid16-rotated, swissroll, mnist, "
                       "fashion, stacked-mnist, digits, cifar10), a folder of images, or a "
                       ".npy/.csv file", default="grid25")
    data_dir: str | None = _field("data", "folder holding the files of a named image dataset",
                                  default=None)
    image_size: int | None = _field("data", "resize images to this side in pixels (default: "
                                    "the dataset's own size; 64 for image folders)", default=None)
    channels: int | None = _field("data", "colour channels of an image folder: 1 or 3 (default: "
                                  "1 if every image is grey)", default=None)

    # The algorithm.
    loss: str = _field("algorithm", "objective: " + ", ".join(LOSSES), default="wgan-gp")
    constraint: str | None = _field("algorithm", "Lipschitz constraint on the critic: "
                                    + ", ".join(CONSTRAINTS) + " (default: the loss's own: clip "
                                    "for wgan, gp for wgan-gp, lp for wgan-lp, none for the "
                                    "GANs)", default=None)
    preset: str = _field("algorithm", "named recipe: auto, " + ", ".join(PRESETS) + " (auto = "
                         "toy on low-dimensional vectors, image on images, none otherwise)",
                         default="auto")
    batch_size: int | None = _field("algorithm", "real and fake samples per critic step (per "
                                    "process when distributed)", default=None)
    seed: int = _field("algorithm", "random seed: same seed, same data, same device -> same run",
                       default=0)
    optimizer: str | None = _field("algorithm", "optimizer of both networks: "
                                   + ", ".join(OPTIMIZERS), default=None)
    lr: float | None = _field("algorithm", "critic learning rate", default=None)
    lr_generator: float | None = _field("algorithm", "generator learning rate (default: same as "
                                        "--lr)", default=None)
    betas: tuple[float, float] | None = _field("algorithm", "Adam betas, as two numbers",
                                               default=None)
    lr_decay: str | None = _field("algorithm", "learning-rate schedule: none, linear decay to 0 at "
                                  "--steps, or linear-generator (the generator's decays, the "
                                  "critic's stays)", default=None)
    n_critic: int | None = _field("algorithm", "critic steps per generator step", default=None)
    critic_boost: bool | None = _field("algorithm", "the official WGAN schedule: 100 critic steps "
                                       "for the first 25 generator steps and every 500th",
                                       default=None)
    pack: int = _field("algorithm", "PacGAN's packing: the critic scores packs of this many "
                       "samples joined along channels (images) or features (vectors), which "
                       "lets it see a generator drop modes (Lin et al. 2018); the batch must "
                       "split into packs. 1 = off", default=1)
    clip: float | None = _field("algorithm", "weight-clipping bound c (--constraint clip; default: "
                                "the preset's, else the WGAN paper's 0.01)", default=None)
    gp_lambda: float | None = _field("algorithm", "gradient-penalty weight lambda (--constraint "
                                     "gp or lp)", default=None)
    penalty_every: int | None = _field("algorithm", "add the gradient penalty (--constraint gp "
                                       "or lp) on every k-th critic step of a generator step "
                                       "only, weighed k times: lazy regularisation (Karras et al. "
                                       "2020), cheaper steps. 1 = every step; the toy recipe's "
                                       "penalties: 3, where it divides n_critic",
                                       default=None)
    sync_batch_norm: bool = _field("algorithm", "with several processes on CUDA, batch norm in the "
                                   "generator normalises over the global batch "
                                   "(SyncBatchNorm) instead of each process's own", default=False)
    ema: float | None = _field("algorithm", "decay of the generator's exponential moving average "
                               "used for sampling and evaluation (0 = off; warmed up: at most "
                               "(1 + t) / (10 + t) after t steps)", default=None)

    # The networks.
    model: str | None = _field("model", "architecture of generator and critic: mlp, dcgan, infogan, "
                               "resnet (default: mlp; images: dcgan, with clipping infogan)", default=None)
    noise_dim: int | None = _field("model", "dimension of the generator's input noise z",
                                   default=None)
    width: int | None = _field("model", "hidden units (mlp) or base channel count (conv models)",
                               default=None)
    generator_width: int | None = _field("model", "the generator's own --width, leaving the "
                                         "critic's (default: the preset's, else --width; a "
                                         "given --width sets both)", default=None)
    depth: int | None = _field("model", "hidden layers of the mlp", default=None)
    activation: str = _field("model", "hidden activation of the mlp: " + ", ".join(ACTIVATIONS),
                             default="relu")
    batch_norm: bool = _field("model", "batch norm in the generator of conv models", default=True)
    critic_norm: str | None = _field("model", "conv critics' normalisation: none, layer, batch (not "
                                     "with a penalty; default: the preset's, else none)", default=None)

    # How long.
    steps: int | None = _field("length", "total number of generator steps of the run",
                               default=None)

    # How it runs (never changes what is computed, up to rounding).
    device: str = _field("runtime", "where to train: auto, cpu, cuda", default="auto")
    channels_last: bool = _field("runtime", "channels-last memory layout for image models (no "
                                 "effect on vectors)", default=True)
    compile: bool = _field("runtime", "torch.compile the networks (the critic is not compiled "
                           "under a gradient penalty, whose double backward does not compile); "
                           "falls back to eager with one line if compilation fails",
                           default=False)
    fast_penalty: bool = _field("runtime", "in the penalty's forward pass, let autograd skip "
                                "second derivatives that are exactly zero (critic ReLU, "
                                "LeakyReLU, average pooling, convolution inputs); same "
                                "gradients, fewer FLOPs (see wgan.models.layers)", default=True)
    tune_malloc: bool = _field("runtime", "on CPU, keep freed memory in glibc's heap so "
                               "activations are not page-faulted in again every step (applied "
                               "by the wgan command, process-wide)", default=True)
    amp: str = _field("runtime", "mixed precision: none; bf16 autocast on CPU or CUDA (losses, "
                      "penalty norms, the generator's output layer and the critic's first "
                      "layer stay float32); or auto: bf16 where the device computes it natively "
                      "(a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else none",
                      default="none")
    threads: int | None = _field("runtime", "CPU threads for PyTorch (applied by the wgan "
                                 "command; default: PyTorch's choice)", default=None)
    data_memory_mb: float = _field("runtime", "an image folder whose pixels (8 bits each) take more "
                                   "than this streams from disk instead of being held in memory",
                                   default=4096.0)
    data_workers: int = _field("runtime", "worker processes decoding a streamed image folder",
                               default=2)

    # What is written, and when.
    log_every: int = _field("logging", "generator steps between metric rows", default=100)
    checkpoint_every: int = _field("logging", "generator steps between checkpoints",
                                   default=1000)
    checkpoint_minutes: float = _field("logging", "minutes of training between checkpoints, "
                                       "whatever the step count (0 = by steps only)", default=5.0)
    keep_checkpoints: int = _field("logging", "how many recent checkpoints to keep", default=3)
    sample_every: int | None = _field("logging", "generator steps between sample figures/grids, "
                                      "kept for the report (0 = only at the end; default: "
                                      "every fifth of the run)", default=None)
    eval_samples: int = _field("logging", "samples used by the exact-W1 evaluation",
                               default=2000)

    # ---- resolution --------------------------------------------------------------------------

    def resolve(self, sample_shape: tuple[int, ...] | None = None) -> ResolvedConfig:
        """Fill every ``None`` default and validate every value. ``sample_shape``, the shape of
        one data sample when the data is already loaded, lets ``--preset auto`` choose by shape.
        A :class:`ResolvedConfig` is returned as it is."""
        if isinstance(self, ResolvedConfig):
            return self
        self._check_choices()
        values = fill_defaults(self.to_dict(tuples=True), sample_shape)
        resolved = ResolvedConfig(**values)
        resolved.validate()
        return resolved

    def _check_choices(self) -> None:
        choices = {"loss": tuple(LOSSES), "constraint": tuple(CONSTRAINTS),
                   "optimizer": OPTIMIZERS, "activation": ACTIVATIONS, "lr_decay": LR_DECAYS,
                   "device": DEVICES, "preset": ("auto", *PRESETS), "critic_norm": CRITIC_NORMS,
                   "amp": AMP}
        for name, valid in choices.items():
            value = getattr(self, name)
            if value is not None and value not in valid:
                raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(valid)}")

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first impossible value."""
        self._check_choices()
        positive = ["lr", "lr_generator", "clip", "steps", "batch_size", "n_critic", "width",
                    "generator_width", "depth", "noise_dim", "pack", "penalty_every", "log_every",
                    "checkpoint_every", "keep_checkpoints", "eval_samples", "image_size"]
        for name in positive:
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{name} must be > 0, got {value}")
        for name in ("gp_lambda", "checkpoint_minutes", "data_memory_mb", "data_workers"):
            value = getattr(self, name)
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"{name} must be >= 0, got {value}")
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")
        if self.betas is not None:
            if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
                raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.batch_size is not None and self.batch_size % self.pack:
            raise ConfigError(f"batch_size {self.batch_size} does not split into packs of "
                              f"{self.pack} (--pack); use a multiple of {self.pack}")
        constraint = self.constraint or LOSSES[self.loss].constraint
        if self.penalty_every is not None:
            _check_lazy_penalty(self, constraint)
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.channels is not None and self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}")
        if self.sample_every is not None and self.sample_every < 0:
            raise ConfigError(f"sample_every must be >= 0, got {self.sample_every}")
        if CONSTRAINTS[constraint].per_sample and self.critic_norm == "batch":
            raise ConfigError("a critic trained with a gradient penalty must not use batch norm "
                              "(it couples the samples the penalty treats one by one); use "
                              "--critic-norm layer or none")

    # ---- values and files --------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self, tuples: bool = False) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if values["betas"] is not None and not tuples:
            values["betas"] = list(values["betas"])
        return values

    def save(self, path: str | Path) -> None:
        from .files import write_atomic

        write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> Config:
        """Build a config from plain values, checking keys and types; ``source`` names the origin
        in error messages."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a table of settings, got "
                              f"{type(values).__name__}")
        known = {f.name for f in dataclasses.fields(Config)}
        hints = typing.get_type_hints(Config)
        checked: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ConfigError(f"{source}: unknown setting {key!r}")
            checked[name] = _coerce(value, hints[name], f"{source}: setting {key!r}")
        return Config(**checked)

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a ``.json`` or ``.toml`` config file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: cannot read config file ({err})") from None
        try:
            if path.suffix.lower() == ".toml":
                values = tomllib.loads(text)
            else:
                values = json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'json'} "
                              f"({str(err).splitlines()[0]})") from None
        return cls.from_dict(values, source=str(path))

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes``; a resolved config stays resolved (and is validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(Config)}
        if unknown:
            raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}")
        copy = Config(**{**self.to_dict(tuples=True), **changes})
        if isinstance(self, ResolvedConfig):
            resolved = ResolvedConfig(**copy.to_dict(tuples=True))
            resolved.validate()
            return resolved
        return copy


@dataclass(frozen=True, eq=False)
class ResolvedConfig(Config):
    """A :class:`Config` with every default filled in and every value checked: made once by
    :meth:`Config.resolve`, taken by the Trainer, the run directory and the reference loop."""


def _check_lazy_penalty(config: Config, constraint: str) -> None:
    """A lazy penalty (``penalty_every`` k) needs a penalty, and k must divide the critic steps
    of every generator step, so that its weight averages lambda."""
    every = config.penalty_every
    if every > 1 and "penalty_every" not in CONSTRAINTS[constraint].settings:
        raise ConfigError(f"penalty_every {every} needs a gradient penalty (--constraint gp "
                          f"or lp); the constraint is {constraint}")
    if config.n_critic is not None and config.n_critic % every:
        raise ConfigError(f"penalty_every {every} does not divide n_critic {config.n_critic}: "
                          f"the lazy penalty's weight would not average to lambda; use a "
                          f"divisor of {config.n_critic}")
    boost = boosted_critic_iterations(config.n_critic or 0)
    if config.critic_boost and boost % every:
        raise ConfigError(f"penalty_every {every} does not divide the {boost} critic steps "
                          f"of critic_boost: the lazy penalty's weight would not average to "
                          f"lambda on those steps")


def field_roles() -> dict[str, str]:
    """Each field's role: data, model, algorithm, length, runtime or logging."""
    return {f.name: f.metadata["role"] for f in dataclasses.fields(Config)}


def resumable_fields() -> list[str]:
    """The fields a resume may change: those whose role leaves the trained function alone."""
    return sorted(name for name, role in field_roles().items() if role in RESUMABLE_ROLES)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a field's type hint, converting only lossless cases."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(hint) is tuple:
        if isinstance(value, (list, tuple)) and len(value) == len(args) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return tuple(float(v) for v in value)
    expected = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where} must be {expected}, got {value!r}")
