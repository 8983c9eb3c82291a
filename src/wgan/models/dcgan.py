"""DCGAN generator and critic (Radford et al. 2016) as used by the WGAN paper, for square images
whose side is 4 or 7 times a power of two (8, 16, 28, 32, 64, 128, ...).

* Generator: a transposed convolution from ``z`` to a ``base x base`` map, then stride-2
  transposed convolutions doubling the side, with batch norm and ReLU, and ``tanh`` out.
  ``--no-batch-norm`` gives the WGAN paper's second generator: no batch norm and a constant
  filter count (``width``) in every layer.
* Critic: stride-2 convolutions with LeakyReLU(0.2) halving the side down to ``base``, then one
  convolution to a single unbounded score (no sigmoid). Normalisation: none, layer or batch.
* ``infogan``: the same networks with one fully connected hidden layer of ``16 x width`` units
  (1,024 at width 64) in each: the generator goes ``z -> hidden -> base map`` through two linear
  layers (batch norm, ReLU), the critic ends ``base map -> hidden -> score`` (its
  normalisation, LeakyReLU). This is InfoGAN's MNIST architecture (Chen et al. 2016), the one
  Lucic et al. 2018 ("Are GANs Created Equal?") used for their MNIST and Fashion-MNIST tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from ..errors import ConfigError
from ..shapes import image_plan
from . import register_model
from .layers import Conv2d, FullPrecisionConv2d, FullPrecisionConvTranspose2d, LeakyReLU

if TYPE_CHECKING:
    from ..config import Config


def upsampling_plan(size: int, model: str) -> tuple[int, int]:
    """:func:`image_plan`, or a :class:`ConfigError` naming the side for ``model``."""
    plan = image_plan(size)
    if plan is None:
        raise ConfigError(f"model {model} needs an image side of 4..7 times a power of two "
                          f"(8, 16, 28, 32, 64, ...), got {size}; pass --image-size")
    return plan


def norm_layer(kind: str, channels: int, flat: bool = False) -> nn.Module:
    """A normalisation of ``channels`` feature maps (or, ``flat``, features): none, layer or batch."""
    if kind == "batch":
        return nn.BatchNorm1d(channels) if flat else nn.BatchNorm2d(channels)
    if kind == "layer":  # normalise each sample over (C, H, W) or its features, per-channel affine
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class DCGANGenerator(nn.Module):
    def __init__(self, noise_dim: int, channels: int, size: int, width: int, batch_norm: bool,
                 hidden: int = 0):
        super().__init__()
        self.noise_dim, self.hidden = noise_dim, hidden
        base, doublings = upsampling_plan(size, "dcgan")

        def filters(level: int) -> int:  # level 0 is the base map
            return width * 2 ** (doublings - 1 - level) if batch_norm else width

        def norm(c: int, flat: bool = False) -> nn.Module:
            return norm_layer("batch" if batch_norm else "none", c, flat)

        if hidden:  # z -> hidden units -> the base map, through linear layers
            units = filters(0) * base * base
            layers: list[nn.Module] = [
                nn.Linear(noise_dim, hidden, bias=not batch_norm),
                norm(hidden, flat=True), nn.ReLU(True),
                nn.Linear(hidden, units, bias=not batch_norm),
                norm(units, flat=True), nn.ReLU(True),
                nn.Unflatten(1, (filters(0), base, base))]
        else:
            layers = [nn.ConvTranspose2d(noise_dim, filters(0), base, 1, 0, bias=not batch_norm),
                      norm(filters(0)), nn.ReLU(True)]
        for level in range(1, doublings):
            layers += [nn.ConvTranspose2d(filters(level - 1), filters(level), 4, 2, 1,
                                          bias=not batch_norm),
                       norm(filters(level)), nn.ReLU(True)]
        layers += [FullPrecisionConvTranspose2d(filters(doublings - 1), channels, 4, 2, 1),
                   nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z if self.hidden else z[:, :, None, None])


class DCGANCritic(nn.Module):
    def __init__(self, channels: int, size: int, width: int, norm: str, hidden: int = 0):
        super().__init__()
        base, doublings = upsampling_plan(size, "dcgan")
        layers: list[nn.Module] = [FullPrecisionConv2d(channels, width, 4, 2, 1),
                                   LeakyReLU(0.2, True)]
        c = width
        for _ in range(doublings - 1):
            layers += [Conv2d(c, 2 * c, 4, 2, 1, bias=norm == "none"), norm_layer(norm, 2 * c),
                       LeakyReLU(0.2, True)]
            c *= 2
        if hidden:  # the base map -> hidden units -> the score, through linear layers
            layers += [nn.Flatten(), nn.Linear(c * base * base, hidden, bias=norm == "none"),
                       norm_layer(norm, hidden, flat=True), LeakyReLU(0.2, True),
                       nn.Linear(hidden, 1)]
        else:
            layers.append(Conv2d(c, 1, base, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten()


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: N(0, 0.02) weights, N(1, 0.02) norm scales, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def image_shape(sample_shape: tuple[int, ...], model: str) -> tuple[int, int]:
    """``(channels, side)`` of square image samples, or a ConfigError."""
    if len(sample_shape) != 3 or sample_shape[1] != sample_shape[2]:
        raise ConfigError(f"model {model} needs square images (C, H, W), but the data has "
                          f"samples of shape {tuple(sample_shape)}; use --model mlp")
    return sample_shape[0], sample_shape[1]


#: Hidden units of the ``infogan`` layers per unit of width (1,024 at the default width 64).
INFOGAN_HIDDEN = 16


def _build(config: Config, sample_shape: tuple[int, ...], model: str,
           hidden: int) -> tuple[nn.Module, nn.Module]:
    channels, size = image_shape(sample_shape, model)
    upsampling_plan(size, model)  # a side the model cannot build is named for this model
    generator = DCGANGenerator(config.noise_dim, channels, size, config.generator_width,
                               config.batch_norm, hidden * config.generator_width)
    critic = DCGANCritic(channels, size, config.width, config.critic_norm, hidden * config.width)
    dcgan_init(generator)
    dcgan_init(critic)
    return generator, critic


@register_model("dcgan")
def build_dcgan(config: Config, sample_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    return _build(config, sample_shape, "dcgan", 0)


@register_model("infogan")
def build_infogan(config: Config, sample_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    return _build(config, sample_shape, "infogan", INFOGAN_HIDDEN)
