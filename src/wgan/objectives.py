"""Critic and generator objectives, the penalty and clipping functions behind the Lipschitz
constraints, and the classic GAN baselines.

Every loss takes raw critic scores (for GANs: discriminator logits) and returns a scalar to
*minimise*. Notation: ``f`` is the critic, ``x`` a real batch, ``g(z)`` a generated batch.
The constraint *objects* (which one a run uses, when it applies) are in
:mod:`wgan.constraints`; the functions here are what they compute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .models.layers import _fast_penalty_forward

# ---- Wasserstein -----------------------------------------------------------------------------


def wasserstein_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``mean f(g(z)) - mean f(x)``: minimising it maximises the Kantorovich-Rubinstein dual
    ``E_real[f] - E_fake[f]`` (WGAN paper, Algorithm 1 line 6). Its negation is the critic's
    estimate of W(P_r, P_g), up to the Lipschitz constant K."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: Tensor) -> Tensor:
    """``-mean f(g(z))`` (WGAN paper, Algorithm 1 line 10)."""
    return -fake_scores.mean()


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    *,
    one_sided: bool = False,
    epsilon: Tensor | None = None,
    generator: torch.Generator | None = None,
    fast: bool = False,
) -> Tensor:
    """Mean over the batch of ``(||grad_x f(x_hat)||_2 - 1)^2`` at random interpolates.

    ``x_hat = eps * x + (1 - eps) * g(z)`` with one ``eps ~ U[0, 1]`` per sample (WGAN-GP,
    Gulrajani et al. 2017, Algorithm 1 lines 6-8). The norm is taken per sample over every
    non-batch dimension, so the same code serves vectors and images of any channel count.
    With ``one_sided=True`` it is the WGAN-LP penalty ``max(0, ||grad|| - 1)^2``
    (Petzka et al. 2018). The result is not multiplied by lambda. Under autocast the norm is
    still taken in float32.

    Args:
        critic: maps a batch to one score per sample.
        real, fake: batches of the same shape ``(B, ...)``.
        one_sided: penalise only norms above 1.
        epsilon: the interpolation weights, shape ``(B,)``; drawn uniformly when omitted.
        generator: random generator for ``epsilon``.
        fast: run the critic's forward with the layers of :mod:`wgan.models.layers` telling
            autograd which second derivatives are zero (same value and gradients, less work).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches differ in shape: {tuple(real.shape)} vs "
                         f"{tuple(fake.shape)}")
    batch = real.shape[0]
    if epsilon is None:
        epsilon = torch.rand(batch, device=real.device, dtype=real.dtype, generator=generator)
    epsilon = epsilon.reshape(batch, *([1] * (real.dim() - 1)))
    x_hat = torch.lerp(fake.detach(), real.detach(), epsilon).requires_grad_(True)
    with _fast_penalty_forward() if fast else nullcontext():
        scores = critic(x_hat)
    return penalty_at(x_hat, scores, one_sided=one_sided)


def penalty_at(x_hat: Tensor, scores: Tensor, one_sided: bool = False) -> Tensor:
    """The penalty from the critic's ``scores`` at interpolates ``x_hat`` (which must require
    grad). Norms are taken in at least float32: in float32 under autocast, in float64 when the
    networks are float64."""
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    grad = grad.to(torch.promote_types(grad.dtype, torch.float32))
    # vector_norm's backward is 0, not NaN, where a sample's gradient is exactly 0, so no
    # stabilising constant is needed (1e-12 inside the square root moved each norm by 5e-13 / norm,
    # which Adam amplified into 1e-8 weight differences from the reference loop in float64).
    norms = torch.linalg.vector_norm(grad.flatten(1), dim=1)
    excess = norms - 1.0
    if one_sided:
        excess = excess.clamp(min=0.0)
    return excess.pow(2).mean()


@torch.no_grad()
def clip_weights(parameters: Iterable[Tensor], clip: float) -> None:
    """Clamp every parameter into ``[-clip, clip]`` in place (WGAN paper, Algorithm 1 line 7).

    One fused ``foreach`` clamp over all tensors instead of one kernel per parameter.
    """
    params = [p for p in parameters]
    if params:
        torch._foreach_clamp_min_(params, -clip)
        torch._foreach_clamp_max_(params, clip)


# ---- classic GAN (logits in, numerically stable) ---------------------------------------------


def gan_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``-mean log D(x) - mean log(1 - D(g(z)))`` with ``D = sigmoid(logit)``.

    Computed as ``softplus(-l_real) + softplus(l_fake)``, finite for any logits
    (Goodfellow et al. 2014, eq. 1, negated to be minimised).
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def gan_minimax_generator_loss(fake_logits: Tensor) -> Tensor:
    """``mean log(1 - D(g(z)))`` = ``-mean softplus(l)``: the original minimax generator loss,
    whose gradient vanishes when the discriminator rejects the fakes confidently."""
    return -F.softplus(fake_logits).mean()


def gan_nonsaturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """``-mean log D(g(z))`` = ``mean softplus(-l)``: the non-saturating ("-log D") variant."""
    return F.softplus(-fake_logits).mean()


# ---- one description per loss name -----------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """What a ``--loss`` name means: the two losses, and the Lipschitz constraint (a name in
    :data:`wgan.constraints.CONSTRAINTS`) it comes with unless ``--constraint`` says otherwise."""

    name: str
    critic_loss: Callable[[Tensor, Tensor], Tensor]
    generator_loss: Callable[[Tensor], Tensor]
    constraint: str

    @property
    def is_wasserstein(self) -> bool:
        """The critic loss estimates -W: its negation is logged as the W estimate."""
        return self.critic_loss is wasserstein_critic_loss


#: The one registry of loss names.
LOSSES: dict[str, Objective] = {
    "wgan": Objective("wgan", wasserstein_critic_loss, wasserstein_generator_loss, "clip"),
    "wgan-gp": Objective("wgan-gp", wasserstein_critic_loss, wasserstein_generator_loss, "gp"),
    "wgan-lp": Objective("wgan-lp", wasserstein_critic_loss, wasserstein_generator_loss, "lp"),
    "gan": Objective("gan", gan_discriminator_loss, gan_minimax_generator_loss, "none"),
    "gan-ns": Objective("gan-ns", gan_discriminator_loss, gan_nonsaturating_generator_loss,
                        "none"),
}
OBJECTIVES = LOSSES  # the name earlier versions used


def get_objective(name: str) -> Objective:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}") from None
