"""The published image tables on this machine: train, then score by the FID protocol of
``wgan.metrics.inception`` (docs/concepts.md), resumably.

Each run (dataset, loss or constraint, seed) trains in ``--points`` segments up to ``--steps``
generator steps (Lucic et al. 2018's budget: 20 epochs of 50,000 images at batch 64, about 15,600
steps). After each segment the checkpoint is scored with a cheap FID (``--curve-n`` images) and
the critic's estimate of W, which gives the FID curve and the W-against-FID correlation; the last
checkpoint is then scored with the comparable FID (``--fid-n``, 10,000 generated images against
the 10,000 test images). Everything lands in ``OUT/RUN/quality.json`` as it happens, so killing
this script loses at most one segment or one evaluation: run it again with the same arguments and
it carries on (training resumes from the run's newest checkpoint).

    python benchmarks/image_quality.py --data mnist --loss wgan-gp --seeds 0 1 2
    python benchmarks/image_quality.py --plan tables      # all of them, in order, resumably
    python benchmarks/image_quality.py --summary          # the table of everything in OUT
    python benchmarks/image_quality.py --summary --figure benchmarks/figures/image-quality.png

Wall times are this script's own, per run: training and scoring separately.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

OUT = Path("runs/image_quality")

#: ``--plan tables``: the issue's tables in the order they are worth running, one seed of each
#: comparison before the further seeds: (data, loss, constraint, seed). Run the same command
#: again and it goes on where it stopped; finished runs are skipped.
TABLES = [("mnist", "wgan-gp", None, 0), ("mnist", "wgan-gp", None, 1),
          ("mnist", "wgan-gp", None, 2), ("fashion", "wgan-gp", None, 0),
          ("mnist", "wgan", None, 0), ("mnist", "gan-ns", None, 0),
          ("mnist", "wgan", "spectral", 0), ("stacked-mnist", "wgan-gp", None, 0),
          ("fashion", "wgan-gp", None, 1), ("fashion", "wgan-gp", None, 2),
          ("mnist", "wgan", None, 1), ("mnist", "wgan", None, 2),
          ("fashion", "wgan", None, 0), ("fashion", "wgan", None, 1), ("fashion", "wgan", None, 2),
          ("stacked-mnist", "wgan-gp", None, 1), ("stacked-mnist", "wgan-gp", None, 2)]

#: Stacked MNIST's budget in the GDPP protocol (15k generator iterations at batch 64), which
#: ``--plan tables`` uses for it in place of ``--steps``.
STACKED_STEPS = 15_000


def wgan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wgan.cli", *args], text=True,
                          stdout=subprocess.PIPE, check=False)


def load_state(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"curve": [], "train_s": 0.0,
                                                                   "eval_s": 0.0}


def save_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, path)


def evaluate(run: Path, n: int, amp: str) -> dict:
    done = wgan("eval", str(run), "--fid", "--fid-n", str(n), "--fid-amp", amp,
                "--json", "--n", "2000")
    if done.returncode != 0:
        raise SystemExit(f"{run}: wgan eval failed (exit {done.returncode})")
    return json.loads(done.stdout)


def ensure_classifier(data: str) -> None:
    """MNIST's class metrics and Stacked MNIST's modes need the MNIST classifier, and `wgan eval`
    without one only notes its absence: train and cache it first (about a minute), so that no
    table row comes out without them."""
    if data not in ("mnist", "stacked-mnist"):
        return
    from wgan.metrics.classifier import default_classifier_path

    if not default_classifier_path().is_file():
        print(f"{data}: no MNIST classifier cached, training one first", flush=True)
        if wgan("classifier", "train").returncode != 0:
            raise SystemExit("wgan classifier train failed")


def one_run(name: str, seed: int, args: argparse.Namespace) -> None:
    ensure_classifier(args.data)
    run = args.out / f"{name}-s{seed}"
    state_file = args.out / f"{name}-s{seed}.json"
    state = load_state(state_file)
    state.update(data=args.data, loss=args.loss, constraint=args.constraint, seed=seed,
                 steps=args.steps, extra=args.train_args, curve_n=args.curve_n)
    marks = [round(args.steps * (i + 1) / args.points) for i in range(args.points)]
    for mark in marks:
        if any(point["step"] == mark for point in state["curve"]):
            continue
        start = time.perf_counter()
        # Each segment stops at its mark of the whole budget, so a schedule (--lr-decay) spans
        # the whole run, as it would in one piece.
        common = ["--steps", str(args.steps), "--stop-at", str(mark), "--quiet", "--no-eval",
                  "--no-report"]
        if (run / "config.json").is_file():
            done = wgan("train", "--resume", str(run), *common)
        else:
            flags = ["--data", args.data, "--loss", args.loss, "--seed", str(seed),
                     "--out", str(run), *args.train_args.split()]
            if args.constraint:
                flags += ["--constraint", args.constraint]
            done = wgan("train", *flags, *common)
        if done.returncode != 0:
            raise SystemExit(f"{run}: wgan train failed (exit {done.returncode})")
        state["train_s"] += time.perf_counter() - start
        start = time.perf_counter()
        result = evaluate(run, args.curve_n, args.curve_fid_amp)
        state["eval_s"] += time.perf_counter() - start
        state["curve"].append({key: result.get(key) for key in
                               ("step", "fid", "kid", "precision", "recall", "critic_estimate",
                                "w1_ratio", "classes_captured", "class_kl", "stacked_modes",
                                "stacked_kl", "fid_protocol", "fid_reference")})
        save_state(state_file, state)
        print(f"{name} seed {seed}: step {result['step']}, FID@{args.curve_n} "
              f"{result['fid']:.2f}, critic estimate {result['critic_estimate']:.4g}", flush=True)
    if "final" not in state or state["final"]["step"] != marks[-1]:  # new or a longer budget
        start = time.perf_counter()
        state["final"] = evaluate(run, args.fid_n, args.fid_amp)
        state["final_eval_s"] = time.perf_counter() - start
        save_state(state_file, state)
    if args.final_parity and state.get("final_bf16", {}).get("step") != state["final"]["step"]:
        start = time.perf_counter()
        state["final_bf16"] = evaluate(run, args.fid_n, "bf16")
        state["final_bf16_eval_s"] = time.perf_counter() - start
        save_state(state_file, state)
    final = state["final"]
    print(f"{name} seed {seed}: FID@{final['fid_n']} {final['fid']:.2f} precision "
          f"{final.get('precision', float('nan')):.3f} recall {final.get('recall', float('nan')):.3f}"
          f" (train {state['train_s'] / 60:.1f} min)", flush=True)


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def logged_objective(run: Path, marks: list[int]) -> list[float]:
    """Per curve point, the critic's training objective as logged (``-critic_loss``: for a
    WGAN the running estimate of W, for a GAN minus its discriminator loss), averaged over the
    logged rows of the segment that ends there."""
    import csv

    with open(run / "metrics.csv", newline="") as handle:
        rows = [(int(r["step"]), float(r["critic_loss"])) for r in csv.DictReader(handle)]
    values, previous = [], 0
    for mark in marks:
        segment = [-loss for step, loss in rows if previous < step <= mark]
        values.append(sum(segment) / len(segment) if segment else float("nan"))
        previous = mark
    return values


def comparable(curve: list[dict]) -> list[dict]:
    """The curve points whose FID was measured against the same reference as the last one's (the
    same protocol and real images): a run resumed across a protocol change keeps its earlier
    points, which no longer rank with the later ones. Points saved before the reference was
    recorded count as one reference."""
    if not curve:
        return curve
    last = (curve[-1].get("fid_protocol"), curve[-1].get("fid_reference"))
    return [p for p in curve if (p.get("fid_protocol"), p.get("fid_reference")) == last]


def summary(out: Path) -> None:
    """The table of every run in ``out``: the final FID, and how the critic's estimate (fresh
    samples, at each checkpoint) and its logged training objective rank with the curve's FID."""
    print("| run | steps | FID (n) | precision | recall | Spearman(critic estimate, FID) | "
          "Spearman(logged objective, FID) | modes (KL) | bf16 FID (vs fp32) | train min | "
          "eval min |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for state_file in sorted(out.glob("*.json")):
        state = json.loads(state_file.read_text())
        final = state.get("final")
        curve = comparable(state["curve"])
        fids = [p["fid"] for p in curve]
        rho = (spearman([p["critic_estimate"] for p in curve], fids)
               if len(curve) > 2 else float("nan"))
        run = out / state_file.stem
        logged = (spearman(logged_objective(run, [p["step"] for p in curve]), fids)
                  if len(curve) > 2 and (run / "metrics.csv").is_file() else float("nan"))
        note = (f" ({len(curve)} of {len(state['curve'])} points)"
                if len(curve) < len(state["curve"]) else "")
        fid = f"{final['fid']:.2f} ({final['fid_n']})" if final else "-"
        half = state.get("final_bf16")
        parity = (f"{half['fid']:.2f} ({100 * (half['fid'] / final['fid'] - 1):+.2f}%)"
                  if final and half and half["step"] == final["step"] else "-")
        modes = "-"
        for count, total, kl in (("stacked_modes", "stacked_modes_total", "stacked_kl"),
                                 ("classes_captured", "classes_total", "class_kl")):
            if final and final.get(count) is not None:
                modes = f"{final[count]}/{final[total]} ({final[kl]:.3f})"
                break
        print(f"| {state_file.stem} | {curve[-1]['step'] if curve else 0} | {fid} | "
              f"{final.get('precision', float('nan')) if final else '-'} | "
              f"{final.get('recall', float('nan')) if final else '-'} | {rho:.3f}{note} | "
              f"{logged:.3f}{note} | {modes} | {parity} | {state['train_s'] / 60:.1f} | "
              f"{(state['eval_s'] + state.get('final_eval_s', 0)) / 60:.1f} |")


def seed_means(out: Path) -> None:
    """The issue's goals are means over seeds: per setting (data, loss, steps and training flags)
    the final FID's mean, standard deviation and worst seed, over the runs scored by the same
    protocol against the same real images (a run scored otherwise forms its own row)."""
    import re
    import statistics

    groups: dict[tuple, list[tuple[int, dict]]] = {}
    for state_file in sorted(out.glob("*.json")):
        state = json.loads(state_file.read_text())
        final = state.get("final")
        match = re.fullmatch(r"(.+)-s(\d+)", state_file.stem)
        if not final or not match:
            continue
        key = (match.group(1), state.get("steps"), state.get("extra", ""),
               final.get("fid_protocol"), final.get("fid_reference"), final.get("fid_n"))
        groups.setdefault(key, []).append((int(match.group(2)), final))
    print("\n| setting | steps | training flags | FID protocol (n) | seeds | FID mean | sd | worst |"
          " precision | recall |\n|---|---|---|---|---|---|---|---|---|---|")
    for (name, steps, extra, protocol, _, n), runs in groups.items():
        fids = [final["fid"] for _, final in runs]
        sd = statistics.stdev(fids) if len(fids) > 1 else float("nan")
        def mean_of(key: str) -> float:  # a missing value is NaN; a measured 0 stays 0
            values = [final.get(key) for _, final in runs]
            return statistics.fmean(float("nan") if v is None else v for v in values)

        print(f"| {name} | {steps} | `{extra}` | {protocol} ({n}) | "
              f"{', '.join(str(seed) for seed, _ in runs)} | {statistics.fmean(fids):.2f} | "
              f"{sd:.2f} | {max(fids):.2f} | {mean_of('precision'):.3f} | "
              f"{mean_of('recall'):.3f} |")


def figure(out: Path, path: Path) -> None:
    """Per run: FID (curve images), the critic's estimate of W on fresh samples and its logged
    training objective against the step, with each one's Spearman correlation with FID."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    states = [(f.stem, json.loads(f.read_text())) for f in sorted(out.glob("*.json"))]
    states = [(name, {**state, "curve": comparable(state["curve"])}) for name, state in states]
    states = [(name, state) for name, state in states if len(state["curve"]) > 2]
    columns = min(max(len(states), 1), 3)
    rows = max(-(-len(states) // columns), 1)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(states):]:
        ax.set_visible(False)
    for ax, (name, state) in zip(axes.flat, states):
        steps = [p["step"] for p in state["curve"]]
        fids = [p["fid"] for p in state["curve"]]
        fresh = [p["critic_estimate"] for p in state["curve"]]
        ax.plot(steps, fids, "o-", color="C0")
        ax.set_xlabel("generator step")
        ax.set_ylabel(f"FID ({state.get('curve_n', '')} images)", color="C0")
        twin = ax.twinx()
        twin.plot(steps, fresh, "s--", color="C1", label="critic, fresh samples")
        title = f"{name}\nSpearman with FID: fresh {spearman(fresh, fids):.2f}"
        if (out / name / "metrics.csv").is_file():
            logged = logged_objective(out / name, steps)
            twin.plot(steps, logged, "^:", color="C2", label="logged objective")
            title += f", logged {spearman(logged, fids):.2f}"
        twin.set_ylabel("critic's estimate (-critic loss)")
        twin.legend(fontsize=7, loc="best")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--loss", default="wgan-gp")
    parser.add_argument("--constraint", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=15_600)
    parser.add_argument("--points", type=int, default=10, help="curve points (segments)")
    parser.add_argument("--curve-n", type=int, default=500, help="FID images per curve point")
    parser.add_argument("--fid-n", type=int, default=10_000, help="FID images at the end")
    parser.add_argument("--fid-amp", default="fp32", choices=("fp32", "bf16"),
                        help="precision of the final FID (fp32: the published protocol)")
    parser.add_argument("--curve-fid-amp", default="bf16", choices=("fp32", "bf16"),
                        help="precision of the curve points' FID, which show a trend only (bf16 "
                             "against fp32: +0.21%% at 2,000 images, +0.71%% at 10,000; "
                             "RESULTS.md)")
    parser.add_argument("--final-parity", action="store_true",
                        help="also score the last checkpoint with bf16 Inception features (the "
                             "evidence for or against bf16 finals)")
    parser.add_argument("--train-args", default="--model dcgan --amp bf16 --ema 0.999",
                        help="further flags for wgan train (one string)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--plan", choices=("tables",), default=None,
                        help="every run of the issue's tables in turn (ignores --data, --loss, "
                             "--constraint and --seeds; Stacked MNIST gets 15,000 steps)")
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--figure", type=Path, default=None, help="with --summary: a PNG")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.summary:
        summary(args.out)
        seed_means(args.out)
        if args.figure:
            figure(args.out, args.figure)
        return
    if args.plan == "tables":
        for data, loss, constraint, seed in TABLES:
            run = argparse.Namespace(**vars(args))  # one run's settings; `args` stays as given
            run.data, run.loss, run.constraint = data, loss, constraint
            run.steps = STACKED_STEPS if data == "stacked-mnist" else args.steps
            one_run(f"{data}-{constraint or loss}", seed, run)
        return
    name = f"{args.data}-{args.constraint or args.loss}"
    for seed in args.seeds:
        one_run(name, seed, args)


if __name__ == "__main__":
    main()
