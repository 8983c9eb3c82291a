"""Each demonstration's numbers, with small budgets (the CLI's --quick)."""

import math

import pytest

from conftest import run_cli
from wgan.demos import run_demo


def test_emd_example(tmp_path):
    out = run_demo("emd", tmp_path)
    assert out["running"] == [0, 2, 2, -1, 0]
    assert out["w"] == 5 and out["w_pot"] == pytest.approx(5.0) and out["w_scipy"] == pytest.approx(5.0)
    assert (tmp_path / "emd.png").read_bytes()[:4] == b"\x89PNG"


def test_emd_through_the_cli(tmp_path):
    proc = run_cli("demo", "emd", "--out", str(tmp_path), check=True)
    assert "running cost delta: [0, 2, 2, -1, 0]" in proc.stdout and "W = sum |delta| = 5" in proc.stdout
    assert (tmp_path / "emd.png").is_file()


def test_xy_game_spirals_out(tmp_path):
    radius = run_demo("xy-game", tmp_path)["radius"]
    assert radius[0] < radius[50] < radius[100]
    assert radius[100] == pytest.approx(math.sqrt(2) * 1.01 ** 50, rel=1e-12)


def test_parallel_lines(tmp_path):
    out = run_demo("lines", tmp_path, quick=True)
    for theta, kl, js, w in zip(out["thetas"], out["kl"], out["js"], out["w"]):
        if theta == 0:
            assert kl == 0 and js == 0 and w == pytest.approx(0, abs=1e-9)
        else:
            assert kl == math.inf
            assert js == pytest.approx(math.log(2), abs=1e-9)
            assert w == pytest.approx(abs(theta), rel=1e-9)
    # The trained critic finds W, high by the soft penalty's bias |theta| / (2 lambda) and no more.
    from wgan.demos.parallel_lines import GP_LAMBDA

    for theta, estimate in out["critic_w"].items():
        expected = abs(theta) * (1 + abs(theta) / (2 * GP_LAMBDA))
        assert estimate == pytest.approx(expected, rel=0.02), theta
    # the GAN discriminator's loss is flat (near zero) whatever theta: no distance information
    assert max(out["gan_loss"].values()) < 0.1


def test_optimal_discriminator(tmp_path):
    out = run_demo("optimal-d", tmp_path, quick=True)
    assert out["v_star"] == pytest.approx(out["two_js_minus_two_log2"], abs=1e-6)
    # V(D) <= V(D*) for every D, so only the size of the gap says the network learned D*:
    # measured 0.0016 (quick, seed 0); D = 1/2 everywhere gives 0.95, D* scaled by 1.05 gives 0.045.
    gap = out["v_star"] - out["v_trained"]
    assert 0 < gap < 0.005, gap
    assert out["mean_error"] < 0.02


def test_vanishing_gradients(tmp_path):
    out = run_demo("vanishing-gradients", tmp_path, quick=True)
    assert out["gan_ratio"] > 100
    assert out["wgan_ratio"] < 10


def test_mode_collapse(tmp_path):
    out = run_demo("mode-collapse", tmp_path, quick=True)
    gan, wgan = out["gan-ns"], out["wgan-gp"]
    assert wgan["modes_total"] == gan["modes_total"] == 8
    # measured (seed 0, 400 steps): GAN-NS 3/8, WGAN-GP 8/8
    assert wgan["modes_captured"] == 8
    assert gan["modes_captured"] < wgan["modes_captured"]
    assert wgan["w1_exact"] < gan["w1_exact"]
    assert (tmp_path / "mode-collapse.png").is_file()


def test_w_vs_quality(tmp_path):
    out = run_demo("w-vs-quality", tmp_path, quick=True)
    wgan, gan = out["wgan_gp"], out["gan"]
    assert len(wgan["steps"]) == len(wgan["estimate"]) == len(wgan["w1"]) >= 15
    # measured (seed 0, 300 steps): WGAN-GP 0.94, GAN -0.63
    assert wgan["spearman"] > 0.8
    assert wgan["spearman"] > gan["spearman"]
    assert (tmp_path / "w-vs-quality.png").is_file()
