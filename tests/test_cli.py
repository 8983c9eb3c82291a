import json

import numpy as np
import pytest
from safetensors.torch import load_file

from conftest import TINY, assert_one_line_error, run_cli, run_cli_parallel


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = run_cli("train", "--data", "ring8", "--steps", "60", "--out", str(out),
                   "--log-every", "20", "--eval-samples", "300", *TINY, check=True)
    assert "w1_exact" in proc.stdout and "modes_captured" in proc.stdout
    return out


def test_train_writes_the_run_directory(trained_run):
    config = json.loads((trained_run / "config.json").read_text())
    assert config["loss"] == "wgan-gp" and config["optimizer"] == "adam" and config["steps"] == 60
    rows = (trained_run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,critic_steps,wasserstein_estimate") and len(rows) == 4
    assert (trained_run / "checkpoints" / "step-00000060.safetensors").is_file()
    assert (trained_run / "checkpoints" / "step-00000060.sha256").is_file()
    assert list((trained_run / "tensorboard").glob("events.out.tfevents.*"))
    for name in ("samples.png", "wasserstein.png"):
        assert (trained_run / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((trained_run / "eval.json").read_text())["modes_total"] == 8


def test_sample_and_eval(trained_run, tmp_path):
    run_cli("sample", str(trained_run), "--n", "123", "--out", str(tmp_path / "s.npy"),
            check=True)
    assert np.load(tmp_path / "s.npy").shape == (123, 2)
    run_cli("sample", str(trained_run), "--n", "7", "--out", str(tmp_path / "s.csv"), check=True)
    assert np.loadtxt(tmp_path / "s.csv", delimiter=",").shape == (7, 2)
    proc = run_cli("eval", str(trained_run), "--n", "300", "--json", check=True)
    result = json.loads(proc.stdout)
    assert result["step"] == 60 and result["w1_exact"] > 0 and result["modes_total"] == 8
    again = run_cli("sample", str(trained_run), "--n", "7", "--out", str(tmp_path / "s.csv"))
    assert_one_line_error(again, "s.csv: already exists")


def test_vector_file_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(500, 3)) * [1.0, 20.0, 0.1] + [5.0, -100.0, 0.0]
    np.savetxt(tmp_path / "v.csv", data, delimiter=",", header="a,b,c", comments="")
    out = tmp_path / "run"
    run_cli("train", "--data", str(tmp_path / "v.csv"), "--steps", "30", "--out", str(out),
            "--eval-samples", "200", *TINY, check=True)
    run_cli("sample", str(out), "--n", "2000", "--out", str(tmp_path / "s.npy"), check=True)
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (2000, 3)
    # mapped back to data units: column scales are those of the data, not of N(0, 1)
    # (unmapped samples would have mean ~0 and equal spreads in both columns)
    assert abs(samples[:, 1].mean() + 100) < 40 and abs(samples[:, 0].mean() - 5) < 5
    assert samples[:, 1].std() / samples[:, 2].std() > 20


def test_packed_critic_trains_evaluates_and_resumes(tmp_path):
    """--pack 4: the critic takes packs of four 2-D points (8 inputs), the figures draw it, the
    evaluation scores it, and a resume rebuilds it from config.json to the same weights as one
    run (a resume that built an unpacked critic could not load the checkpoint)."""
    common = ["--data", "grid25", "--pack", "4", "--steps", "40", "--checkpoint-every", "20",
              "--eval-samples", "300", *TINY]
    run_cli_parallel(["train", "--out", str(tmp_path / "a"), *common],
                     ["train", "--out", str(tmp_path / "b"), "--stop-at", "20", *common])
    a = load_file(tmp_path / "a" / "checkpoints" / "step-00000040.safetensors")
    assert a["critic.critic.net.0.weight"].shape == (32, 8)
    assert (tmp_path / "a" / "plots" / "samples.png").read_bytes()[:4] == b"\x89PNG"
    result = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert result["modes_total"] == 25 and np.isfinite(result["critic_estimate"])
    run_cli("train", "--resume", str(tmp_path / "b"), "--quiet", check=True)
    b = load_file(tmp_path / "b" / "checkpoints" / "step-00000040.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    again = json.loads(run_cli("eval", str(tmp_path / "b"), "--n", "300", "--json",
                               check=True).stdout)
    assert again["critic_estimate"] == pytest.approx(result["critic_estimate"])


def test_resume_via_cli_is_bit_exact(tmp_path):
    # 600 steps resumed at 300 cross step 500, where WGAN's schedule runs 100 critic steps.
    common = ["--data", "grid25", "--loss", "wgan", "--checkpoint-every", "300",
              "--lr-decay", "none", "--no-eval", *TINY]
    run_cli_parallel(["train", "--steps", "600", "--out", str(tmp_path / "a"), *common],
                     ["train", "--steps", "300", "--out", str(tmp_path / "b"), *common])
    proc = run_cli("train", "--resume", str(tmp_path / "b"), "--steps", "600", "--no-eval",
                   "--quiet", check=True)
    assert "step 300 of 600" in proc.stderr
    a = load_file(tmp_path / "a" / "checkpoints" / "step-00000600.safetensors")
    b = load_file(tmp_path / "b" / "checkpoints" / "step-00000600.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)


def test_stop_at_then_resume_equals_one_run_under_a_decaying_schedule(tmp_path):
    # A run stopped at step 100 of 200 and resumed must keep decaying the learning rate towards
    # step 200; a horizon moved to the stop would give different weights.
    common = ["--data", "grid25", "--steps", "200", "--lr-decay", "linear", "--no-eval", *TINY]
    run_cli_parallel(["train", "--out", str(tmp_path / "a"), *common],
                     ["train", "--out", str(tmp_path / "b"), "--stop-at", "100", *common])
    assert not (tmp_path / "b" / "checkpoints" / "step-00000200.safetensors").exists()
    config = (tmp_path / "b" / "config.json").read_bytes()
    bad = run_cli("train", "--resume", str(tmp_path / "b"), "--steps", "300", "--stop-at", "400")
    assert_one_line_error(bad, "--stop-at must be between 1 and --steps (300), got 400")
    assert (tmp_path / "b" / "config.json").read_bytes() == config  # the run is left as it was
    proc = run_cli("train", "--resume", str(tmp_path / "b"), "--no-eval", "--quiet", check=True)
    assert "step 100 of 200" in proc.stderr
    a = load_file(tmp_path / "a" / "checkpoints" / "step-00000200.safetensors")
    b = load_file(tmp_path / "b" / "checkpoints" / "step-00000200.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)


@pytest.mark.parametrize("args,fragments", [
    (["--data", "moons"], ["unknown data 'moons'", "grid25, ring8, swissroll"]),
    (["--loss", "hinge"], ["unknown loss 'hinge'", "wgan, wgan-gp"]),
    (["--model", "transformer"], ["unknown model 'transformer'", "mlp"]),
    (["--lr", "0"], ["lr must be > 0"]),
    (["--lr", "abc"], ["argument --lr: invalid float value: 'abc'"]),
    (["--n-critic", "0"], ["n_critic must be > 0"]),
    (["--clip", "-1"], ["clip must be > 0"]),
    (["--batch-size", "0"], ["batch_size must be > 0"]),
    (["--steps", "0"], ["steps must be > 0"]),
    (["--gp-lambda", "-1"], ["gp_lambda must be >= 0"]),
    (["--steps", "10", "--stop-at", "20"], ["--stop-at must be between 1 and --steps (10)", "20"]),
    (["--pack", "0"], ["pack must be > 0"]),
    (["--pack", "3"], ["batch_size 256 does not split into packs of 3 (--pack)"]),
    (["--penalty-every", "2"], ["penalty_every 2 does not divide n_critic 3", "divisor of 3"]),
    (["--loss", "wgan", "--penalty-every", "5"], ["penalty_every 5 needs a gradient penalty",
                                                  "the constraint is clip"]),
    (["--penalty-every", "3", "--critic-boost"], ["penalty_every 3 does not divide the 100 critic "
                                                  "steps of critic_boost"]),
])
def test_bad_flags_fail_before_training(tmp_path, args, fragments):
    out = tmp_path / "never"
    proc = run_cli("train", "--out", str(out), *args)
    assert_one_line_error(proc, *fragments)
    assert not out.exists()


@pytest.mark.parametrize("content,fragment", [
    ("", "data file is empty"), ("1,2\n3,oops\n", "non-numeric value 'oops'"),
    ("1,2\nnan,4\n", "NaN at row 2, column 1")])
def test_bad_data_files(tmp_path, content, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    proc = run_cli("train", "--data", str(path), "--out", str(tmp_path / "run"))
    assert_one_line_error(proc, str(path), fragment)
    assert not (tmp_path / "run").exists()


def test_missing_data_file_and_run_dirs(tmp_path):
    assert_one_line_error(run_cli("train", "--data", str(tmp_path / "x.npy")),
                          "x.npy: data file not found")
    assert_one_line_error(run_cli("eval", str(tmp_path / "nope")), "run directory not found")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("sample", str(tmp_path / "empty"), "--out",
                                  str(tmp_path / "s.npy")), "no config.json")
    assert_one_line_error(run_cli("train", "--resume", str(tmp_path / "nope")),
                          "run directory not found")


def test_existing_run_is_never_overwritten(trained_run):
    before = {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file()}
    proc = run_cli("train", "--out", str(trained_run), "--steps", "5", *TINY)
    assert_one_line_error(proc, "already exists", "--resume")
    after = {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file()}
    assert before == after


def test_run_without_checkpoint(tmp_path, trained_run):
    import shutil

    broken = tmp_path / "run"
    shutil.copytree(trained_run, broken)
    shutil.rmtree(broken / "checkpoints")
    assert_one_line_error(run_cli("eval", str(broken)), "has no checkpoint")


def test_help_documents_every_flag():
    proc = run_cli("train", "--help", check=True)
    for flag in ("--lr", "--n-critic", "--clip", "--gp-lambda", "--model", "--width", "--depth",
                 "--resume", "--config", "--ema", "--critic-boost", "--device", "--threads"):
        assert flag in proc.stdout


def test_eval_classifier_on_other_data(tmp_path, trained_run):
    # The classifier's metrics label MNIST digits; on a 2-D run they would be meaningless.
    clf = tmp_path / "clf.safetensors"
    clf.write_bytes(b"")
    proc = run_cli("eval", str(trained_run), "--classifier", str(clf))
    assert_one_line_error(proc, "the MNIST classifier metrics need mnist or stacked-mnist data")
