"""`wgan tune`: a real Optuna search through the CLI, with tiny runs.

What would fail: a held flag that is searched anyway, a best.json that is not the best trial or
does not train, a study that starts over instead of continuing, a worst-seed score that is not
the worst seed's, a budget that is not kept, an image search scored by anything but the FID users
measure, bad input that gives a traceback."""

from __future__ import annotations

import json

import pytest

from conftest import assert_one_line_error, fid_weights_or_skip, run_cli
from wgan import Config

pytest.importorskip("optuna")

# Tiny trials: ring8, 24 generator steps, evaluation on 300 samples.
TUNE = ["--data", "ring8", "--steps", "24", "--width", "16", "--depth", "2", "--eval-samples",
        "300", "--threads", "1"]


def test_tune_searches_the_free_settings_keeps_the_best_and_continues(tmp_path):
    out = tmp_path / "study"
    proc = run_cli("tune", *TUNE, "--minutes", "5", "--trials", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    trials = json.loads((out / "trials.json").read_text())
    assert len(trials) == 3
    for trial in trials:  # held flags are not searched; free ones are
        assert "width" not in trial["settings"] and "depth" not in trial["settings"]
        assert {"lr", "n_critic", "gp_lambda", "batch_size"} <= set(trial["settings"])
    assert len({t["settings"]["lr"] for t in trials}) == 3
    # Trial 0 is the defaults, for comparison.
    defaults = Config(data="ring8", steps=24, width=16, depth=2).resolve()
    assert trials[0]["defaults"] is True
    assert all(getattr(defaults, k) == v for k, v in trials[0]["settings"].items())
    done = [t for t in trials if t["state"] == "COMPLETE"]
    best = min(done, key=lambda t: t["w1_ratio"])
    config = Config.load(out / "best.json")
    assert config.width == 16 and config.depth == 2 and config.steps == 24
    for name, value in best["settings"].items():
        assert getattr(config, name) == value, name
    assert f"best w1_ratio: {best['w1_ratio']:.4g}" in proc.stdout
    if trials[0]["state"] == "COMPLETE":
        assert f"the defaults scored {trials[0]['w1_ratio']:.4g}" in proc.stdout
    # The best settings train as they are.
    run = tmp_path / "run"
    trained = run_cli("train", "--config", str(out / "best.json"), "--steps", "4", "--no-eval",
                      "--no-report", "--quiet", "--out", str(run))
    assert trained.returncode == 0, trained.stderr
    assert json.loads((run / "config.json").read_text())["lr"] == best["settings"]["lr"]
    # The same command again continues the study, with fresh draws.
    proc = run_cli("tune", *TUNE, "--minutes", "5", "--trials", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    trials = json.loads((out / "trials.json").read_text())
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    assert trials[-1]["settings"] not in [t["settings"] for t in trials[:-1]]
    # The study belongs to its settings: other steps or seeds are refused in one line.
    proc = run_cli("tune", *TUNE[:3], "48", *TUNE[4:], "--minutes", "5", "--out", str(out))
    assert_one_line_error(proc, "holds a search for other settings (steps 24 there, 48 here)")
    proc = run_cli("tune", *TUNE, "--minutes", "5", "--seeds", "0", "1", "--out", str(out))
    assert_one_line_error(proc, "(seeds [0] there, [0, 1] here)")
    assert len(json.loads((out / "trials.json").read_text())) == 4


def test_tune_scores_a_trial_by_its_worst_seed(tmp_path):
    out = tmp_path / "study"
    proc = run_cli("tune", *TUNE, "--minutes", "5", "--trials", "1", "--seeds", "0", "1",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (trial,) = json.loads((out / "trials.json").read_text())
    assert len(trial["scores"]) == 2 and trial["scores"][0] != trial["scores"][1]
    assert trial["w1_ratio"] == max(trial["scores"])


def test_tune_keeps_its_budget_and_says_when_nothing_finished(tmp_path):
    out = tmp_path / "study"
    proc = run_cli("tune", "--data", "ring8", "--steps", "100000", "--width", "16", "--threads",
                   "1", "--minutes", "0.1", "--out", str(out), timeout=120)
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "no trial finished within 0.1 minutes" in lines[0]
    assert "Traceback" not in proc.stderr
    trials = json.loads((out / "trials.json").read_text())
    assert len(trials) == 1 and trials[0]["cut_by_budget"] is True


def test_tune_searches_an_image_recipe_by_fid(tmp_path, monkeypatch):
    """Images get the image space (no MLP depth; trial 0 is the image recipe's defaults) and are
    scored by Inception FID, reported once mid-run and at the end; the score is the FID that
    `wgan eval` gives the same run trained from best.json, so a search ranks what users measure
    (and scoring mid-run does not change the run)."""
    fid_weights_or_skip()
    monkeypatch.setenv("WGAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "study"
    held = ["--data", "digits", "--steps", "2", "--width", "8", "--noise-dim", "8",
            "--batch-size", "16", "--threads", "2"]
    proc = run_cli("tune", *held, "--minutes", "5", "--trials", "1", "--fid-n", "20",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (trial,) = json.loads((out / "trials.json").read_text())
    assert "best fid:" in proc.stdout and trial["state"] == "COMPLETE"
    assert {"lr", "n_critic", "gp_lambda", "ema", "lr_decay", "critic_norm"} == set(
        trial["settings"])
    defaults = Config(data="digits", steps=2, width=8, noise_dim=8, batch_size=16).resolve(
        (1, 8, 8))
    assert defaults.model == "dcgan" and trial["defaults"] is True
    assert all(getattr(defaults, k) == v for k, v in trial["settings"].items())
    run = tmp_path / "run"
    trained = run_cli("train", "--config", str(out / "best.json"), "--no-report", "--quiet",
                      "--no-eval", "--out", str(run))
    assert trained.returncode == 0, trained.stderr
    scored = run_cli("eval", str(run), "--fid", "--fid-n", "20", "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["fid"] == pytest.approx(trial["fid"], rel=1e-6)


def test_the_space_follows_the_constraint_and_the_model():
    """Lambda is searched only under a penalty, the clipping bound only when clipping, depth
    only for the MLP, batch norm in the critic only where no penalty refuses it (a drawn trial
    would fail validation); a flag the user gave is never searched."""
    from wgan.tune import IMAGE_SPACE, SPACE, _free_space, default_settings

    clipped = _free_space(Config(data="ring8", loss="wgan").resolve((2,)), set())
    assert "clip" in clipped and "gp_lambda" not in clipped and clipped["lr"] == SPACE["lr"]
    penalised = _free_space(Config(data="ring8").resolve((2,)), {"lr"})
    assert "gp_lambda" in penalised and "clip" not in penalised and "lr" not in penalised
    clipped_dcgan = Config(data="digits", loss="wgan", model="dcgan").resolve((1, 8, 8))
    image = _free_space(clipped_dcgan, set())
    assert "depth" not in image and "clip" in image and image["width"] == IMAGE_SPACE["width"]
    assert image["critic_norm"] == ("choice", ("none", "layer", "batch"))
    # every default of the clipped DCGAN (the image recipe's bound 0.1, Adam 2e-4, one critic
    # step, batch norm, z in R^100) lies inside the image space, so the search's first trial is
    # the recipe itself
    defaults = default_settings(clipped_dcgan, image, None)
    assert defaults is not None and (defaults["clip"], defaults["lr"]) == (0.1, 2e-4)
    assert (defaults["n_critic"], defaults["critic_norm"], defaults["generator_width"]) == (
        1, "batch", 128)
    assert image["generator_width"] == IMAGE_SPACE["generator_width"]
    clipped_infogan = Config(data="digits", loss="wgan").resolve((1, 8, 8))  # clipping's model
    infogan = default_settings(clipped_infogan, _free_space(clipped_infogan, set()), None)
    assert clipped_infogan.model == "infogan" and infogan is not None  # its recipe is searchable
    assert (infogan["generator_width"], infogan["noise_dim"], infogan["clip"]) == (64, 64, 0.1)
    # --width sets both networks, so holding it holds the generator's width too; not the reverse
    held_width = _free_space(Config(data="digits").resolve((1, 8, 8)), {"width"})
    assert "width" not in held_width and "generator_width" not in held_width
    held_generator = _free_space(Config(data="digits").resolve((1, 8, 8)), {"generator_width"})
    assert "width" in held_generator and "generator_width" not in held_generator
    for loss in ("wgan-gp", "wgan-lp"):
        penalised_image = _free_space(Config(data="digits", loss=loss).resolve((1, 8, 8)), set())
        assert penalised_image["critic_norm"] == ("choice", ("none", "layer"))
    assert "critic_norm" not in _free_space(Config(data="digits").resolve((1, 8, 8)),
                                            {"critic_norm"})
    assert "critic_norm" not in clipped  # the MLP critic has no normalisation to choose
    spectral = _free_space(Config(data="ring8", constraint="spectral").resolve((2,)), set())
    assert "clip" not in spectral and "gp_lambda" not in spectral and "lr" in spectral
    one_sided = _free_space(Config(data="ring8", loss="wgan-lp").resolve((2,)), set())
    assert "gp_lambda" in one_sided and "clip" not in one_sided


def test_constraints_name_real_config_fields():
    """What a constraint says it reads is what a search holds back from the other constraints:
    a misspelt name would let a clipped search draw lambda (or the reverse) without a word."""
    import dataclasses

    from wgan.constraints import CONSTRAINTS

    fields = {f.name for f in dataclasses.fields(Config)}
    for name, constraint in CONSTRAINTS.items():
        assert set(constraint.settings) <= fields, name
    assert CONSTRAINTS["clip"].settings == ("clip",)
    assert "gp_lambda" in CONSTRAINTS["gp"].settings and "gp_lambda" in CONSTRAINTS["lp"].settings


@pytest.mark.parametrize("args,fragment", [
    (["--objective", "nope"], "--objective must be one of"),
    (["--objective", "fid"], "--objective fid needs image data; ring8 has samples of shape (2,)"),
    (["--objective", "class_kl"], "--objective class_kl needs mnist data"),
    (["--objective", "stacked_kl"], "--objective stacked_kl needs stacked-mnist data"),
    (["--fid-n", "1"], "--fid-n must be >= 2, got 1"),
    (["--minutes", "0"], "--minutes must be positive"),
    (["--data", "missing.npy"], "missing.npy"),
])
def test_tune_bad_input_is_one_line(tmp_path, args, fragment):
    base = ["tune", "--data", "ring8", "--minutes", "1", "--out", str(tmp_path / "s")]
    proc = run_cli(*base, *args, cwd=tmp_path)
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "s").exists()


def test_a_classifier_objective_without_the_classifier_is_one_line(tmp_path, shared_data,
                                                                   monkeypatch):
    """Without the MNIST classifier a class or mode objective is refused before any trial
    trains (it used to train the first trial in full, then fail on a missing metric)."""
    monkeypatch.setenv("WGAN_CACHE", str(tmp_path / "empty-cache"))
    for data, objective in (("mnist", "class_kl"), ("stacked-mnist", "stacked_kl")):
        proc = run_cli("tune", "--data", data, "--data-dir", str(shared_data / "mnist"),
                       "--objective", objective, "--minutes", "1", "--out", str(tmp_path / "s"))
        assert_one_line_error(proc, f"--objective {objective} needs the MNIST classifier at",
                              "wgan classifier train")
        assert not (tmp_path / "s").exists()


def test_tune_scores_stacked_mnist_by_its_modes(tmp_path, shared_data, monkeypatch):
    """A search on Stacked MNIST for mode balance: each trial is scored by the KL of its triples
    from uniform, as `wgan eval` measures it with the same classifier."""
    from wgan import Trainer
    from wgan.data.idx import load_idx_dataset
    from wgan.data.images import to_unit_range
    from wgan.metrics import classifier as clf
    from wgan.tune import tune

    images, labels = load_idx_dataset("mnist", str(shared_data / "mnist"), "train")
    monkeypatch.setenv("WGAN_CACHE", str(tmp_path / "cache"))
    clf.save_classifier(clf.train_classifier(to_unit_range(images[:1000]), labels[:1000],
                                             epochs=1), clf.default_classifier_path(), 0.9)
    monkeypatch.setattr(clf, "STACKED_SAMPLES", 1300)  # 26,000 in the protocol
    base = Config(data="stacked-mnist", data_dir=str(shared_data / "mnist"), model="dcgan",
                  width=8, noise_dim=8, batch_size=16, steps=3, eval_samples=200, threads=2)
    result = tune(base, tmp_path / "study", minutes=5, trials=1, objective="stacked_kl",
                  fixed={"width", "noise_dim", "batch_size", "eval_samples"},
                  log=lambda m: None)
    assert result.objective == "stacked_kl" and result.trials_done == 1
    best = Config.load(tmp_path / "study" / "best.json")
    trainer = Trainer(best, log=lambda m: None)
    trainer.fit(progress=False)
    assert trainer.evaluate()["stacked_kl"] == pytest.approx(result.best_value, rel=1e-6)
