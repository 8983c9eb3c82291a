"""Soak: a long run of a small model whose resident memory and step time must stay flat.

Prints, every --every generator steps, the process RSS and the steps/s of the last window, and
at the end the growth of RSS between the first and last quarter of the run.

    python benchmarks/soak.py --steps 20000 --every 1000
    python benchmarks/soak.py --data digits --model dcgan --steps 10000   # images, CPU allocator
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from wgan import Callback, Config, Trainer
from wgan.runtime import configure_process


def rss_mib() -> float:
    with open("/proc/self/statm") as f:  # current (not peak) resident set, Linux
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class MemoryWatch(Callback):
    """Every ``every`` steps: the step, the resident set and the window's steps/s."""

    def __init__(self, every: int):
        self.every, self.samples = every, []

    def on_fit_start(self, trainer, total) -> None:
        self.start = time.perf_counter()

    def on_step_end(self, trainer, losses) -> None:
        if trainer.step % self.every == 0:
            now = time.perf_counter()
            self.samples.append((trainer.step, rss_mib(), self.every / (now - self.start)))
            self.start = now
            step, rss, rate = self.samples[-1]
            print(f"{step:>7} {rss:>8.1f} {rate:>8.1f}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="ring8")
    parser.add_argument("--model", default="mlp", choices=("mlp", "dcgan"))
    args = parser.parse_args(argv)
    shape = dict(depth=2, noise_dim=2) if args.model == "mlp" else dict(noise_dim=16)
    config = Config(data=args.data, model=args.model, loss="wgan-gp", steps=args.steps,
                    width=64 if args.model == "mlp" else 16, batch_size=64, threads=2,
                    device=args.device, **shape)
    configure_process(config)  # threads and the CPU allocator, as the wgan command applies them
    trainer = Trainer(config, log=lambda m: None)
    print(f"{'step':>7} {'RSS MiB':>8} {'steps/s':>8}", flush=True)
    watch = MemoryWatch(args.every)
    trainer.fit(callbacks=[watch], progress=False)
    samples = watch.samples
    q = max(1, len(samples) // 4)
    first = sum(s[1] for s in samples[:q]) / q
    last = sum(s[1] for s in samples[-q:]) / q
    rate_first = sum(s[2] for s in samples[:q]) / q
    rate_last = sum(s[2] for s in samples[-q:]) / q
    print(f"RSS first quarter {first:.1f} MiB, last quarter {last:.1f} MiB "
          f"({last - first:+.1f}); steps/s {rate_first:.1f} -> {rate_last:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
