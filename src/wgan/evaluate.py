"""Evaluation as a function of a generator, a critic and a dataset.

:func:`evaluate` always measures the exact W1 between generated and real samples against its
real-against-real floor (on real data the model never trained on, where the data has such), and
the critic's estimate of W. Beyond that, each dataset declares its evaluators
(``Dataset.evaluators``): mode coverage for mixtures, the MNIST classifier's metrics, and
Inception FID/KID for images when asked for (``EvalOptions.fid``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import Dataset
from .errors import ConfigError
from .metrics import mode_coverage
from .metrics.wasserstein import SolverLimitReached, w1_exact
from .models import eval_mode
from .models.packing import pack_size
from .sampling import Sampler


@dataclass
class EvalOptions:
    """What to measure beyond the defaults.

    Args:
        classifier: the MNIST classifier file (default: the cached one, if any).
        fid: also Inception FID, KID, precision and recall (image data; needs
            ``pip install wgan[fid]``).
        fid_samples: generated and real images for FID/KID (10,000 is the comparable setting).
        fid_amp: the Inception network's precision, ``"fp32"`` or ``"bf16"``.
        fid_backend: what runs the Inception network: ``"auto"``, ``"torch"`` or ``"openvino"``
            (:func:`wgan.metrics.inception_network.resolve_backend`).
        log: where one-line notes go.
    """

    classifier: str | Path | None = None
    fid: bool = False
    fid_samples: int = 10_000
    fid_amp: str = "fp32"
    log: Callable[[str], None] = print
    fid_backend: str = "auto"


@dataclass
class EvalContext:
    sampler: Sampler
    data: Dataset
    n: int
    seed: int
    options: EvalOptions

    @property
    def device(self) -> torch.device:
        return self.sampler.device


def evaluate(sampler: Sampler, data: Dataset, critic: nn.Module | None = None,
             raw_sampler: Sampler | None = None, n: int = 2000, seed: int = 12345,
             options: EvalOptions | None = None) -> dict[str, Any]:
    """Evaluate the generator behind ``sampler`` on ``data``.

    Args:
        sampler: draws the samples evaluated (the moving average of the generator, if any).
        data: the real data.
        critic: for ``critic_estimate``, ``mean f(real) - mean f(fake)`` on fresh samples, with
            the fakes from ``raw_sampler`` (the raw generator the critic was trained against).
        n: samples on each side of the exact W1 (fewer if the held-out data has fewer).
        seed: every random draw of the evaluation derives from it.
        options: extra metrics.
    """
    options = options or EvalOptions()
    if options.classifier is not None and not CLASSIFIER_EVALUATORS & set(data.evaluators):
        raise ConfigError(f"the MNIST classifier metrics need mnist or stacked-mnist data, not "
                          f"{data.name!r}")
    if options.fid and "inception" not in data.evaluators:
        raise ConfigError(f"Inception FID needs image data, not {data.name!r} with samples of "
                          f"shape {tuple(data.sample_shape)}")
    rng = torch.Generator(device=data.device).manual_seed(seed)
    reference, other = data.reference_samples(n, rng)
    n = len(reference)
    reference = data.to_data_units(reference).cpu()
    other = data.to_data_units(other).cpu()
    fake = sampler.sample(n, seed=seed + 1)
    results: dict[str, Any] = {"n": n}
    try:
        results["w1_exact"] = w1_exact(fake, reference)
        results["w1_floor"] = _w1_floor(data, n, seed, other, reference)
        results["w1_ratio"] = results["w1_exact"] / max(results["w1_floor"], 1e-12)
    except SolverLimitReached as err:
        results.update(w1_exact=None, w1_floor=None, w1_ratio=None, w1_note=str(err))
    if critic is not None:
        results["critic_estimate"] = critic_estimate(critic, raw_sampler or sampler, data, n,
                                                     seed + 2)
    context = EvalContext(sampler, data, n, seed, options)
    for name in data.evaluators:
        results.update(EVALUATORS[name](context))
    return results


#: Each dataset's W1 floors by (n, seed): the two real samples depend on nothing else, so a run
#: that evaluates often (``wgan tune``'s reports, a curve) solves each transport problem once.
_FLOORS: weakref.WeakKeyDictionary[Dataset, dict[tuple[int, int], float]] = (
    weakref.WeakKeyDictionary())


def _w1_floor(data: Dataset, n: int, seed: int, other: torch.Tensor, reference: torch.Tensor
              ) -> float:
    floors = _FLOORS.setdefault(data, {})
    if (n, seed) not in floors:
        floors[(n, seed)] = w1_exact(other, reference)
    return floors[(n, seed)]


@torch.no_grad()
def critic_estimate(critic: nn.Module, sampler: Sampler, data: Dataset, n: int, seed: int
                    ) -> float:
    """``mean f(real) - mean f(fake)`` on ``n`` fresh real samples and ``n`` generated ones, in
    eval mode (batch-norm statistics and spectral-norm vectors stay as they are). A packed
    critic scores packs: ``n`` is then rounded down to whole packs."""
    rng = torch.Generator(device=data.device).manual_seed(seed)
    m = pack_size(critic)
    n, chunk = n - n % m, 1024 - 1024 % m
    total, scores, done = 0.0, 0, 0
    with eval_mode(critic):
        while done < n:
            b = min(chunk, n - done)
            real = data.sample(b, rng).to(sampler.device)
            fake = sampler.sample(b, seed=seed + 1 + done, data_units=False).to(sampler.device)
            real_scores, fake_scores = critic(real).float(), critic(fake).float()
            total += float(real_scores.sum() - fake_scores.sum())
            scores += len(real_scores)
            done += b
    return total / max(scores, 1)


# ---- the evaluators datasets declare ---------------------------------------------------------

def mode_metrics(context: EvalContext) -> dict[str, Any]:
    """Modes captured and high-quality fraction on 2,500 samples (PacGAN/VEEGAN protocol)."""
    modes = context.data.modes
    samples = context.sampler.sample(2500, seed=context.seed + 3)
    return mode_coverage(samples, modes.centres, modes.std).to_dict()


def _classifier(context: EvalContext) -> Any:
    from .metrics import classifier as clf

    path = context.options.classifier
    if path is None:
        path = clf.default_classifier_path()
        if not path.is_file():
            context.options.log(f"note: no MNIST classifier at {path}, so no class metrics; train "
                                "one with: wgan classifier train")
            return None
    model, test_accuracy = clf.load_classifier(path)
    return model.to(context.device), test_accuracy


def mnist_class_metrics(context: EvalContext) -> dict[str, Any]:
    """Classes captured, KL of the class histogram from uniform, and the classifier Frechet
    distance between generated and held-out real digits."""
    from .metrics import classifier as clf

    loaded = _classifier(context)
    if loaded is None:
        return {}
    model, accuracy = loaded
    rng = torch.Generator(device=context.data.device).manual_seed(context.seed + 5)
    real, _ = context.data.reference_samples(context.n, rng)
    fake = context.sampler.sample(len(real), seed=context.seed + 4, data_units=False)
    fake, real = fake.to(context.device), real.to(context.device)
    results: dict[str, Any] = {"classifier_test_accuracy": accuracy}
    results.update(clf.class_metrics(clf.predict(model, fake)[0]))
    results["classifier_frechet"] = clf.classifier_frechet(model, real, fake)
    return results


def stacked_mnist_metrics(context: EvalContext) -> dict[str, Any]:
    """Modes (digit triples) captured of 1,000 and their KL from uniform, on 26,000 samples."""
    from .metrics import classifier as clf

    loaded = _classifier(context)
    if loaded is None:
        return {}
    model, accuracy = loaded
    fake = context.sampler.sample(clf.STACKED_SAMPLES, seed=context.seed + 4, data_units=False)
    return {"classifier_test_accuracy": accuracy,
            **clf.stacked_mnist_metrics(model, fake.to(context.device))}


def inception_metrics(context: EvalContext) -> dict[str, Any]:
    """Inception FID, KID, precision and recall against the real data, when asked for
    (``--fid``)."""
    if not context.options.fid:
        return {}
    from .metrics import inception

    return inception.fid_kid(context.sampler, context.data, context.options.fid_samples,
                             context.seed + 6, context.device, log=context.options.log,
                             amp=context.options.fid_amp, backend=context.options.fid_backend)


#: The evaluators that label samples with the MNIST classifier (`_classifier`).
CLASSIFIER_EVALUATORS = frozenset({"mnist-classes", "stacked-mnist"})

EVALUATORS: dict[str, Callable[[EvalContext], dict[str, Any]]] = {
    "modes": mode_metrics,
    "mnist-classes": mnist_class_metrics,
    "stacked-mnist": stacked_mnist_metrics,
    "inception": inception_metrics,
}
assert CLASSIFIER_EVALUATORS <= set(EVALUATORS)
