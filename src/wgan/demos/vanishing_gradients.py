"""Vanishing gradients of a near-perfect discriminator (WGAN paper, Figure 2 / Arjovsky and
Bottou 2017, Theorem 2.4).

With the generator frozen (its samples far from the data), train a GAN discriminator and a WGAN
critic from scratch. After every ``k`` discriminator steps, measure the norm of the gradient of the
generator's loss with respect to the generator's weights. For the GAN's minimax loss
``log(1 - D(G(z)))`` it decays by orders of magnitude as D becomes confident; for the WGAN critic
(weight clipping, as in the paper) it stays bounded away from zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..objectives import (
    clip_weights,
    gan_discriminator_loss,
    gan_minimax_generator_loss,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from .common import plt, save, say


def _mlp(inputs: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                         nn.Linear(128, outputs))


def _real(n: int, rng: torch.Generator) -> torch.Tensor:
    angles = torch.randint(8, (n,), generator=rng) * (2 * np.pi / 8)
    return 2 * torch.stack([angles.cos(), angles.sin()], 1) + 0.05 * torch.randn(n, 2, generator=rng)


def gradient_norms(kind: str, steps: int, every: int, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    generator = _mlp(2, 2)  # frozen: untrained, its samples sit near the origin
    disc = _mlp(2, 1)
    if kind == "gan":
        opt = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999))
    else:
        opt = torch.optim.RMSprop(disc.parameters(), lr=5e-5)
    if kind == "wgan":
        clip_weights(disc.parameters(), 0.01)  # the critic lives in the clipped set throughout
    z_eval = torch.randn(1024, 2, generator=rng)
    norms = []
    for step in range(steps + 1):
        if step % every == 0:
            generator.zero_grad()
            scores = disc(generator(z_eval)).squeeze(1)
            loss = (gan_minimax_generator_loss(scores) if kind == "gan"
                    else wasserstein_generator_loss(scores))
            loss.backward()
            norms.append(float(torch.sqrt(sum((p.grad ** 2).sum() for p in generator.parameters()))))
        if step == steps:
            break
        real = _real(256, rng)
        with torch.no_grad():
            fake = generator(torch.randn(256, 2, generator=rng))
        if kind == "gan":
            loss = gan_discriminator_loss(disc(real).squeeze(1), disc(fake).squeeze(1))
        else:
            loss = wasserstein_critic_loss(disc(real).squeeze(1), disc(fake).squeeze(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if kind == "wgan":
            clip_weights(disc.parameters(), 0.01)
    return norms


def run(out: Path, quick: bool = False) -> dict:
    steps, every = (1500, 100) if quick else (4000, 100)
    gan = gradient_norms("gan", steps, every)
    wgan = gradient_norms("wgan", steps, every)
    gan_ratio, wgan_ratio = gan[0] / gan[-1], wgan[0] / wgan[-1]
    say(f"generator-gradient norm after 0 and {steps} discriminator steps:")
    say(f"  GAN (minimax):  {gan[0]:.3e} -> {gan[-1]:.3e}   first/last = {gan_ratio:.3g}")
    say(f"  WGAN (clipped): {wgan[0]:.3e} -> {wgan[-1]:.3e}   first/last = {wgan_ratio:.3g}")
    x = np.arange(len(gan)) * every
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(x, gan, label="GAN discriminator: ||grad_G log(1 - D(G(z)))||")
    ax.semilogy(x, wgan, label="WGAN critic: ||grad_G -f(G(z))||")
    ax.set_xlabel("discriminator / critic steps (generator frozen)")
    ax.set_ylabel("gradient norm")
    ax.legend(fontsize=8)
    ax.set_title("vanishing gradients of a confident discriminator")
    save(fig, out, "vanishing-gradients.png")
    return {"gan": gan, "wgan": wgan, "gan_ratio": gan_ratio, "wgan_ratio": wgan_ratio}
