"""Side-by-side speed of the Trainer against the plain reference loop (wgan.reference).

In one process, for each configuration, both loops get identical models (same initial weights),
batch size, n_critic, optimizer and data; they are timed alternately in rounds so that drift in
the machine's speed hits both equally. Printed per configuration: generator steps/s of each, the
ratio, GFLOP per generator step of each loop (FlopCounterMode's formulas, torch.utils.flop_counter,
counted over one step), achieved GFLOP/s, and peak memory (CUDA: per loop; CPU: the process's
peak RSS). The Trainer can do fewer FLOPs than the reference for the same result (its penalty
skips work on zeros, see wgan.models.layers), so "equiv. GFLOP/s" is the reference's FLOPs per
step times the Trainer's rate: the speed of the algorithm, not of the kernels.

On CPU it first measures the machine's own ceilings in the same process: a 1024^3 float32
matmul and a channels-last 4x4 stride-2 convolution (the DCGAN critic's middle layer, forward
and backward). ``--time-to-quality SECONDS`` then trains grid25 with the Trainer's defaults (the
``toy`` preset) and reports when 25/25 modes and >= 95% high-quality samples are first reached.

    python benchmarks/speed.py                       # every configuration, CPU
    python benchmarks/speed.py --configs mlp dcgan32 --device cuda --amp bf16
    python benchmarks/speed.py --configs mlp --time-to-quality 120
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from wgan import Config, Trainer
from wgan.data import TensorDataset
from wgan.data.images import ImageDataset, to_unit_range
from wgan.reference import ReferenceLoop
from wgan.runtime import configure_process

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

CONFIGS = {
    # name: (config settings, data factory)
    "mlp": (dict(loss="wgan-gp", model="mlp", width=512, depth=3, batch_size=256, noise_dim=2,
                 preset="none"), "grid25"),
    "dcgan32": (dict(loss="wgan", model="dcgan", width=64, batch_size=64, noise_dim=100), (3, 32)),
    "dcgan64": (dict(loss="wgan", model="dcgan", width=64, batch_size=64, noise_dim=100), (3, 64)),
    "mnist-gp": (dict(loss="wgan-gp", model="dcgan", width=64, batch_size=64, noise_dim=100),
                 "mnist"),
    "resnet": (dict(loss="wgan-gp", model="resnet", width=128, batch_size=64, noise_dim=128),
               (3, 32)),
}


def make_data(kind, n: int = 8192):
    g = torch.Generator().manual_seed(0)
    if kind == "grid25":
        from wgan.data.toy import TOY_DATASETS

        return TensorDataset("grid25", TOY_DATASETS["grid25"]().sample(n, g))
    if kind == "mnist":
        if (SHARED / "train-images-idx3-ubyte.gz").is_file():
            from wgan.data.images import load_mnist_like

            return load_mnist_like("mnist", str(SHARED), None)
        return ImageDataset("random-28", torch.rand(n, 1, 28, 28, generator=g) * 2 - 1)
    channels, size = kind  # pixel content does not change the speed of these models
    return ImageDataset(f"random-{size}", torch.rand(n, channels, size, size, generator=g) * 2 - 1)


class _Flops(TorchDispatchMode):
    """FLOPs of every aten op, by FlopCounterMode's own formulas (flop_registry). FlopCounterMode
    itself cannot be used: its module tracker rejects autograd.grad on a leaf, which is how the
    gradient penalty differentiates with respect to the interpolates."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def ceilings(repeats: int = 10) -> dict[str, float]:
    """GFLOP/s of a 1024^3 matmul and of a DCGAN-like convolution's forward + backward."""
    def rate(fn, flops):
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return flops * repeats / (time.perf_counter() - start) / 1e9

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    x = torch.randn(128, 64, 16, 16).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    conv = torch.nn.Conv2d(64, 128, 4, 2, 1).to(memory_format=torch.channels_last)
    out = conv(x)
    g = torch.randn_like(out)
    conv_flops = 2 * out.numel() * 64 * 16
    return {"matmul": rate(lambda: a @ b, 2 * 1024**3),
            "conv_fwd_bwd": rate(lambda: torch.autograd.grad(conv(x), [x, conv.weight], g),
                                 3 * conv_flops)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(name: str, args) -> dict:
    settings, data_kind = CONFIGS[name]
    dataset = make_data(data_kind)
    config = Config(data=dataset.name, steps=10**6, seed=0, critic_boost=False, device=args.device,
                    threads=args.threads, amp=args.amp, compile=args.compile,
                    fast_penalty=not args.no_fast_penalty,
                    channels_last=not args.no_channels_last, **settings)
    trainer = Trainer(config, dataset=dataset, log=lambda m: None)
    configure_process(trainer.config)  # threads and the CPU allocator, as the wgan command does
    device = trainer.device
    generator = copy.deepcopy(trainer.generator).to(memory_format=torch.contiguous_format)
    critic = copy.deepcopy(trainer.critic).to(memory_format=torch.contiguous_format)
    pixels = to_unit_range(dataset.data.cpu())  # images are held as uint8; the reference takes floats
    reference = ReferenceLoop(trainer.config, generator, critic, pixels, device=device)
    # k generator steps of each: the reference's plain loop, and the Trainer's own fit() loop
    # (nothing written, no progress bar).
    loops = {"reference": lambda k: [reference.step() for _ in range(k)],
             "trainer": lambda k: trainer.fit(trainer.step + k, progress=False, defaults=False)}
    seconds = {k: 0.0 for k in loops}
    flops = {"reference": float("nan"), "trainer": float("nan")}
    peak = {}
    for key, step in loops.items():  # warm-up (and compilation, timed separately)
        start = time.perf_counter()
        step(args.warmup)
        sync(device)
        seconds[key + "_warmup"] = time.perf_counter() - start
        if not (args.compile and key == "trainer"):  # compiled code bypasses dispatch modes
            with _Flops() as counter:
                step(1)
            flops[key] = counter.total
    for key, step in loops.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            step(2)
            sync(device)
            peak[key] = torch.cuda.max_memory_allocated() / 2**20
    for _ in range(args.rounds):
        for key, step in loops.items():
            sync(device)
            start = time.perf_counter()
            step(args.steps)
            sync(device)
            seconds[key] += time.perf_counter() - start
    total = args.rounds * args.steps
    rate = {k: total / seconds[k] for k in loops}
    result = {
        "config": name, "device": str(device), "amp": args.amp, "compile": args.compile,
        "channels_last": not args.no_channels_last,
        "reference_steps_per_s": rate["reference"], "trainer_steps_per_s": rate["trainer"],
        "ratio": rate["trainer"] / rate["reference"],
        "reference_gflop_per_step": flops["reference"] / 1e9,
        "trainer_gflop_per_step": flops["trainer"] / 1e9,
        "trainer_gflops": flops["trainer"] / 1e9 * rate["trainer"],
        "trainer_equivalent_gflops": flops["reference"] / 1e9 * rate["trainer"],
        "reference_gflops": flops["reference"] / 1e9 * rate["reference"],
        "trainer_warmup_s": seconds["trainer_warmup"],
        "peak_mib": peak or {"process_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
    }
    return result


def time_to_quality(budget: float, threads: int | None) -> dict:
    """grid25 with the Trainer's defaults until 25/25 modes and >= 95% high quality."""
    sys.path.insert(0, str(Path(__file__).parent))
    from toy_quality import run_one

    overrides = {"threads": threads} if threads else {}
    return run_one("wgan-gp", "grid25", 0, steps=None, budget=budget, check_every=100,
                   target=(25, 0.95), overrides=overrides)


def append_json(path: str | None, row: dict) -> None:
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--amp", default="none", choices=("none", "bf16"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--no-fast-penalty", action="store_true")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="generator steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--time-to-quality", type=float, metavar="SECONDS", default=0,
                        help="also train grid25 for up to SECONDS and report time to quality")
    parser.add_argument("--json", metavar="FILE", help="also append results as JSON lines")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"amp {args.amp}, compile {args.compile}", flush=True)
    if args.device == "cpu" and args.amp == "bf16":
        from wgan.runtime import cpu_bf16_units

        units = cpu_bf16_units()
        print(f"CPU bf16 units (AVX512-BF16/AMX): {units}", flush=True)
        if units is False:
            print("this CPU emulates bf16: --amp bf16 is not worth measuring here; skipped")
            return 0
    if args.device == "cpu" and args.configs:
        ceiling = ceilings()
        print("ceilings on this machine now: " + ", ".join(f"{k} {v:.0f} GFLOP/s"
                                                          for k, v in ceiling.items()), flush=True)
    header = (f"{'config':<10} {'ref it/s':>9} {'trainer it/s':>12} {'ratio':>6} "
              f"{'GFLOP/it ref/trainer':>21} {'GFLOP/s ref/trainer':>20} {'equiv. GFLOP/s':>14}"
              f"  peak MiB")
    print(header, flush=True)
    for name in args.configs:
        r = bench(name, args)
        print(f"{name:<10} {r['reference_steps_per_s']:>9.2f} {r['trainer_steps_per_s']:>12.2f} "
              f"{r['ratio']:>6.2f} "
              f"{r['reference_gflop_per_step']:>10.1f}/{r['trainer_gflop_per_step']:<10.1f} "
              f"{r['reference_gflops']:>9.1f}/{r['trainer_gflops']:<10.1f} "
              f"{r['trainer_equivalent_gflops']:>14.1f}  {json.dumps(r['peak_mib'])}", flush=True)
        append_json(args.json, r)
    if args.time_to_quality:
        q = time_to_quality(args.time_to_quality, args.threads)
        reached = (f"{q['time_to_target']:.1f} s" if q["time_to_target"] is not None
                   else f"not reached in {q['seconds']:.0f} s")
        print(f"time to quality, grid25 (25/25 modes, >= 95% high quality), wgan-gp toy preset, "
              f"seed 0: {reached}; 25/25 modes first at "
              f"{q['time_to_all_modes'] if q['time_to_all_modes'] is not None else '-'} s; at "
              f"the end ({q['steps']} steps): {q['modes_captured']}/{q['modes_total']} modes, "
              f"{q['high_quality_fraction']:.1%} high quality", flush=True)
        append_json(args.json, {"time_to_quality": q})
    return 0


if __name__ == "__main__":
    sys.exit(main())
