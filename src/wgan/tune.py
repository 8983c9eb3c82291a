"""Hyper-parameter search over the training recipe, within a budget in minutes (``wgan tune``).

Optuna's TPE sampler draws the settings of each trial from :data:`SPACE` (:data:`IMAGE_SPACE` for
the convolutional models) -- only the settings the user did not fix: a flag given to ``wgan tune``
is held, not searched. A trial trains one run per seed with those settings (no run directory is
written) and is scored by an evaluation metric: by default the held-out W1 over its floor for
vectors, Inception FID on ``fid_n`` images for images. Over several seeds the score is the
*worst* seed's, so that the search favours a recipe that holds on every seed rather than one that
is lucky on one. Twice during training the trial reports the metric so far, and Optuna's median
pruner stops a trial that is worse than the median of earlier trials at the same point. When the
budget is spent, the trial in flight is stopped and not counted. The first trial of a new study
trains with the defaults (what ``wgan train`` would use), so every search says whether it beat
them.

The study is kept in ``DIR/study.db`` (SQLite, through Optuna's storage), so the same command run
again continues it with what it learned (and refuses other settings). ``DIR/best.json`` is the
best trial's full config, ready for ``wgan train --config DIR/best.json``; ``DIR/trials.json``
lists every trial, rewritten after each.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, field_roles
from .constraints import CONSTRAINTS
from .errors import ConfigError, TrainingDiverged
from .loop import Callback

#: What a trial may draw, by Config field: ("int", low, high), ("log", low, high) for a float
#: drawn on a log scale, or ("choice", options). ``gp_lambda`` is drawn only for the losses and
#: constraints that use it; ``noise_dim`` only among sizes at least the data's dimension. Widths
#: stop at 192 so that a trial costs at most a few times the ``toy`` recipe (a 256 x 4 MLP at
#: batch 64 reached step 2,000 in about 3 minutes here; the recipe trained two seeds of 3,000
#: steps, with its evaluations, in 214 s); give ``--width``/``--depth`` to hold larger networks.
SPACE: dict[str, tuple[Any, ...]] = {
    "lr": ("log", 1e-4, 3e-3),
    "n_critic": ("int", 1, 5),
    "gp_lambda": ("log", 0.1, 10.0),
    "width": ("choice", (64, 96, 128, 192)),
    "depth": ("choice", (2, 3, 4)),
    "noise_dim": ("choice", (2, 4, 8, 16)),
    "batch_size": ("choice", (64, 128, 256, 512)),
    "ema": ("choice", (0.0, 0.99, 0.999)),
    "lr_decay": ("choice", ("none", "linear", "linear-generator")),
    "clip": ("log", 0.003, 0.1),
}

#: What a trial may draw for the convolutional models (DCGAN, ResNet): no depth (the side of the
#: image fixes it), noise sizes around the papers' 100 and 128, channel widths around DCGAN's 64,
#: the batch sizes and moving averages the image papers use, and the critic's normalisation (the
#: WGAN paper's DCGAN critic has batch norm; a penalty refuses it, so there it is none or
#: layer). The generator's width is drawn apart from the critic's (MNIST: twice the critic's
#: width gave FID 7.28 against 7.68 over three seeds, sessions 25-26); ``--width`` given holds
#: both, as it sets both. The clipping bound spans the wide range of Lucic et al. 2018's search
#: (1e-3 to 1, for an MNIST critic of two convolutions and a 1,024-unit layer; the WGAN paper's
#: 0.01 lies inside). Each trial of MNIST's DCGAN costs minutes on a CPU (about 3 generator
#: steps/s at width 64): give ``--steps`` a budget.
IMAGE_SPACE: dict[str, tuple[Any, ...]] = {
    "lr": ("log", 2e-5, 1e-3),
    "n_critic": ("int", 1, 5),
    "gp_lambda": ("log", 1.0, 30.0),
    "clip": ("log", 0.001, 1.0),
    "width": ("choice", (32, 48, 64, 96, 128)),
    "generator_width": ("choice", (32, 48, 64, 96, 128)),
    "noise_dim": ("choice", (32, 64, 100, 128)),
    "batch_size": ("choice", (32, 64, 128)),
    "ema": ("choice", (0.0, 0.99, 0.999, 0.9999)),
    "lr_decay": ("choice", ("none", "linear", "linear-generator")),
    "critic_norm": ("choice", ("none", "layer", "batch")),
}

#: Metrics a search may optimise: their direction, and the evaluator of
#: :data:`wgan.evaluate.EVALUATORS` the data must have for them (``None``: every dataset).
OBJECTIVES: dict[str, tuple[str, str | None]] = {
    "w1_ratio": ("minimize", None), "w1_exact": ("minimize", None),
    "reverse_kl": ("minimize", "modes"), "high_quality_fraction": ("maximize", "modes"),
    "classifier_frechet": ("minimize", "mnist-classes"), "class_kl": ("minimize", "mnist-classes"),
    "stacked_kl": ("minimize", "stacked-mnist"), "stacked_modes": ("maximize", "stacked-mnist"),
    "fid": ("minimize", "inception"),
}

#: What each evaluator is, for the message when the data lacks it.
_NEEDS = {"modes": "the built-in 2-D mixtures", "mnist-classes": "mnist data",
          "stacked-mnist": "stacked-mnist data",
          "inception": "image data"}


@dataclass
class TuneResult:
    best_value: float
    best_settings: dict[str, Any]  # the best trial's draws; DIR/best.json has its whole config
    trials_done: int
    trials_pruned: int
    seconds: float
    defaults_value: float | None = None  # the defaults' score (trial 0), when it finished
    objective: str = "w1_ratio"  # what was optimised


class _Deadline(Exception):
    """The search's budget ran out during a trial."""


class _TrialWatch(Callback):
    """Reports the objective to Optuna at the given steps (the pruner may stop the trial) and
    stops training when the search's deadline passes."""

    def __init__(self, trial: Any, report_steps: set[int], measure: Callable[[Any], float],
                 deadline: float):
        self.trial, self.report_steps, self.measure = trial, report_steps, measure
        self.deadline = deadline

    def on_step_end(self, trainer: Any, losses: dict) -> None:
        if time.monotonic() > self.deadline:
            raise _Deadline
        if trainer.step in self.report_steps:
            import optuna

            self.trial.report(self.measure(trainer), trainer.step)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {trainer.step}")


def _free_space(resolved: Config, fixed: set[str]) -> dict[str, tuple[Any, ...]]:
    """The part of the search space a search draws (:data:`IMAGE_SPACE` for the convolutional
    models, :data:`SPACE` for the MLP): what ``fixed`` leaves free (a fixed width fixes the
    generator's too), a constraint's settings (lambda, the clipping bound) only where the
    (resolved) constraint reads them, and no batch norm in a critic whose constraint treats
    samples one by one (a gradient penalty)."""
    space = SPACE if resolved.model == "mlp" else IMAGE_SPACE
    if "width" in fixed:  # --width sets the generator's width too, unless that is given apart
        fixed = {*fixed, "generator_width"}
    owned = {name for constraint in CONSTRAINTS.values() for name in constraint.settings}
    used = CONSTRAINTS[resolved.constraint].settings
    free = {name: spec for name, spec in space.items()
            if name not in fixed and (name not in owned or name in used)}
    if "critic_norm" in free and CONSTRAINTS[resolved.constraint].per_sample:
        free["critic_norm"] = ("choice", tuple(o for o in free["critic_norm"][1] if o != "batch"))
    return free


def default_objective(evaluators: tuple[str, ...]) -> str:
    """What a search optimises unless told: Inception FID where the data has it (images), the
    held-out W1 over its floor otherwise."""
    return "fid" if OBJECTIVES["fid"][1] in evaluators else "w1_ratio"


def suggest(trial: Any, space: dict[str, tuple[Any, ...]], data_dim: int | None
            ) -> dict[str, Any]:
    """The settings ``trial`` draws from ``space``."""
    settings: dict[str, Any] = {}
    for name, (kind, *spec) in space.items():
        if kind == "int":
            settings[name] = trial.suggest_int(name, spec[0], spec[1])
        elif kind == "log":
            settings[name] = trial.suggest_float(name, spec[0], spec[1], log=True)
        else:
            settings[name] = trial.suggest_categorical(name, _options(name, spec[0], data_dim))
    return settings


def _options(name: str, options: tuple, data_dim: int | None) -> tuple:
    """A choice's options; noise sizes from the data's dimension up (the dimension included)."""
    if name == "noise_dim" and data_dim:
        return tuple(sorted({o for o in options if o >= data_dim} | {data_dim}))
    return options


def default_settings(resolved: Config, space: dict[str, tuple[Any, ...]],
                     data_dim: int | None) -> dict[str, Any] | None:
    """What wgan would use without a search (``resolved``: the defaults filled in), for the
    settings ``space`` draws: the first trial of a new study, so that every search is measured
    against the defaults. ``None`` when a default lies outside the space (e.g. the image
    recipe's z in R^100)."""
    settings = {}
    for name, (kind, *spec) in space.items():
        value = getattr(resolved, name)
        inside = (spec[0] <= value <= spec[1] if kind in ("int", "log")
                  else value in _options(name, spec[0], data_dim))
        if not inside:
            return None
        settings[name] = value
    return settings


def tune(base: Config, out: str | Path, minutes: float, fixed: set[str] = frozenset(),
         seeds: tuple[int, ...] | None = None, trials: int | None = None,
         objective: str | None = None, log: Callable[[str], None] = print,
         fid_n: int = 1000, fid_amp: str = "fp32", fid_backend: str = "auto") -> TuneResult:
    """Search the recipe for ``base`` (see the module docstring). ``fixed`` names the Config
    fields the user set, which are not searched; ``seeds`` defaults to ``(base.seed,)``;
    ``objective`` to :func:`default_objective`. ``fid_n``, ``fid_amp`` and ``fid_backend``: the
    generated and real images of each FID measurement, the Inception network's precision and what
    runs it (objective ``fid``; the real images' features are computed once and cached)."""
    import optuna

    if objective is not None and objective not in OBJECTIVES:
        raise ConfigError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if minutes <= 0:
        raise ConfigError(f"--minutes must be positive, got {minutes}")
    if fid_n < 2:
        raise ConfigError(f"--fid-n must be >= 2, got {fid_n}")
    base.validate()
    from .data import load_dataset

    dataset = load_dataset(base)  # bad data fails here, before the study exists
    shape = dataset.sample_shape
    objective = objective or default_objective(tuple(dataset.evaluators))
    needs = OBJECTIVES[objective][1]
    if needs is not None and needs not in dataset.evaluators:
        raise ConfigError(f"--objective {objective} needs {_NEEDS[needs]}; {base.data} has "
                          f"samples of shape {tuple(shape)}")
    from .evaluate import CLASSIFIER_EVALUATORS

    if needs in CLASSIFIER_EVALUATORS:  # else every trial would train, then fail
        from .metrics.classifier import default_classifier_path

        if not default_classifier_path().is_file():
            raise ConfigError(f"--objective {objective} needs the MNIST classifier at "
                              f"{default_classifier_path()}; train one with: wgan classifier train")
    fid_options: dict[str, Any] = {}
    if objective == "fid":
        from .metrics.inception_network import resolve_backend, weights_path
        from .runtime import resolve_device

        weights_path()  # the network is installed, or one line saying how to install it
        fid_backend = resolve_backend(fid_backend, resolve_device(base.device))
        fid_options = {"fid_n": fid_n, "fid_amp": fid_amp}
        if fid_amp == "bf16" and fid_backend == "openvino":  # in fp32 both give the same FID
            fid_options["fid_backend"] = fid_backend
    seeds = tuple(seeds or (base.seed,))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    direction = OBJECTIVES[objective][0]
    worst = max if direction == "minimize" else min
    start = time.monotonic()
    deadline = start + 60.0 * minutes

    from .train import Trainer

    data_dim = shape[0] if len(shape) == 1 else None
    resolved = base.resolve(tuple(shape))
    space = _free_space(resolved, fixed)

    def measure(trainer: Any) -> float:
        value = trainer.evaluate(fid=objective == "fid", fid_samples=fid_n,
                                 fid_amp=fid_amp, fid_backend=fid_backend).get(objective)
        if value is None or not math.isfinite(value):
            raise ConfigError(f"--objective {objective} is not measured on {base.data}")
        return float(value)

    def run_trial(trial: Any) -> float:
        settings = suggest(trial, space, data_dim)
        config = base.replace(**settings)
        scores = []
        for index, seed in enumerate(seeds):
            trainer = Trainer(config.replace(seed=seed), log=lambda m: None)
            steps = trainer.config.steps
            report_at = {max(1, steps // 3), max(1, 2 * steps // 3)} if index == 0 else set()
            watch = _TrialWatch(trial, report_at, measure, deadline)
            try:
                trainer.fit(callbacks=[watch], progress=False)
            except TrainingDiverged as err:
                trial.set_user_attr("diverged", str(err))
                raise optuna.TrialPruned(f"diverged: {err}") from None
            scores.append(measure(trainer))
        trial.set_user_attr("scores", scores)
        return worst(scores)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="wgan-tune", storage=f"sqlite:///{(out / 'study.db').resolve()}",
        load_if_exists=True, direction=direction,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4))
    before = len(study.trials)
    # A continued study draws on from where it stopped, not the same random trials again.
    study.sampler = optuna.samplers.TPESampler(seed=base.seed + before, n_startup_trials=6)
    asked = json.loads(json.dumps(_what_is_searched(base, seeds, objective, fid_options)))
    if before and study.user_attrs.get("asked") != asked:
        difference = _first_difference(study.user_attrs.get("asked"), asked)
        raise ConfigError(f"{out} holds a search for other settings ({difference}); give "
                          "another --out")
    study.set_user_attr("asked", asked)
    log(f"tuning into {out} for {minutes:g} minutes"
        + (f", continuing {before} trials" if before else "")
        + f" (held: {', '.join(sorted(fixed)) or 'none'})")
    if before == 0:
        defaults = default_settings(resolved, space, data_dim)
        if defaults is None:
            log("the defaults lie outside the search space: no trial of them for comparison")
        else:
            study.enqueue_trial(defaults, user_attrs={"defaults": True})
            log("trial 0 trains with the defaults, for comparison")

    def announce(study: Any, trial: Any) -> None:
        complete = trial.state == optuna.trial.TrialState.COMPLETE
        shown = f"{objective} {trial.value:.4g}" if complete else _why_stopped(trial)
        settings = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        log(f"trial {trial.number}: {shown} ({trial.duration.total_seconds():.0f} s) {settings}")
        _write_trials(out / "trials.json", study.trials, objective)  # as it goes

    def stop_at_deadline(study: Any, trial: Any) -> None:
        if time.monotonic() > deadline:
            study.stop()

    def guarded(trial: Any) -> float:
        try:
            return run_trial(trial)
        except _Deadline:
            trial.set_user_attr("cut_by_budget", True)
            raise optuna.TrialPruned("the budget ran out") from None

    study.optimize(guarded, n_trials=trials, callbacks=[announce, stop_at_deadline],
                   catch=())
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    _write_trials(out / "trials.json", study.trials, objective)
    if not done:
        raise ConfigError(f"no trial finished within {minutes:g} minutes: give a larger "
                          "--minutes or fewer --steps")
    best = study.best_trial
    base.replace(**best.params).save(out / "best.json")
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials[before:])
    baseline = next((t.value for t in done if t.user_attrs.get("defaults")), None)
    return TuneResult(best.value, dict(best.params), len(study.trials) - before - pruned, pruned,
                      time.monotonic() - start, baseline, objective)


def _what_is_searched(base: Config, seeds: tuple[int, ...], objective: str,
                      objective_options: dict[str, Any]) -> dict[str, Any]:
    """What a study's trials depend on: the settings except those that change only speed or
    logging (threads, device, checkpoints...), the seeds, the objective and how it is measured
    (FID's image count and precision). A study continues only with the same."""
    roles = field_roles()
    settings = {k: v for k, v in base.to_dict().items()
                if roles[k] not in ("runtime", "logging") or k in ("amp", "eval_samples")}
    return {"settings": settings, "seeds": list(seeds), "objective": objective,
            **objective_options}


def _first_difference(stored: Any, asked: dict[str, Any]) -> str:
    if not isinstance(stored, dict):
        return "made by another version"
    for group in ("seeds", "objective", "fid_n", "fid_amp", "fid_backend"):
        if stored.get(group) != asked.get(group):
            return f"{group} {stored.get(group)} there, {asked.get(group)} here"
    there, here = stored.get("settings", {}), asked["settings"]
    name = next((k for k in sorted(set(there) | set(here)) if there.get(k) != here.get(k)), None)
    return f"{name} {there.get(name)} there, {here.get(name)} here" if name else "unknown"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _why_stopped(trial: Any) -> str:
    if trial.user_attrs.get("cut_by_budget"):
        return "stopped: the budget ran out"
    if "diverged" in trial.user_attrs:
        return "stopped: diverged"
    return f"pruned (worse than the median at step {trial.last_step})"


def _write_trials(path: Path, trials: list, objective: str) -> None:
    import optuna

    complete = optuna.trial.TrialState.COMPLETE
    rows = [{"number": t.number, "state": t.state.name,
             objective: t.value if t.state == complete else None,
             "last_reported": None if t.last_step is None else t.intermediate_values[t.last_step],
             "scores": t.user_attrs.get("scores"), "settings": t.params,
             "seconds": None if t.duration is None else round(t.duration.total_seconds(), 1),
             **{k: v for k, v in t.user_attrs.items() if k != "scores"}} for t in trials]
    path.write_text(json.dumps(rows, indent=2))


def train_flags(settings: dict[str, Any]) -> list[str]:
    """The ``wgan train`` flags that set ``settings`` (floats written in full)."""
    return [part for name, value in settings.items()
            for part in (f"--{name.replace('_', '-')}", repr(value) if isinstance(value, float)
                         else str(value))]
