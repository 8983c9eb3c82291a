"""Speed never changes the algorithm: the Trainer and the plain reference loop, same seed and
same random stream, reach the same weights.

The comparison runs in float64. In float32 the two agree to about 1e-6 for most weights, but
Adam and RMSprop divide each gradient by its own running magnitude, so a weight whose true gradient
is zero gets a step of up to lr from rounding noise alone; in float64 that noise is ~1e-17 and
Adam's epsilon (1e-8) swamps it, so agreement to 1e-9 is a sharp test."""

import copy

import pytest
import torch

from wgan import Config, Trainer
from wgan.data import TensorDataset
from wgan.data.images import ImageDataset
from wgan.models import build_models
from wgan.reference import ReferenceLoop
from wgan.runtime import CompiledOrEager


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def run_both(config, dataset, steps):
    """The Trainer through fit() (its own loop), the reference through its plain one, from the
    same initial weights (built the same way from the seed)."""
    trainer = Trainer(config, dataset=dataset, log=lambda m: None)
    torch.manual_seed(trainer.config.seed)  # what the Trainer does, in its own forked state
    generator, critic = build_models(trainer.config, dataset.sample_shape)
    reference = ReferenceLoop(trainer.config, generator, critic, dataset.data, same_stream=True)
    trainer.fit(steps, progress=False)
    for _ in range(steps):
        reference.step()
    return trainer, reference


def assert_same_weights(a, b, rtol, atol):
    pairs = list(zip(a.state_dict().items(), b.state_dict().items()))
    assert pairs
    for (name, x), (_, y) in pairs:
        assert torch.allclose(x.float(), y.float(), rtol=rtol, atol=atol), \
            (name, (x.float() - y.float()).abs().max())


@pytest.mark.parametrize("loss,constraint", [("wgan-gp", None), ("wgan", None),
                                             ("wgan-lp", None), ("wgan", "spectral"),
                                             ("gan", None), ("gan-ns", None)])
def test_mlp_trainer_matches_reference_for_every_constraint(loss, constraint):
    torch.manual_seed(0)
    points = torch.randn(512, 2)
    config = Config(data="points", loss=loss, constraint=constraint, preset="none", width=32,
                    depth=2, noise_dim=4, batch_size=64, steps=30, seed=3, critic_boost=False)
    trainer, reference = run_both(config, TensorDataset("points", points), 30)
    moved = sum((p - q).abs().sum() for p, q in zip(trainer.critic.parameters(),
                                                    Trainer(config, dataset=TensorDataset(
                                                        "points", points)).critic.parameters()))
    assert moved > 0  # training changed the weights, so agreement is not trivial
    assert_same_weights(trainer.generator, reference.generator, rtol=1e-7, atol=1e-9)
    assert_same_weights(trainer.critic, reference.critic, rtol=1e-7, atol=1e-9)


def test_dcgan_trainer_matches_reference_with_boost_and_channels_last():
    torch.manual_seed(0)
    images = torch.rand(256, 1, 16, 16) * 2 - 1
    config = Config(data="imgs", loss="wgan", model="dcgan", width=8, noise_dim=8, batch_size=16,
                    steps=3, seed=1, critic_boost=True,  # 100 critic steps per generator step
                    preset="none")  # the WGAN paper's clipping settings, not the image recipe's
    trainer, reference = run_both(config, ImageDataset("imgs", images), 3)
    assert trainer.runtime.channels_last
    assert_same_weights(trainer.generator, reference.generator, rtol=1e-7, atol=1e-9)
    assert_same_weights(trainer.critic, reference.critic, rtol=1e-7, atol=1e-9)
    assert all(p.abs().max() <= 0.01 + 1e-9 for p in trainer.critic.parameters())


@pytest.mark.parametrize("loss", ["wgan-gp", "wgan-lp"])
def test_lazy_penalty_trainer_matches_reference(loss):
    """``penalty_every 2`` of 4 critic steps: the penalty on steps 0 and 2 of each generator step,
    weighed twice; the plain loop does the same its own way. Penalising the wrong steps drifts
    apart within 20 steps, and so does a weight not doubled. The step size (1e-3) grows the
    critic's gradients past 1 within those steps, so that WGAN-LP's one-sided penalty is not
    zero (at 1e-4 it is, and the test could not see its weight)."""
    torch.manual_seed(0)
    points = torch.randn(512, 2)
    config = Config(data="points", loss=loss, preset="none", width=32, depth=2, noise_dim=4,
                    batch_size=64, n_critic=4, penalty_every=2, gp_lambda=1.0, steps=20, seed=3,
                    critic_boost=False, lr=1e-3)
    trainer, reference = run_both(config, TensorDataset("points", points), 20)
    assert_same_weights(trainer.critic, reference.critic, rtol=1e-7, atol=1e-9)
    assert_same_weights(trainer.generator, reference.generator, rtol=1e-7, atol=1e-9)
    every_step = Trainer(config.replace(penalty_every=1), dataset=TensorDataset("points", points),
                         log=lambda m: None)
    every_step.fit(20, progress=False)
    with pytest.raises(AssertionError):  # the skipped penalties change the training
        assert_same_weights(trainer.critic, every_step.critic, rtol=1e-7, atol=1e-9)


def test_reference_differs_when_the_algorithm_differs():
    """The comparison can fail: one extra critic step per iteration is detected."""
    torch.manual_seed(0)
    points = torch.randn(512, 2)
    config = Config(data="points", loss="wgan-gp", preset="none", width=32, depth=2, noise_dim=4,
                    batch_size=64, steps=10, seed=3)
    trainer = Trainer(config, dataset=TensorDataset("points", points), log=lambda m: None)
    reference = ReferenceLoop(trainer.config.replace(n_critic=6), copy.deepcopy(trainer.generator),
                              copy.deepcopy(trainer.critic), points, same_stream=True)
    trainer.fit(10, progress=False)
    for _ in range(10):
        reference.step()
    with pytest.raises(AssertionError):
        assert_same_weights(trainer.critic, reference.critic, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("model", ["dcgan", "resnet"])
def test_conv_penalty_trainer_matches_reference(model):
    """The fast penalty's custom layers (wgan.models.layers) against the stock ones."""
    torch.manual_seed(0)
    images = torch.rand(256, 1, 16, 16) * 2 - 1
    # The image preset's settings for this model (the DCGAN's searched recipe: lambda 4.8).
    config = Config(data="imgs", loss="wgan-gp", model=model, width=8, noise_dim=8,
                    batch_size=16, steps=4, seed=2, critic_boost=False)
    trainer, reference = run_both(config, ImageDataset("imgs", images), 4)
    assert trainer.config.fast_penalty
    assert_same_weights(trainer.generator, reference.generator, rtol=1e-7, atol=1e-9)
    assert_same_weights(trainer.critic, reference.critic, rtol=1e-7, atol=1e-9)


def test_compiled_trainer_matches_reference():
    """--compile (generator and, with clipping, the critic) on CPU computes the same thing."""
    torch.manual_seed(0)
    points = torch.randn(512, 2)
    config = Config(data="points", loss="wgan", preset="none", width=32, depth=2, noise_dim=4,
                    batch_size=64, steps=5, seed=3, critic_boost=False, compile=True)
    trainer, reference = run_both(config, TensorDataset("points", points), 5)
    for fn in (trainer.algorithm.generate, trainer.algorithm.criticize):
        assert isinstance(fn, CompiledOrEager) and fn.compiled is not None  # still compiled
    assert_same_weights(trainer.generator, reference.generator, rtol=1e-7, atol=1e-9)
    assert_same_weights(trainer.critic, reference.critic, rtol=1e-7, atol=1e-9)


def test_spectral_norm_keeps_each_critic_layer_near_one_after_training():
    """After training, every linear and convolution layer's weight, as the critic uses it, has
    largest singular value ~1 (one power iteration per forward: close, not exact)."""
    torch.manual_seed(0)
    images = torch.rand(256, 1, 16, 16) * 2 - 1
    for model, dataset in (("mlp", TensorDataset("points", torch.randn(512, 2))),
                           ("dcgan", ImageDataset("imgs", images))):
        config = Config(data="d", loss="wgan", constraint="spectral", model=model, width=16,
                        depth=2, noise_dim=4, batch_size=32, steps=20, seed=0)
        trainer = Trainer(config, dataset=dataset, log=lambda m: None)
        assert trainer.config.optimizer == "adam" and not trainer.config.critic_boost
        trainer.fit(progress=False)
        layers = [m for m in trainer.critic.modules()
                  if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        assert layers
        raw_sigmas = []
        for layer in layers:
            with torch.no_grad():
                weight = layer.weight.flatten(1)  # what the forward pass multiplies by
                raw = layer.parametrizations.weight.original.flatten(1)
            sigma = torch.linalg.matrix_norm(weight, ord=2)
            assert abs(sigma - 1) < 0.05, (model, layer, sigma)
            raw_sigmas.append(float(torch.linalg.matrix_norm(raw.detach(), ord=2)))
        # the unnormalised weights are not near 1 by themselves: the parametrisation did it
        assert max(abs(s - 1) for s in raw_sigmas) > 0.3, raw_sigmas


@pytest.mark.parametrize("model,loss", [("mlp", "wgan-gp"), ("mlp", "wgan"), ("dcgan", "wgan-gp")])
def test_packed_trainer_matches_reference(model, loss):
    """PacGAN packing (--pack): the Trainer's reshape into packs, its scores per pack and its
    penalty on whole packs (one interpolation weight and one gradient norm per pack) against the
    reference loop's packs built sample by sample. A penalty taken per sample, packs of
    interleaved samples, or real and generated samples in one pack would all part the two."""
    torch.manual_seed(0)
    if model == "mlp":
        dataset = TensorDataset("points", torch.randn(512, 2))
        config = Config(data="points", loss=loss, preset="none", width=32, depth=2,
                        noise_dim=4, batch_size=64, steps=12, seed=3, critic_boost=False,
                        pack=4)
    else:
        dataset = ImageDataset("imgs", torch.rand(256, 1, 16, 16) * 2 - 1)
        config = Config(data="imgs", loss=loss, model=model, width=8, noise_dim=8,
                        batch_size=16, steps=4, seed=2, critic_boost=False, pack=2)
    trainer, reference = run_both(config, dataset, config.steps)
    first = trainer.critic.critic  # the network behind the packing, built for packs
    in_features = [p for p in first.parameters() if p.dim() > 1][0].shape[1]
    assert in_features == (8 if model == "mlp" else 2)  # 4 x 2 features, 2 x 1 channel
    assert_same_weights(trainer.generator, reference.generator, rtol=1e-7, atol=1e-9)
    assert_same_weights(first, reference.critic, rtol=1e-7, atol=1e-9)
