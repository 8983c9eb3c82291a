"""The WGAN paper's central empirical claim: the critic's W estimate tracks sample quality.

During a WGAN-GP run, at regular checkpoints, record the critic's estimate
``mean f(real) - mean f(fake)`` and the exact W1 between generated and real samples (POT), and
report their Spearman rank correlation. The same for a GAN: its discriminator loss against W1.
"""

from __future__ import annotations

from pathlib import Path

from scipy.stats import spearmanr

from ..config import Config
from ..train import Trainer
from .common import plt, save, say


def trace(loss: str, data: str, steps: int, every: int, n: int) -> dict:
    extra = {"gp_lambda": 1.0} if loss == "wgan-gp" else {}
    config = Config(data=data, loss=loss, steps=steps, width=128, depth=3, batch_size=256,
                    noise_dim=2, lr=5e-4, betas=(0.5, 0.9), seed=0, **extra)
    trainer = Trainer(config, log=lambda m: None)
    steps_seen, estimates, exact = [], [], []
    while trainer.step < steps:
        for _ in range(every):
            trainer.train_step()
        ev = trainer.evaluate(n=n, seed=trainer.step)
        steps_seen.append(trainer.step)
        # For the GAN, "estimate" is its discriminator loss (log-loss on real vs fake).
        estimates.append(ev["critic_estimate"] if loss.startswith("wgan")
                         else _gan_loss(trainer, n))
        exact.append(ev["w1_exact"])
    rho = spearmanr(estimates, exact).statistic
    return {"steps": steps_seen, "estimate": estimates, "w1": exact, "spearman": float(rho)}


def _gan_loss(trainer: Trainer, n: int) -> float:
    import torch

    from ..objectives import gan_discriminator_loss

    rng = torch.Generator(device=trainer.device).manual_seed(trainer.step)
    with torch.no_grad():
        real = trainer.data.sample(n, rng)
        fake = trainer.generator(trainer.noise(n, rng))
        return float(gan_discriminator_loss(trainer.critic(real), trainer.critic(fake)))


def run(out: Path, quick: bool = False, data: str = "grid25") -> dict:
    steps, every, n = (600, 50, 500) if quick else (3000, 100, 1000)
    wgan = trace("wgan-gp", data, steps, every, n)
    gan = trace("gan-ns", data, steps, every, n)
    say(f"{data}, {steps} generator steps, a checkpoint every {every}:")
    say(f"  WGAN-GP: Spearman(critic estimate, exact W1)   = {wgan['spearman']:.3f}")
    say(f"  GAN:     Spearman(discriminator loss, exact W1) = {gan['spearman']:.3f}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (name, t, label) in zip(axes, (("WGAN-GP", wgan, "critic estimate of W"),
                                           ("GAN", gan, "discriminator loss"))):
        ax.plot(t["steps"], t["estimate"], color="tab:blue", label=label)
        ax.set_xlabel("generator step")
        ax.set_ylabel(label, color="tab:blue")
        twin = ax.twinx()
        twin.plot(t["steps"], t["w1"], color="tab:red", label="exact W1 (POT)")
        twin.set_ylabel("exact W1 of samples", color="tab:red")
        ax.set_title(f"{name}: Spearman {t['spearman']:.2f}")
    save(fig, out, "w-vs-quality.png")
    return {"wgan_gp": wgan, "gan": gan}
