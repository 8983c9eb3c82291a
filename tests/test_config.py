import json

import pytest

from wgan.config import Config
from wgan.errors import ConfigError
from wgan.presets import LOSS_DEFAULTS


@pytest.mark.parametrize("loss", list(LOSS_DEFAULTS))
def test_defaults_follow_the_papers(loss):
    config = Config(loss=loss, preset="none").resolve()
    expected = {"wgan": ("rmsprop", 5e-5, 5), "wgan-gp": ("adam", 1e-4, 5),
                "wgan-lp": ("adam", 1e-4, 5), "gan": ("adam", 2e-4, 1),
                "gan-ns": ("adam", 2e-4, 1)}[loss]
    assert (config.optimizer, config.lr, config.n_critic) == expected
    assert config.batch_size == 64 and config.clip == 0.01 and config.gp_lambda == 10.0
    assert config.critic_boost == (loss == "wgan")
    if loss in ("wgan-gp", "wgan-lp"):
        assert config.betas == (0.0, 0.9)
    if loss.startswith("gan"):
        assert config.betas == (0.5, 0.999)


def test_explicit_values_override_defaults_and_presets():
    config = Config(loss="wgan", lr=1e-3, n_critic=2, preset="toy", batch_size=8).resolve()
    assert (config.lr, config.lr_generator, config.n_critic, config.batch_size) == (
        1e-3, 1e-3, 2, 8)
    assert config.width == 128 and config.noise_dim == 4  # from the preset


def test_a_presets_constraint_settings_override_its_shared_ones():
    # toy: EMA 0.999 was measured for the penalties; the other losses keep the shared 0.99
    toy = {loss: Config(data="grid25", loss=loss).resolve().ema
           for loss in ("wgan-gp", "wgan-lp", "wgan", "gan-ns")}
    assert toy == {"wgan-gp": 0.999, "wgan-lp": 0.999, "wgan": 0.99, "gan-ns": 0.99}
    assert Config(data="grid25", ema=0.5).resolve().ema == 0.5  # and the user's beat both


def test_auto_preset_depends_on_data():
    assert Config(data="grid25").resolve().preset == "toy"
    toy = Config(data="grid25").resolve()  # the toy recipe's penalty settings (session 29)
    assert (toy.gp_lambda, toy.n_critic, toy.noise_dim, toy.lr) == (0.126, 3, 2, 2.34e-3)
    assert Config(data="points.csv").resolve().preset == "none"
    assert Config(data="points.csv").resolve().gp_lambda == 10.0
    paper = Config(data="grid25", preset="paper", loss="wgan").resolve()
    assert (paper.width, paper.depth, paper.batch_size, paper.lr) == (512, 4, 64, 5e-5)


def test_toy_recipes_lazy_penalty_goes_with_its_critic_steps(tmp_path):
    """The toy recipe penalises every third critic step over 10,000 steps (session 32). Its
    lazy penalty yields to critic steps it does not divide (the user's or the critic boost's)
    instead of refusing them; the user's own value is checked, never changed; the other losses
    and the image recipe penalise every step; and a run saved before the field existed resumes
    as it trained (every step), not with the recipe's newer value."""
    from wgan.runs import RunDir

    toy = Config(data="grid25").resolve()
    assert (toy.steps, toy.penalty_every) == (10000, 3)
    assert Config(data="grid25", loss="wgan-lp").resolve().penalty_every == 3
    assert Config(data="grid25", n_critic=6).resolve().penalty_every == 3
    assert Config(data="grid25", n_critic=5).resolve().penalty_every == 1
    assert Config(data="grid25", critic_boost=True).resolve().penalty_every == 1
    assert Config(data="grid25", loss="wgan").resolve().penalty_every == 1
    assert Config(data="mnist").resolve().penalty_every == 1
    with pytest.raises(ConfigError, match="penalty_every 3 does not divide n_critic 5"):
        Config(data="grid25", n_critic=5, penalty_every=3).resolve()
    run = RunDir.create(tmp_path / "old", toy)
    saved = {k: v for k, v in toy.to_dict().items() if k != "penalty_every"}
    run.config_path.write_text(json.dumps(saved))
    assert RunDir.open(run.path).load_config().penalty_every == 1
    assert Config.from_dict(saved).resolve().penalty_every == 3  # a new run gets the recipe's


@pytest.mark.parametrize("field,value,fragment", [
    ("lr", 0.0, "lr must be > 0"), ("lr", -1.0, "lr must be > 0"),
    ("lr", float("nan"), "lr must be > 0"), ("n_critic", 0, "n_critic must be > 0"),
    ("clip", 0.0, "clip must be > 0"), ("batch_size", 0, "batch_size must be > 0"),
    ("steps", 0, "steps must be > 0"), ("gp_lambda", -0.1, "gp_lambda must be >= 0"),
    ("loss", "wgan-xx", "unknown loss 'wgan-xx'; choose one of: wgan, wgan-gp"),
    ("ema", 1.0, "ema must be in [0, 1)"), ("penalty_every", 0, "penalty_every must be > 0"),
])
def test_impossible_values_are_rejected(field, value, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        Config(**{field: value}).resolve()
    assert fragment in str(info.value)


def test_batch_norm_critic_refused_with_penalty():
    with pytest.raises(ConfigError, match="must not use batch norm"):
        Config(loss="wgan-gp", critic_norm="batch").resolve()
    Config(loss="wgan", critic_norm="batch").resolve()  # fine with clipping


def test_round_trip_and_file_errors(tmp_path):
    config = Config(loss="wgan", data="ring8", betas=(0.1, 0.2)).resolve()
    path = tmp_path / "c.json"
    config.save(path)
    assert Config.load(path) == config
    toml = tmp_path / "c.toml"
    toml.write_text('loss = "wgan-lp"\nsteps = 10\nbetas = [0.0, 0.5]\n')
    assert Config.load(toml).resolve().betas == (0.0, 0.5)

    path.write_text(json.dumps({"lr": "fast"}))
    with pytest.raises(ConfigError, match=r"c.json: setting 'lr' must be float, got 'fast'"):
        Config.load(path)
    path.write_text(json.dumps({"learning_rate": 1}))
    with pytest.raises(ConfigError, match="unknown setting 'learning_rate'"):
        Config.load(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid json"):
        Config.load(path)
    with pytest.raises(ConfigError, match="config file not found"):
        Config.load(tmp_path / "missing.json")


def test_auto_preset_follows_the_shape_of_the_data_not_its_name(tmp_path):
    import numpy as np

    low, wide = tmp_path / "mine.npy", tmp_path / "wide.csv"
    np.save(low, np.random.default_rng(0).normal(size=(50, 6)))
    wide.write_text("\n".join(",".join(["1"] * 20) for _ in range(5)))
    mine = Config(data=str(low)).resolve()
    assert mine.preset == "toy" and mine.noise_dim == 6  # z must fill 6 dimensions
    assert mine.gp_lambda == 0.126 and mine.width == 128
    assert Config(data=str(wide)).resolve().preset == "none"
    assert Config(data="grid25").resolve().noise_dim == 2
    assert Config(data="grid25", loss="wgan").resolve().noise_dim == 4  # not a penalty
    assert Config(data=str(low), noise_dim=7).resolve().noise_dim == 7  # asked for: kept
    # the shape of loaded data decides when it is given
    assert Config(data="anything").resolve(sample_shape=(4,)).preset == "toy"
    assert Config(data="anything").resolve(sample_shape=(1, 30, 30)).preset == "none"


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8), (3, 64, 64)])
def test_auto_preset_gives_images_the_measured_image_recipe(shape):
    image = Config(data="anything").resolve(sample_shape=shape)
    assert (image.preset, image.model, image.steps, image.ema) == ("image", "dcgan", 15600, 0.999)
    # DCGAN's width; the searched DCGAN-with-penalty settings, not WGAN-GP's paper ones
    assert (image.width, image.noise_dim, image.lr, image.lr_generator) == (64, 32, 9.2e-4, 9.2e-4)
    assert (image.n_critic, image.gp_lambda, image.betas) == (4, 4.8, (0.0, 0.9))
    assert image.generator_width == 128  # the measured wider generator
    # --width sizes both networks again, and a run saved before the generator had its own width
    # (its config holds `width` alone) resumes with the generator it trained
    assert Config(data="anything", width=32).resolve(sample_shape=shape).generator_width == 32
    saved = {k: v for k, v in image.to_dict().items() if k != "generator_width"}
    assert Config.from_dict(saved).resolve(sample_shape=shape).generator_width == 64
    apart = Config(data="anything", width=32, generator_width=48).resolve(sample_shape=shape)
    assert (apart.width, apart.generator_width) == (32, 48)
    asked = Config(data="anything", lr=2e-4, noise_dim=100).resolve(sample_shape=shape)
    assert (asked.lr, asked.noise_dim, asked.n_critic) == (2e-4, 100, 4)  # flags win
    lp = Config(data="anything", loss="wgan-lp").resolve(sample_shape=shape)
    assert (lp.lr, lp.noise_dim, lp.n_critic) == (1e-4, 100, 5)  # measured for the GP only
    assert lp.generator_width == lp.width == 64
    resnet = Config(data="anything", model="resnet").resolve(sample_shape=shape)
    assert (resnet.lr, resnet.noise_dim, resnet.n_critic) == (1e-4, 128, 5)  # for the DCGAN only
    # weight clipping: Lucic et al.'s ranges (session 36), not the WGAN paper's settings
    clipped = Config(data="anything", loss="wgan", model="dcgan").resolve(sample_shape=shape)
    assert (clipped.model, clipped.optimizer, clipped.lr) == ("dcgan", "adam", 2e-4)
    assert (clipped.betas, clipped.clip, clipped.critic_norm) == ((0.5, 0.999), 0.1, "batch")
    assert (clipped.noise_dim, clipped.n_critic, clipped.critic_boost) == (100, 1, False)
    assert (clipped.width, clipped.generator_width, clipped.ema) == (64, 128, 0.999)
    info = Config(data="anything", loss="wgan").resolve(sample_shape=shape)  # clipping's model
    assert (info.model, info.optimizer, info.lr, info.clip, info.critic_norm, info.n_critic) == (
        "infogan", "adam", 2e-4, 0.1, "batch", 1)
    assert (info.width, info.generator_width, info.noise_dim) == (64, 64, 64)  # as measured
    assert Config(data="anything").resolve(sample_shape=shape).model == "dcgan"  # the penalty's
    info_gp = Config(data="anything", model="infogan").resolve(sample_shape=shape)
    assert (info_gp.lr, info_gp.n_critic, info_gp.gp_lambda) == (1e-4, 5, 10.0)  # not measured
    mine = Config(data="anything", loss="wgan", clip=0.01, critic_norm="none", n_critic=5)
    mine = mine.resolve(sample_shape=shape)
    assert (mine.clip, mine.critic_norm, mine.n_critic, mine.lr) == (0.01, "none", 5, 2e-4)
    # the paper's clipping settings elsewhere: another model, no preset, or vectors
    for other in (Config(data="anything", loss="wgan", model="resnet").resolve(shape),
                  Config(data="anything", loss="wgan", preset="none", model="dcgan").resolve(shape),
                  Config(data="ring8", loss="wgan").resolve()):
        assert (other.optimizer, other.lr, other.clip, other.critic_norm) == ("rmsprop", 5e-5,
                                                                               0.01, "none")
        assert (other.n_critic, other.critic_boost) == (5, True)
    mine = Config(data="anything", model="resnet", steps=7).resolve(sample_shape=shape)
    assert (mine.model, mine.steps, mine.width) == ("resnet", 7, 128)  # flags and their model
    paper = Config(data="anything", preset="paper").resolve(sample_shape=shape)
    assert (paper.model, paper.width, paper.ema) == ("mlp", 512, 0.0)  # the paper's MLP


@pytest.mark.parametrize("shape", [(1, 30, 30), (1, 28, 32), (3, 18, 18), (1, 4, 4), (28, 28)])
def test_no_image_recipe_where_the_dcgan_cannot_be_built(shape):
    config = Config(data="anything").resolve(sample_shape=shape)
    assert (config.preset, config.model) == ("none", "mlp")
