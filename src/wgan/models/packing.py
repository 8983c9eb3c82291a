"""PacGAN's packing (Lin et al. 2018): the critic scores groups of ``m`` samples at once, so a
generator that drops modes or repeats itself makes packs that look unlike real packs, which a
critic of one sample cannot see. Consecutive samples of a batch form a pack, joined along the
first non-batch dimension: channels for images, features for vectors.

:class:`PackedCritic` wraps a critic built for the packed shape; it packs a batch of samples
itself, so every caller (the algorithm, the evaluation, the figures) hands it samples as
before, and gets one score per pack. The critic iteration packs first (:func:`pack`), so that
the gradient penalty interpolates each pack between a real and a generated pack and takes the
gradient's norm over the whole pack (the packed critic's input).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def packed_shape(sample_shape: tuple[int, ...], m: int) -> tuple[int, ...]:
    """The shape of one pack of ``m`` samples of ``sample_shape``: ``(m * C, H, W)`` for images,
    ``(m * d,)`` for vectors."""
    return (m * sample_shape[0], *sample_shape[1:])


def pack(x: Tensor, m: int) -> Tensor:
    """``(B, C, ...)`` -> ``(B / m, m * C, ...)``: samples ``k m .. k m + m - 1`` become pack
    ``k``, joined along dimension 1. ``B`` must be a multiple of ``m``."""
    if m == 1:
        return x
    if x.shape[0] % m:
        raise ValueError(f"a batch of {x.shape[0]} samples does not split into packs of {m}")
    packed = x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last):  # the reshape copied: keep the runtime's layout
        packed = packed.contiguous(memory_format=torch.channels_last)
    return packed


class PackedCritic(nn.Module):
    """``(x_1, ..., x_B) -> (f(x_1..x_m), f(x_m+1..x_2m), ...)``: one score per pack of ``m``.

    Args:
        critic: a critic built for samples of :func:`packed_shape` (its state is this module's
            ``critic.*``).
        sample_shape: the shape of one unpacked sample.
        m: samples per pack.

    A batch already packed (shape ``(B / m, *packed_shape)``) passes through as it is.
    """

    def __init__(self, critic: nn.Module, sample_shape: tuple[int, ...], m: int):
        super().__init__()
        if m < 2:
            raise ValueError(f"a packed critic needs packs of at least 2 samples, got {m}")
        self.critic, self.m = critic, m
        self.sample_shape = torch.Size(sample_shape)
        self.packed_shape = torch.Size(packed_shape(tuple(sample_shape), m))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1:] == self.sample_shape:
            x = pack(x, self.m)
        elif x.shape[1:] != self.packed_shape:
            raise ValueError(f"packed critic: expected samples of shape {tuple(self.sample_shape)} "
                             f"or packs of {tuple(self.packed_shape)}, got {tuple(x.shape[1:])}")
        return self.critic(x)


def pack_size(critic: nn.Module) -> int:
    """Samples per score of ``critic``: its packs' size, or 1."""
    return critic.m if isinstance(critic, PackedCritic) else 1
