"""Inception FID, KID, precision and recall, offline, by a protocol comparable to published numbers.

The network and its backends (TorchScript or OpenVINO) are in :mod:`wgan.metrics.inception_network`;
this module feeds it and turns its features into scores.

The protocol (Lucic et al. 2018, "Are GANs Created Equal?"; ``PROTOCOL`` names its version):

1. ``n`` generated images (10,000 for a comparable number) against ``n`` real images the model
   never trained on (MNIST and Fashion-MNIST: the 10,000 test images);
2. each image quantised to 8 bits (as if saved as PNG), grey repeated to three channels;
3. resized to 299 x 299 by TensorFlow 1's ``resize_bilinear`` (legacy coordinates,
   ``align_corners=False``; :func:`tf1_resize_bilinear`), in float, without re-quantising;
4. scaled to the network's input range ``x / 128 - 1``;
5. the 2,048 pool features (float32) give, with statistics in float64:

* FID: the Frechet distance between Gaussians fitted to the two feature sets (Heusel et al.
  2017), :func:`wgan.metrics.frechet.frechet_distance_of_samples`;
* KID: the unbiased MMD^2 with the polynomial kernel ``k(x, y) = (x.y / 2048 + 1)^3``, averaged
  over 100 random subsets of ``min(1000, n // 2)`` (so that subsets differ), with its standard
  deviation over them (Binkowski et al. 2018);
* precision and recall (Kynkaanniemi et al. 2019, k = 3): the fraction of generated images inside
  the real images' k-NN balls, and of real images inside the generated images' balls.

FID depends on ``n`` (it is biased upwards for small ``n``): only numbers at the same ``n`` are
comparable. Real features are cached, keyed by the bytes of the images read (not the dataset's
name), the network file's content and the protocol version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.images import to_uint8
from ..errors import ConfigError
from ..files import atomic_path, cache_root
from .frechet import frechet_distance_of_samples
from .inception_network import (
    FEATURES,
    INPUT_SIZE,
    OpenVINOInception,
    load_inception,
    precision_tag,
    resolve_backend,
    weights_path,
)

__all__ = ["BATCH", "FEATURES", "INPUT_SIZE", "PROTOCOL", "READ_BATCH", "OpenVINOInception",
           "fid_kid", "fid_from_features", "inception_features", "kernel_inception_distance",
           "load_inception", "precision_recall", "precision_tag", "real_features",
           "resolve_backend", "tf1_resize_bilinear", "to_inception_input", "weights_path"]

#: Bumped whenever a change would alter cached real features.
PROTOCOL = "lucic2018-tf1resize-v2"
#: Images through the network at a time (on 2 CPU cores 16 to 50 measured within 5% of each
#: other, 100 slower).
BATCH = 25
#: Images read (real) or generated at a time: what sits in memory besides the network.
READ_BATCH = 500


def tf1_resize_bilinear(images: Tensor, size: int) -> Tensor:
    """Bilinear resize of (N, C, H, W) float images to ``size`` x ``size`` as TensorFlow 1's
    ``tf.image.resize_bilinear(..., align_corners=False)`` computes it: output pixel ``i`` reads
    the input at ``i * in / out`` (no half-pixel offset; the last row and column are repeated past
    the edge), interpolating first along the width, then the height, in the input's dtype.

    This is the resize TTUR's FID graph applies; ``F.interpolate(align_corners=False)`` samples at
    ``(i + 0.5) * in / out - 0.5`` instead and gives other features."""
    def axis(n_in: int) -> tuple[Tensor, Tensor, Tensor]:
        scale = torch.tensor(n_in / size, dtype=torch.float32)  # TF computes the scale in float
        source = torch.arange(size, dtype=torch.float32) * scale
        low = source.floor().long()
        high = torch.clamp(low + 1, max=n_in - 1)
        return low.to(images.device), high.to(images.device), (source - low).to(images)

    height, width = images.shape[-2:]
    x_low, x_high, x_frac = axis(width)
    y_low, y_high, y_frac = axis(height)
    left, right = images[..., x_low], images[..., x_high]
    rows = left + (right - left) * x_frac  # (N, C, H, size)
    top, bottom = rows[..., y_low, :], rows[..., y_high, :]
    return top + (bottom - top) * y_frac[:, None]


def to_inception_input(images: Tensor) -> Tensor:
    """(N, C, H, W) images in [-1, 1], C in {1, 3} -> (N, 3, 299, 299) in the network's range,
    channels-last: 8-bit quantisation, the TensorFlow 1 resize, ``x / 128 - 1``."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"Inception FID takes (N, 1 or 3, H, W) images, got {tuple(images.shape)}")
    pixels = to_uint8(images.float()).float()  # 8 bits, as a PNG holds
    if pixels.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        pixels = tf1_resize_bilinear(pixels, INPUT_SIZE)  # before the grey -> RGB copy: 3x less
    pixels = pixels.expand(-1, 3, -1, -1) / 128.0 - 1.0
    return pixels.contiguous(memory_format=torch.channels_last)


def inception_features(batches: Iterable[Tensor] | Tensor, n: int, model: Any,
                       device: torch.device, batch: int = BATCH, amp: str = "fp32",
                       progress: str | None = None) -> np.ndarray:
    """float32 features of ``n`` images: a tensor, or an iterable of image batches of any size
    (so 10,000 images never sit in memory at 299 x 299). ``amp="bf16"`` runs the network under
    bfloat16 autocast (measured faster on CPUs with bf16 units; see RESULTS.md before using it
    for comparable numbers). ``progress``: a label for a progress bar on standard error."""
    if isinstance(model, OpenVINOInception) and model.amp != amp:
        raise ValueError(f"an OpenVINO network compiled for {model.amp} asked for {amp} features")
    if isinstance(batches, Tensor):
        images = batches
        batches = (images[i:i + batch] for i in range(0, len(images), batch))
    out = np.empty((n, FEATURES), dtype=np.float32)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=progress, unit="img", dynamic_ncols=True, leave=False)
    done = 0
    autocast = amp == "bf16" and not isinstance(model, OpenVINOInception)  # that one compiled it
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                enabled=autocast):
        for chunk in batches:
            for start in range(0, len(chunk), batch):
                if done >= n:
                    break
                part = chunk[start:start + min(batch, n - done)].to(device)
                features = model(to_inception_input(part)).float().cpu().numpy()
                out[done:done + len(part)] = features
                done += len(part)
                if bar is not None:
                    bar.update(len(part))
    if bar is not None:
        bar.close()
    if done < n:
        raise ValueError(f"Inception features: asked for {n} images, the source gave {done}")
    return out


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance_of_samples(a, b)


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0
                              ) -> tuple[float, float | None]:
    """KID: mean and standard deviation over ``subsets`` random subsets of the unbiased MMD^2
    between feature sets ``a`` and ``b`` with kernel ``(x.y / d + 1)^3``.

    With several subsets, each holds at most half of the smaller set, so that they differ and
    their spread means something; with one subset (or fewer than 4 samples a side) there is one
    estimate on up to ``subset_size`` samples and no standard deviation (``None``)."""
    rng = np.random.default_rng(seed)
    smaller = min(len(a), len(b))
    if smaller < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    m = min(subset_size, smaller // 2 if subsets > 1 else smaller)
    if m < 2:
        m, subsets = min(subset_size, smaller), 1
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
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
    return float(np.mean(values)), (float(np.std(values)) if subsets > 1 else None)


def _kth_neighbour_radius(x: Tensor, k: int, chunk: int = 1000) -> Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    radii = torch.empty(len(x), dtype=x.dtype)
    for start in range(0, len(x), chunk):
        distances = torch.cdist(x[start:start + chunk], x)
        # the row itself is at distance 0, so the k-th neighbour is the (k+1)-th smallest
        radii[start:start + chunk] = distances.kthvalue(k + 1, dim=1).values
    return radii


def _inside_any_ball(points: Tensor, centres: Tensor, radii: Tensor, chunk: int = 1000) -> float:
    """Fraction of ``points`` within ``radii[j]`` of some ``centres[j]``."""
    inside = 0
    for start in range(0, len(points), chunk):
        distances = torch.cdist(points[start:start + chunk], centres)
        inside += int((distances <= radii[None, :]).any(dim=1).sum())
    return inside / len(points)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): precision is the fraction of
    generated samples within the k-th-neighbour distance of some real sample (quality), recall the
    fraction of real samples within that of some generated sample (coverage)."""
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k = {k} needs more than {k} samples a side")
    real_t = torch.as_tensor(real, dtype=torch.float64)
    fake_t = torch.as_tensor(fake, dtype=torch.float64)
    precision = _inside_any_ball(fake_t, real_t, _kth_neighbour_radius(real_t, k))
    recall = _inside_any_ball(real_t, fake_t, _kth_neighbour_radius(fake_t, k))
    return precision, recall


def cache_dir() -> Path:
    return cache_root() / "fid"


@lru_cache(maxsize=4)
def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _fingerprint(batches: Iterable[Tensor]) -> tuple[str, int]:
    """A digest of the images exactly as the network will see them (8-bit pixels, shapes), and
    their count."""
    digest, count = hashlib.sha256(), 0
    for chunk in batches:
        pixels = to_uint8(chunk.float()).cpu().contiguous()
        digest.update(str(tuple(pixels.shape)).encode())
        digest.update(pixels.numpy().tobytes())
        count += len(pixels)
    return digest.hexdigest(), count


def real_features(data: Any, n: int, seed: int, model: Any, device: torch.device,
                  log: Callable[[str], None] = print, amp: str = "fp32") -> np.ndarray:
    """Features of ``n`` real images (held out of training where the data has them), cached in
    ``$WGAN_CACHE/fid`` under a key made of the images' own bytes, the network file's digest, the
    precision and :data:`PROTOCOL`: other data under the same name, or changed files, miss."""
    return keyed_real_features(data, n, seed, model, device, log, amp)[0]


def keyed_real_features(data: Any, n: int, seed: int, model: Any, device: torch.device,
                        log: Callable[[str], None] = print, amp: str = "fp32"
                        ) -> tuple[np.ndarray, str]:
    """:func:`real_features` and their cache key, which names the reference exactly (two FIDs
    compare only if their keys are equal)."""
    def images() -> Iterable[Tensor]:
        rng = torch.Generator(device=data.device).manual_seed(seed)
        return data.reference_batches(n, rng, READ_BATCH)

    content, count = _fingerprint(images())
    if count < n:
        raise ConfigError(f"{data.name}: only {count} real images for FID, asked for {n}; pass "
                          f"--fid-n {count}")
    precision = precision_tag(model, amp)
    key = hashlib.sha256(f"{PROTOCOL}|{precision}|{_file_digest(weights_path())}|{content}"
                         .encode()).hexdigest()[:20]
    path = cache_dir() / f"{data.name}-{n}-{key}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (n, FEATURES) and cached.dtype == np.float32:
                return cached, key
        except (OSError, ValueError):
            pass  # unreadable cache: recompute
    log(f"FID: Inception features of {n} real {data.name} images (cached in {path.parent})")
    features = inception_features(images(), n, model, device, amp=amp, progress="real images")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, features)
    return features, key


def fid_kid(sampler: Any, data: Any, n: int, seed: int, device: torch.device,
            log: Callable[[str], None] = print, amp: str = "fp32",
            backend: str = "auto") -> dict[str, Any]:
    """FID, KID, precision and recall between ``n`` generated images (from ``sampler``) and
    ``n`` real ones, by the protocol of this module, the network run by ``backend``."""
    backend = resolve_backend(backend, device)
    # PyTorch applies the precision at each call (one network for both); OpenVINO compiles it in.
    model = load_inception(str(device), backend, amp if backend == "openvino" else "fp32")
    real, reference = keyed_real_features(data, n, seed, model, device, log, amp)
    log(f"FID: Inception features of {n} generated images")

    def generated() -> Iterable[Tensor]:
        for start in range(0, n, READ_BATCH):
            yield sampler.sample(min(READ_BATCH, n - start), seed=seed + 1 + start,
                                 data_units=False)

    fake = inception_features(generated(), n, model, device, amp=amp, progress="generated images")
    kid, kid_std = kernel_inception_distance(real, fake, seed=seed)
    precision = precision_tag(model, amp)
    results = {"fid": fid_from_features(real, fake), "kid": kid, "kid_std": kid_std, "fid_n": n,
               "fid_protocol": PROTOCOL if precision == "fp32" else f"{PROTOCOL}-{precision}",
               "fid_reference": reference, "fid_backend": backend}
    if n > 3:
        results["precision"], results["recall"] = precision_recall(real, fake)
    return results
