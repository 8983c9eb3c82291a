"""The ``wgan`` command's arguments: one subcommand per job, and one flag per
:class:`~wgan.config.Config` field, documented by the field's own help text. Parsing only;
:mod:`wgan.cli` runs the commands."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from .config import Config

_CONFIG_HINTS = typing.get_type_hints(Config)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: 'wgan train: error: ...'."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Config field, documented by the field's help text. Flags left out keep the
    value from --config or the default (argparse.SUPPRESS keeps them out of the namespace)."""
    group = parser.add_argument_group("training settings (defaults depend on --loss; "
                                      "'None' means the loss's or preset's default)")
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        hint = _CONFIG_HINTS[f.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if base is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
            if f.name == "batch_norm":
                group.add_argument("--no-bn", dest="batch_norm", action="store_false",
                                   default=argparse.SUPPRESS,
                                   help="the WGAN paper's DCGAN generator with no batch norm and "
                                        "a constant filter count (same as --no-batch-norm)")
        elif typing.get_origin(base) is tuple:
            group.add_argument(flag, type=float, nargs=2, metavar=("B1", "B2"),
                               default=argparse.SUPPRESS, help=help_text)
        else:
            group.add_argument(flag, type=base, default=argparse.SUPPRESS, help=help_text,
                               metavar=f.name.upper())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wgan", description="Train, evaluate and understand Wasserstein GANs.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    train = commands.add_parser(
        "train", help="train a GAN (default: WGAN-GP on grid25, then evaluate)",
        description="Train a WGAN, WGAN-GP, WGAN-LP or GAN. Precedence: flags > --config file > "
                    "per-loss defaults.")
    train.add_argument("--out", metavar="DIR",
                       help="new run directory (default: runs/<time>-<loss>-<data>)")
    train.add_argument("--resume", metavar="DIR",
                       help="continue this run to its total --steps (or to a new --steps)")
    train.add_argument("--config", metavar="FILE", help="settings from a .json or .toml file")
    train.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    train.add_argument("--no-report", action="store_true",
                       help="do not write RUN/report.html at the end")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                       help="stop at generator step STEP of --steps, with a checkpoint; "
                            "--resume continues to --steps. The learning-rate schedule still "
                            "spans --steps, so a run trained in pieces equals one trained at once")
    train.add_argument("--nproc", type=int, default=None, metavar="N",
                       help="train with N processes on this machine: starts torchrun "
                            "--standalone --nproc-per-node N (gloo on CPU, NCCL on GPUs); "
                            "under torchrun itself, leave it out")
    _add_config_flags(train)

    tune = commands.add_parser(
        "tune", help="search the training recipe for your data within a budget in minutes",
        description="Search the settings you do not fix (learning rate, n_critic, lambda or "
                    "the clipping bound, widths, depth, noise dimension, batch size, EMA, decay, "
                    "an image critic's normalisation) with Optuna's TPE within --minutes; the "
                    "flags you give are held. Needs the 'tune' extra (Optuna). Writes "
                    "DIR/best.json for `wgan train --config DIR/best.json`; the same command "
                    "again continues the search.")
    tune.add_argument("--minutes", type=float, required=True, help="the search's budget")
    tune.add_argument("--out", metavar="DIR",
                      help="where the study lives (default: tune/<data>-<loss>)")
    tune.add_argument("--config", metavar="FILE", help="settings from a .json or .toml file "
                                                       "(held, not searched)")
    tune.add_argument("--trials", type=int, default=None, help="stop after N trials")
    tune.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                      help="train each trial once per seed and score the worst (default: "
                           "--seed alone)")
    tune.add_argument("--objective", default=None,
                      help="the evaluation metric to optimise (default: fid, Inception FID, for "
                           "images; w1_ratio, held-out W1 over its floor, otherwise)")
    _add_fid_flags(tune, 1000, "generated and real images of each FID measurement (default "
                   "1000: a biased FID, for ranking trials, not for comparing with papers)")
    _add_config_flags(tune)

    sample = commands.add_parser("sample", help="write samples of a trained run to a file")
    sample.add_argument("run", metavar="RUN", help="run directory")
    sample.add_argument("--n", type=int, default=1000, help="number of samples (default 1000)")
    sample.add_argument("--out", required=True, metavar="FILE|DIR",
                        help="output: .npy or .csv (data units); for image runs also FILE.png "
                             "(one grid) or a folder (one PNG per sample)")
    sample.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    sample.add_argument("--force", action="store_true", help="overwrite an existing file")
    sample.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to run the generator (default: auto), whatever device "
                             "trained the run")

    evaluate = commands.add_parser("eval", help="evaluate the latest checkpoint of a run")
    evaluate.add_argument("run", metavar="RUN", help="run directory")
    evaluate.add_argument("--n", type=int, default=None,
                          help="samples for the exact W1 (default: the run's eval_samples)")
    evaluate.add_argument("--seed", type=int, default=12345, help="evaluation seed")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--classifier", metavar="FILE", default=None,
                          help="MNIST classifier for the class metrics (default: the cached one "
                               "from `wgan classifier train`)")
    evaluate.add_argument("--fid", action="store_true",
                          help="also Inception FID, KID, precision and recall (image runs; pip "
                               "install wgan[fid]; the protocol: docs/concepts.md)")
    _add_fid_flags(evaluate, 10_000, "generated and real images for FID/KID (default 10,000, "
                   "the comparable setting; about 0.1 s per image on a 2-core CPU)")
    evaluate.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                          help="where to evaluate (default: auto), whatever device trained the "
                               "run")

    report = commands.add_parser(
        "report", help="one self-contained HTML report of one or several runs",
        description="Settings, W estimate and losses over training, samples at several points "
                    "of training, and the evaluation of each run; several runs side by side "
                    "with their curves overlaid. Opens offline.")
    report.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    report.add_argument("--out", metavar="FILE.html", default=None,
                        help="where to write it (default: RUN/report.html for one run, "
                             "./report.html for several)")
    report.add_argument("--force", action="store_true",
                        help="replace an existing file that is not a wgan report")

    compare = commands.add_parser("compare", help="the settings that differ between runs and "
                                  "their final metrics, as a table")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    compare.add_argument("--json", action="store_true", help="print one JSON object")

    classifier = commands.add_parser("classifier", help="the MNIST classifier behind the image "
                                     "metrics")
    classifier_commands = classifier.add_subparsers(dest="action", metavar="ACTION",
                                                    parser_class=_Parser, required=True)
    ctrain = classifier_commands.add_parser(
        "train", help="train the MNIST classifier and cache it",
        description="Train the small CNN used for class coverage, Stacked MNIST modes and the "
                    "classifier Frechet distance; report its MNIST test accuracy.")
    ctrain.add_argument("--data-dir", metavar="DIR", default=None,
                        help="folder with the four MNIST files (default: $WGAN_DATA/mnist, "
                             "downloading if allowed)")
    ctrain.add_argument("--out", metavar="FILE", default=None,
                        help="where to save it (default: $WGAN_CACHE/mnist-classifier"
                             ".safetensors, WGAN_CACHE defaulting to ~/.cache/wgan)")
    ctrain.add_argument("--epochs", type=float, default=2.0, help="passes over the 60,000 "
                        "training digits (default 2; fractions allowed)")
    ctrain.add_argument("--train-limit", type=int, default=None, metavar="N",
                        help="use only the first N training digits (quick checks)")
    ctrain.add_argument("--threads", type=int, default=None, help="CPU threads")

    div = commands.add_parser(
        "divergence", help="KL, JS or W1 between two discrete distributions",
        description="Divergence between masses P and Q on positions 0..n-1 (comma-separated; "
                    "need not sum to 1), e.g. wgan divergence w1 3,2,1,4 1,2,4,3")
    div.add_argument("kind", choices=("kl", "js", "w1"), help="kl, js or w1")
    div.add_argument("p", metavar="P", help="comma-separated masses")
    div.add_argument("q", metavar="Q", help="comma-separated masses")

    demo = commands.add_parser("demo", help="run a worked example of the theory")
    from .demos import DEMOS

    demo.add_argument("name", choices=sorted(DEMOS), metavar="NAME",
                      help="one of: " + ", ".join(sorted(DEMOS)))
    demo.add_argument("--out", metavar="DIR", default="demo-output",
                      help="folder for the figure (default: demo-output)")
    demo.add_argument("--quick", action="store_true",
                      help="smaller budgets (what the tests use)")
    return parser


def _add_fid_flags(parser: argparse.ArgumentParser, default_n: int, n_help: str) -> None:
    """``--fid-n``, ``--fid-amp`` and ``--fid-backend``, for `wgan eval` and `wgan tune`."""
    parser.add_argument("--fid-n", type=int, default=default_n, metavar="N", help=n_help)
    parser.add_argument("--fid-amp", default="fp32", choices=("fp32", "bf16"),
                        help="the Inception network's precision (default fp32; bf16 is about "
                             "1.7-1.9x faster on CPUs with bf16 units, see benchmarks/RESULTS.md "
                             "for what it does to FID)")
    parser.add_argument("--fid-backend", default="auto", choices=("auto", "torch", "openvino"),
                        help="what runs the Inception network: PyTorch, or OpenVINO (CPU only; "
                             "the same features to about 1e-5 in fp32, about 1.5x faster; "
                             "installed by 'wgan[fid]'); default auto: OpenVINO on the CPU when "
                             "it is installed")
