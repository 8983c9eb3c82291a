"""Several generator EMA decays from one training run, each scored by the image protocol.

The generator's moving average changes nothing in training, so one run can carry extra averages
("shadows") beside the one its config asks for, and each shadow is what ``wgan train --ema D``
would have produced on the same trajectory: a paired comparison, free of the seed-to-seed spread
that separate runs would add. At the end each shadow is written as a copy of the run with its
average in place of the run's own, and every variant is scored by ``wgan eval`` as
``image_quality.py`` scores its final checkpoint.

    WGAN_DATA=../shared/data python benchmarks/ema_windows.py --data stacked-mnist --seed 0 \\
        --steps 15000 --fid-n 2000 --decays 0.998 0.9995 --out /work/ema-stacked

``wgan.ema`` warms the decay up as ``min(decay, (1 + t) / (10 + t))``, so averages of different
decays are identical until the warm-up reaches the smaller one (step 8,991 for 0.999), and every
decay above about 0.99943 is the warm-up itself throughout a 15,600-step run. The shadows therefore
start from the run's own average at the first step this script trains, exactly, as long as that
step is before the warm-up reaches them; afterwards they are saved beside every checkpoint
(``RUN/shadow-ema/``) and resumed from there. Kill the script and run it again with the same
arguments: it carries on from the newest checkpoint, and skips the scorings already in
``OUT/ema-windows-s{seed}.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import safetensors.torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from image_quality import ensure_classifier, evaluate, load_state, save_state, wgan  # noqa: E402
from wgan.callbacks import default_callbacks  # noqa: E402
from wgan.ema import ExponentialMovingAverage  # noqa: E402
from wgan.loop import Callback  # noqa: E402
from wgan.runs import RunDir  # noqa: E402
from wgan.runtime import configure_process  # noqa: E402
from wgan.train import Trainer, TrainingInterrupted  # noqa: E402

IMAGE_ARGS = ("--model dcgan --amp bf16 --ema 0.999 --lr 9.2e-4 --n-critic 4 --gp-lambda 4.8 "
              "--noise-dim 32")


class ShadowAverages(Callback):
    """Extra generator averages, updated after every generator step as the run's own is."""

    def __init__(self, trainer: Trainer, decays: list[float]):
        if trainer.ema is None:
            raise SystemExit("the run has no generator EMA (--ema 0): nothing to start from")
        self.trainer = trainer
        self.dir = trainer.run.path / "shadow-ema"
        self.shadows = {d: ExponentialMovingAverage(trainer.ema.module, d) for d in decays}
        saved = self.dir / f"step-{trainer.step:08d}.safetensors"
        if saved.is_file():
            tensors = safetensors.torch.load_file(saved)
            for decay, shadow in self.shadows.items():
                prefix = f"{decay!r}."
                mine = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
                if not mine:
                    raise SystemExit(f"{saved}: holds no average of decay {decay}; run with "
                                     "the --decays it was started with")
                shadow.load_state_dict(mine)
            return
        # The decays only rise, so averages that agreed on the last update agreed on all.
        last = int(trainer.ema.n_averaged) - 1
        for decay, shadow in self.shadows.items():
            if last >= 0 and shadow.decay_at(last) != trainer.ema.decay_at(last):
                raise SystemExit(f"{saved}: missing, and the run's average (decay "
                                 f"{trainer.ema.decay}) has left the warm-up shared with {decay} "
                                 f"(step {trainer.step}): the shadows cannot start from it")
        for shadow in self.shadows.values():  # equal so far: the warm-up is below every decay
            shadow.load_state_dict(trainer.ema.state_dict())

    def on_step_end(self, trainer: Trainer, losses: dict) -> None:
        for shadow in self.shadows.values():
            shadow.update(trainer.generator)

    def save(self, step: int) -> None:
        self.dir.mkdir(exist_ok=True)
        tensors = {f"{decay!r}.{k}": v.detach().cpu().contiguous()
                   for decay, shadow in self.shadows.items()
                   for k, v in shadow.state_dict().items()}
        path = self.dir / f"step-{step:08d}.safetensors"
        tmp = path.with_suffix(".tmp")
        safetensors.torch.save_file(tensors, tmp)
        os.replace(tmp, path)
        kept = {p.name for _, p in self.trainer.run.checkpoints()}
        for old in self.dir.glob("step-*.safetensors"):  # keep those of the kept checkpoints
            if old.name not in kept:
                old.unlink()

    def write_variant(self, decay: float, path: Path) -> Path:
        """A copy of the run at its newest checkpoint with the ``decay`` shadow as its EMA."""
        run = self.trainer.run
        step, newest = run.checkpoints()[-1]
        tensors, meta = RunDir.read_checkpoint(newest)
        for key, value in self.shadows[decay].state_dict().items():
            tensors[f"ema.{key}"] = value.detach().cpu().contiguous()
        meta["config"] = {**meta["config"], "ema": decay}
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        copy = RunDir(path)
        copy.checkpoint_dir.mkdir()
        config = json.loads(run.config_path.read_text())
        copy.config_path.write_text(json.dumps({**config, "ema": decay}, indent=2) + "\n")
        if run.metrics_path.is_file():
            shutil.copy2(run.metrics_path, copy.metrics_path)
        copy.save_checkpoint(step, tensors, meta, keep=1)
        return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--loss", default="wgan-gp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=15600)
    parser.add_argument("--decays", type=float, nargs="+", default=[0.998, 0.9995],
                        help="the shadow averages' decays, beside the run's own")
    parser.add_argument("--train-args", default=IMAGE_ARGS,
                        help="wgan train flags of the run (default: the image preset's)")
    parser.add_argument("--stop-at", type=int, default=None,
                        help="train only up to this step now (the run keeps --steps)")
    parser.add_argument("--fid-n", type=int, default=10_000)
    parser.add_argument("--fid-amp", default="fp32")
    parser.add_argument("--no-score", action="store_true",
                        help="write the variants' run directories, score none")
    parser.add_argument("--out", type=Path, default=Path("runs/ema_windows"))
    args = parser.parse_args()
    stop_at = args.steps if args.stop_at is None else args.stop_at

    if not args.no_score:
        ensure_classifier(args.data)
    run = args.out / f"{args.data}-{args.loss}-s{args.seed}"
    state_file = args.out / f"ema-windows-s{args.seed}.json"
    if not (run / "config.json").is_file():  # the run's first step by the CLI, as any run's
        done = wgan("train", "--data", args.data, "--loss", args.loss, "--seed", str(args.seed),
                    "--out", str(run), "--steps", str(args.steps), "--stop-at", "1", "--quiet",
                    "--no-eval", "--no-report", *args.train_args.split())
        if done.returncode != 0:
            raise SystemExit(f"{run}: wgan train failed (exit {done.returncode})")
    state = load_state(state_file)
    state.update(data=args.data, loss=args.loss, seed=args.seed, steps=args.steps,
                 extra=args.train_args, decays=args.decays)
    state.setdefault("scores", {})
    trainer = Trainer.resume(run, log=lambda m: print(m, file=sys.stderr, flush=True))
    configure_process(trainer.config)
    if trainer.ema is not None and trainer.ema.decay in args.decays:
        raise SystemExit(f"--decays: {trainer.ema.decay} is the run's own average")
    shadows = ShadowAverages(trainer, args.decays)
    save_checkpoint = trainer.save_checkpoint

    def save_both() -> Path | None:  # a checkpoint and the shadows of the same step
        path = save_checkpoint()
        shadows.save(trainer.step)
        return path

    trainer.save_checkpoint = save_both  # type: ignore[method-assign]
    if trainer.step < stop_at:
        start = time.perf_counter()
        # The shadows first: the standard callbacks' checkpoint at a step must find them updated.
        try:
            trainer.fit(stop_at, callbacks=[shadows, *default_callbacks(trainer, progress=False)],
                        defaults=False)
        except TrainingInterrupted:  # a checkpoint and its shadows are on disk (not `wgan
            # train --resume`: that would go on without the shadows)
            raise SystemExit(f"{run}: interrupted at step {trainer.step}; run this script "
                             "again with the same arguments to continue") from None
        state["train_s"] += time.perf_counter() - start
        save_state(state_file, state)
    if trainer.step < args.steps:
        print(f"stopped at step {trainer.step} of {args.steps}; run again to continue")
        return
    variants = {repr(trainer.ema.decay): run}
    for decay in args.decays:
        variants[repr(decay)] = shadows.write_variant(decay, args.out / f"{run.name}-ema{decay!r}")
    if args.no_score:
        return
    for name, path in variants.items():
        if state["scores"].get(name, {}).get("step") == trainer.step:
            continue
        start = time.perf_counter()
        state["scores"][name] = evaluate(path, args.fid_n, args.fid_amp)
        state["eval_s"] += time.perf_counter() - start
        save_state(state_file, state)
    for name, score in state["scores"].items():
        extra = "".join(f" {k} {score[k]:.4g}" for k in ("stacked_modes", "stacked_kl",
                                                         "class_kl") if k in score)
        print(f"ema {name}: FID@{score['fid_n']} {score['fid']:.2f} precision "
              f"{score['precision']:.3f} recall {score['recall']:.3f}{extra}", flush=True)
    print(f"training {state['train_s'] / 60:.1f} min, scoring {state['eval_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
