import pytest
import torch

from wgan import Config, RunDir, Trainer
from wgan.algorithm import BOOST_CRITIC_STEPS

TINY = dict(width=32, depth=2, batch_size=32, noise_dim=4, threads=1)


def test_short_run_lowers_exact_w1():
    trainer = Trainer(Config(data="ring8", steps=400, **TINY), log=lambda m: None)
    before = trainer.evaluate(n=500)["w1_exact"]
    trainer.fit(progress=False)
    after = trainer.evaluate(n=500)
    assert after["w1_exact"] < 0.5 * before, (before, after)
    assert after["w1_floor"] < after["w1_exact"]


def test_w1_floor_is_solved_once_per_dataset_size_and_seed(monkeypatch):
    from wgan import evaluate as evaluation

    solved = []
    real_solver = evaluation.w1_exact
    monkeypatch.setattr(evaluation, "w1_exact", lambda a, b: solved.append(len(a))
                        or real_solver(a, b))
    trainer = Trainer(Config(data="ring8", **TINY), log=lambda m: None)
    first = trainer.evaluate(n=300)
    second = trainer.evaluate(n=300)  # the floor from the cache: only the generated side solved
    third = trainer.evaluate(n=200)   # another size: a new floor
    assert solved == [300, 300, 300, 200, 200]
    assert first["w1_floor"] == second["w1_floor"] != third["w1_floor"]
    other = Trainer(Config(data="ring8", **TINY), log=lambda m: None)  # its own dataset object
    assert other.evaluate(n=300)["w1_floor"] == first["w1_floor"] and len(solved) == 7


@pytest.mark.parametrize("loss", ["wgan", "wgan-lp", "gan", "gan-ns"])
def test_every_loss_trains_and_stays_finite(loss):
    trainer = Trainer(Config(data="grid25", loss=loss, steps=30, critic_boost=False, **TINY),
                      log=lambda m: None)
    row = trainer.fit(progress=False)
    # A GAN's discriminator loss is no estimate of W: that column is NaN for the GAN losses.
    estimate = row.pop("wasserstein_estimate")
    assert torch.isfinite(torch.tensor(estimate)) == loss.startswith("wgan")
    assert row["step"] == 30 and all(torch.isfinite(torch.tensor(v)) for v in row.values())
    if loss == "wgan":
        assert all(p.abs().max() <= 0.01 for p in trainer.critic.parameters())


def test_critic_boost_schedule():
    trainer = Trainer(Config(loss="wgan", **TINY), log=lambda m: None)
    counts = [trainer.critic_iterations(s) for s in (0, 24, 25, 499, 500, 1000, 1001)]
    assert counts == [BOOST_CRITIC_STEPS, BOOST_CRITIC_STEPS, 5, 5, BOOST_CRITIC_STEPS,
                      BOOST_CRITIC_STEPS, 5]
    no_boost = Trainer(Config(loss="wgan", critic_boost=False, **TINY), log=lambda m: None)
    assert no_boost.critic_iterations(0) == 5


@pytest.mark.parametrize("loss", ["wgan", "wgan-gp"])
def test_generator_step_leaves_critic_weights_and_optimizer_untouched(loss):
    trainer = Trainer(Config(data="ring8", loss=loss, steps=5, critic_boost=False, **TINY),
                      log=lambda m: None)
    trainer.fit(progress=False)  # the optimizers have state now
    critic = {k: v.clone() for k, v in trainer.critic.state_dict().items()}
    state = {i: {k: v.clone() for k, v in s.items()}
             for i, s in trainer.opt_critic.state_dict()["state"].items()}
    generator = [p.clone() for p in trainer.generator.parameters()]
    grads = [p.grad.clone() for p in trainer.critic.parameters()]  # from the last critic step
    trainer.algorithm.generator_iteration()
    for key, value in trainer.critic.state_dict().items():
        assert torch.equal(value, critic[key]), key
    for i, values in trainer.opt_critic.state_dict()["state"].items():
        for key, value in values.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(state[i][key])), (i, key)
    # no gradient was accumulated into the critic either
    assert all(torch.equal(p.grad, g) for p, g in zip(trainer.critic.parameters(), grads))
    assert all(p.requires_grad for p in trainer.critic.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(trainer.generator.parameters(), generator))


def test_ema_lags_the_generator():
    trainer = Trainer(Config(data="ring8", ema=0.9, steps=5, **TINY), log=lambda m: None)
    trainer.fit(progress=False)
    raw = torch.cat([p.flatten() for p in trainer.generator.parameters()])
    avg = torch.cat([p.flatten() for p in trainer.ema.module.parameters()])
    assert not torch.equal(raw, avg)


def _final_state(trainer):
    tensors, _ = trainer.state_tensors()
    return tensors


@pytest.mark.parametrize("loss,extra", [("wgan-gp", {"ema": 0.99}), ("wgan", {})])
def test_resume_is_bit_exact(tmp_path, loss, extra):
    base = Config(data="grid25", loss=loss, steps=60, checkpoint_every=25, log_every=10,
                  lr_decay="none", **TINY, **extra).resolve()
    straight = Trainer(base, run=RunDir.create(tmp_path / "a", base), log=lambda m: None)
    straight.fit(progress=False)

    half = base.replace(steps=30)
    first = Trainer(half, run=RunDir.create(tmp_path / "b", half), log=lambda m: None)
    first.fit(progress=False)
    resumed = Trainer.resume(tmp_path / "b", steps=60, log=lambda m: None)
    assert resumed.step == 30
    resumed.fit(progress=False)

    a, b = _final_state(straight), _final_state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [int(r["step"]) for r in resumed.run.read_metrics()]
    assert steps == sorted(set(steps)) and steps[-1] == 60


def test_resume_refuses_changes_to_the_math(tmp_path):
    config = Config(data="ring8", steps=5, **TINY).resolve()
    Trainer(config, run=RunDir.create(tmp_path / "r", config), log=lambda m: None).fit(
        progress=False)
    from wgan.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot change lr when resuming"):
        Trainer.resume(tmp_path / "r", lr=1.0)


def test_checkpoints_are_pruned_and_checksummed(tmp_path):
    config = Config(data="ring8", steps=50, checkpoint_every=10, keep_checkpoints=2,
                    **TINY).resolve()
    run = RunDir.create(tmp_path / "r", config)
    Trainer(config, run=run, log=lambda m: None).fit(progress=False)
    assert [s for s, _ in run.checkpoints()] == [40, 50]
    newest = run.checkpoints()[-1][1]
    data = bytearray(newest.read_bytes())
    data[-10] ^= 0xFF
    newest.write_bytes(bytes(data))
    messages = []
    path, _, meta = run.latest_checkpoint(warn=messages.append)
    assert meta["step"] == 40 and "checksum mismatch" in messages[0]


@pytest.mark.parametrize("kind,critic_at_3,generator_at_3",
                         [("none", 1.0, 1.0), ("linear", 0.25, 0.25),
                          ("linear-generator", 1.0, 0.25)])
def test_learning_rate_schedules_set_each_optimizer(kind, critic_at_3, generator_at_3):
    # The rate a step trains with is set before it: step t of T uses base * (1 - t / T). With
    # linear-generator the critic keeps its base rate; a swapped optimizer or a schedule that
    # ignores its kind changes these numbers.
    config = Config(data="ring8", loss="wgan-gp", steps=4, lr=1e-3, lr_generator=2e-3,
                    lr_decay=kind, **TINY)
    trainer = Trainer(config, log=lambda m: None)
    for _ in range(4):
        trainer.train_step()
    critic = trainer.opt_critic.param_groups[0]["lr"]
    generator = trainer.opt_generator.param_groups[0]["lr"]
    assert critic == pytest.approx(1e-3 * critic_at_3)
    assert generator == pytest.approx(2e-3 * generator_at_3)
