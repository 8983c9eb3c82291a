"""Where defaults come from: the papers' settings per loss and per constraint, the architectures'
defaults, and the named recipes (presets), layered by :func:`fill_defaults` for
:meth:`wgan.config.Config.resolve`.

Order, first match wins: the preset's settings for the model with the constraint, for the
constraint, and for every loss; the constraint's defaults (only when it is not the loss's own);
the loss's; the architecture's; then :data:`BASE_DEFAULTS`.
"""

from __future__ import annotations

from typing import Any

from .algorithm import boosted_critic_iterations
from .objectives import LOSSES
from .shapes import image_plan

#: The papers' settings for each loss (WGAN: Arjovsky et al. 2017, Algorithm 1; WGAN-GP and
#: WGAN-LP: Gulrajani et al. 2017, Algorithm 1; GAN: Radford et al. 2016 / Goodfellow et al. 2014).
LOSS_DEFAULTS: dict[str, dict[str, Any]] = {
    "wgan": {"optimizer": "rmsprop", "lr": 5e-5, "betas": (0.5, 0.999), "n_critic": 5,
             "critic_boost": True, "gp_lambda": 10.0},
    "wgan-gp": {"optimizer": "adam", "lr": 1e-4, "betas": (0.0, 0.9), "n_critic": 5,
                "critic_boost": False, "gp_lambda": 10.0},
    "wgan-lp": {"optimizer": "adam", "lr": 1e-4, "betas": (0.0, 0.9), "n_critic": 5,
                "critic_boost": False, "gp_lambda": 10.0},
    "gan": {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "n_critic": 1,
            "critic_boost": False, "gp_lambda": 10.0},
    "gan-ns": {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "n_critic": 1,
               "critic_boost": False, "gp_lambda": 10.0},
}
assert set(LOSS_DEFAULTS) == set(LOSSES)

#: Settings a constraint brings when it replaces the loss's own. Spectral normalisation: Miyato
#: et al. 2018, Table 1's setting (C): Adam 2e-4, betas (0.5, 0.999), n_dis 5 -- no critic
#: boost, which is the clipped critic's remedy.
CONSTRAINT_DEFAULTS: dict[str, dict[str, Any]] = {
    "spectral": {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "critic_boost": False},
    "gp": {"optimizer": "adam", "lr": 1e-4, "betas": (0.0, 0.9), "critic_boost": False},
    "lp": {"optimizer": "adam", "lr": 1e-4, "betas": (0.0, 0.9), "critic_boost": False},
}

#: Values used when nothing else sets a field.
BASE_DEFAULTS: dict[str, Any] = {
    "model": "mlp",
    "steps": 20000,
    "batch_size": 64,
    "width": 512,
    "depth": 4,
    "noise_dim": 64,
    "ema": 0.0,
    "lr_decay": "none",
    "penalty_every": 1,
    "clip": 0.01,
    "critic_norm": "none",
}

#: Defaults of each architecture (DCGAN: Radford et al. 2016; ResNet: Gulrajani et al. 2017;
#: InfoGAN's: Lucic et al. 2018's 64-dimensional latent).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "dcgan": {"width": 64, "noise_dim": 100},
    "infogan": {"width": 64, "noise_dim": 64},
    "resnet": {"width": 128, "noise_dim": 128},
}

#: The toy recipe's penalty settings. From `wgan tune --objective high_quality_fraction` on
#: ``grid16-rotated`` (a rotated 4 x 4 grid: data the recipe is not judged on) with three critic
#: steps held (benchmarks/RESULTS.md, session 29): lr 2.34e-3, lambda 0.126, z in R^2, generator
#: EMA 0.999, against the earlier recipe's five critic steps, lr 1.7e-3, lambda 0.5 and z in R^4
#: (session 6's search by held-out W1). Judged on grid25 and ring8 over seeds 0-4: 92.8% and
#: 97.6% high quality (worst seeds 91.9% and 97.2%) against 89.2% and 96.4%, in about 0.6 times
#: the wall time; users' data within 1.5x of the held-out W1 floor on every shape and seed at
#: 3,000, 5,000 and 20,000 steps (sessions 29-30). EMA 0.999 (session 11): at these step sizes
#: the raw generator jitters, and a shorter average let it thin moons and heavy tails. The
#: average's warm-up (``wgan.ema``: at most (1 + t) / (10 + t) after t updates) reaches 0.999
#: only after about 9,000 steps, so in a 5,000-step run it averages roughly the last tenth of it.
#: Measured for WGAN-GP; WGAN-LP shares it (session 30, seeds 0-4: grid25 91.9%, ring8 97.4%);
#: the other losses keep the shared settings. 10,000 steps with the penalty on every third critic
#: step (``penalty_every``: lazy, weighed 3 times; session 32): grid25 96.2% (worst seed 95.4%)
#: and ring8 98.0% (worst 97.4%) over seeds 0-4, against 92.8% and 97.6% at 5,000 steps with
#: the penalty on every step, for about 1.5 times the default job's wall time; users' data
#: within 1.5x of the held-out W1 floor on every shape and seed at 3,000, 10,000 and 20,000
#: steps with it. The lazy penalty yields to every step where a user's ``n_critic`` (or the
#: critic boost) is not a multiple of 3.
_TOY_PENALTY = {"lr": 2.34e-3, "betas": (0.5, 0.9), "gp_lambda": 0.126, "ema": 0.999,
                "n_critic": 3, "noise_dim": 2, "steps": 10000, "penalty_every": 3}

#: The image recipe's settings for the DCGAN with the gradient penalty, from `wgan tune` on MNIST
#: at 3,000 steps (benchmarks/RESULTS.md, session 16; FID@1,000 25.2 against the paper settings'
#: 49.4), then run over the full 15,600 steps (sessions 17-19): MNIST FID 7.68, the mean of
#: seeds 0-2, against 13.45 with the paper's settings (Lucic et al.'s protocol; their best: 6.7),
#: and on Fashion-MNIST, which the search never saw, a mean of 16.76 over seeds 0-2 (session 18)
#: against 25.39. A 9x larger step size than the paper's, one critic step fewer, half the
#: penalty weight and a smaller latent. No learning-rate decay: decaying both rates (or the
#: generator's) to 0 over the 15,600 steps gave MNIST FID 8.25 (8.82) on seed 0, against 7.61
#: (session 20). Measured for the DCGAN only: a ResNet or an MLP on images keeps the paper's
#: settings. The generator at twice the critic's width (128 against 64; sessions 25-26): MNIST
#: FID 7.28, the mean of seeds 0-2 (7.13, 7.29, 7.40), against 7.68, for about 1.5 times the
#: training time; on Fashion-MNIST, where the width was not chosen, 15.83 against 16.76 (seeds
#: 0-2, sessions 27-28). A given ``--width`` sizes both networks again (the 128 goes with the 64).
_IMAGE_DCGAN_PENALTY = {"lr": 9.2e-4, "n_critic": 4, "gp_lambda": 4.8, "noise_dim": 32,
                        "generator_width": 128}

#: The image recipe's settings for the DCGAN with weight clipping, from inside Lucic et al.'s
#: search ranges for WGAN (their code, google/compare_gan: Adam with beta1 0.5, one critic
#: update a generator update, a clipping bound from 1e-2 to 1, batch norm in the critic or not):
#: Adam 2e-4 with betas (0.5, 0.999), bound 0.1, one critic step, no critic boost, a
#: batch-normalised critic, and (as with the penalty) a generator twice the critic's width. MNIST
#: FID over the full budget (benchmarks/RESULTS.md): 23.27, the mean of seeds 0-2 (24.20, 23.51,
#: 22.11; sessions 37-38), in 23-24 minutes of training a seed; the generator at the critic's
#: width 64 scored 25.43 (26.68, 26.03, 23.58; session 36: lower with 128 on every seed, by 1.5 to
#: 2.5) in 11-13 minutes; the WGAN paper's settings 39.7 (RMSProp 5e-5, bound 0.01, five critic
#: steps with the boost; seed 0, session 9) and 29.1 without the batch norm (seed 0, session 35),
#: in about 58 minutes (session 9, on another machine). Fashion-MNIST, where the settings were
#: not chosen, 24.37 over seeds 0-2 at generator width 64 (sessions 36-37) against the paper
#: settings' 90.5; width 128 not yet measured there. The price, on MNIST: the critic's
#: objective follows FID less closely (one critic step leaves it far from its optimum); five
#: critic steps restore the tracking but scored 29.0 against 26.7 on seed 0 (width 64) in 3.8
#: times the training (session 37). With batch norm every convolution but the first is rescaled
#: by the next normalisation, so the bound acts on the first layer, the normalisations' scales
#: and the last.
_IMAGE_DCGAN_CLIP = {"optimizer": "adam", "lr": 2e-4, "betas": (0.5, 0.999), "clip": 0.1,
                     "n_critic": 1, "critic_boost": False, "critic_norm": "batch",
                     "generator_width": 128}

#: The same clipping settings for ``--model infogan`` (InfoGAN's MNIST architecture, Lucic et
#: al.'s; its generator at the critic's width), the ``image`` preset's model with clipping: MNIST
#: FID 6.53, the mean of seeds 0-2 (6.52, 6.52, 6.56; sessions 38-39; Lucic et al.'s best WGAN:
#: 6.7), precision 0.56, recall 0.67, against 23.27 for the DCGAN layer above, in 26-32 minutes
#: of training a seed. On Fashion-MNIST, where the settings were not chosen, 11.05, the mean of
#: seeds 0-2 (10.87, 10.90, 11.37; sessions 39-40; Lucic et al.'s best WGAN there: 21.5), against
#: 24.37 for the DCGAN (width 64).
_IMAGE_INFOGAN_CLIP = {k: v for k, v in _IMAGE_DCGAN_CLIP.items() if k != "generator_width"}

#: Named recipes: settings for every loss ("all"), then per-constraint settings ("gp") and
#: per-model-and-constraint settings ("dcgan:gp"), the most specific first. ``paper`` is the
#: WGAN paper's MLP experiment as published; ``toy`` is the recipe found by measurement for
#: low-dimensional data (benchmarks/toy_quality.py; numbers in README); ``none`` adds nothing.
#: ``image`` is what the image tables measured. ``auto`` (the default) picks by the data's shape:
#: see :func:`is_low_dimensional` and :func:`is_image`.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "none": {"all": {}},
    "paper": {"all": {"model": "mlp", "batch_size": 64, "width": 512, "depth": 4,
                      "noise_dim": 100, "ema": 0.0, "lr_decay": "none"}},
    "toy": {"all": {"steps": 5000, "batch_size": 256, "width": 128, "depth": 3,
                    "noise_dim": 4, "ema": 0.99, "lr_decay": "linear"},
            "gp": _TOY_PENALTY, "lp": _TOY_PENALTY},
    # What the image tables measured (benchmarks/image_quality.py; numbers in RESULTS.md):
    # DCGAN with the loss's own optimiser settings, generator EMA 0.999, and Lucic et al.'s
    # budget of 20 epochs of 50,000 images at batch 64 (15,600 generator steps); for the DCGAN
    # with the gradient penalty, the searched settings of :data:`_IMAGE_DCGAN_PENALTY`; with
    # weight clipping the InfoGAN architecture and :data:`_IMAGE_INFOGAN_CLIP` (a DCGAN asked
    # for gets :data:`_IMAGE_DCGAN_CLIP`).
    "image": {"all": {"model": "dcgan", "steps": 15600, "ema": 0.999},
              "clip": {"model": "infogan"},
              "dcgan:gp": _IMAGE_DCGAN_PENALTY, "dcgan:clip": _IMAGE_DCGAN_CLIP,
              "infogan:clip": _IMAGE_INFOGAN_CLIP},
}
TOY_DATA = ("ring8", "grid25", "grid16-rotated", "swissroll")
#: Vectors of at most this many dimensions get the ``toy`` recipe under ``--preset auto``.
LOW_DIMENSIONAL = 16


def data_shape(data: str, sample_shape: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The shape of one sample: as given, the built-in mixtures' (2,), or a vector file's width
    read from its header; ``None`` when unknown without loading the data."""
    if sample_shape is not None:
        return tuple(sample_shape)
    if data in TOY_DATA:
        return (2,)
    from .data.vectors import peek_dimension  # a vector file's width, read from its header

    dimension = peek_dimension(data)
    return (dimension,) if dimension else None


def is_low_dimensional(shape: tuple[int, ...] | None) -> bool:
    """What ``--preset auto`` gives the ``toy`` recipe: vectors of at most 16 dimensions, the
    built-in 2-D mixtures and a user's own file alike (by shape, not by the dataset's name)."""
    return shape is not None and len(shape) == 1 and shape[0] <= LOW_DIMENSIONAL


def is_image(shape: tuple[int, ...] | None) -> bool:
    """What ``--preset auto`` gives the ``image`` recipe: square images whose side the DCGAN
    builds (4..7 times a power of two: 8, 16, 28, 32, 64, ...; :func:`wgan.shapes.image_plan`)."""
    return (shape is not None and len(shape) == 3 and shape[1] == shape[2]
            and image_plan(shape[1]) is not None)


def fill_defaults(values: dict[str, Any], sample_shape: tuple[int, ...] | None) -> dict[str, Any]:
    """``values`` (a config's fields) with every ``None`` default filled and the preset, if
    ``auto``, and the constraint, if unset, named."""
    values = dict(values)
    loss, own = values["loss"], LOSSES[values["loss"]].constraint
    shape = data_shape(values["data"], sample_shape)
    if values["preset"] == "auto":
        values["preset"] = ("toy" if is_low_dimensional(shape)
                            else "image" if is_image(shape) else "none")
    constraint = values["constraint"] = values["constraint"] or own
    preset = PRESETS[values["preset"]]
    if values["model"] is None:  # first: the architecture's defaults depend on it
        values["model"] = next(layer["model"] for layer in (preset.get(constraint, {}),
                                                             preset["all"], BASE_DEFAULTS)
                               if "model" in layer)
    layers = [preset.get(f"{values['model']}:{constraint}", {}), preset.get(constraint, {}),
              preset["all"],
              CONSTRAINT_DEFAULTS.get(constraint, {}) if constraint != own else {},
              LOSS_DEFAULTS[loss], MODEL_DEFAULTS.get(values["model"], {}), BASE_DEFAULTS]
    asked_noise = values["noise_dim"] is not None
    asked_every = values["penalty_every"] is not None
    # --width sizes both networks: a recipe's own generator width goes with its own width. (A
    # run saved before `generator_width` existed has its width and resolves as it trained.)
    width_alone = values["width"] is not None and values["generator_width"] is None
    for name, value in values.items():
        if value is None:
            values[name] = next((layer[name] for layer in layers if name in layer), None)
    if values["lr_generator"] is None:
        values["lr_generator"] = values["lr"]
    if values["generator_width"] is None or width_alone:
        values["generator_width"] = values["width"]
    if values["sample_every"] is None:
        values["sample_every"] = max(1, values["steps"] // 5)
    if values["preset"] == "toy" and not asked_noise and shape is not None and len(shape) == 1:
        # The toy recipe's z in R^2 (penalties) or R^4; a d-dimensional distribution needs z
        # in R^d at least to fill its volume.
        values["noise_dim"] = max(values["noise_dim"], shape[0])
    counts = [values["n_critic"]]  # critic iterations a generator iteration can have
    if values["critic_boost"]:
        counts.append(boosted_critic_iterations(values["n_critic"]))
    if not asked_every and any(count % values["penalty_every"] for count in counts):
        values["penalty_every"] = 1  # a recipe's lazy penalty goes with its own critic steps
    if values["betas"] is not None:
        values["betas"] = tuple(float(b) for b in values["betas"])
    return values
