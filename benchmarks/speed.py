"""Side-by-side speed of the Trainer against the plain reference loop (wgan.reference).

In one process, for each configuration, both loops get identical models (same initial weights),
batch size, n_critic, optimizer and data; they are timed alternately in rounds so that drift in
the machine's speed hits both equally. Printed per configuration: generator steps/s of each, the
ratio, GFLOP per generator step (FlopCounterMode's formulas, torch.utils.flop_counter, over one
Trainer step), achieved GFLOP/s, and peak memory (CUDA: per loop; CPU: the process's peak RSS).

    python benchmarks/speed.py                       # every configuration, CPU
    python benchmarks/speed.py --configs mlp dcgan32 --device cuda --amp bf16
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
from wgan.data.images import ImageDataset
from wgan.reference import ReferenceLoop

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


def flops_per_step(trainer: Trainer) -> float:
    with _Flops() as counter:
        trainer.train_step()
    return counter.total


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(name: str, args) -> dict:
    settings, data_kind = CONFIGS[name]
    dataset = make_data(data_kind)
    config = Config(data=dataset.name, steps=10**6, seed=0, critic_boost=False, device=args.device,
                    threads=args.threads, amp=args.amp, compile=args.compile,
                    channels_last=not args.no_channels_last, **settings)
    trainer = Trainer(config, dataset=dataset, log=lambda m: None)
    device = trainer.device
    generator = copy.deepcopy(trainer.generator).to(memory_format=torch.contiguous_format)
    critic = copy.deepcopy(trainer.critic).to(memory_format=torch.contiguous_format)
    reference = ReferenceLoop(trainer.config, generator, critic, dataset.data.cpu(), device=device)
    flops = flops_per_step(copy.deepcopy(trainer)) if device.type == "cpu" or not args.compile \
        else float("nan")
    loops = {"reference": reference.step, "trainer": trainer.train_step}
    seconds = {k: 0.0 for k in loops}
    peak = {}
    for key, step in loops.items():  # warm-up (and compilation, timed separately)
        start = time.perf_counter()
        for _ in range(args.warmup):
            step()
        sync(device)
        seconds[key + "_warmup"] = time.perf_counter() - start
    for key, step in loops.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(2):
            step()
        sync(device)
        if device.type == "cuda":
            peak[key] = torch.cuda.max_memory_allocated() / 2**20
    for _ in range(args.rounds):
        for key, step in loops.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            sync(device)
            seconds[key] += time.perf_counter() - start
    total = args.rounds * args.steps
    rate = {k: total / seconds[k] for k in loops}
    result = {
        "config": name, "device": str(device), "amp": args.amp, "compile": args.compile,
        "channels_last": not args.no_channels_last,
        "reference_steps_per_s": rate["reference"], "trainer_steps_per_s": rate["trainer"],
        "ratio": rate["trainer"] / rate["reference"], "gflop_per_step": flops / 1e9,
        "trainer_gflops": flops / 1e9 * rate["trainer"],
        "reference_gflops": flops / 1e9 * rate["reference"],
        "trainer_warmup_s": seconds["trainer_warmup"],
        "peak_mib": peak or {"process_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
    }
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--amp", default="none", choices=("none", "bf16"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="generator steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="also append results as JSON lines")
    args = parser.parse_args(argv)
    header = (f"{'config':<10} {'ref it/s':>9} {'trainer it/s':>12} {'ratio':>6} {'GFLOP/it':>9} "
              f"{'GFLOP/s':>8} {'ref GFLOP/s':>11}  peak MiB")
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"amp {args.amp}, compile {args.compile}", flush=True)
    print(header, flush=True)
    for name in args.configs:
        r = bench(name, args)
        print(f"{name:<10} {r['reference_steps_per_s']:>9.2f} {r['trainer_steps_per_s']:>12.2f} "
              f"{r['ratio']:>6.2f} {r['gflop_per_step']:>9.1f} {r['trainer_gflops']:>8.1f} "
              f"{r['reference_gflops']:>11.1f}  {json.dumps(r['peak_mib'])}", flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
