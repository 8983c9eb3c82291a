"""Lipschitz constraints on the critic, as objects with one registry.

The Kantorovich-Rubinstein duality needs the critic to be K-Lipschitz. Each way of keeping it so
is a :class:`LipschitzConstraint` with three hooks, which the algorithm calls without asking
which constraint it has:

* :meth:`~LipschitzConstraint.prepare` changes the critic once, before its optimizer is made
  (spectral normalisation re-parametrises every layer);
* :meth:`~LipschitzConstraint.penalty` is a term added to every critic loss (gradient penalty),
  or ``None``;
* :meth:`~LipschitzConstraint.after_critic_step` runs after every critic update (weight
  clipping).

``--constraint NAME`` picks one; every loss has its own default (:data:`wgan.objectives.LOSSES`).
Register another with :func:`register_constraint`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .objectives import clip_weights, gradient_penalty


class LipschitzConstraint:
    """No constraint: what the classic GAN's discriminator has."""

    name: ClassVar[str] = "none"
    #: The penalty treats samples one by one (batch norm in the critic would couple them).
    per_sample: ClassVar[bool] = False
    #: Its penalty differentiates the critic twice (``torch.compile`` cannot compile that).
    needs_double_backward: ClassVar[bool] = False
    #: The config fields :meth:`from_config` reads (``wgan tune`` searches them only where the
    #: constraint in use reads them).
    settings: ClassVar[tuple[str, ...]] = ()
    #: Multiplies :meth:`penalty` in the critic loss.
    weight: float = 0.0
    #: The penalty is added on every ``every``-th critic iteration of a generator step only,
    #: weighed ``every`` times (lazy regularisation, Karras et al. 2020); 1 = on every one.
    every: int = 1

    @classmethod
    def from_config(cls, config: Any) -> LipschitzConstraint:
        return cls()

    def prepare(self, critic: nn.Module) -> nn.Module:
        """Change the critic once, before its optimizer is made; return it."""
        return critic

    def penalty(self, critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                generator: torch.Generator) -> Tensor | None:
        """The unweighted penalty term of this critic step, or ``None``."""
        return None

    def after_critic_step(self, critic: nn.Module) -> None:
        """Called after every critic update."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


CONSTRAINTS: dict[str, type[LipschitzConstraint]] = {"none": LipschitzConstraint}


def register_constraint(cls: type[LipschitzConstraint]) -> type[LipschitzConstraint]:
    """Class decorator adding a constraint to the registry under ``cls.name``."""
    CONSTRAINTS[cls.name] = cls
    return cls


@register_constraint
class WeightClipping(LipschitzConstraint):
    """Clamp every critic parameter into ``[-c, c]`` after each update (WGAN paper, Algorithm 1
    line 7): the critic then lives in a compact set, so it is K-Lipschitz for some K."""

    name = "clip"
    settings = ("clip",)

    def __init__(self, clip: float = 0.01):
        self.clip = clip

    @classmethod
    def from_config(cls, config: Any) -> WeightClipping:
        return cls(config.clip)

    def after_critic_step(self, critic: nn.Module) -> None:
        clip_weights(critic.parameters(), self.clip)

    def __repr__(self) -> str:
        return f"WeightClipping(clip={self.clip})"


@register_constraint
class GradientPenalty(LipschitzConstraint):
    """``lambda (||grad f(x_hat)||_2 - 1)^2`` on random interpolates (WGAN-GP, Gulrajani et al.
    2017); one-sided, ``lambda max(0, ||grad|| - 1)^2``, it is WGAN-LP (Petzka et al. 2018).
    ``fast`` turns on the cheaper double backward of :mod:`wgan.models.layers`."""

    name = "gp"
    settings = ("gp_lambda", "fast_penalty", "penalty_every")
    per_sample = True
    needs_double_backward = True
    one_sided = False

    def __init__(self, weight: float = 10.0, fast: bool = True, every: int = 1):
        self.weight, self.fast, self.every = weight, fast, every

    @classmethod
    def from_config(cls, config: Any) -> GradientPenalty:
        return cls(config.gp_lambda, config.fast_penalty, config.penalty_every)

    def penalty(self, critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                generator: torch.Generator) -> Tensor:
        return gradient_penalty(critic, real, fake, one_sided=self.one_sided, generator=generator,
                                fast=self.fast)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(weight={self.weight}, fast={self.fast}, "
                f"every={self.every})")


@register_constraint
class OneSidedGradientPenalty(GradientPenalty):
    name = "lp"
    one_sided = True


@register_constraint
class SpectralNormalization(LipschitzConstraint):
    """Divide the weight of every linear and convolution layer of the critic by its largest
    singular value, estimated by one power iteration per training forward pass (Miyato et al.
    2018), through PyTorch's ``torch.nn.utils.parametrizations.spectral_norm``. With 1-Lipschitz
    activations the critic is then 1-Lipschitz layer by layer (up to the estimate)."""

    name = "spectral"

    def prepare(self, critic: nn.Module) -> nn.Module:
        from torch.nn.utils.parametrizations import spectral_norm

        layers = [m for m in critic.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        for layer in layers:
            spectral_norm(layer)
        return critic


def build_constraint(config: Any) -> LipschitzConstraint:
    """The constraint a resolved config names."""
    return CONSTRAINTS[config.constraint].from_config(config)


def has_stateful_forward(critic: nn.Module) -> bool:
    """Whether a training forward pass changes the critic's state (batch-norm statistics, spectral
    norm's power iteration), so that one forward on ``[real; fake]`` differs from two."""
    from torch.nn.utils import parametrize

    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) or parametrize.is_parametrized(m)
               for m in critic.modules())
