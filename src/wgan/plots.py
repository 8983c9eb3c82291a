"""Figures of a run: samples over the real data with the critic's contours (2-D data), sample
grids (images), and the Wasserstein estimate over training, raw and median-filtered. Figures take
a sampler, a critic and the data, never a Trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.ndimage import median_filter  # noqa: E402
from torch import nn  # noqa: E402

from .data import Dataset  # noqa: E402
from .data.images import to_uint8 as images_to_uint8  # noqa: E402
from .files import atomic_path  # noqa: E402
from .models import eval_mode  # noqa: E402
from .models.packing import pack_size  # noqa: E402
from .sampling import Sampler  # noqa: E402


def save_run_figures(plot_dir: Path, sampler: Sampler, critic: nn.Module, data: Dataset,
                     step: int, metrics: list[dict[str, float]], title: str) -> list[Path]:
    """Write the figures that fit the data into ``plot_dir``; return their paths: 2-D samples
    over the critic's contours, or a grid of 64 samples from fixed noise (each as
    ``samples-step-N.png`` and as the latest, ``samples.png``), and the W estimate
    (``wasserstein.png``)."""
    plot_dir.mkdir(exist_ok=True)
    paths = []
    if data.sample_shape == (2,):
        snapshot = plot_samples_2d(sampler, critic, data, plot_dir / f"samples-step-{step:08d}.png",
                                   title=f"{title}, step {step}")
        paths += [snapshot, copy_file(snapshot, plot_dir / "samples.png")]
    elif len(data.sample_shape) == 1:
        snapshot = plot_vector_samples(sampler, data, plot_dir / f"samples-step-{step:08d}.png",
                                       title=f"{title}, step {step}")
        paths += [snapshot, copy_file(snapshot, plot_dir / "samples.png")]
    elif data.is_image:
        # The same noise every time (the sample seed is fixed), so the grids show progress.
        images = sampler.sample(64)
        paths.append(save_image_grid(images, plot_dir / f"samples-step-{step:08d}.png"))
        paths.append(save_image_grid(images, plot_dir / "samples.png"))
    if metrics:
        paths.append(plot_wasserstein(metrics, plot_dir / "wasserstein.png", title=title))
    return paths


@torch.no_grad()
def critic_landscape(critic: nn.Module, data: Dataset, low: np.ndarray, high: np.ndarray,
                     resolution: int = 150) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The critic's score on a grid over ``[low, high]`` (data units): ``(xs, ys, scores)``. A
    packed critic scores each point as a pack of copies of it, ``f(x, ..., x)``."""
    xs, ys = np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    device = next(critic.parameters()).device
    points = torch.as_tensor(grid, dtype=torch.float32, device=device)
    points = (points - data.mean.to(device)) / data.std.to(device)
    with eval_mode(critic):
        scores = critic(points.repeat_interleave(pack_size(critic), 0))
    return xs, ys, scores.float().cpu().numpy().reshape(resolution, resolution)


@torch.no_grad()
def plot_samples_2d(sampler: Sampler, critic: nn.Module, data: Dataset, path: Path,
                    n: int = 1000, title: str = "") -> Path:
    """Real (grey) and generated (orange) points over filled contours of the critic f(x)."""
    rng = torch.Generator(device=data.device).manual_seed(777)
    real = data.to_data_units(data.sample(n, rng)).cpu().numpy()
    fake = sampler.sample(n, seed=778).numpy()
    both = np.concatenate([real, fake])
    low, high = np.percentile(both, 0.5, axis=0), np.percentile(both, 99.5, axis=0)
    pad = 0.15 * (high - low) + 1e-3
    low, high = low - pad, high + pad
    xs, ys, scores = critic_landscape(critic, data, low, high)

    fig, ax = plt.subplots(figsize=(6, 6))
    contour = ax.contourf(xs, ys, scores, levels=30, cmap="viridis", alpha=0.8)
    label = "critic f(x)" if pack_size(critic) == 1 else "critic f(x, ..., x) (packed)"
    fig.colorbar(contour, ax=ax, fraction=0.046, label=label)
    ax.scatter(real[:, 0], real[:, 1], s=3, c="0.85", label="real", alpha=0.7)
    ax.scatter(fake[:, 0], fake[:, 1], s=3, c="tab:orange", label="generated", alpha=0.7)
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=4)
    fig.tight_layout()
    save_figure(fig, path)
    return path


@torch.no_grad()
def plot_vector_samples(sampler: Sampler, data: Dataset, path: Path, n: int = 1000,
                        title: str = "", max_dims: int = 4) -> Path:
    """Vectors other than 2-D: histograms of each of the first ``max_dims`` coordinates on the
    diagonal, pairwise scatter plots off it; real in grey, generated in orange (data units)."""
    rng = torch.Generator(device=data.device).manual_seed(777)
    real = data.to_data_units(data.sample(n, rng)).cpu().numpy()
    fake = sampler.sample(n, seed=778).numpy()
    d = min(max_dims, real.shape[1])
    fig, axes = plt.subplots(d, d, figsize=(2.6 * d + 1, 2.6 * d + 0.5), squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i][j]
            if i == j:
                bins = np.histogram_bin_edges(np.concatenate([real[:, i], fake[:, i]]), 30)
                ax.hist(real[:, i], bins=bins, color="0.6", alpha=0.7, label="real")
                ax.hist(fake[:, i], bins=bins, color="tab:orange", alpha=0.6, label="generated")
            else:
                ax.scatter(real[:, j], real[:, i], s=2, c="0.6", alpha=0.6)
                ax.scatter(fake[:, j], fake[:, i], s=2, c="tab:orange", alpha=0.6)
            if i == d - 1:
                ax.set_xlabel(f"x{j}")
            if j == 0:
                ax.set_ylabel(f"x{i}")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title + (f" (first {d} of {real.shape[1]} coordinates)" if real.shape[1] > d
                          else ""))
    fig.tight_layout()
    return save_figure(fig, path)


def copy_file(source: Path, path: Path) -> Path:
    from .files import write_atomic

    return write_atomic(path, source.read_bytes())


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically (PNG by the path's suffix) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) pixels in [-1, 1] -> (N, H, W, C) uint8, for image files."""
    return images_to_uint8(images.detach().float().cpu()).permute(0, 2, 3, 1).numpy()


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
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def save_image_grid(images: torch.Tensor, path: Path, columns: int | None = None) -> Path:
    return save_png(image_grid(images, columns), path)


def plot_wasserstein(metrics: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """The critic's W estimate against generator steps: raw and median-filtered."""
    steps = np.array([m["step"] for m in metrics])
    values = np.array([m.get("wasserstein_estimate", float("nan")) for m in metrics])
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
    return save_figure(fig, path)
