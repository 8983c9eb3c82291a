"""wgan: train, evaluate and understand Wasserstein GANs.

The Python API mirrors the CLI::

    from wgan import Config, Trainer, RunDir
    config = Config(data="grid25", loss="wgan-gp", steps=2000)
    trainer = Trainer(config, run=RunDir.create("runs/demo", config.resolve()))
    trainer.fit()
    print(trainer.evaluate())
"""

from .config import Config
from .errors import (
                     CheckpointError,
                     ConfigError,
                     DataError,
                     RunDirError,
                     TrainingDiverged,
                     WganError,
)
from .runs import RunDir
from .train import Trainer

__version__ = "0.1.0"
__all__ = ["CheckpointError", "Config", "ConfigError", "DataError", "RunDir", "RunDirError",
           "Trainer", "TrainingDiverged", "WganError", "__version__"]
