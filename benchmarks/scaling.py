"""Scaling on one machine: 1 process x 2 threads against 2 processes x 1 thread (torchrun, gloo),
same per-process batch, so the 2-process run trains on twice the global batch per step. Prints
generator steps/s and global real samples/s (samples the critic sees per second, summed over
processes) for the MLP and DCGAN configurations.

    python benchmarks/scaling.py                  # both configs
    python benchmarks/scaling.py --configs mlp --steps 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

CONFIGS = {
    "mlp": dict(data="grid25", loss="wgan-gp", model="mlp", width=512, depth=3, batch_size=256,
                noise_dim=2, preset="none", critic_boost=False),
    "dcgan": dict(data="digits", loss="wgan", model="dcgan", image_size=32, width=64,
                  batch_size=64, noise_dim=100, critic_boost=False),
}


def worker(name: str, steps: int, warmup: int) -> None:
    """One process's part (alone, or one rank under torchrun): time ``steps`` after ``warmup``."""
    from wgan import Config, Trainer

    trainer = Trainer(Config(steps=10**6, seed=0, **CONFIGS[name]), log=lambda m: None)
    trainer.fit(warmup, progress=False, defaults=False)
    if trainer.dist:
        trainer.dist.barrier()
    start = time.perf_counter()
    trainer.fit(warmup + steps, progress=False, defaults=False)
    if trainer.dist:
        trainer.dist.barrier()
    seconds = time.perf_counter() - start
    world = trainer.dist.world_size if trainer.dist else 1
    if trainer.rank == 0:
        samples = steps * trainer.config.n_critic * trainer.config.batch_size * world
        print(json.dumps({"config": name, "processes": world, "threads": torch.get_num_threads(),
                          "steps_per_s": steps / seconds, "samples_per_s": samples / seconds}))
    trainer.finish_distributed()


def launch(name: str, processes: int, threads: int, steps: int, warmup: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    me = [os.path.abspath(__file__), "--worker", name, "--steps", str(steps), "--warmup",
          str(warmup)]
    command = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc-per-node={processes}", *me] if processes > 1 else [sys.executable, *me])
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.steps, args.warmup)
        return 0
    print(f"{'config':<7} {'layout':<18} {'steps/s':>8} {'samples/s':>10} {'ratio':>6}")
    for name in args.configs:
        one = launch(name, 1, 2, args.steps, args.warmup)
        two = launch(name, 2, 1, args.steps, args.warmup)
        for row, layout in ((one, "1 proc x 2 threads"), (two, "2 procs x 1 thread")):
            print(f"{name:<7} {layout:<18} {row['steps_per_s']:>8.2f} {row['samples_per_s']:>10.0f} "
                  f"{row['samples_per_s'] / one['samples_per_s']:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
