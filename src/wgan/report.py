"""Seeing training: one self-contained HTML report for one or several runs, and a terminal
comparison of runs.

:func:`write_report` renders ``templates/report.html.j2`` (jinja2) with, for each run, its
settings, the W estimate and the losses over training (matplotlib, embedded as PNG data URIs),
the sample figures saved during training (2-D scatter plots over the critic's contours, or image
grids), and the evaluation. Several runs are shown side by side with their curves overlaid.
Nothing in the file is fetched from anywhere: it opens offline.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RunDirError, WganError
from .files import write_atomic
from .runs import RunDir

#: Sample figures shown per run (evenly spaced over those saved, always the last).
MAX_SNAPSHOTS = 6
_SNAPSHOT = re.compile(r"^samples-step-(\d+)\.png$")


@dataclass
class RunSummary:
    """What a report shows of one run, read from its directory."""

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, float]]
    evaluation: dict[str, Any] | None
    snapshots: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def label(self) -> str:
        c = self.config
        constraint = c.get("constraint")
        loss = c["loss"] + (f" + {constraint}" if constraint and constraint != _own(c["loss"])
                            else "")
        return f"{self.name} ({loss})"

    @property
    def wasserstein(self) -> bool:
        from .objectives import LOSSES

        loss = LOSSES.get(self.config["loss"])
        return loss is not None and loss.is_wasserstein

    @classmethod
    def load(cls, path: str | Path) -> RunSummary:
        """Read a run directory; :class:`RunDirError` (one line) if it is not a run, or has no
        checkpoint or no metrics yet."""
        run = RunDir.open(path)
        try:
            config = json.loads(run.config_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunDirError(f"{run.config_path}: unreadable config ({err})") from None
        if not isinstance(config, dict) or "loss" not in config:
            raise RunDirError(f"{run.config_path}: not a wgan config")
        if not run.checkpoints():
            raise RunDirError(f"{run.path}: run has no checkpoint yet (train it first, or wait for "
                              "its first checkpoint)")
        try:
            metrics = run.read_metrics()
        except (OSError, ValueError, csv.Error) as err:
            raise RunDirError(f"{run.metrics_path}: unreadable metrics ({err})") from None
        if not metrics:
            raise RunDirError(f"{run.path}: run has no metrics yet (no logging step reached)")
        evaluation = None
        if run.eval_path.is_file():
            try:
                evaluation = json.loads(run.eval_path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                evaluation = None
        snapshots = []
        if run.plot_dir.is_dir():
            found = sorted((int(m.group(1)), p) for p in run.plot_dir.iterdir()
                           if (m := _SNAPSHOT.match(p.name)) and p.is_file()
                           and not p.is_symlink())
            snapshots = [(step, p.read_bytes()) for step, p in _spread(found, MAX_SNAPSHOTS)]
        return cls(run.path, config, metrics, evaluation, snapshots)


def _own(loss: str) -> str:
    from .objectives import LOSSES

    return LOSSES[loss].constraint if loss in LOSSES else ""


def _spread(items: list[Any], count: int) -> list[Any]:
    """Up to ``count`` items evenly spaced, always including the last."""
    if len(items) <= count:
        return items
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in sorted(set(picks.tolist()))]


def differing_settings(runs: list[RunSummary]) -> list[str]:
    """The config fields whose values are not the same in every run."""
    keys = sorted({k for r in runs for k in r.config})
    return [k for k in keys if len({json.dumps(r.config.get(k)) for r in runs}) > 1]


# ---- figures -------------------------------------------------------------------------------------

def _png_width(data: bytes) -> int:
    """A PNG's width in pixels, from its header."""
    return int.from_bytes(data[16:20], "big") if data[:8] == b"\x89PNG\r\n\x1a\n" else 0


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def curves_figure(runs: list[RunSummary]) -> bytes:
    """The W estimate (raw, faint, and median-filtered) and the losses over training; several
    runs overlaid, one colour each. GAN runs show their discriminator loss in place of W."""
    from scipy.ndimage import median_filter

    from .plots import plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        colour = colours[i % len(colours)]
        steps = np.array([m["step"] for m in run.metrics])
        key = "wasserstein_estimate" if run.wasserstein else "critic_loss"
        values = np.array([m.get(key, math.nan) for m in run.metrics])
        label = run.label if run.wasserstein else f"{run.label}: D loss"
        left.plot(steps, values, color=colour, alpha=0.3)
        size = max(3, (len(values) // 20) | 1)
        smooth = median_filter(values, size=size, mode="nearest") if len(values) >= 3 else values
        left.plot(steps, smooth, color=colour, label=label)
        for name, style in (("critic_loss", "-"), ("generator_loss", "--")):
            right.plot(steps, [m.get(name, math.nan) for m in run.metrics], style, color=colour,
                       label=f"{run.name}: {name.replace('_', ' ')}")
    left.set_title("critic's estimate of W (raw, and median-filtered)")
    right.set_title("losses")
    for ax in (left, right):
        ax.set_xlabel("generator step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


# ---- the report ----------------------------------------------------------------------------------

_HEADLINE = ("step", "n", "w1_exact", "w1_floor", "w1_ratio", "critic_estimate", "modes_captured",
             "modes_total", "high_quality_fraction", "reverse_kl", "mode_spread", "classes_captured",
             "class_kl", "classifier_frechet", "stacked_modes", "stacked_kl", "fid", "kid", "kid_std",
             "precision", "recall")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def render_report(runs: list[RunSummary], title: str | None = None) -> str:
    """The report's HTML text (see the module docstring)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("wgan", "templates"),
                             autoescape=jinja2.select_autoescape(default=True))
    env.filters["fmt"] = _fmt
    differing = differing_settings(runs) if len(runs) > 1 else []
    evaluation_keys = [k for k in _HEADLINE if any(r.evaluation and k in r.evaluation
                                                    for r in runs)]
    extra = sorted({k for r in runs if r.evaluation for k in r.evaluation} - set(_HEADLINE)
                   - {"checkpoint"})
    return env.get_template("report.html.j2").render(
        title=title or ("wgan report: " + ", ".join(r.name for r in runs)),
        runs=runs, differing=differing, curves=_png_uri(curves_figure(runs)),
        snapshots=[[(step, _png_uri(png), _png_width(png) < 400) for step, png in r.snapshots]
                   for r in runs],
        evaluation_keys=evaluation_keys + extra,
        settings=differing + [k for k in sorted(runs[0].config) if k not in differing])


GENERATOR_MARK = '<meta name="generator" content="wgan">'


def is_report(path: Path) -> bool:
    """Whether ``path`` is a report this module wrote (so replacing it loses nothing else)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return GENERATOR_MARK in handle.read(2000)
    except OSError:
        return False


def write_report(paths: list[str | Path], out: str | Path, force: bool = False) -> Path:
    """Render the runs at ``paths`` into one HTML file ``out`` (written atomically; nothing is
    written if a run cannot be read or ``out`` cannot be written). An existing ``out`` is
    replaced only if it is an earlier report, or with ``force``."""
    if not paths:
        raise WganError("report: name at least one run directory")
    runs = [RunSummary.load(p) for p in paths]
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise WganError(f"{out}: the report must be an .html file")
    if not out.parent.is_dir():
        raise WganError(f"{out.parent}: folder for the report not found")
    if out.exists() and not force and not is_report(out):
        raise WganError(f"{out}: already exists and is not a wgan report; pass --force to "
                        "replace it")
    html = render_report(runs)
    try:
        return write_atomic(out, html)
    except OSError as err:
        raise WganError(f"{out}: cannot write the report ({err.strerror or err})") from None


# ---- wgan compare --------------------------------------------------------------------------------

def compare(paths: list[str | Path]) -> dict[str, Any]:
    """The settings that differ between runs and each run's final metrics (its evaluation, or
    its last metrics row if it was not evaluated)."""
    runs = [RunSummary.load(p) for p in paths]
    keys = differing_settings(runs)
    result: dict[str, Any] = {"runs": [str(r.path) for r in runs],
                              "differing_settings": {k: [r.config.get(k) for r in runs]
                                                     for k in keys},
                              "metrics": []}
    for r in runs:
        metrics = dict(r.evaluation) if r.evaluation else {
            k: v for k, v in r.metrics[-1].items() if k in ("step", "wasserstein_estimate",
                                                             "critic_loss", "generator_loss")}
        metrics.pop("checkpoint", None)
        result["metrics"].append(metrics)
    return result


def format_comparison(result: dict[str, Any]) -> str:
    """``compare``'s result as a terminal table: one column per run."""
    names = [Path(p).name for p in result["runs"]]
    rows = [("run", names)]
    rows += [(k, [_fmt(v) for v in values]) for k, values in
             result["differing_settings"].items()]
    rows.append(("", [""] * len(names)))
    keys = [k for k in _HEADLINE if any(k in m for m in result["metrics"])]
    keys += sorted({k for m in result["metrics"] for k in m} - set(keys))
    rows += [(k, [_fmt(m.get(k)) for m in result["metrics"]]) for k in keys]
    first = max(len(k) for k, _ in rows)
    widths = [max(len(row[1][i]) for row in rows) for i in range(len(names))]
    lines = []
    for key, values in rows:
        lines.append(f"{key:<{first}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(values, widths)))
        if key == "run":
            lines.append("-" * len(lines[-1]))
    if not result["differing_settings"]:
        lines.insert(2, "(every setting is the same)")
    return "\n".join(lines)
