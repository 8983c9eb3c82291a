"""The WGAN-GP paper's CIFAR-10 ResNet (Gulrajani et al. 2017, appendix): residual blocks of two
3x3 convolutions; the generator upsamples with batch norm, the critic downsamples with no
normalisation (or layer norm) and ends in global mean pooling and a linear score.

The generator starts from a ``base x base`` map (4 for 32 px, 7 for 28 px) and doubles it in
each block; the critic mirrors it (downsampling blocks, then plain ones at the base size).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

from . import register_model
from .dcgan import image_shape, norm_layer, upsampling_plan
from .layers import Conv2d, FullPrecisionConv2d, FullPrecisionGeneratorConv2d, avg_pool2x2, leaky_relu

if TYPE_CHECKING:
    from ..config import Config


class UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DownBlock(nn.Module):
    """Pre-activation residual block; ``first`` skips the opening activation (its input is the
    image); ``down`` halves the side with 2x2 average pooling."""

    def __init__(self, c_in: int, c_out: int, norm: str, down: bool, first: bool = False):
        super().__init__()
        self.first, self.down = first, down
        self.norm1 = nn.Identity() if first else norm_layer(norm, c_in)
        self.norm2 = norm_layer(norm, c_out)
        # The first block's input is the image: its layers compute in float32 under autocast.
        outer = FullPrecisionConv2d if first else Conv2d
        self.conv1 = outer(c_in, c_out, 3, 1, 1)
        self.conv2 = Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = outer(c_in, c_out, 1) if (c_in != c_out or down) else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.first else leaky_relu(self.norm1(x))
        h = self.conv2(leaky_relu(self.norm2(self.conv1(h))))
        skip = x
        if self.down:
            h = avg_pool2x2(h)
            skip = avg_pool2x2(skip)
        return h + self.shortcut(skip)


class ResNetGenerator(nn.Module):
    def __init__(self, noise_dim: int, channels: int, size: int, width: int):
        super().__init__()
        self.noise_dim = noise_dim
        self.base, doublings = upsampling_plan(size, "resnet")
        self.width = width
        self.linear = nn.Linear(noise_dim, width * self.base * self.base)
        self.blocks = nn.Sequential(*[UpBlock(width, width) for _ in range(doublings)])
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(),
                                 FullPrecisionGeneratorConv2d(width, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        h = self.linear(z).view(z.shape[0], self.width, self.base, self.base)
        return self.out(self.blocks(h))


class ResNetCritic(nn.Module):
    def __init__(self, channels: int, size: int, width: int, norm: str):
        super().__init__()
        _, doublings = upsampling_plan(size, "resnet")
        blocks = [DownBlock(channels, width, norm, down=True, first=True)]
        blocks += [DownBlock(width, width, norm, down=True) for _ in range(doublings - 2)]
        blocks += [DownBlock(width, width, norm, down=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(width, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = leaky_relu(self.blocks(x)).mean(dim=(2, 3))
        return self.linear(h).squeeze(1)


@register_model("resnet")
def build_resnet(config: Config, sample_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    channels, size = image_shape(sample_shape, "resnet")
    return (ResNetGenerator(config.noise_dim, channels, size, config.generator_width),
            ResNetCritic(channels, size, config.width, config.critic_norm))
