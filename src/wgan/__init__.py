"""wgan: train, evaluate and understand Wasserstein GANs.

The Python API mirrors the CLI::

    import wgan

    trainer = wgan.Trainer(wgan.Config(data="grid25", steps=2000), out="runs/demo")
    trainer.fit()
    print(trainer.evaluate())
    run = wgan.load_run("runs/demo")        # later, on any device: sample and evaluate
    samples = run.sample(1000)
"""

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

__version__ = "0.2.0"
__all__ = ["Callback", "CheckpointError", "Config", "ConfigError", "DataError", "ResolvedConfig",
           "RunDir", "RunDirError", "StopTraining", "TrainedRun", "Trainer", "TrainingDiverged",
           "TrainingInterrupted", "WganError", "__version__", "load_run"]
