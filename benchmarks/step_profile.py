"""Where one training step's time goes: the Trainer's step under ``torch.profiler``, by operator.

Builds the Trainer of a configuration (default: the default job's, ``wgan train`` with no flag),
trains ``--warmup`` steps, times ``--steps`` more, then profiles ``--profile-steps`` and prints
the operators by their own CPU time, the number of operators dispatched per step (forward,
backward and optimizer together) and FLOPs per step (``speed.py``'s count). A step made
of many small operators is bound by their overhead, not by the arithmetic: compare the step's
time with its FLOPs at the matmul rate printed first.

    python benchmarks/step_profile.py                            # the default job's step
    python benchmarks/step_profile.py --threads 1 --set batch_size=128
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from speed import _Flops  # (this folder is on sys.path when run as a script)
from wgan import Config, Trainer


class CountOps(_Flops):
    """FLOPs (``speed.py``'s count), and the operators dispatched below autograd: what each
    step actually runs."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return super().__torch_dispatch__(func, types, args, kwargs)


def matmul_rate(n: int = 512, k: int = 128, repeats: int = 500) -> float:
    """GFLOP/s of an ``n x k @ k x k`` float32 matmul (the default MLP's hidden layer on a joint
    real-and-fake batch)."""
    a, b = torch.randn(n, k), torch.randn(k, k)
    for _ in range(20):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n * k * k * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Config override, repeatable (e.g. --set amp=bf16)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000, help="timed steps")
    parser.add_argument("--profile-steps", type=int, default=200)
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()
    from toy_quality import parse_value  # (this folder is on sys.path when run as a script)

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    trainer = Trainer(Config(**overrides), log=lambda m: None)
    c = trainer.config
    print(f"# {c.data}, {c.loss}, batch {c.batch_size}, width {c.width}, depth {c.depth}, "
          f"n_critic {c.n_critic}, penalty every {c.penalty_every}, amp {c.amp}, "
          f"{torch.get_num_threads()} threads; matmul 512x128x128: {matmul_rate():.0f} GFLOP/s")
    for _ in range(args.warmup):
        trainer.train_step()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
    seconds = (time.perf_counter() - start) / args.steps
    counter = CountOps()
    with counter:
        trainer.train_step()
    print(f"{1 / seconds:.1f} generator steps/s, {1e3 * seconds:.2f} ms a step; "
          f"{counter.count} operators and {counter.total / 1e6:.0f} MFLOP a step")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.profile_steps):
            trainer.train_step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
