"""Fully connected generator and critic (the WGAN paper's MLP experiment: 4 layers of 512 ReLU
units), usable on vectors and on flattened images."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from . import register_model
from .layers import FullPrecisionLinear, LeakyReLU

if TYPE_CHECKING:
    from ..config import Config

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}
# Critics get the fast-penalty layers of .layers (same values and gradients; cheaper to
# differentiate twice under a gradient penalty).
_CRITIC_ACTIVATIONS = {**_ACTIVATIONS, "relu": LeakyReLU, "leaky_relu": lambda: LeakyReLU(0.2)}


def mlp(in_features: int, out_features: int, width: int, depth: int, activation: str,
        critic: bool = False) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units with ``activation``, then a linear output. The
    layer that touches the samples (a critic's first, a generator's last) computes in float32
    under autocast (:class:`~wgan.models.layers.FullPrecision`)."""
    activations = _CRITIC_ACTIVATIONS if critic else _ACTIVATIONS
    layers: list[nn.Module] = []
    features = in_features
    for index in range(depth):
        linear = FullPrecisionLinear if critic and index == 0 else nn.Linear
        layers += [linear(features, width), activations[activation]()]
        features = width
    output = FullPrecisionLinear if not critic or depth == 0 else nn.Linear
    layers.append(output(features, out_features))
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """``z -> x``: an MLP whose output is reshaped to the sample shape. Images get a ``tanh``
    so pixels land in [-1, 1]; vectors are left unbounded."""

    def __init__(self, noise_dim: int, sample_shape: tuple[int, ...], width: int, depth: int,
                 activation: str, bounded: bool):
        super().__init__()
        self.noise_dim = noise_dim
        self.sample_shape = sample_shape
        self.net = mlp(noise_dim, math.prod(sample_shape), width, depth, activation)
        self.bounded = bounded

    def forward(self, z: Tensor) -> Tensor:
        x = self.net(z).view(z.shape[0], *self.sample_shape)
        return torch.tanh(x) if self.bounded else x


class MLPCritic(nn.Module):
    """``x -> f(x)``: flattens each sample and returns one unbounded score per sample."""

    def __init__(self, sample_shape: tuple[int, ...], width: int, depth: int, activation: str):
        super().__init__()
        self.net = mlp(math.prod(sample_shape), 1, width, depth, activation, critic=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).squeeze(1)


@register_model("mlp")
def build_mlp(config: Config, sample_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    bounded = len(sample_shape) == 3  # images (C, H, W) live in [-1, 1]
    generator = MLPGenerator(config.noise_dim, sample_shape, config.generator_width, config.depth,
                             config.activation, bounded)
    critic = MLPCritic(sample_shape, config.width, config.depth, config.activation)
    return generator, critic
