"""WGAN's Algorithm 1 (Arjovsky et al. 2017) and WGAN-GP's (Gulrajani et al. 2017), and the classic
GAN's loop, in one function: :meth:`Algorithm.step`.

What differs between them is not on the screen: the losses come from the :class:`Objective`
(:mod:`wgan.objectives`), the Lipschitz constraint from a :class:`LipschitzConstraint`
(:mod:`wgan.constraints`: clipping after each critic update, a penalty added to each critic
loss, spectral normalisation inside the critic, or nothing), and how the networks run (device,
autocast, compilation, distributed) from the callables the runtime hands in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .constraints import LipschitzConstraint
from .models.packing import pack, pack_size
from .objectives import Objective

#: The official WGAN code's critic schedule (Arjovsky et al., main.py): 100 critic iterations for
#: the first 25 generator iterations and every 500th, so the critic is near-optimal early on.
BOOST_CRITIC_STEPS = 100
BOOST_FIRST_STEPS = 25
BOOST_PERIOD = 500


def boosted_critic_iterations(n_critic: int) -> int:
    """Critic iterations of a boosted generator iteration (the critic boost's long ones)."""
    return max(BOOST_CRITIC_STEPS, n_critic)


def critic_iterations(step: int, n_critic: int, boost: bool) -> int:
    """Critic iterations before generator iteration ``step`` (counting from 0)."""
    if boost and (step < BOOST_FIRST_STEPS or step % BOOST_PERIOD == 0):
        return boosted_critic_iterations(n_critic)
    return n_critic


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """The module's parameters need no gradient inside (its weights are constants there)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class Algorithm:
    """One generator iteration preceded by its critic iterations.

    Args:
        generator, critic: the networks (their parameters are what the optimizers update).
        generate, criticize: how to run them (the runtime's callables: autocast, compilation,
            distributed wrappers); default: the modules themselves.
        criticize_frozen: how to run the critic in the generator iteration, where its weights
            are constants (under DistributedDataParallel: the bare module, no gradient sync).
        real_batch: ``n -> n`` real samples; noise: ``n -> n`` draws of z; rng: the random
            generator of the penalty's interpolation weights.
        joint_forward: score ``[real; fake]`` in one critic forward (same result unless a
            forward changes the critic's state: batch norm, spectral norm).

    A packed critic (:mod:`wgan.models.packing`) scores packs of samples: the critic iteration
    packs its batches once, so the scores and the penalty see whole packs.
    """

    def __init__(self, generator: nn.Module, critic: nn.Module,
                 critic_optimizer: torch.optim.Optimizer,
                 generator_optimizer: torch.optim.Optimizer, objective: Objective,
                 constraint: LipschitzConstraint, real_batch: Callable[[int], Tensor],
                 noise: Callable[[int], Tensor], rng: torch.Generator, batch_size: int,
                 n_critic: int, critic_boost: bool = False,
                 generate: Callable[[Tensor], Tensor] | None = None,
                 criticize: Callable[[Tensor], Tensor] | None = None,
                 criticize_frozen: Callable[[Tensor], Tensor] | None = None,
                 joint_forward: bool = True):
        self.generator, self.critic = generator, critic
        self.critic_optimizer, self.generator_optimizer = critic_optimizer, generator_optimizer
        self.objective, self.constraint = objective, constraint
        self.real_batch, self.noise, self.rng = real_batch, noise, rng
        self.batch_size, self.n_critic, self.critic_boost = batch_size, n_critic, critic_boost
        self.generate = generate or generator
        self.criticize = criticize or critic
        self.criticize_frozen = criticize_frozen or self.criticize
        self.joint_forward = joint_forward
        self.pack = pack_size(critic)
        self._zero = torch.zeros((), device=next(critic.parameters()).device)

    def critic_iterations(self, step: int) -> int:
        return critic_iterations(step, self.n_critic, self.critic_boost)

    def step(self, step: int) -> dict[str, Tensor]:
        """Generator iteration number ``step`` and the critic iterations before it. Returns
        detached scalar losses, left on the device (reading them would make the host wait)."""
        penalty = self._zero
        for i in range(self.critic_iterations(step)):   # a lazy penalty: every k-th iteration
            critic_loss, term = self.critic_iteration(i % self.constraint.every == 0)
            penalty = penalty if term is None else term
        generator_loss = self.generator_iteration()
        return {"critic_loss": critic_loss, "generator_loss": generator_loss, "penalty": penalty}

    def critic_iteration(self, penalize: bool = True) -> tuple[Tensor, Tensor | None]:
        """One critic update: maximise ``mean f(x) - mean f(g(z))`` (the objective's critic
        loss, minimised), plus the constraint's penalty (if ``penalize``: a lazy penalty skips
        iterations and weighs the others ``every`` times); then the constraint's after-step."""
        real = pack(self.real_batch(self.batch_size), self.pack)    # x ~ P_r, in packs if any
        with torch.no_grad():                                       # no gradient into g here
            fake = pack(self.generate(self.noise(self.batch_size)), self.pack)  # g(z)
        real_scores, fake_scores = self.scores(real, fake)
        critic_loss = self.objective.critic_loss(real_scores, fake_scores)
        penalty = (self.constraint.penalty(self.criticize, real, fake, self.rng) if penalize
                   else None)
        weight = self.constraint.weight * self.constraint.every
        loss = critic_loss if penalty is None else critic_loss + weight * penalty
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()                                             # one backward: DDP-safe
        self.critic_optimizer.step()
        self.constraint.after_critic_step(self.critic)              # e.g. clip to [-c, c]
        return critic_loss.detach(), (None if penalty is None else penalty.detach())

    def generator_iteration(self) -> Tensor:
        """One generator update: minimise the objective's generator loss, ``-mean f(g(z))``,
        through the critic with its weights held constant."""
        with frozen(self.critic):
            fake_scores = self.criticize_frozen(self.generate(self.noise(self.batch_size)))
            generator_loss = self.objective.generator_loss(fake_scores)
        self.generator_optimizer.zero_grad(set_to_none=True)
        generator_loss.backward()
        self.generator_optimizer.step()
        return generator_loss.detach()

    def scores(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """``f(x)`` and ``f(g(z))``; in one forward on ``[real; fake]`` where that is the same."""
        if not self.joint_forward:
            return self.criticize(real), self.criticize(fake)
        scores = self.criticize(torch.cat([real, fake]))
        return scores[:len(real)], scores[len(real):]


class LearningRateSchedule:
    """Sets each optimizer's learning rate before generator iteration ``step``: constant
    (``none``), decaying linearly from its base value to 0 at ``total`` steps (``linear``), or
    that decay for all but the optimizers in ``constant`` (``linear-generator``: the Trainer
    names the critic's, which keeps its rate and so can follow the generator to the end)."""

    def __init__(self, optimizers: dict[torch.optim.Optimizer, float], kind: str, total: int,
                 constant: tuple[torch.optim.Optimizer, ...] = ()):
        self.optimizers, self.kind, self.total = optimizers, kind, total
        self.constant = constant if kind == "linear-generator" else ()

    def factor(self, step: int) -> float:
        return max(0.0, 1.0 - step / self.total) if self.kind != "none" else 1.0

    def apply(self, step: int) -> None:
        factor = self.factor(step)
        for optimizer, base in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = base * (1.0 if optimizer in self.constant else factor)
