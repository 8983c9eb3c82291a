"""wgan: train, evaluate and understand Wasserstein GANs.

The Python API mirrors the CLI::

    import wgan

    trainer = wgan.Trainer(wgan.Config(data="grid25", steps=2000), out="runs/demo")
    trainer.fit()
    print(trainer.evaluate())
    run = wgan.load_run("runs/demo")        # later, on any device: sample and evaluate
    samples = run.sample(1000)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Where each public name lives. They are imported on first use (PEP 562), so that ``wgan
#: --help`` and the CLI's input checks do not wait for PyTorch, POT and scikit-learn to load.
_PUBLIC = {
    "TrainingInterrupted": "callbacks", "Config": "config", "ResolvedConfig": "config",
    "CheckpointError": "errors", "ConfigError": "errors", "DataError": "errors",
    "RunDirError": "errors", "TrainingDiverged": "errors", "WganError": "errors",
    "TrainedRun": "inference", "load_run": "inference", "Callback": "loop",
    "StopTraining": "loop", "RunDir": "runs", "Trainer": "train",
}

if TYPE_CHECKING:
    from .callbacks import TrainingInterrupted
    from .config import Config, ResolvedConfig
    from .errors import (
        CheckpointError,
        ConfigError,
        DataError,
        RunDirError,
        TrainingDiverged,
        WganError,
    )
    from .inference import TrainedRun, load_run
    from .loop import Callback, StopTraining
    from .runs import RunDir
    from .train import Trainer


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wgan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


__version__ = "0.2.0"
__all__ = ["Callback", "CheckpointError", "Config", "ConfigError", "DataError", "ResolvedConfig",
           "RunDir", "RunDirError", "StopTraining", "TrainedRun", "Trainer", "TrainingDiverged",
           "TrainingInterrupted", "WganError", "__version__", "load_run"]
