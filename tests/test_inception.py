"""Inception FID and KID (issue 15): the maths with small feature sets, the input protocol, and
the real Inception network (installed by .ci/run with the `fid` extra)."""

import os

import numpy as np
import pytest
import torch

from conftest import run_cli
from wgan.metrics import inception
from wgan.metrics.inception import (
    fid_from_features,
    kernel_inception_distance,
    to_inception_input,
)


def test_fid_of_gaussian_features_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3)) @ np.diag([1.0, 2.0, 0.5])
    b = rng.normal(size=(20000, 3)) @ np.diag([1.5, 1.0, 0.5]) + [1.0, 0.0, 0.0]
    # N(0, diag(1, 4, .25)) vs N((1,0,0), diag(2.25, 1, .25)): |mu|^2 + sum (s1 - s2)^2
    expected = 1.0 + (1.0 - 1.5) ** 2 + (2.0 - 1.0) ** 2
    assert fid_from_features(a, b) == pytest.approx(expected, abs=0.05)
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6)


def test_kid_is_unbiased_and_matches_a_direct_computation():
    rng = np.random.default_rng(1)
    same_a, same_b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    mean, std = kernel_inception_distance(same_a, same_b, subsets=50, subset_size=200)
    assert abs(mean) < 3 * std  # unbiased: zero within its spread for equal distributions
    shifted = rng.normal(size=(400, 8)) + 0.5
    assert kernel_inception_distance(same_a, shifted, subsets=50, subset_size=200)[0] > 10 * std
    # one subset of everything: the textbook unbiased estimator, written out
    x, y = same_a[:50], shifted[:50]
    k = lambda u, v: (u @ v / 8 + 1) ** 3  # noqa: E731
    m = 50
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    got, _ = kernel_inception_distance(x, y, subsets=1, subset_size=50)
    assert got == pytest.approx(xx + yy - 2 * xy, rel=1e-9)


def test_inception_input_protocol():
    grey = torch.rand(2, 1, 28, 28) * 2 - 1
    x = to_inception_input(grey)
    assert x.shape == (2, 3, 299, 299)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert x.min() >= -1 and x.max() <= 255 / 128 - 1
    big = to_inception_input(torch.ones(1, 3, 299, 299))  # already 299: only quantised, scaled
    assert torch.allclose(big, torch.full_like(big, 255 / 128 - 1))
    with pytest.raises(ValueError, match="1 or 3"):
        to_inception_input(torch.zeros(1, 2, 8, 8))


def _network_or_skip():
    try:
        inception.weights_path()
    except Exception as err:  # noqa: BLE001
        if os.environ.get("WGAN_REQUIRE_FID") == "1":
            pytest.fail(f"the FID tests need the fid extra (WGAN_REQUIRE_FID=1): {err}")
        pytest.skip(str(err))
    return inception.load_inception("cpu")


def test_real_inception_fid_is_small_on_real_data_and_rises_with_noise():
    """Grey 8x8 digits (sklearn), 48 per side: FID between two disjoint real sets is the
    smallest, and it rises monotonically as Gaussian noise is added to the second set (with 48
    samples FID is biased far above its 10,000-sample value: only the order is meaningful)."""
    from sklearn.datasets import load_digits

    model = _network_or_skip()
    torch.set_num_threads(2)
    digits = torch.as_tensor(load_digits().images, dtype=torch.float32)[:, None] / 8 - 1
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    a, b = digits[order[:48]], digits[order[48:96]]
    device = torch.device("cpu")
    features_a = inception.inception_features(a, 48, model, device)
    fids = []
    for sigma in (0.0, 0.25, 0.6):
        noisy = (b + sigma * torch.randn(b.shape, generator=torch.Generator().manual_seed(1)))
        fids.append(fid_from_features(features_a,
                                      inception.inception_features(noisy.clamp(-1, 1), 48, model,
                                                                   device)))
    assert fids == sorted(fids) and fids[0] < 0.8 * fids[1] < 0.8 * fids[2], fids
    assert np.isfinite(fids).all()
    # the same network on colour input runs too (RGB, any size)
    assert inception.inception_features(torch.rand(2, 3, 16, 16) * 2 - 1, 2, model,
                                        device).shape == (2, 2048)


def test_eval_fid_through_the_cli_caches_real_statistics(tmp_path):
    _network_or_skip()
    run = tmp_path / "run"
    run_cli("train", "--data", "digits", "--model", "dcgan", "--width", "8", "--noise-dim", "8",
            "--batch-size", "16", "--steps", "4", "--threads", "2", "--quiet", "--no-report",
            "--eval-samples", "100", "--out", str(run), check=True)
    env_cache = tmp_path / "cache"
    os.environ["WGAN_CACHE"] = str(env_cache)
    try:
        import json

        first = run_cli("eval", str(run), "--fid", "--fid-n", "40", "--json", "--n", "50")
        assert first.returncode == 0, first.stderr
        result = json.loads(first.stdout)
        assert result["fid_n"] == 40 and result["fid"] > 0 and "kid" in result
        assert "real digits images" in first.stderr
        assert list((env_cache / "fid").glob("digits-40-*.npy"))
        second = run_cli("eval", str(run), "--fid", "--fid-n", "40", "--json", "--n", "50")
        assert "real digits images" not in second.stderr  # read from the cache
        assert json.loads(second.stdout)["fid"] == pytest.approx(result["fid"], rel=1e-4)
        bad = run_cli("eval", str(run), "--fid", "--fid-n", "5000")
        assert bad.returncode == 2 and "--fid-n 898" in bad.stderr
    finally:
        del os.environ["WGAN_CACHE"]
