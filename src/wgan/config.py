"""The one configuration object of a run: fields, per-loss defaults, presets, validation, files.

A :class:`Config` holds what the user asked for; fields left at ``None`` are filled by
:meth:`Config.resolve` from, in order: the chosen preset, the defaults of the chosen loss
(the papers' settings), and the data's defaults. The resolved config is what a run saves as
``config.json`` and what ``--resume`` reads back.
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

from .errors import ConfigError

LOSSES = ("wgan", "wgan-gp", "wgan-lp", "gan", "gan-ns")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "tanh", "silu")
LR_DECAYS = ("none", "linear")
DEVICES = ("auto", "cpu", "cuda")

#: The papers' settings for each loss (WGAN: Arjovsky et al. 2017, Algorithm 1; WGAN-GP and
#: WGAN-LP: Gulrajani et al. 2017, Algorithm 1; GAN: Radford et al. 2016 / Goodfellow et al. 2014).
LOSS_DEFAULTS: dict[str, dict[str, Any]] = {
    "wgan": {"optimizer": "rmsprop", "lr": 5e-5, "betas": (0.5, 0.999), "n_critic": 5,
             "critic_boost": True, "gp_lambda": 10.0},
    "wgan-gp": {"optimizer": "adam", "lr": 1e-4, "betas": (0.0, 0.9), "n_critic": 5,
                "critic_boost": False, "gp_lambda": 10.0},
    "wgan-lp": {"optimizer": "adam", "lr": 1e-4, "betas": (0.0, 0.9), "n_critic": 5,
                "critic_boost": False, "gp_lambda": 10.0},
    "gan": {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "n_critic": 1,
            "critic_boost": False, "gp_lambda": 10.0},
    "gan-ns": {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "n_critic": 1,
               "critic_boost": False, "gp_lambda": 10.0},
}

#: Values used when neither a preset nor the loss sets a field.
BASE_DEFAULTS: dict[str, Any] = {
    "steps": 20000,
    "batch_size": 64,
    "width": 512,
    "depth": 4,
    "noise_dim": 64,
    "ema": 0.0,
    "lr_decay": "none",
}

#: Defaults of each architecture (DCGAN: Radford et al. 2016; ResNet: Gulrajani et al. 2017).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "dcgan": {"width": 64, "noise_dim": 100},
    "resnet": {"width": 128, "noise_dim": 128},
}

_TOY_PENALTY = {"lr": 1e-3, "betas": (0.5, 0.9), "gp_lambda": 1.0}

#: Named recipes: settings for every loss, then per-loss settings. ``paper`` is the WGAN paper's
#: MLP experiment as published; ``toy`` is the recipe found by measurement for the 2-D mixtures
#: (benchmarks/toy_quality.py; numbers in README); ``none`` adds nothing to the loss defaults.
#: ``auto`` (the default) means ``toy`` for the built-in 2-D datasets and ``none`` otherwise.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "none": {"all": {}},
    "paper": {"all": {"batch_size": 64, "width": 512, "depth": 4, "noise_dim": 100,
                      "ema": 0.0, "lr_decay": "none"}},
    "toy": {"all": {"steps": 5000, "batch_size": 256, "width": 128, "depth": 3,
                    "noise_dim": 2, "ema": 0.99, "lr_decay": "linear"},
            "wgan-gp": _TOY_PENALTY, "wgan-lp": _TOY_PENALTY},
}
TOY_DATA = ("ring8", "grid25", "swissroll")


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass
class Config:
    """Every setting of a training run. ``None`` means "the default for this loss/preset"."""

    # What to train on and how.
    data: str = _help("built-in dataset (ring8, grid25, swissroll, mnist, fashion, "
                      "stacked-mnist, digits, cifar10), a folder of images, or a .npy/.csv "
                      "file", default="grid25")
    data_dir: str | None = _help("folder holding the files of a named image dataset",
                                 default=None)
    loss: str = _help("objective: " + ", ".join(LOSSES), default="wgan-gp")
    preset: str = _help("named recipe: auto, " + ", ".join(PRESETS) + " (auto = toy on the "
                        "built-in 2-D data, none otherwise)", default="auto")
    model: str = _help("architecture of generator and critic (see `wgan models`)", default="mlp")
    steps: int | None = _help("total number of generator steps of the run", default=None)
    batch_size: int | None = _help("real and fake samples per critic step", default=None)
    seed: int = _help("random seed: same seed, same data, same device -> same run", default=0)

    # Optimisation.
    optimizer: str | None = _help("optimizer of both networks: " + ", ".join(OPTIMIZERS),
                                  default=None)
    lr: float | None = _help("critic learning rate", default=None)
    lr_generator: float | None = _help("generator learning rate (default: same as --lr)",
                                       default=None)
    betas: tuple[float, float] | None = _help("Adam betas, as two numbers", default=None)
    lr_decay: str | None = _help("learning-rate schedule: none, or linear decay to 0 at --steps",
                                 default=None)
    n_critic: int | None = _help("critic steps per generator step", default=None)
    critic_boost: bool | None = _help("the official WGAN schedule: 100 critic steps for the "
                                      "first 25 generator steps and every 500th", default=None)
    clip: float = _help("weight-clipping bound c for --loss wgan", default=0.01)
    gp_lambda: float | None = _help("gradient-penalty weight lambda for wgan-gp / wgan-lp",
                                    default=None)
    ema: float | None = _help("decay of the generator's exponential moving average used for "
                              "sampling and evaluation (0 = off)", default=None)

    # Architecture.
    noise_dim: int | None = _help("dimension of the generator's input noise z", default=None)
    width: int | None = _help("hidden units (mlp) or base channel count (conv models)",
                              default=None)
    depth: int | None = _help("hidden layers of the mlp", default=None)
    activation: str = _help("hidden activation of the mlp: " + ", ".join(ACTIVATIONS),
                            default="relu")
    image_size: int | None = _help("resize images to this side in pixels (default: the "
                                   "dataset's own size; 64 for image folders)", default=None)
    channels: int | None = _help("colour channels of an image folder: 1 or 3 (default: 1 if "
                                 "every image is grey)", default=None)
    batch_norm: bool = _help("batch norm in the generator of conv models", default=True)
    critic_norm: str = _help("normalisation in conv critics: none, layer, batch (batch is "
                             "refused with a gradient penalty)", default="none")

    # Running.
    device: str = _help("where to train: auto, cpu, cuda", default="auto")
    channels_last: bool = _help("channels-last memory layout for image models (no effect on "
                                "vectors)", default=True)
    compile: bool = _help("torch.compile the networks (pays on long runs; the critic is not "
                          "compiled under a gradient penalty, whose double backward does not "
                          "compile)", default=False)
    fast_penalty: bool = _help("in the penalty's forward pass, let autograd skip second "
                               "derivatives that are exactly zero (critic ReLU, LeakyReLU, "
                               "average pooling, convolution inputs); same gradients, fewer "
                               "FLOPs (see wgan.models.layers)", default=True)
    tune_malloc: bool = _help("on CPU, keep freed memory in glibc's heap so activations are not "
                              "page-faulted in again every step (process-wide)", default=True)
    amp: str = _help("mixed precision on CUDA: none, or bf16 autocast (losses and penalty norms "
                     "stay float32)", default="none")
    threads: int | None = _help("CPU threads for PyTorch (default: PyTorch's choice)",
                                default=None)
    log_every: int = _help("generator steps between metric rows", default=100)
    checkpoint_every: int = _help("generator steps between checkpoints", default=1000)
    keep_checkpoints: int = _help("how many recent checkpoints to keep", default=3)
    sample_every: int = _help("generator steps between sample figures/grids (0 = only at the "
                              "end)", default=0)
    eval_samples: int = _help("samples used by the exact-W1 evaluation", default=2000)

    def resolve(self) -> Config:
        """Return a copy with every ``None`` default filled in and every value validated."""
        self._check_choices()
        values = dataclasses.asdict(self)
        if self.preset == "auto":
            values["preset"] = "toy" if self.data in TOY_DATA else "none"
        preset = PRESETS[values["preset"]]
        layers = [preset.get(self.loss, {}), preset["all"], LOSS_DEFAULTS[self.loss],
                  MODEL_DEFAULTS.get(self.model, {}), BASE_DEFAULTS]
        for name, value in values.items():
            if value is None:
                for layer in layers:
                    if name in layer:
                        values[name] = layer[name]
                        break
        if values["lr_generator"] is None:
            values["lr_generator"] = values["lr"]
        if values["betas"] is not None:
            values["betas"] = tuple(float(b) for b in values["betas"])
        resolved = Config(**values)
        resolved.validate()
        return resolved

    def _check_choices(self) -> None:
        choices = {"loss": LOSSES, "optimizer": OPTIMIZERS, "activation": ACTIVATIONS,
                   "lr_decay": LR_DECAYS, "device": DEVICES,
                   "preset": ("auto", *PRESETS), "critic_norm": ("none", "layer", "batch"),
                   "amp": ("none", "bf16")}
        for name, valid in choices.items():
            value = getattr(self, name)
            if value is not None and value not in valid:
                raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(valid)}")

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first impossible value."""
        self._check_choices()
        positive = ["lr", "lr_generator", "clip", "steps", "batch_size", "n_critic", "width",
                    "depth", "noise_dim", "log_every", "checkpoint_every", "keep_checkpoints",
                    "eval_samples", "image_size"]
        for name in positive:
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{name} must be > 0, got {value}")
        if self.gp_lambda is not None and not (self.gp_lambda >= 0 and
                                               math.isfinite(self.gp_lambda)):
            raise ConfigError(f"gp_lambda must be >= 0, got {self.gp_lambda}")
        if self.ema is not None and not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")
        if self.betas is not None:
            if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
                raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.channels is not None and self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}")
        if self.sample_every < 0:
            raise ConfigError(f"sample_every must be >= 0, got {self.sample_every}")
        if self.loss in ("wgan-gp", "wgan-lp") and self.critic_norm == "batch":
            raise ConfigError("a critic trained with a gradient penalty must not use batch norm "
                              "(it couples the samples the penalty treats one by one); use "
                              "--critic-norm layer or none")

    # ---- files -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        if values["betas"] is not None:
            values["betas"] = list(values["betas"])
        return values

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> Config:
        """Build a config from plain values, checking keys and types; ``source`` names the origin
        in error messages."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a table of settings, got "
                              f"{type(values).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        checked: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ConfigError(f"{source}: unknown setting {key!r}")
            checked[name] = _coerce(value, hints[name], f"{source}: setting {key!r}")
        return cls(**checked)

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
        return dataclasses.replace(self, **changes)


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
