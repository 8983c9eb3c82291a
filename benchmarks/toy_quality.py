"""Quality benchmark on the 2-D mixtures: modes captured, high-quality fraction, exact W1 over its
noise floor, wall time, and the time until a quality target is first reached.

Examples::

    python benchmarks/toy_quality.py                       # WGAN-GP, WGAN, GAN on ring8 and grid25, 5 seeds
    python benchmarks/toy_quality.py --losses wgan-gp --data grid25 --seeds 0 1 \
        --set width=256 --set lr=2e-4 --budget 120

Each run trains with the Trainer for ``--steps`` generator steps or ``--budget`` seconds, whichever
comes first, checking mode coverage every ``--check-every`` steps (the time spent checking is not
counted). Prints one table; ``--json FILE`` also writes the rows.

``--ema-decays D ...`` carries extra generator averages beside the run's own on the same
trajectory (the average changes nothing in training) and scores each at the end, 0 being the raw
generator: a paired comparison of the decays, free of the seed-to-seed spread of separate runs.
An extra decay is what ``--set ema=D`` would give.

``--jobs N`` trains N runs at once, each in its own process with ``--threads`` threads (default
1): these MLPs gain little from a second thread, so on 2 cores two one-thread runs side by side
finish in about the time of one two-thread run (benchmarks/RESULTS.md, session 15). A run's
numbers do not depend on how many run beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch

from wgan import Callback, Config, StopTraining, Trainer
from wgan.ema import ExponentialMovingAverage
from wgan.metrics import mode_coverage

SCORES = ("modes_captured", "modes_total", "high_quality_fraction", "modes_with_20", "reverse_kl",
          "mode_spread", "w1_exact", "w1_floor", "w1_ratio")


def parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "," in text:
        return tuple(float(v) for v in text.split(","))
    return text


class QualityWatch(Callback):
    """Every ``every`` steps (the time spent checking not counted): mode coverage of 2,500
    samples, the first time all modes and the target are reached; stops at ``budget`` seconds
    of training."""

    def __init__(self, every: int, budget: float, target_hq: float):
        self.every, self.budget, self.target_hq = every, budget, target_hq
        self.train_time, self.time_to_target, self.time_to_all_modes = 0.0, None, None

    def on_fit_start(self, trainer, total) -> None:
        self.start = time.perf_counter()

    def on_step_end(self, trainer, losses) -> None:
        if trainer.step % self.every:
            return
        self.train_time += time.perf_counter() - self.start
        if self.time_to_target is None:
            modes = trainer.data.modes
            cov = mode_coverage(trainer.sample(2500, seed=99), modes.centres, modes.std)
            if cov.modes_captured == cov.modes_total and self.time_to_all_modes is None:
                self.time_to_all_modes = round(self.train_time, 1)
            if cov.modes_captured == cov.modes_total and cov.high_quality_fraction >= self.target_hq:
                self.time_to_target = self.train_time
        if self.train_time >= self.budget:
            raise StopTraining
        self.start = time.perf_counter()

    def on_fit_end(self, trainer, error) -> None:
        if trainer.step % self.every:  # the steps since the last check
            self.train_time += time.perf_counter() - self.start


class ExtraAverages(Callback):
    """Generator averages of other decays than the run's, updated after every step as the run's
    own is (0: none, the raw generator)."""

    def __init__(self, trainer: Trainer, decays: list[float]):
        self.averages = {d: ExponentialMovingAverage(trainer.generator, d) if d > 0 else None
                         for d in decays}

    def on_step_end(self, trainer, losses) -> None:
        for average in self.averages.values():
            if average is not None:
                average.update(trainer.generator)

    def scores(self, trainer: Trainer, keys: tuple[str, ...] = SCORES) -> dict[str, dict]:
        """Each average's evaluation (its ``keys``), with the trainer's own put back after."""
        own, scores = trainer.ema, {}
        try:
            for decay, average in self.averages.items():
                trainer.ema = average
                results = trainer.evaluate()
                scores[str(decay)] = {k: results[k] for k in keys}
        finally:
            trainer.ema = own
        return scores


def run_one(loss: str, data: str, seed: int, steps: int, budget: float, check_every: int,
            target: tuple[float, float], overrides: dict, ema_decays: list[float] = ()) -> dict:
    config = Config(data=data, loss=loss, seed=seed, steps=steps, **overrides)
    trainer = Trainer(config, log=lambda m: None)
    watch = QualityWatch(check_every, budget, target[1])
    extra = ExtraAverages(trainer, list(ema_decays))
    trainer.fit(callbacks=[watch, extra], progress=False)
    results = trainer.evaluate()
    return {"loss": loss, "data": data, "seed": seed, "steps": trainer.step,
            "seconds": round(watch.train_time, 1), "time_to_target": watch.time_to_target,
            "time_to_all_modes": watch.time_to_all_modes,
            **{k: results[k] for k in SCORES}, "ema_decays": extra.scores(trainer)}


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def _run_one(job: tuple) -> dict:
    return run_one(*job)


def _kl(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _spread(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", nargs="+", default=["wgan-gp", "wgan", "gan-ns"])
    parser.add_argument("--data", nargs="+", default=["ring8", "grid25"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=None,
                        help="generator steps (default: the recipe's; the toy recipe: 10000 for the "
                        "penalties, 5000 for the other losses)")
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds per run")
    parser.add_argument("--check-every", type=int, default=250)
    parser.add_argument("--target-hq", type=float, default=0.95)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per run (default: PyTorch's; 1 with --jobs)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, one process each")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Config override, repeatable (e.g. --set width=256)")
    parser.add_argument("--ema-decays", type=float, nargs="+", default=[], metavar="D",
                        help="also score generator averages of these decays, carried on the same "
                        "runs (0: the raw generator)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    threads = args.threads or (1 if args.jobs > 1 else None)
    _set_threads(threads)
    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}

    rows = []
    header = (f"{'loss':8} {'data':7} {'seed':>4} {'steps':>6} {'sec':>6} {'modes':>7} "
              f"{'>=20':>5} {'HQ %':>6} {'rev KL':>7} {'spread':>6} {'W1/floor':>8} {'t->target':>9}")
    print(f"# overrides: {overrides or 'none'}; target: all modes and HQ >= {args.target_hq}")
    print(header, flush=True)
    jobs = [(loss, data, seed, args.steps, args.budget, args.check_every,
             (1.0, args.target_hq), overrides, args.ema_decays)
            for loss in args.losses for data in args.data for seed in args.seeds]
    pool = (ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"),
                                initializer=_set_threads, initargs=(threads,))
            if args.jobs > 1 else None)
    try:
        for row in (pool.map(_run_one, jobs) if pool else map(_run_one, jobs)):  # in order
            rows.append(row)
            loss, data, seed = row["loss"], row["data"], row["seed"]
            ttt = "-" if row["time_to_target"] is None else f"{row['time_to_target']:.0f}s"
            print(f"{loss:8} {data:7} {seed:>4} {row['steps']:>6} {row['seconds']:>6} "
                  f"{row['modes_captured']:>3}/{row['modes_total']:<3} "
                  f"{row['modes_with_20']:>5} {100 * row['high_quality_fraction']:>6.1f} "
                  f"{_kl(row['reverse_kl']):>7} {_spread(row['mode_spread']):>6} "
                  f"{row['w1_ratio']:>8.2f} {ttt:>9}", flush=True)
            for decay, score in row["ema_decays"].items():
                print(f"{'':8} {'':7} {'':>4} {'ema ' + decay:>13} "
                      f"{score['modes_captured']:>3}/{score['modes_total']:<3} "
                      f"{score['modes_with_20']:>5} {100 * score['high_quality_fraction']:>6.1f} "
                      f"{_kl(score['reverse_kl']):>7} {_spread(score['mode_spread']):>6} "
                      f"{score['w1_ratio']:>8.2f}", flush=True)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    print("\n# means over seeds")
    for loss in args.losses:
        for data in args.data:
            group = [r for r in rows if r["loss"] == loss and r["data"] == data]
            reached = [r["time_to_target"] for r in group if r["time_to_target"] is not None]
            worst = min(group, key=lambda r: (r["modes_captured"], r["high_quality_fraction"]))
            kls = [r["reverse_kl"] for r in group if r["reverse_kl"] is not None]
            spreads = [r["mode_spread"] for r in group if r["mode_spread"] is not None]
            print(f"{loss:8} {data:7} modes {statistics.mean(r['modes_captured'] for r in group):.1f}"
                  f"/{group[0]['modes_total']}  HQ "
                  f"{100 * statistics.mean(r['high_quality_fraction'] for r in group):.1f}%  "
                  f"worst seed {worst['seed']}: {worst['modes_captured']}/{worst['modes_total']}, "
                  f"{100 * worst['high_quality_fraction']:.1f}%  "
                  f"reverse KL {_kl(statistics.mean(kls) if kls else None)} "
                  f"(max {_kl(max(kls) if kls else None)})  "
                  f"spread {_spread(statistics.mean(spreads) if spreads else None)}  "
                  f"W1/floor {statistics.mean(r['w1_ratio'] for r in group):.2f}  "
                  f"time {statistics.mean(r['seconds'] for r in group):.0f}s  "
                  f"target reached {len(reached)}/{len(group)}"
                  + (f" (median {statistics.median(reached):.0f}s)" if reached else ""))
            for decay in args.ema_decays:
                scores = [r["ema_decays"][str(decay)] for r in group]
                hq = [100 * score["high_quality_fraction"] for score in scores]
                spreads = [score["mode_spread"] for score in scores
                           if score["mode_spread"] is not None]
                print(f"{'':8} {'':7} ema {decay}: modes "
                      f"{statistics.mean(score['modes_captured'] for score in scores):.1f}  HQ "
                      f"{statistics.mean(hq):.1f}% (worst {min(hq):.1f}%)  spread "
                      f"{_spread(statistics.mean(spreads) if spreads else None)}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
