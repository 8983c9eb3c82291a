"""GAN versus WGAN-GP on a mixture of Gaussians, with the same MLP generator and budget:
modes captured by each, and the samples side by side."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import Config
from ..train import Trainer
from .common import plt, save, say


def run(out: Path, quick: bool = False, data: str = "ring8") -> dict:
    steps = 400 if quick else 3000
    common = dict(data=data, steps=steps, width=128, depth=3, batch_size=256, noise_dim=2,
                  seed=0, lr=5e-4, betas=(0.5, 0.9))
    results, samples = {}, {}
    for loss in ("gan-ns", "wgan-gp"):
        extra = {"gp_lambda": 1.0} if loss == "wgan-gp" else {"n_critic": 1}
        trainer = Trainer(Config(loss=loss, **common, **extra), log=lambda m: None)
        trainer.fit(progress=False)
        ev = trainer.evaluate(n=1000)
        results[loss] = {k: ev[k] for k in ("modes_captured", "modes_total",
                                            "high_quality_fraction", "w1_exact")}
        samples[loss] = trainer.sample(1000, seed=5)
        real = trainer.data.to_data_units(trainer.data.sample(1000, torch.Generator()
                                                              .manual_seed(1))).cpu()
        say(f"{loss:8} modes {ev['modes_captured']}/{ev['modes_total']}, "
            f"high quality {ev['high_quality_fraction']:.1%}, W1 {ev['w1_exact']:.4f}")
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=True)
    for ax, loss in zip(axes, samples):
        ax.scatter(real[:, 0], real[:, 1], s=3, c="0.7", label="real")
        ax.scatter(samples[loss][:, 0], samples[loss][:, 1], s=3, c="tab:orange",
                   label="generated")
        r = results[loss]
        ax.set_title(f"{loss}: {r['modes_captured']}/{r['modes_total']} modes")
        ax.set_aspect("equal")
    axes[0].legend(markerscale=4)
    save(fig, out, "mode-collapse.png")
    return results
