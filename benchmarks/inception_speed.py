"""Inception feature extraction, side by side in one process: the plain way (the TorchScript file
as loaded, ``F.interpolate`` resize, NCHW, ``no_grad``, batch 50: this project before the FID
protocol work) against :func:`wgan.metrics.inception.inception_features` in fp32 and in bf16,
with the network run by PyTorch and, when it is installed, by OpenVINO.

    python benchmarks/inception_speed.py [--images 100] [--threads 2]
    python benchmarks/inception_speed.py --parity RUN [--parity-n 2000]   # FID fp32 vs bf16
    python benchmarks/inception_speed.py --parity RUN --variants openvino:fp32 openvino:bf16
    python benchmarks/inception_speed.py --frechet [--threads 2]   # FID from features: two ways
    python benchmarks/inception_speed.py --side-by-side [--images 100]  # OpenVINO's thread pinning

The speed part times the network on the same 28 x 28 grey images for each variant, after one
warm-up batch, and prints milliseconds per image, the ratio to the plain way and the projected
time for 10,000 images, and for the OpenVINO rows the largest difference of their features from
PyTorch's fp32 ones. ``--parity`` scores a trained run's generator against its real data with
each ``--variants`` entry (``backend:precision``; default ``torch:fp32 torch:bf16``; same images,
same cache rules) and prints each one's FID difference from the first: bf16 may become the
default only if it stays under 0.5% on the image tables. ``--frechet`` times the step
after the network, FID from 2,048-dimensional features, by the covariance formula
(``frechet_distance(*gaussian_stats(a), *gaussian_stats(b))``) and by
:func:`wgan.metrics.frechet.frechet_distance_of_samples` (what ``wgan`` uses), on random
correlated features of 20 to 10,000 samples a side, and prints both values.
``--side-by-side`` runs the OpenVINO network (fp32) in as many processes as the machine has
cores, one thread each and all timed over the same window, with OpenVINO's thread pinning on
and off, then one process with every thread, pinned and not: images per second for each
process and in all (two evaluations at once, as when two runs are scored side by side).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from wgan.metrics import inception


def plain_features(model, images: torch.Tensor, batch: int = 50) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            pixels = ((images[start:start + batch].clamp(-1, 1) + 1) * 127.5).round()
            pixels = F.interpolate(pixels.expand(-1, 3, -1, -1), size=(299, 299), mode="bilinear",
                                   align_corners=False)
            out.append(model(pixels / 128 - 1))
    return torch.cat(out)


def timed(label: str, function, reference: float | None = None, count: int = 1) -> float:
    function(warmup=True)
    start = time.perf_counter()
    function(warmup=False)
    per_image = (time.perf_counter() - start) / count
    ratio = f"{reference / per_image:5.2f}x" if reference else "1.00x"
    print(f"| {label} | {per_image * 1000:6.1f} | {ratio} | {per_image * 10_000 / 60:5.1f} |",
          flush=True)
    return per_image


def speed(images: int, threads: int) -> None:
    torch.set_num_threads(threads)
    data = torch.rand(images, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    warm = data[:25]
    plain = torch.jit.load(str(inception.weights_path())).eval()
    ours = inception.load_inception("cpu")
    cpu = torch.device("cpu")
    print(f"{images} images of 1 x 28 x 28, {threads} threads, torch {torch.__version__}\n")
    print("| variant | ms / image | speed-up | min / 10,000 |\n|---|---|---|---|")
    base = timed("plain (jit.load, F.interpolate, NCHW, no_grad, batch 50)",
                 lambda warmup: plain_features(plain, warm if warmup else data), count=images)
    for amp in ("fp32", "bf16"):
        timed(f"wgan {amp} (frozen, channels-last, inference_mode, batch "
              f"{inception.BATCH})",
              lambda warmup, amp=amp: inception.inception_features(
                  warm if warmup else data, len(warm) if warmup else images, ours, cpu, amp=amp),
              base, images)
    if inception.resolve_backend("auto", cpu) != "openvino":
        print("\n(OpenVINO is not installed: no OpenVINO rows)")
        return
    reference = inception.inception_features(data, images, ours, cpu)
    differences = {}
    for amp in ("fp32", "bf16"):
        network = inception.load_inception("cpu", "openvino", amp)

        def run(warmup: bool, amp: str = amp, network=network) -> None:
            features = inception.inception_features(warm if warmup else data,
                                                    len(warm) if warmup else images, network,
                                                    cpu, amp=amp)
            if not warmup:
                differences[amp] = float(abs(features - reference).max())

        timed(f"wgan {amp}, OpenVINO (batch {inception.BATCH})", run, base, images)
    print("\nlargest feature difference from wgan fp32 (PyTorch): "
          + ", ".join(f"OpenVINO {amp} {value:.2e}" for amp, value in differences.items()))


def parity(run: str, n: int, variants: list[str]) -> None:
    from wgan.inference import load_run

    loaded = load_run(run, log=lambda m: None)
    results = {}
    for variant in variants:
        backend, amp = variant.split(":")
        start = time.perf_counter()
        result = results[variant] = loaded.evaluate(n=200, fid=True, fid_samples=n, fid_amp=amp,
                                                    fid_backend=backend)
        print(f"{variant}: FID {result['fid']:.4f}, precision {result['precision']:.4f}, "
              f"recall {result['recall']:.4f}, KID {result['kid']:.5f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    first = results[variants[0]]["fid"]
    for variant in variants[1:]:
        diff = (results[variant]["fid"] - first) / first
        print(f"step {loaded.step}, n = {n}: {variant} moves FID by {100 * diff:+.2f}% "
              f"from {variants[0]}")


def frechet_before(mu1, sigma1, mu2, sigma2) -> float:
    """The covariance route as it was until session 10: three full eigendecompositions."""
    import numpy as np

    def root_values(matrix):
        values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
        return np.clip(values, 0, None), vectors

    values1, vectors1 = root_values(sigma1)
    root1 = (vectors1 * np.sqrt(values1)) @ vectors1.T
    root_values(sigma2)
    product, _ = root_values(root1 @ sigma2 @ root1)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(product).sum())


def frechet(threads: int) -> None:
    import numpy as np

    from wgan.metrics.frechet import frechet_distance, frechet_distance_of_samples, gaussian_stats

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    dims = inception.FEATURES
    mixing = rng.normal(size=(dims, dims)) / np.sqrt(dims)
    print(f"FID from {dims}-dimensional features (NumPy's BLAS with its own thread count)\n")
    print("| samples a side | before: 3 eigh, s | covariances now: eigh + 2 eigvalsh, s | "
          "from samples, s | speed-up over before | largest relative difference |\n"
          "|---|---|---|---|---|---|")
    for n in (20, 1000, 2000, 10_000):
        a = (rng.normal(size=(n, dims)) @ mixing).astype(np.float32)
        b = (rng.normal(size=(n, dims)) @ mixing * 1.1 + 0.05).astype(np.float32)
        values, seconds = [], []
        for route in (lambda: frechet_before(*gaussian_stats(a), *gaussian_stats(b)),
                      lambda: frechet_distance(*gaussian_stats(a), *gaussian_stats(b)),
                      lambda: frechet_distance_of_samples(a, b)):
            start = time.perf_counter()
            values.append(route())
            seconds.append(time.perf_counter() - start)
        spread = (max(values) - min(values)) / values[0]
        print(f"| {n:,} | {seconds[0]:.2f} | {seconds[1]:.2f} | {seconds[2]:.2f} | "
              f"{seconds[0] / seconds[2]:.1f}x | {spread:.1e} |", flush=True)


def pinned_worker(images: int, pin: bool, ready: Path, go: Path) -> None:
    """One process of :func:`side_by_side`: compile, warm up, say so, wait for the others, then
    time ``images`` images and print the rate."""
    network = inception.OpenVINOInception("fp32", pin_threads=pin)
    batch = torch.rand(inception.BATCH, 3, inception.INPUT_SIZE, inception.INPUT_SIZE,
                       generator=torch.Generator().manual_seed(0))
    network(batch)
    ready.touch()
    while not go.exists():
        time.sleep(0.01)
    batches = -(-images // inception.BATCH)
    start = time.perf_counter()
    for _ in range(batches):
        network(batch)
    print(f"{batches * inception.BATCH / (time.perf_counter() - start):.2f}", flush=True)


def side_by_side(images: int) -> None:
    """OpenVINO pins its threads from core 0 on: P one-thread processes started together share
    core 0. Each setting runs its processes over one common timed window."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{images} images a process, fp32 OpenVINO, {cores} cores\n")
    print("| processes x threads | pinning | images/s per process | images/s in all |\n"
          "|---|---|---|---|")
    for processes, threads in ((cores, 1), (1, cores)):
        for pin in (True, False):
            with tempfile.TemporaryDirectory() as tmp:
                go = Path(tmp) / "go"
                env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
                workers = [subprocess.Popen(
                    [sys.executable, __file__, "--worker", str(Path(tmp) / f"ready{i}"), str(go),
                     "--images", str(images), "--threads", str(threads)]
                    + (["--pin"] if pin else []),
                    env=env, stdout=subprocess.PIPE, text=True) for i in range(processes)]
                while not all((Path(tmp) / f"ready{i}").exists() for i in range(processes)):
                    if any(w.poll() not in (None, 0) for w in workers):
                        raise SystemExit("a worker failed")
                    time.sleep(0.05)
                go.touch()
                rates = [float(w.communicate()[0].split()[-1]) for w in workers]
            print(f"| {processes} x {threads} | {'on' if pin else 'off'} | "
                  f"{', '.join(f'{r:.2f}' for r in rates)} | {sum(rates):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parity", metavar="RUN")
    parser.add_argument("--parity-n", type=int, default=2000)
    parser.add_argument("--variants", nargs="+", default=["torch:fp32", "torch:bf16"],
                        help="backend:precision pairs for --parity; the first is the reference")
    parser.add_argument("--frechet", action="store_true",
                        help="time FID from features by both routes instead")
    parser.add_argument("--side-by-side", action="store_true",
                        help="OpenVINO in one process a core at once, thread pinning on and off")
    parser.add_argument("--worker", nargs=2, metavar=("READY", "GO"), help=argparse.SUPPRESS)
    parser.add_argument("--pin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        torch.set_num_threads(args.threads)
        pinned_worker(args.images, args.pin, Path(args.worker[0]), Path(args.worker[1]))
    elif args.side_by_side:
        side_by_side(args.images)
    elif args.frechet:
        frechet(args.threads)
    elif args.parity:
        parity(args.parity, args.parity_n, args.variants)
    else:
        speed(args.images, args.threads)


if __name__ == "__main__":
    main()
