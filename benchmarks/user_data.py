"""Good defaults on users' own data: low-dimensional datasets that are not built in, written to
.npy files and trained with the defaults alone (`wgan train --data FILE.npy`, i.e. --preset auto),
then evaluated on the 10% of rows held out of training: exact W1 of samples against the held-out
rows, over the real-against-real floor (training rows against the same held-out rows).

    python benchmarks/user_data.py                    # every dataset, seeds 0 and 1
    python benchmarks/user_data.py --datasets moons --seeds 0 --steps 2000
    python benchmarks/user_data.py --datasets moons --draws 5   # + the ratio's evaluation noise
    python benchmarks/user_data.py --perfect --draws 20         # the metric's own floor
    python benchmarks/user_data.py --seeds 1 2 --steps 20000 --jobs 2  # two runs at a time

The ratio column is the evaluation of the CLI (evaluation seed 12345). ``--draws K`` scores each
trained generator K times with different evaluation seeds (new generated samples, new real rows
for the floor): how much of a ratio is the draw and not the run. ``--perfect`` trains nothing: it
scores a perfect generator, fresh rows of the very law each dataset was drawn from, the same way
(same held-out rows, same floor), K times: the ratio a run cannot be expected to beat, and how
often the truth itself lands above a bar such as 1.5.

``--jobs N`` trains N runs at once, one process and (unless ``--set threads=K``) one thread each,
as ``toy_quality.py --jobs`` does: on 2 cores, two small MLPs side by side finish in about the
time of one run on two threads. A run's row does not depend on how many run beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

#: The CLI's evaluation seed (``Trainer.evaluate``'s default), and the stride between the seeds
#: of further draws: each draw uses seeds s..s+6 for its samples, so draws never share one.
EVAL_SEED, DRAW_STRIDE = 12345, 1000


def datasets(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    from sklearn.datasets import make_blobs, make_circles, make_moons, make_s_curve

    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(6, 6))
    return {
        "moons": make_moons(rows, noise=0.05, random_state=seed)[0],
        "circles": make_circles(rows, noise=0.03, factor=0.5, random_state=seed)[0],
        "s-curve-3d": make_s_curve(rows, noise=0.05, random_state=seed)[0],
        "blobs-5d": make_blobs(rows, n_features=5, centers=6, cluster_std=0.6,
                               random_state=seed)[0],
        "gaussian-6d": rng.normal(size=(rows, 6)) @ mixing + rng.normal(size=6),
        "heavy-tail-2d": rng.standard_t(3, size=(rows, 2)) * [1.0, 0.3],
        "spiral": spiral(rows, rng),
        "unequal-mix": unequal_mixture(rows, rng),
    }


def spiral(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Two turns of an Archimedean spiral, thickened by noise 2% of its outer radius: one long
    thin curve, which a generator must follow without bridging between its turns."""
    t = np.sqrt(rng.uniform(0.05, 1.0, rows)) * 4 * np.pi  # sqrt: even density along the arc
    points = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    return points + rng.normal(scale=0.02 * 4 * np.pi, size=points.shape)


def unequal_mixture(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Five 2-D Gaussians of different widths with weights 50%, 25%, 15%, 7% and 3%: the light
    modes are the ones a generator drops, and W1 notices the lost mass."""
    weights = np.array([0.50, 0.25, 0.15, 0.07, 0.03])
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [-4.0, -3.0], [4.0, 5.0]])
    scales = np.array([1.0, 0.5, 0.3, 0.3, 0.2])
    which = rng.choice(len(weights), size=rows, p=weights)
    return centres[which] + rng.normal(size=(rows, 2)) * scales[which, None]


def fresh_rows(name: str, rows: int, seed: int) -> np.ndarray:
    """``rows`` new rows of the law that ``datasets(rows)[name]`` (seed 0) was drawn from: the
    same centres, mixing matrix and offset, other noise (``seed`` > 0 draws new rows)."""
    if name == "blobs-5d":  # make_blobs draws its centres from random_state too: keep seed 0's
        from sklearn.datasets import make_blobs

        centres = make_blobs(rows, n_features=5, centers=6, cluster_std=0.6, random_state=0,
                             return_centers=True)[2]
        return make_blobs(rows, n_features=5, centers=centres, cluster_std=0.6,
                          random_state=seed)[0]
    if name == "gaussian-6d":  # seed 0's matrix and offset (the offset follows the rows' draw)
        rng = np.random.default_rng(0)
        mixing = rng.normal(size=(6, 6))
        rng.normal(size=(rows, 6))
        offset = rng.normal(size=6)
        return np.random.default_rng(seed).normal(size=(rows, 6)) @ mixing + offset
    return datasets(rows, seed)[name]  # the other shapes' parameters do not depend on the seed


class PerfectSampler:
    """A stand-in for a trained generator that draws from the data's own law."""

    def __init__(self, name: str, rows: int):
        self.name, self.rows = name, rows

    def sample(self, n: int, seed: int | None = None, data_units: bool = True):
        import torch

        fresh = fresh_rows(self.name, self.rows, 1 + (seed or 0))
        pick = np.random.default_rng(seed).choice(len(fresh), n, replace=False)
        return torch.as_tensor(fresh[pick], dtype=torch.float32)


def perfect(args: argparse.Namespace, made: dict[str, np.ndarray], names: list[str],
            tmp: str) -> list[dict]:
    """``--perfect``: the ratio of fresh rows of each law, over ``--draws`` evaluation seeds."""
    from wgan import Config, Trainer
    from wgan.evaluate import evaluate

    rows = []
    print(f"{'data':<14} {'dim':>3} {'n':>5} {'draws':>5} {'first':>6} {'mean':>6} {'sd':>5} "
          f"{'min':>5} {'max':>5} {'> 1.5':>6}")
    for name in names:
        path = Path(tmp) / f"{name}.npy"
        np.save(path, made[name])
        trainer = Trainer(Config(data=str(path), steps=1), log=lambda m: None)
        ratios = [evaluate(PerfectSampler(name, args.rows), trainer.data,
                           n=trainer.config.eval_samples, seed=EVAL_SEED + DRAW_STRIDE * i)
                  for i in range(args.draws)]
        n, ratios = ratios[0]["n"], [r["w1_ratio"] for r in ratios]
        sd = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
        above = sum(r > 1.5 for r in ratios) / len(ratios)
        rows.append({"data": name, "dim": made[name].shape[1], "n": n, "perfect": True,
                     "w1_ratio": ratios[0], "w1_ratio_draws": ratios})
        print(f"{name:<14} {made[name].shape[1]:>3} {n:>5} {len(ratios):>5} {ratios[0]:>6.2f} "
              f"{statistics.mean(ratios):>6.2f} {sd:>5.2f} {min(ratios):>5.2f} "
              f"{max(ratios):>5.2f} {above:>6.0%}", flush=True)
    return rows


def run_one(name: str, path: str, dim: int, seed: int, steps: int | None, overrides: dict,
            draws: int, ema_decays: list[float] = ()) -> dict:
    """Train one run on the .npy file at ``path`` with the defaults (and ``overrides``), then
    score it: the CLI's evaluation first, and ``draws - 1`` more with other evaluation seeds;
    generator averages of ``ema_decays`` carried on the same run are scored too (the CLI's
    evaluation; toy_quality.py's ``--ema-decays``)."""
    from toy_quality import ExtraAverages
    from wgan import Config, Trainer
    from wgan.runtime import configure_process

    trainer = Trainer(Config(data=path, seed=seed, steps=steps, **overrides), log=lambda m: None)
    configure_process(trainer.config)
    extra = ExtraAverages(trainer, list(ema_decays))
    start = time.perf_counter()
    trainer.fit(callbacks=[extra], progress=False)
    seconds = time.perf_counter() - start
    result = trainer.evaluate()
    c = trainer.config
    row = {"data": name, "dim": dim, "seed": seed, "preset": c.preset, "noise_dim": c.noise_dim,
           "steps": c.steps, "seconds": round(seconds, 1),
           **{k: result[k] for k in ("n", "w1_exact", "w1_floor", "w1_ratio")}}
    if draws > 1:
        row["w1_ratio_draws"] = [row["w1_ratio"]] + [
            trainer.evaluate(seed=EVAL_SEED + DRAW_STRIDE * i)["w1_ratio"]
            for i in range(1, draws)]
    row["ema_decays"] = {decay: score["w1_ratio"]
                         for decay, score in extra.scores(trainer, ("w1_ratio",)).items()}
    return row


def _run_one(job: tuple) -> dict:
    return run_one(*job)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Config override, repeatable (e.g. --set n_critic=3)")
    parser.add_argument("--draws", type=int, default=1,
                        help="evaluations per trained run, each with its own evaluation seed")
    parser.add_argument("--perfect", action="store_true",
                        help="train nothing: score fresh rows of each dataset's own law")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, one process each (one thread each unless "
                             "--set threads=N)")
    parser.add_argument("--ema-decays", type=float, nargs="+", default=[], metavar="D",
                        help="also score generator averages of these decays, carried on the same "
                        "runs (0: the raw generator; toy_quality.py's option)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    from toy_quality import parse_value  # (this folder is on sys.path when run as a script)

    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    made = datasets(args.rows)
    names = args.datasets or list(made)
    if args.perfect:
        with tempfile.TemporaryDirectory() as tmp:
            rows = perfect(args, made, names, tmp)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        return 0
    if args.jobs > 1:
        overrides.setdefault("threads", 1)  # two one-thread runs, not two two-thread ones
    rows = []
    print(f"# overrides: {overrides or 'none'}; steps: {args.steps or 'the recipe default'}")
    print(f"{'data':<14} {'dim':>3} {'seed':>4} {'preset':>6} {'z':>3} {'steps':>6} {'sec':>5} "
          f"{'n':>5} {'W1':>8} {'floor':>8} {'ratio':>6}"
          + (f" {'draws: min':>10} {'max':>5} {'sd':>5}" if args.draws > 1 else ""), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            np.save(Path(tmp) / f"{name}.npy", made[name])
        jobs = [(name, str(Path(tmp) / f"{name}.npy"), made[name].shape[1], seed, args.steps,
                 overrides, args.draws, args.ema_decays) for name in names for seed in args.seeds]
        pool = (ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn"))
                if args.jobs > 1 else None)
        try:
            for row in (pool.map(_run_one, jobs) if pool else map(_run_one, jobs)):  # in order
                rows.append(row)
                line = (f"{row['data']:<14} {row['dim']:>3} {row['seed']:>4} "
                        f"{row['preset']:>6} {row['noise_dim']:>3} {row['steps']:>6} "
                        f"{row['seconds']:>5.0f} {row['n']:>5} {row['w1_exact']:>8.4f} "
                        f"{row['w1_floor']:>8.4f} {row['w1_ratio']:>6.2f}")
                if args.draws > 1:
                    draws = row["w1_ratio_draws"]
                    line += (f" {min(draws):>10.2f} {max(draws):>5.2f} "
                             f"{statistics.stdev(draws):>5.2f}")
                line += "".join(f"  ema {decay}: {ratio:.2f}"
                                for decay, ratio in row["ema_decays"].items())
                print(line, flush=True)
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
    print("\n# mean ratio over seeds" + (" (first draw; over all draws)" if args.draws > 1 else ""))
    for name in names:
        ratios = [r["w1_ratio"] for r in rows if r["data"] == name]
        line = f"{name:<14} {statistics.mean(ratios):.2f} (max {max(ratios):.2f})"
        for decay in map(str, args.ema_decays):
            extra = [r["ema_decays"][decay] for r in rows if r["data"] == name]
            line += f"  ema {decay}: {statistics.mean(extra):.2f} (max {max(extra):.2f})"
        if args.draws > 1:
            means = [statistics.mean(r["w1_ratio_draws"]) for r in rows if r["data"] == name]
            line += f"; {statistics.mean(means):.2f} (worst seed {max(means):.2f})"
        print(line)
    if args.draws > 1:
        spread = [statistics.stdev(r["w1_ratio_draws"]) for r in rows]
        print(f"\n# evaluation noise: sd of the ratio over {args.draws} draws, mean over "
              f"{len(rows)} runs {statistics.mean(spread):.3f}, largest {max(spread):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
