"""Exception types raised for bad user input.

Every error a user can cause (a bad flag, a missing file, a corrupt checkpoint) is raised as a
subclass of :class:`WganError`. The CLI prints its message on one line and exits with status 2;
Python callers can catch it, or the built-in base class it also derives from.
"""

from __future__ import annotations


class WganError(Exception):
    """Base class of every error caused by user input; its message is one line.

    ``shared`` marks an error every process of a multi-process run raised together, having agreed
    on it: only rank 0 prints it."""

    shared: bool = False


class ConfigError(WganError, ValueError):
    """A configuration value, key or file is invalid."""


class DataError(WganError, ValueError):
    """A data file or folder is missing, unreadable or holds invalid values."""


class RunDirError(WganError, FileNotFoundError):
    """A run directory is missing, has no usable checkpoint, or must not be overwritten."""


class CheckpointError(WganError, ValueError):
    """A checkpoint file is corrupt, truncated, or not a wgan checkpoint."""


class SharedCheckpointError(CheckpointError):
    """The processes of a multi-process run cannot all load the checkpoint rank 0 chose."""

    shared = True


class TrainingDiverged(WganError, RuntimeError):
    """A loss, weight or gradient became NaN or infinite during training."""
