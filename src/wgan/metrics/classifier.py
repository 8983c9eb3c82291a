"""An in-project MNIST classifier and the sample-quality metrics built on it (all offline).

* :func:`train_classifier` trains a small CNN on the MNIST files (about 99% test accuracy in
  two epochs) and :func:`save_classifier` caches it as safetensors
  (``$WGAN_CACHE/mnist-classifier.safetensors``, default ``~/.cache/wgan``).
* :func:`class_metrics`: classes captured and KL(generated class frequencies || uniform).
* :func:`stacked_mnist_metrics`: each channel classified separately, so a sample is one of 1,000
  digit triples; modes captured and KL(mode histogram || uniform) (VEEGAN/PacGAN protocol,
  26,000 samples).
* :func:`frechet_distance`: between Gaussians fitted to the classifier's 128 penultimate
  features of real and generated digits. This is *not* Inception FID: its values are on a
  different scale and comparable only with other numbers from this classifier.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError
from ..files import cache_root, write_atomic
from .frechet import frechet_distance, gaussian_stats

FEATURES = 128
STACKED_SAMPLES = 26_000  # generated samples for the Stacked MNIST metrics (VEEGAN/PacGAN)


def cache_dir() -> Path:
    return cache_root()


def default_classifier_path() -> Path:
    return cache_dir() / "mnist-classifier.safetensors"


class MNISTClassifier(nn.Module):
    """Two 5x5 convolutions with max pooling, a 128-unit feature layer, 10 logits. Input:
    (N, 1, 28, 28) in [-1, 1] (other sizes are resized)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, FEATURES), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURES, 10))

    def embed(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (28, 28):
            x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True)
        return self.features(self.conv(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))


def _shift(x: Tensor, generator: torch.Generator, pixels: int = 2) -> Tensor:
    """Random translation by up to ``pixels`` (one shift per batch: cheap augmentation)."""
    dx, dy = (torch.randint(-pixels, pixels + 1, (2,), generator=generator)).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def train_classifier(images: Tensor, labels: Tensor, epochs: float = 2.0, batch_size: int = 128,
                     seed: int = 0, log: Callable[[str], None] | None = None) -> MNISTClassifier:
    """Train on (N, 1, 28, 28) images in [-1, 1]; ``epochs`` may be fractional (tests)."""
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    model = MNISTClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = max(1, int(epochs * images.shape[0] / batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    model.train()
    order = torch.randperm(images.shape[0], generator=rng)
    for step in range(steps):
        start = (step * batch_size) % images.shape[0]
        if start + batch_size > images.shape[0]:
            order = torch.randperm(images.shape[0], generator=rng)
            start = 0
        index = order[start:start + batch_size]
        loss = F.cross_entropy(model(_shift(images[index], rng)), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if log and (step + 1) % 100 == 0:
            log(f"step {step + 1}/{steps}: loss {loss.item():.4f}")
    return model.eval()


@torch.no_grad()
def predict(model: MNISTClassifier, images: Tensor, batch_size: int = 1000
            ) -> tuple[Tensor, Tensor]:
    """``(labels, features)`` of (N, 1, H, W) images in [-1, 1]."""
    model.eval()
    labels, features = [], []
    for i in range(0, images.shape[0], batch_size):
        f = model.embed(images[i:i + batch_size].float())
        features.append(f)
        labels.append(model.head(f).argmax(1))
    return torch.cat(labels), torch.cat(features)


def accuracy(model: MNISTClassifier, images: Tensor, labels: Tensor) -> float:
    return float((predict(model, images)[0] == labels).float().mean())


def save_classifier(model: MNISTClassifier, path: Path, test_accuracy: float) -> Path:
    from safetensors.torch import save

    path.parent.mkdir(parents=True, exist_ok=True)
    data = save({k: v.contiguous() for k, v in model.state_dict().items()},
                metadata={"wgan": json.dumps({"kind": "mnist-classifier",
                                              "test_accuracy": test_accuracy})})
    return write_atomic(path, data)


def load_classifier(path: str | Path) -> tuple[MNISTClassifier, float]:
    """Load a cached classifier (safetensors only: nothing in the file can run code)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no MNIST classifier here; train one with: "
                              "wgan classifier train")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("wgan", "{}"))
        tensors = load_file(str(path))
        model = MNISTClassifier()
        model.load_state_dict(tensors)
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"{path}: not a wgan MNIST classifier "
                              f"({str(err).splitlines()[0] if str(err) else type(err).__name__})"
                              ) from None
    if meta.get("kind") != "mnist-classifier":
        raise CheckpointError(f"{path}: not a wgan MNIST classifier")
    return model.eval(), float(meta.get("test_accuracy", math.nan))


# ---- metrics -----------------------------------------------------------------------------------

def kl_from_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform) of a histogram, natural log (0 when every bin is equally frequent)."""
    p = counts / counts.sum()
    nonzero = p > 0
    return float(np.sum(p[nonzero] * np.log(p[nonzero] * len(p))))


def class_metrics(labels: Tensor, classes: int = 10) -> dict[str, float | int]:
    counts = np.bincount(labels.cpu().numpy(), minlength=classes)
    return {"classes_captured": int((counts > 0).sum()), "classes_total": classes,
            "class_kl": kl_from_uniform(counts),
            "class_min_fraction": float(counts.min() / counts.sum())}


def stacked_mnist_metrics(model: MNISTClassifier, images: Tensor) -> dict[str, float | int]:
    """Modes (digit triples) captured out of 1,000 and KL(mode histogram || uniform)."""
    digits = [predict(model, images[:, c:c + 1])[0] for c in range(3)]
    modes = (digits[0] * 100 + digits[1] * 10 + digits[2]).cpu().numpy()
    counts = np.bincount(modes, minlength=1000)
    return {"stacked_modes": int((counts > 0).sum()), "stacked_modes_total": 1000,
            "stacked_kl": kl_from_uniform(counts), "stacked_samples": int(images.shape[0])}


def classifier_frechet(model: MNISTClassifier, real: Tensor, fake: Tensor) -> float:
    """Frechet distance between real and generated digits in the classifier's feature space."""
    return frechet_distance(*gaussian_stats(predict(model, real)[1].double().cpu().numpy()),
                            *gaussian_stats(predict(model, fake)[1].double().cpu().numpy()))
