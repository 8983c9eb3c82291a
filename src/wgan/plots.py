"""Figures of a run: samples over the real data with the critic's contours (2-D data), and the
Wasserstein estimate over training, raw and median-filtered."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.ndimage import median_filter  # noqa: E402

if TYPE_CHECKING:
    from .train import Trainer


def save_run_figures(trainer: Trainer) -> list[Path]:
    """Write the figures that fit the run's data into ``RUN/plots``; return their paths."""
    run = trainer.run
    if run is None:
        return []
    run.plot_dir.mkdir(exist_ok=True)
    paths = []
    if trainer.data.sample_shape == (2,):
        paths.append(plot_samples_2d(trainer, run.plot_dir / "samples.png"))
    metrics = run.read_metrics()
    if metrics:
        paths.append(plot_wasserstein(metrics, run.plot_dir / "wasserstein.png",
                                      title=f"{trainer.config.loss} on {trainer.config.data}"))
    return paths


@torch.no_grad()
def plot_samples_2d(trainer: Trainer, path: Path, n: int = 1000) -> Path:
    """Real (grey) and generated (orange) points over filled contours of the critic f(x)."""
    rng = torch.Generator(device=trainer.device).manual_seed(777)
    real = trainer.data.to_data_units(trainer.data.sample(n, rng)).cpu().numpy()
    fake = trainer.sample(n, seed=778).numpy()
    both = np.concatenate([real, fake])
    low, high = np.percentile(both, 0.5, axis=0), np.percentile(both, 99.5, axis=0)
    pad = 0.15 * (high - low) + 1e-3
    low, high = low - pad, high + pad
    xs, ys = np.linspace(low[0], high[0], 150), np.linspace(low[1], high[1], 150)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    points = torch.as_tensor(grid, dtype=torch.float32, device=trainer.device)
    points = (points - trainer.data.mean.to(trainer.device)) / trainer.data.std.to(trainer.device)
    was_training = trainer.critic.training
    trainer.critic.eval()
    scores = trainer.critic(points).float().cpu().numpy().reshape(150, 150)
    trainer.critic.train(was_training)

    fig, ax = plt.subplots(figsize=(6, 6))
    contour = ax.contourf(xs, ys, scores, levels=30, cmap="viridis", alpha=0.8)
    fig.colorbar(contour, ax=ax, fraction=0.046, label="critic f(x)")
    ax.scatter(real[:, 0], real[:, 1], s=3, c="0.85", label="real", alpha=0.7)
    ax.scatter(fake[:, 0], fake[:, 1], s=3, c="tab:orange", label="generated", alpha=0.7)
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_title(f"{trainer.config.loss} on {trainer.config.data}, step {trainer.step}")
    ax.legend(loc="upper right", markerscale=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_wasserstein(metrics: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """The critic's W estimate against generator steps: raw and median-filtered."""
    steps = np.array([m["step"] for m in metrics])
    values = np.array([m["wasserstein_estimate"] for m in metrics])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, values, color="tab:blue", alpha=0.35, label="raw")
    if len(values) >= 3:
        size = max(3, (len(values) // 20) | 1)
        ax.plot(steps, median_filter(values, size=size, mode="nearest"), color="tab:blue",
                label=f"median filter ({size})")
    ax.set_xlabel("generator step")
    ax.set_ylabel("critic estimate of W")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
