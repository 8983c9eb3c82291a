"""The WGAN paper's central empirical claim: the critic's W estimate tracks sample quality.

During a WGAN-GP run, at checkpoints, record the critic's running estimate of W (the negated
critic loss, median over the last steps, as the paper median-filters its curves) and the exact W1
between generated and real samples (POT), and report their Spearman rank correlation. The same for
a GAN: its discriminator loss against W1.

Measurement choices, all printed with the result:

* The critic uses the official code's schedule (100 critic steps for the first 25 generator steps
  and every 500th), the paper's remedy for a critic that lags behind the generator.
* Checkpoints are spaced geometrically, so the fast early phase (where quality changes most) and
  the slow late phase weigh equally; the correlation on evenly spaced checkpoints is printed too.
  Late in a run quality changes less than the sampling noise of W1, so rank correlation on evenly
  spaced checkpoints mostly measures noise.
* W1 and the estimate are both measured on the raw generator in the standardised units the critic
  sees, against one fixed real sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from ..config import Config
from ..loop import Callback
from ..metrics import w1_exact
from ..train import Trainer
from .common import plt, save, say

WINDOW = 50  # training steps in the running median of the critic's estimate


def checkpoints(steps: int, count: int = 20) -> tuple[list[int], list[int]]:
    """Geometrically and evenly spaced checkpoint steps in [1, steps]."""
    geometric = sorted({int(round(x)) for x in np.geomspace(1, steps, count)})
    even = list(range(max(1, steps // count), steps + 1, max(1, steps // count)))
    return geometric, even


class Trace(Callback):
    """Records, at the marked steps, the running median of the critic's estimate of W (a GAN's:
    its discriminator loss) and the exact W1 between generated and fixed real samples."""

    def __init__(self, marks: set[int], real: torch.Tensor, noise: torch.Tensor,
                 wasserstein: bool):
        self.marks, self.real, self.noise, self.wasserstein = marks, real, noise, wasserstein
        self.history: list[float] = []
        self.records: dict[int, tuple[float, float]] = {}

    def on_step_end(self, trainer, losses) -> None:
        value = float(losses["critic_loss"])
        self.history.append(-value if self.wasserstein else value)
        if trainer.step in self.marks:
            with torch.no_grad():
                fake = trainer.generator(self.noise)
            self.records[trainer.step] = (float(np.median(self.history[-WINDOW:])),
                                          w1_exact(fake, self.real))


def trace(loss: str, data: str, steps: int, n: int, seed: int = 0) -> dict:
    extra = {"gp_lambda": 1.0, "critic_boost": True} if loss == "wgan-gp" else {"n_critic": 1}
    config = Config(data=data, loss=loss, preset="none", steps=steps, width=128, depth=3,
                    batch_size=256, noise_dim=2, lr=5e-4, betas=(0.5, 0.9), lr_decay="linear",
                    seed=seed, **extra)
    trainer = Trainer(config, log=lambda m: None)
    geometric, even = checkpoints(steps)
    real = trainer.data.sample(n, torch.Generator(device=trainer.device).manual_seed(seed + 7))
    noise = trainer.noise(n, torch.Generator(device=trainer.device).manual_seed(seed + 8))
    recorder = Trace(set(geometric) | set(even), real, noise, loss.startswith("wgan"))
    trainer.fit(callbacks=[recorder], progress=False)
    records = recorder.records

    def rho(marks: list[int]) -> float:
        est, w1 = zip(*(records[m] for m in marks))
        return float(spearmanr(est, w1).statistic)

    return {"steps": geometric, "estimate": [records[m][0] for m in geometric],
            "w1": [records[m][1] for m in geometric], "spearman": rho(geometric),
            "spearman_even": rho(even)}


def run(out: Path, quick: bool = False, data: str = "grid25") -> dict:
    steps, n = (300, 600) if quick else (2000, 1000)
    wgan = trace("wgan-gp", data, steps, n)
    gan = trace("gan-ns", data, steps, n)
    say(f"{data}, {steps} generator steps, {len(wgan['steps'])} geometrically spaced checkpoints, "
        f"exact W1 on {n} samples:")
    say(f"  WGAN-GP: Spearman(critic estimate of W, exact W1) = {wgan['spearman']:.3f}"
        f"  (evenly spaced: {wgan['spearman_even']:.3f})")
    say(f"  GAN:     Spearman(discriminator loss, exact W1)   = {gan['spearman']:.3f}"
        f"  (evenly spaced: {gan['spearman_even']:.3f})")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (name, t, label) in zip(axes, (("WGAN-GP", wgan, "critic estimate of W"),
                                           ("GAN", gan, "discriminator loss"))):
        ax.plot(t["steps"], t["estimate"], "o-", color="tab:blue", ms=3)
        ax.set_xscale("log")
        ax.set_xlabel("generator step")
        ax.set_ylabel(label, color="tab:blue")
        twin = ax.twinx()
        twin.plot(t["steps"], t["w1"], "s-", color="tab:red", ms=3)
        twin.set_ylabel("exact W1 of samples (POT)", color="tab:red")
        ax.set_title(f"{name}: Spearman {t['spearman']:.2f}")
    save(fig, out, "w-vs-quality.png")
    return {"wgan_gp": wgan, "gan": gan}
