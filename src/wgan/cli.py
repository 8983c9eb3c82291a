"""The ``wgan`` command: each subcommand calls the library (the arguments are in
:mod:`wgan.arguments`).

Exit status: 0 on success, 2 for bad input (one line on standard error), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from .arguments import build_parser
from .config import Config
from .data.vectors import VECTOR_SUFFIXES
from .errors import WganError
from .runs import default_run_path


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _flag_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The Config fields given as flags (the parser leaves the others out of ``args``)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
            if hasattr(args, f.name)}


def _config_from_args(args: argparse.Namespace) -> tuple[Config, set[str]]:
    """``--config`` (or the defaults) with the flags on top, a vector file's path made absolute
    (a run or a study must find it from anywhere); and the names the user set, by flag or in
    the file."""
    settings = _flag_settings(args)
    config = Config.load(args.config) if args.config else Config()
    defaults = Config()
    fixed = set(settings) | {k for k, v in config.to_dict().items() if v != getattr(defaults, k)}
    config = config.replace(**settings)
    if Path(config.data).suffix.lower() in VECTOR_SUFFIXES:
        config = config.replace(data=str(Path(config.data).resolve()))
    return config, fixed


def _check_stop_at(stop_at: int | None, steps: int) -> None:
    if stop_at is not None and not 0 < stop_at <= steps:
        raise WganError(f"--stop-at must be between 1 and --steps ({steps}), got {stop_at}")


def cmd_train(args: argparse.Namespace) -> int:
    from . import distributed
    from .errors import TrainingDiverged
    from .runtime import configure_process
    from .train import Trainer, TrainingInterrupted

    if args.nproc is not None and not distributed.launched_by_torchrun():
        return distributed.start_torchrun(args.nproc, args.argv, _log)

    if args.resume:
        if args.config or args.out:
            raise WganError("--resume takes the run's own config and directory; "
                            "drop --config/--out")
        settings = _flag_settings(args)
        if args.stop_at is not None:  # checked before the run's config.json is rewritten
            from .runs import RunDir

            _check_stop_at(args.stop_at, settings.get("steps")
                           or RunDir.open(args.resume).load_config().steps)
        trainer = Trainer.resume(args.resume, log=_log, **settings)
    else:
        config, _ = _config_from_args(args)
        _check_stop_at(args.stop_at, config.steps)
        # Everything that can fail on bad input is built before the run directory exists.
        trainer = Trainer(config, log=_log, out=args.out or default_run_path(config))
        trainer.log(f"run directory: {trainer.run.path}")
    configure_process(trainer.config)
    target = trainer.config.steps if args.stop_at is None else args.stop_at
    if trainer.step >= target:
        trainer.log(f"run is already at step {trainer.step} of {trainer.config.steps}; "
                    + ("pass a larger --steps to continue" if args.stop_at is None
                       else "pass a larger --stop-at, or leave it out, to continue"))
    else:
        try:
            trainer.fit(target, progress=not args.quiet)
        except (TrainingInterrupted, TrainingDiverged) as err:
            if trainer.dist is None:
                raise
            return distributed.end_run(trainer, err, isinstance(err, TrainingInterrupted))
    if trainer.step < trainer.config.steps:
        trainer.log(f"stopped at step {trainer.step} of {trainer.config.steps} (--stop-at); "
                    f"continue with: wgan train --resume {trainer.run.path}")
    if trainer.dist:  # training is over: the other processes are done, rank 0 finishes alone
        trainer.finish_distributed()
        if not trainer.is_main_process:
            return 0
    trainer.save_figures()
    if not args.no_eval:
        from .tensorboard import write_hparams

        results = trainer.evaluate()
        trainer.run.write_eval(results)
        write_hparams(trainer.run, trainer.config, results)
        print(_format_results(results))
    if not args.no_report:
        from .report import write_report

        _log(f"report: {write_report([trainer.run.path], trainer.run.path / 'report.html')}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    out = args.out or (Path(args.runs[0]) / "report.html" if len(args.runs) == 1
                       else Path("report.html"))
    _log(f"wrote {write_report(args.runs, out, force=args.force)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .report import compare, format_comparison

    result = compare(args.runs)
    print(json.dumps(result) if args.json else format_comparison(result))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from .files import atomic_path
    from .inference import load_run

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".npy", ".csv", ".png", ""):
        raise WganError(f"{out}: output must end in .npy, .csv or .png, or be a folder")
    if args.n < 1:
        raise WganError(f"--n must be >= 1, got {args.n}")
    if out.exists() and not args.force and not (suffix == "" and out.is_dir()
                                                 and not any(out.iterdir())):
        raise WganError(f"{out}: already exists; pass --force to overwrite it")
    run = load_run(args.run, device=args.device, log=_log)
    if suffix in (".png", "") and len(run.sample_shape) != 3:
        raise WganError(f"{out}: PNG output needs an image run; this run's samples have shape "
                        f"{run.sample_shape} (use .npy or .csv)")
    samples = run.sample(args.n, seed=args.seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        with atomic_path(out) as tmp, open(tmp, "wb") as handle:
            np.save(handle, samples.numpy())
    elif suffix == ".csv":
        with atomic_path(out) as tmp:
            np.savetxt(tmp, samples.flatten(1).numpy(), delimiter=",", fmt="%.8g")
    else:
        from .plots import save_image_grid, save_png, to_uint8

        if suffix == ".png":
            save_image_grid(samples, out)
        else:
            out.mkdir(exist_ok=True)
            for i, pixels in enumerate(to_uint8(samples)):
                save_png(pixels, out / f"sample-{i:05d}.png")
    _log(f"wrote {args.n} samples to {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .inference import load_run

    if args.n is not None and args.n < 2:
        raise WganError(f"--n must be >= 2, got {args.n}")
    if args.fid_n < 2:
        raise WganError(f"--fid-n must be >= 2, got {args.fid_n}")
    run = load_run(args.run, device=args.device, log=_log)
    results = run.evaluate(n=args.n, seed=args.seed, classifier=args.classifier, fid=args.fid,
                           fid_samples=args.fid_n, fid_amp=args.fid_amp,
                           fid_backend=args.fid_backend)
    results["checkpoint"] = run.checkpoint_file.name
    print(json.dumps(results) if args.json else _format_results(results))
    return 0


def cmd_classifier(args: argparse.Namespace) -> int:
    import torch

    from .data.idx import load_idx_dataset
    from .data.images import to_unit_range
    from .metrics import classifier as clf

    if args.epochs <= 0:
        raise WganError(f"--epochs must be > 0, got {args.epochs}")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else clf.default_classifier_path()
    if out.suffix != ".safetensors":
        raise WganError(f"{out}: the classifier file must end in .safetensors")
    images, labels = load_idx_dataset("mnist", args.data_dir, "train")
    test_images, test_labels = load_idx_dataset("mnist", args.data_dir, "test")
    if args.train_limit:
        images, labels = images[:args.train_limit], labels[:args.train_limit]
    model = clf.train_classifier(to_unit_range(images), labels, epochs=args.epochs, log=_log)
    acc = clf.accuracy(model, to_unit_range(test_images), test_labels)
    clf.save_classifier(model, out, acc)
    print(f"MNIST test accuracy {acc:.4f} on {len(test_labels)} digits; saved {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demos import run_demo

    run_demo(args.name, Path(args.out), quick=args.quick)
    return 0


def cmd_divergence(args: argparse.Namespace) -> int:
    from . import divergences

    masses = []
    for name, text in (("P", args.p), ("Q", args.q)):
        try:
            masses.append([float(v) for v in text.split(",")])
        except ValueError:
            raise WganError(f"{name}: expected comma-separated numbers, got {text!r}") from None
    function = {"kl": divergences.kl_divergence, "js": divergences.js_divergence,
                "w1": divergences.wasserstein_discrete}[args.kind]
    try:
        print(f"{function(*masses):.10g}")
    except ValueError as err:
        raise WganError(str(err)) from None
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise WganError("wgan tune needs Optuna: pip install 'wgan[tune]'") from None
    from .runtime import configure_process
    from .tune import train_flags, tune

    config, fixed = _config_from_args(args)
    out = Path(args.out or Path("tune") / f"{Path(config.data).stem}-{config.loss}")
    configure_process(config)  # --threads, --tune-malloc, as `wgan train` does
    result = tune(config, out, args.minutes, fixed, args.seeds, args.trials, args.objective,
                  log=_log, fid_n=args.fid_n, fid_amp=args.fid_amp, fid_backend=args.fid_backend)
    print(f"best {result.objective}: {result.best_value:.4g} after {result.trials_done} trials "
          f"({result.trials_pruned} stopped early) in {result.seconds / 60:.1f} min"
          + ("" if result.defaults_value is None
             else f"; the defaults scored {result.defaults_value:.4g}"))
    print(f"settings: {out / 'best.json'}")
    print("train with: wgan train --config " + str(out / "best.json") + "   # or: "
          + " ".join(train_flags(result.best_settings)))
    return 0


def _format_results(results: dict[str, Any]) -> str:
    lines = ["evaluation:"]
    for key, value in results.items():
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        lines.append(f"  {key:<26} {shown}")
    return "\n".join(lines)


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "demo": cmd_demo,
            "classifier": cmd_classifier, "divergence": cmd_divergence, "report": cmd_report,
            "compare": cmd_compare, "tune": cmd_tune}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["train"]  # `wgan` alone runs the default job
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except WganError as err:
        if not (err.shared and os.environ.get("RANK", "0") != "0"):  # agreed: rank 0 says it
            print(f"wgan {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"wgan {args.command}: {err or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
