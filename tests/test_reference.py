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
from wgan.reference import ReferenceLoop


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def run_both(config, dataset, steps):
    trainer = Trainer(config, dataset=dataset, log=lambda m: None)
    generator, critic = copy.deepcopy(trainer.generator), copy.deepcopy(trainer.critic)
    generator.to(memory_format=torch.contiguous_format)
    critic.to(memory_format=torch.contiguous_format)
    reference = ReferenceLoop(trainer.config, generator, critic, dataset.data, same_stream=True)
    for _ in range(steps):
        trainer.train_step()
        reference.step()
    return trainer, reference


def assert_same_weights(a, b, rtol, atol):
    pairs = list(zip(a.state_dict().items(), b.state_dict().items()))
    assert pairs
    for (name, x), (_, y) in pairs:
        assert torch.allclose(x.float(), y.float(), rtol=rtol, atol=atol), \
            (name, (x.float() - y.float()).abs().max())


@pytest.mark.parametrize("loss", ["wgan-gp", "wgan"])
def test_mlp_trainer_matches_reference(loss):
    torch.manual_seed(0)
    points = torch.randn(512, 2)
    config = Config(data="points", loss=loss, preset="none", width=32, depth=2, noise_dim=4,
                    batch_size=64, steps=30, seed=3, critic_boost=False)
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
                    steps=3, seed=1, critic_boost=True)  # 100 critic steps per generator step
    trainer, reference = run_both(config, ImageDataset("imgs", images), 3)
    assert trainer._channels_last
    assert_same_weights(trainer.generator, reference.generator, rtol=1e-7, atol=1e-9)
    assert_same_weights(trainer.critic, reference.critic, rtol=1e-7, atol=1e-9)
    assert all(p.abs().max() <= 0.01 + 1e-9 for p in trainer.critic.parameters())


def test_reference_differs_when_the_algorithm_differs():
    """The comparison can fail: one extra critic step per iteration is detected."""
    torch.manual_seed(0)
    points = torch.randn(512, 2)
    config = Config(data="points", loss="wgan-gp", preset="none", width=32, depth=2, noise_dim=4,
                    batch_size=64, steps=10, seed=3)
    trainer = Trainer(config, dataset=TensorDataset("points", points), log=lambda m: None)
    reference = ReferenceLoop(trainer.config.replace(n_critic=6), copy.deepcopy(trainer.generator),
                              copy.deepcopy(trainer.critic), points, same_stream=True)
    for _ in range(10):
        trainer.train_step()
        reference.step()
    with pytest.raises(AssertionError):
        assert_same_weights(trainer.critic, reference.critic, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("model", ["dcgan", "resnet"])
def test_conv_penalty_trainer_matches_reference(model):
    """The fast penalty's custom layers (wgan.models.layers) against the stock ones."""
    torch.manual_seed(0)
    images = torch.rand(256, 1, 16, 16) * 2 - 1
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
    assert trainer._compiled_critic is not None and trainer._compiled_generator is not None
    assert_same_weights(trainer.generator, reference.generator, rtol=1e-7, atol=1e-9)
    assert_same_weights(trainer.critic, reference.critic, rtol=1e-7, atol=1e-9)
