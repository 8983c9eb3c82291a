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
    elif trainer.data.is_image:
        # The same noise every time (the sample seed is fixed), so the grids show progress.
        images = trainer.sample(64)
        paths.append(save_image_grid(images, run.plot_dir / f"samples-step-{trainer.step:08d}.png"))
        paths.append(save_image_grid(images, run.plot_dir / "samples.png"))
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


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) pixels in [-1, 1] -> (N, H, W, C) uint8."""
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one (rows*H, columns*W, C) uint8 array."""
    pixels = to_uint8(images)
    n, h, w, c = pixels.shape
    columns = columns or max(1, int(np.ceil(np.sqrt(n))))
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h,
             pad + col * (w + pad): pad + col * (w + pad) + w] = pixels[i]
    return grid


def save_png(array: np.ndarray, path: Path) -> Path:
    """Write an (H, W, C) uint8 array as a PNG (grey for one channel)."""
    from PIL import Image

    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, format="PNG")
    tmp.replace(path)
    return path


def save_image_grid(images: torch.Tensor, path: Path, columns: int | None = None) -> Path:
    return save_png(image_grid(images, columns), path)


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
