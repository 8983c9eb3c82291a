"""Algorithm 1 written the obvious way, as the official WGAN / WGAN-GP code does: a DataLoader,
a fresh fake batch for every critic step, separate critic calls on real, fake and interpolated
batches, a Python loop clamping each parameter, and ``.item()`` on the losses every step.

It exists as the yardstick of ``benchmarks/speed.py`` and of the test that the fast
:class:`~wgan.train.Trainer` computes the same thing: given ``same_stream=True`` it draws its
batches, noise and interpolation weights from the same random stream, in the same order, as the
Trainer, so the two reach the same weights up to float32 rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from .config import Config
from .train import BOOST_CRITIC_STEPS, BOOST_FIRST_STEPS, BOOST_PERIOD


class ReferenceLoop:
    """WGAN (clipping) or WGAN-GP (penalty) training, one generator iteration per :meth:`step`."""

    def __init__(self, config: Config, generator: nn.Module, critic: nn.Module, data: Tensor,
                 device: torch.device | str = "cpu", same_stream: bool = False):
        self.config = config = config.resolve()
        if config.loss not in ("wgan", "wgan-gp"):
            raise ValueError("the reference loop implements wgan and wgan-gp only")
        self.device = torch.device(device)
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

    def step(self) -> None:
        cfg = self.config
        critic_iters = cfg.n_critic
        if cfg.critic_boost and (self.iteration < BOOST_FIRST_STEPS
                                 or self.iteration % BOOST_PERIOD == 0):
            critic_iters = max(BOOST_CRITIC_STEPS, cfg.n_critic)
        for p in self.critic.parameters():
            p.requires_grad = True
        for _ in range(critic_iters):
            real = self._real_batch()
            noise = self._noise()
            with torch.no_grad():
                fake = self.generator(noise)
            self.critic.zero_grad()
            d_real = self.critic(real).mean()
            d_fake = self.critic(fake).mean()
            loss = d_fake - d_real
            if cfg.loss == "wgan-gp":
                shape = (cfg.batch_size,) + (1,) * (real.dim() - 1)
                eps = torch.rand(cfg.batch_size, device=self.device, generator=self.rng).view(shape)
                x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
                out = self.critic(x_hat)
                grad = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out),
                                           create_graph=True)[0]
                penalty = ((grad.view(cfg.batch_size, -1).norm(2, dim=1) - 1) ** 2).mean()
                loss = loss + cfg.gp_lambda * penalty
            loss.backward()
            self.opt_critic.step()
            if cfg.loss == "wgan":
                for p in self.critic.parameters():
                    p.data.clamp_(-cfg.clip, cfg.clip)
            critic_loss = loss.item()
        for p in self.critic.parameters():
            p.requires_grad = False
        self.generator.zero_grad()
        generator_loss = -self.critic(self.generator(self._noise())).mean()
        generator_loss.backward()
        self.opt_generator.step()
        self.losses.append((critic_loss, generator_loss.item()))
        self.iteration += 1
