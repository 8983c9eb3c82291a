"""Generator and critic architectures, built by name from a :class:`~wgan.config.Config`.

A builder takes the resolved config and the shape of one data sample and returns
``(generator, critic)``. The generator maps noise of shape ``(B, config.noise_dim)`` to samples of
shape ``(B, *sample_shape)``; the critic maps such samples to one unbounded score each, shape
``(B,)`` (``(B / m,)``, one per pack, with ``--pack m``: :mod:`wgan.models.packing`). Register
a new architecture with :func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from torch import nn

from ..errors import ConfigError
from .packing import PackedCritic, packed_shape

if TYPE_CHECKING:
    from ..config import Config

Builder = Callable[["Config", tuple[int, ...]], tuple[nn.Module, nn.Module]]
_MODELS: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator adding a builder to the registry under ``name``."""

    def add(builder: Builder) -> Builder:
        _MODELS[name] = builder
        return builder

    return add


def model_names() -> list[str]:
    return sorted(_MODELS)


def build_models(config: Config, sample_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """Build ``(generator, critic)`` for samples of ``sample_shape`` as ``config.model`` says;
    with ``config.pack`` above 1, the critic is built for packs and wrapped to take samples
    (:class:`~wgan.models.packing.PackedCritic`)."""
    if config.model not in _MODELS:
        raise ConfigError(f"unknown model {config.model!r}; choose one of: "
                          f"{', '.join(model_names())}")
    build, shape = _MODELS[config.model], tuple(sample_shape)
    generator, critic = build(config, shape)
    m = config.pack
    if m > 1:  # the same architecture, its input m samples deep
        critic = PackedCritic(build(config, packed_shape(shape, m))[1], shape, m)
    return generator, critic




@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode (batch norm uses its running statistics and does not update
    them; spectral norm skips its power iteration), restoring each one's mode after."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


from . import dcgan, mlp, resnet  # noqa: E402,F401  (register "dcgan", "mlp", "resnet")
