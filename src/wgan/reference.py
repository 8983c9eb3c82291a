"""Algorithm 1 written the obvious way, as the official WGAN / WGAN-GP code does: a DataLoader,
a fresh fake batch for every critic step, separate critic calls on real, fake and interpolated
batches, a Python loop clamping each parameter, and ``.item()`` on the losses every step.

It exists as the yardstick of ``benchmarks/speed.py`` and of the tests that the
:class:`~wgan.train.Trainer` computes the same thing, for every Lipschitz constraint: clipping,
the two-sided and one-sided penalties, spectral normalisation (applied here with
``torch.nn.utils.parametrizations.spectral_norm``), and none (the GAN losses, written with
``binary_cross_entropy_with_logits``). Given ``same_stream=True`` it draws its batches, noise and
interpolation weights from the same random stream, in the same order, as the Trainer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from .algorithm import critic_iterations
from .config import Config


class ReferenceLoop:
    """One generator iteration per :meth:`step`. The spectral-norm constraint is applied to the
    given critic here (with the global random state at that moment, as PyTorch does)."""

    def __init__(self, config: Config, generator: nn.Module, critic: nn.Module, data: Tensor,
                 device: torch.device | str = "cpu", same_stream: bool = False):
        self.config = config = config.resolve()
        self.device = torch.device(device)
        if config.constraint == "spectral":
            from torch.nn.utils.parametrizations import spectral_norm

            for layer in [m for m in critic.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]:
                spectral_norm(layer)
        # PacGAN packing, written out here: the critic given is the packed-shape network
        # (a PackedCritic's inner one), and _pack below joins the samples itself.
        critic = getattr(critic, "critic", critic) if config.pack > 1 else critic
        self.generator, self.critic = generator.to(self.device), critic.to(self.device)
        self.data = data.to(self.device) if same_stream else data
        self.same_stream = same_stream
        self.rng = torch.Generator(device=self.device).manual_seed(config.seed)
        if config.optimizer == "adam":
            make = lambda p: torch.optim.Adam(p, lr=config.lr, betas=config.betas)  # noqa: E731
        else:
            make = lambda p: torch.optim.RMSprop(p, lr=config.lr)  # noqa: E731
        self.opt_critic = make(critic.parameters())
        self.opt_generator = make(generator.parameters())
        self.loader = DataLoader(TensorDataset(data), batch_size=config.batch_size, shuffle=True,
                                 drop_last=True)
        self.batches = iter(self.loader)
        self.iteration = 0
        self.losses: list[tuple[float, float]] = []

    def _real_batch(self) -> Tensor:
        if self.same_stream:
            index = torch.randint(len(self.data), (self.config.batch_size,), device=self.device,
                                  generator=self.rng)
            return self.data[index]
        try:
            (batch,) = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            (batch,) = next(self.batches)
        return batch.to(self.device)

    def _noise(self) -> Tensor:
        return torch.randn(self.config.batch_size, self.config.noise_dim, device=self.device,
                           generator=self.rng)

    def _pack(self, x: Tensor) -> Tensor:
        """Pack k: samples k m .. k m + m - 1, one after another along the channel axis."""
        m = self.config.pack
        if m == 1:
            return x
        return torch.stack([torch.cat(list(x[k * m:(k + 1) * m]), dim=0)
                            for k in range(len(x) // m)])

    def _critic_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        d_real, d_fake = self.critic(real), self.critic(fake)
        if self.config.loss.startswith("gan"):
            return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                    + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        return d_fake.mean() - d_real.mean()

    def _generator_loss(self, d_fake: Tensor) -> Tensor:
        if self.config.loss == "gan":  # minimax: log(1 - D(G(z)))
            return torch.log1p(-torch.sigmoid(d_fake)).mean()
        if self.config.loss == "gan-ns":
            return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        return -d_fake.mean()

    def step(self) -> None:
        cfg = self.config
        for p in self.critic.parameters():
            p.requires_grad = True
        for i in range(critic_iterations(self.iteration, cfg.n_critic, cfg.critic_boost)):
            real = self._real_batch()
            noise = self._noise()
            with torch.no_grad():
                fake = self.generator(noise)
            real, fake = self._pack(real), self._pack(fake)
            self.critic.zero_grad()
            loss = self._critic_loss(real, fake)
            if cfg.constraint in ("gp", "lp") and i % cfg.penalty_every == 0:
                packs = len(real)
                shape = (packs,) + (1,) * (real.dim() - 1)
                eps = torch.rand(packs, device=self.device, generator=self.rng).view(shape)
                x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
                out = self.critic(x_hat)
                grad = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out),
                                           create_graph=True)[0]
                excess = grad.view(packs, -1).norm(2, dim=1) - 1
                if cfg.constraint == "lp":
                    excess = torch.relu(excess)
                loss = loss + cfg.gp_lambda * cfg.penalty_every * (excess ** 2).mean()
            loss.backward()
            self.opt_critic.step()
            if cfg.constraint == "clip":
                for p in self.critic.parameters():
                    p.data.clamp_(-cfg.clip, cfg.clip)
            critic_loss = loss.item()
        for p in self.critic.parameters():
            p.requires_grad = False
        self.generator.zero_grad()
        generator_loss = self._generator_loss(
            self.critic(self._pack(self.generator(self._noise()))))
        generator_loss.backward()
        self.opt_generator.step()
        self.losses.append((critic_loss, generator_loss.item()))
        self.iteration += 1
