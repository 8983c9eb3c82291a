"""Image data, image models, sample grids and the classifier metrics."""

import gzip
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from conftest import TINY, assert_one_line_error, idx_bytes, run_cli
from wgan import Config, RunDir
from wgan.data import load_dataset
from wgan.data.idx import read_idx
from wgan.data.images import to_unit_range
from wgan.errors import ConfigError, DataError
from wgan.metrics import classifier as clf
from wgan.models import build_models
from wgan.runtime import cpu_bf16_units

# ---- IDX / MNIST -------------------------------------------------------------------------------


def write_mnist(folder, n=40, size=28, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    for split in ("train", "t10k"):
        (folder / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (folder / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return images, labels


def test_idx_round_trip_gzip_and_raw(tmp_path):
    images, labels = write_mnist(tmp_path / "m")
    assert np.array_equal(read_idx(tmp_path / "m" / "train-images-idx3-ubyte.gz"), images)
    raw = tmp_path / "raw-idx"
    raw.write_bytes(idx_bytes(labels))
    assert np.array_equal(read_idx(raw), labels)
    data = load_dataset(Config(data="mnist", data_dir=str(tmp_path / "m")))
    assert data.sample_shape == (1, 28, 28) and len(data) == 40
    # held as the file's own bytes (a quarter of float32), in [-1, 1] once sampled
    assert data.data.dtype == torch.uint8 and torch.equal(data.data[:, 0], torch.from_numpy(images))
    batch = data.sample(500, torch.Generator().manual_seed(0))
    assert batch.dtype == torch.float32 and batch.min() >= -1 and batch.max() <= 1
    expected = torch.from_numpy(images[:, None].astype(np.float32)) / 127.5 - 1
    assert torch.allclose(to_unit_range(data.data), expected)


@pytest.mark.parametrize("mutate,fragment", [
    (lambda b: gzip.compress(b)[:-20], "corrupt or truncated gzip"),
    (lambda b: gzip.compress(b[:-7]), "need"),
    (lambda b: gzip.compress(b"\x00\x00\x09\x03" + b[4:]), "wrong IDX magic"),
    (lambda b: gzip.compress(b[:2]), "too short"),
    (lambda b: b"\x1f\x8b" + b"garbage" * 5, "corrupt or truncated gzip"),
])
def test_bad_idx_files(tmp_path, mutate, fragment):
    write_mnist(tmp_path / "m")
    good = idx_bytes(np.zeros((40, 28, 28), np.uint8))
    (tmp_path / "m" / "train-images-idx3-ubyte.gz").write_bytes(mutate(good))
    with pytest.raises(DataError, match=fragment):
        load_dataset(Config(data="mnist", data_dir=str(tmp_path / "m")))
    proc = run_cli("train", "--data", "mnist", "--data-dir", str(tmp_path / "m"), "--out",
                   str(tmp_path / "run"), *TINY)
    assert_one_line_error(proc, "train-images-idx3-ubyte.gz", fragment)
    assert not (tmp_path / "run").exists()


def test_missing_mnist_files_say_where_to_put_them(tmp_path, monkeypatch):
    proc = run_cli("train", "--data", "fashion", "--data-dir", str(tmp_path), "--out",
                   str(tmp_path / "run"), *TINY)
    assert_one_line_error(proc, str(tmp_path), "train-images-idx3-ubyte.gz not found")
    monkeypatch.setenv("WGAN_OFFLINE", "1")
    monkeypatch.setenv("WGAN_DATA", str(tmp_path / "cache"))
    proc = run_cli("train", "--data", "mnist", "--out", str(tmp_path / "run"), *TINY)
    assert_one_line_error(proc, "train-images-idx3-ubyte.gz", str(tmp_path / "cache" / "mnist"),
                          "--data-dir")


def test_real_mnist_and_fashion(shared_data):
    for name in ("mnist", "fashion"):
        data = load_dataset(Config(data=name, data_dir=str(shared_data / name)))
        assert len(data) == 60000 and data.sample_shape == (1, 28, 28)
        counts = torch.bincount(data.labels)
        assert counts.min() == (5421 if name == "mnist" else 6000)  # MNIST's rarest class: 5
        assert counts.max() == (6742 if name == "mnist" else 6000)  # MNIST's commonest: 1
        assert data.data.min() == 0 and data.data.max() == 255
    resized = load_dataset(Config(data="mnist", data_dir=str(shared_data / "mnist"), image_size=32))
    assert resized.sample_shape == (1, 32, 32)


def test_stacked_mnist_stacks_three_digits(shared_data):
    data = load_dataset(Config(data="stacked-mnist", data_dir=str(shared_data / "mnist")))
    x = data.sample(50, torch.Generator().manual_seed(0))
    assert x.shape == (50, 3, 28, 28)
    flat = to_unit_range(data.data).flatten(1)
    for sample in x[:5]:  # each channel is some MNIST digit
        for channel in sample:
            assert (flat == channel.flatten()).all(dim=1).any()


def test_stacked_mnist_reference_batches_are_its_stacked_reference():
    """FID's real images for Stacked MNIST (``reference_batches``) must be the stacked triples
    ``reference_samples`` gives, in [-1, 1]: the inherited batches were the stored grey digits as
    uint8, and FID compared the generator against those without a word."""
    from wgan.data.images import StackedMNIST

    digits = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    data = StackedMNIST(digits, torch.zeros(40, dtype=torch.long))
    reference, _ = data.reference_samples(30, torch.Generator().manual_seed(5))
    batches = list(data.reference_batches(30, torch.Generator().manual_seed(5), batch=7))
    assert [b.shape for b in batches] == [(7, 3, 28, 28)] * 4 + [(2, 3, 28, 28)]
    assert torch.equal(torch.cat(batches), reference)
    assert reference.dtype == torch.float32 and reference.min() >= -1 and reference.max() <= 1


def test_stacked_mnist_reference_triples_are_of_held_out_digits(shared_data):
    """The real triples FID compares against are made of test digits the generator never trained
    on; the floor's other sample of training digits (before, both were training digits, against
    what docs/concepts.md promises)."""
    from wgan.data.images import StackedMNIST

    train, test = torch.zeros(50, 1, 4, 4, dtype=torch.uint8), torch.full((20, 1, 4, 4), 255,
                                                                          dtype=torch.uint8)
    data = StackedMNIST(train, torch.zeros(50, dtype=torch.long), held_out=test)
    reference, other = data.reference_samples(30, torch.Generator().manual_seed(0))
    assert reference.shape == other.shape == (30, 3, 4, 4)
    assert (reference == 1).all() and (other == -1).all()
    batches = torch.cat(list(data.reference_batches(30, torch.Generator().manual_seed(0), 8)))
    assert torch.equal(batches, reference)
    assert (data.sample(10, torch.Generator().manual_seed(0)) == -1).all()  # training: train
    loaded = load_dataset(Config(data="stacked-mnist", data_dir=str(shared_data / "mnist")))
    assert len(loaded) == 60_000 and len(loaded.held_out) == 10_000


def test_digits_need_no_files():
    data = load_dataset(Config(data="digits"))
    assert data.sample_shape == (1, 8, 8) and len(data) == 1797
    pixels = to_unit_range(data.data)
    assert pixels.min() == -1 and pixels.max() == 1
    assert load_dataset(Config(data="digits", image_size=16)).sample_shape == (1, 16, 16)


# ---- CIFAR-10 pickles --------------------------------------------------------------------------

def write_cifar(folder, n=12):
    folder.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, f)
    return data, labels


def test_cifar10_batches(tmp_path):
    data, labels = write_cifar(tmp_path / "c")
    ds = load_dataset(Config(data="cifar10", data_dir=str(tmp_path / "c")))
    assert ds.sample_shape == (3, 32, 32) and ds.labels.tolist() == labels
    first = torch.from_numpy(data[0].reshape(3, 32, 32).astype(np.float32)) / 127.5 - 1
    assert torch.allclose(to_unit_range(ds.data[:1])[0], first)


class _Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": []}))
    proc = run_cli("train", "--data", "cifar10", "--data-dir", str(folder), "--out",
                   str(tmp_path / "run"), *TINY, cwd=tmp_path)
    assert_one_line_error(proc, "data_batch_1", "refusing to load")
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("content,fragment", [
    (b"", "corrupt or truncated"),
    (b"not a pickle at all", "corrupt or truncated"),
    (pickle.dumps([1, 2, 3]), "expected a dict"),
    (pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}), "N x 3072"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 11]}), "labels"),
])
def test_bad_cifar_batches(tmp_path, content, fragment):
    (tmp_path / "data_batch_1").write_bytes(content)
    with pytest.raises(DataError, match=fragment):
        load_dataset(Config(data="cifar10", data_dir=str(tmp_path)))


# ---- image folders -----------------------------------------------------------------------------

def test_image_folder_recursive_resized_and_cropped(tmp_path):
    folder = tmp_path / "pics"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 20), (255, 0, 0)).save(folder / "a.png")
    Image.new("RGB", (20, 30), (0, 0, 255)).save(folder / "sub" / "b.jpg")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    ds = load_dataset(Config(data=str(folder), image_size=16))
    assert ds.data.shape == (2, 3, 16, 16)
    pixels = to_unit_range(ds.data)
    assert torch.allclose(pixels[0, 0], torch.ones(16, 16)) and (pixels[0, 2] == -1).all()
    Image.new("L", (16, 16), 128).save(folder / "sub" / "c.png")
    assert load_dataset(Config(data=str(folder), image_size=8)).sample_shape == (3, 8, 8)
    grey = tmp_path / "grey"
    grey.mkdir()
    Image.new("L", (10, 10), 0).save(grey / "g.png")
    assert load_dataset(Config(data=str(grey), image_size=8)).sample_shape == (1, 8, 8)


@pytest.mark.parametrize("setup,fragment", [
    (lambda d: None, "no images found"),
    (lambda d: (d / "x.png").write_bytes(b""), "empty file"),
    (lambda d: (d / "x.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg"), "not a readable image"),
])
def test_bad_image_folders(tmp_path, setup, fragment):
    folder = tmp_path / "pics"
    folder.mkdir()
    setup(folder)
    proc = run_cli("train", "--data", str(folder), "--out", str(tmp_path / "run"), *TINY)
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "run").exists()


# ---- models ------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["dcgan", "infogan", "resnet", "mlp"])
@pytest.mark.parametrize("size", [8, 28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_model_shapes(model, size, channels):
    config = Config(data="x", model=model, width=8 if model != "mlp" else 32, depth=2,
                    noise_dim=6).resolve()
    generator, critic = build_models(config, (channels, size, size))
    x = generator(torch.randn(3, 6))
    assert x.shape == (3, channels, size, size)
    assert x.abs().max() <= 1  # tanh output: pixels in [-1, 1]
    assert critic(x).shape == (3,)


def test_no_bn_generator_has_constant_filters_and_no_batch_norm():
    config = Config(data="x", model="dcgan", batch_norm=False, width=16).resolve()
    generator, critic = build_models(config, (3, 64, 64))
    convs = [m for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert {m.out_channels for m in convs[:-1]} == {16}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in generator.modules())
    bn = build_models(Config(data="x", model="dcgan", width=16).resolve(), (3, 64, 64))[0]
    assert [m.out_channels for m in bn.modules() if isinstance(m, torch.nn.ConvTranspose2d)] == \
        [128, 64, 32, 16, 3]
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in critic.modules())


@pytest.mark.parametrize("model", ["dcgan", "infogan", "resnet", "mlp"])
def test_generator_width_widens_the_generator_alone(model):
    """--generator-width sizes the generator and leaves the critic at --width; without it the
    two share --width (and a run saved before the field existed resolves the same way)."""
    def params(module):
        return sum(p.numel() for p in module.parameters())

    shape = (1, 28, 28)
    same = Config(data="x", model=model, width=16, depth=2).resolve()
    assert same.generator_width == 16
    wide = Config(data="x", model=model, width=16, generator_width=32, depth=2).resolve()
    g16, c16 = build_models(same, shape)
    g32, c32 = build_models(wide, shape)
    assert params(c32) == params(c16)
    assert params(g32) > params(g16)
    assert g32(torch.randn(2, wide.noise_dim)).shape == (2, *shape)
    old = {k: v for k, v in wide.to_dict().items() if k != "generator_width"}
    assert Config.from_dict(old).resolve().generator_width == 16
    with pytest.raises(ConfigError, match="generator_width must be > 0"):
        Config(data="x", generator_width=0).resolve()


def test_infogan_is_lucic_et_al_s_mnist_architecture():
    """At width 64 on 28 px, ``infogan`` has the layers of Lucic et al. 2018's MNIST table
    (InfoGAN's): critic conv 64 (stride 2), conv 128 (stride 2) with its normalisation, linear
    1,024 with its normalisation, linear 1; generator linear 1,024 and linear 7 x 7 x 128, each
    with batch norm, then transposed convolutions to 64 and to 1 channel."""
    config = Config(data="x", model="infogan", loss="wgan", critic_norm="batch").resolve()
    assert (config.width, config.generator_width, config.noise_dim) == (64, 64, 64)
    generator, critic = build_models(config, (1, 28, 28))
    nn = torch.nn
    norms = (nn.BatchNorm1d, nn.BatchNorm2d)
    shapes = [tuple(m.weight.shape) for m in critic.modules()
              if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert shapes == [(64, 1, 4, 4), (128, 64, 4, 4), (1024, 128 * 7 * 7), (1, 1024)]
    assert [m.num_features for m in critic.modules() if isinstance(m, norms)] == [128, 1024]
    shapes = [tuple(m.weight.shape) for m in generator.modules()
              if isinstance(m, (nn.ConvTranspose2d, nn.Linear))]
    assert shapes == [(1024, 64), (128 * 7 * 7, 1024), (128, 64, 4, 4), (64, 1, 4, 4)]
    assert [m.num_features for m in generator.modules()
            if isinstance(m, norms)] == [1024, 128 * 7 * 7, 64]
    # The WGAN-GP critic has no normalisation; the DCGAN keeps its convolutional ends.
    _, plain = build_models(Config(data="x", model="infogan", loss="wgan-gp").resolve(),
                            (1, 28, 28))
    assert not any(isinstance(m, norms) for m in plain.modules())
    dcgan = build_models(Config(data="x", model="dcgan").resolve(), (1, 28, 28))
    assert not any(isinstance(m, nn.Linear) for net in dcgan for m in net.modules())


def test_bad_model_sizes_and_batch_norm_critic_with_penalty(tmp_path):
    with pytest.raises(ConfigError, match="image side"):
        build_models(Config(data="x", model="dcgan").resolve(), (1, 30, 30))
    with pytest.raises(ConfigError, match="model infogan needs an image side"):
        build_models(Config(data="x", model="infogan").resolve(), (1, 30, 30))
    with pytest.raises(ConfigError, match="square images"):
        build_models(Config(data="x", model="resnet").resolve(), (2,))
    proc = run_cli("train", "--data", "digits", "--model", "dcgan", "--critic-norm", "batch",
                   "--out", str(tmp_path / "run"), *TINY)
    assert_one_line_error(proc, "batch norm", "--critic-norm layer")


def test_the_image_recipe_goes_to_exactly_the_sides_the_dcgan_builds():
    from wgan.models.dcgan import upsampling_plan
    from wgan.presets import is_image

    def builds(side):
        try:
            upsampling_plan(side, "dcgan")
            return True
        except ConfigError:
            return False

    # the sides written out the other way round: 4..7 doubled at least once
    sides = sorted(b * 2 ** d for b in range(4, 8) for d in range(1, 7) if b * 2 ** d < 300)
    assert [s for s in range(1, 300) if builds(s)] == sides
    assert [s for s in range(1, 300) if is_image((1, s, s))] == sides
    assert is_image((3, 28, 28)) and not is_image((1, 28, 56)) and not is_image((28, 28))
    assert not is_image(None) and not is_image((1, 7, 7)) and not is_image((1, 30, 30))


# ---- a real image run --------------------------------------------------------------------------

def test_image_run_writes_grids_and_samples(tmp_path):
    run = tmp_path / "run"
    run_cli("train", "--data", "digits", "--image-size", "16", "--width", "8",
            "--steps", "6", "--sample-every", "3", "--log-every", "3", "--batch-size", "16",
            "--eval-samples", "100", "--threads", "1", "--no-bn", "--quiet", "--amp", "auto",
            "--out", str(run), check=True)
    # No --model: images get the image recipe the tables measured, by their shape.
    stored = json.loads((run / "config.json").read_text())
    assert (stored["preset"], stored["model"], stored["ema"]) == ("image", "dcgan", 0.999)
    # --amp auto: bf16 where this CPU has bf16 units, the precision recorded in the checkpoint
    assert stored["amp"] == "auto"
    meta = RunDir(run).latest_checkpoint()[2]
    assert meta["precision"] == ("bf16" if cpu_bf16_units() else "fp32")
    grids = sorted(p.name for p in (run / "plots").glob("samples-step-*.png"))
    assert grids == ["samples-step-00000003.png", "samples-step-00000006.png"]
    with Image.open(run / "plots" / "samples.png") as image:
        assert image.mode == "L" and image.size == (8 * 18 + 2, 8 * 18 + 2)
    assert list((run / "checkpoints").glob("*.safetensors"))
    run_cli("sample", str(run), "--n", "10", "--out", str(tmp_path / "grid.png"), check=True)
    run_cli("sample", str(run), "--n", "5", "--out", str(tmp_path / "each"), check=True)
    files = sorted((tmp_path / "each").iterdir())
    assert len(files) == 5
    with Image.open(files[0]) as image:
        assert image.size == (16, 16)
    proc = run_cli("sample", str(run), "--n", "5", "--out", str(tmp_path / "each"))
    assert_one_line_error(proc, "already exists", "--force")
    run_cli("sample", str(run), "--n", "4", "--out", str(tmp_path / "s.npy"), check=True)
    assert np.load(tmp_path / "s.npy").shape == (4, 1, 16, 16)


# ---- metrics -----------------------------------------------------------------------------------

def test_frechet_distance_matches_direct_formula():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + np.eye(6), b @ b.T + np.eye(6)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    # Direct: the W2 distance between Gaussians via S2^(1/2) S1 S2^(1/2) (symmetric form).
    root2 = linalg.sqrtm(s2)
    direct = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(root2 @ s1 @ root2))
    assert clf.frechet_distance(m1, s1, m2, s2) == pytest.approx(float(np.real(direct)), rel=1e-8)
    # Diagonal covariances: closed form sum (sqrt(s1) - sqrt(s2))^2.
    d1, d2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    assert clf.frechet_distance(np.zeros(2), d1, np.ones(2), d2) == pytest.approx(2 + 4 + 1)
    assert clf.frechet_distance(m1, s1, m1, s1) == pytest.approx(0, abs=1e-6)


def test_class_and_stacked_metrics_count_modes():
    uniform = torch.arange(10).repeat(7)
    assert clf.class_metrics(uniform) == {"classes_captured": 10, "classes_total": 10,
                                          "class_kl": pytest.approx(0), "class_min_fraction": 0.1}
    one = clf.class_metrics(torch.zeros(50, dtype=torch.long))
    assert one["classes_captured"] == 1 and one["class_kl"] == pytest.approx(np.log(10))
    assert clf.kl_from_uniform(np.array([1, 1, 0, 0])) == pytest.approx(np.log(2))


def test_classifier_learns_and_feeds_the_metrics(shared_data, tmp_path):
    from wgan.data.idx import load_idx_dataset
    from wgan.data.images import to_unit_range

    images, labels = load_idx_dataset("mnist", str(shared_data / "mnist"), "train")
    test_images, test_labels = load_idx_dataset("mnist", str(shared_data / "mnist"), "test")
    torch.set_num_threads(2)
    model = clf.train_classifier(to_unit_range(images[:6000]), labels[:6000], epochs=3)
    acc = clf.accuracy(model, to_unit_range(test_images[:2000]), test_labels[:2000])
    assert acc > 0.9  # a quick 3-epoch, 6,000-digit model; the full one measures >= 99%
    path = clf.save_classifier(model, tmp_path / "c.safetensors", acc)
    loaded, stored = clf.load_classifier(path)
    assert stored == pytest.approx(acc)
    # Real digits stacked three at a time: one mode per triple of the true labels.
    x = to_unit_range(test_images[:300])
    stacked = torch.cat([x[:100], x[100:200], x[200:300]], dim=1)
    metrics = clf.stacked_mnist_metrics(loaded, stacked)
    truth = set((test_labels[:100] * 100 + test_labels[100:200] * 10 + test_labels[200:300]).tolist())
    assert abs(metrics["stacked_modes"] - len(truth)) <= 10
    real = to_unit_range(test_images[:1000])
    assert clf.classifier_frechet(loaded, real[:500], real[500:]) < \
        clf.classifier_frechet(loaded, real[:500], torch.rand(500, 1, 28, 28) * 2 - 1)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 30)
    with pytest.raises(Exception, match="not a wgan MNIST classifier"):
        clf.load_classifier(bad)


def test_evaluation_runs_the_classifier_metrics_on_mnist_and_stacked_mnist(shared_data, tmp_path,
                                                                             monkeypatch):
    """The evaluation path end to end: a real (tiny) MNIST run and a Stacked MNIST run, evaluated
    with a classifier trained on the real files."""
    from wgan import Trainer
    from wgan.data.idx import load_idx_dataset
    from wgan.data.images import to_unit_range

    images, labels = load_idx_dataset("mnist", str(shared_data / "mnist"), "train")
    model = clf.train_classifier(to_unit_range(images[:3000]), labels[:3000], epochs=1)
    path = clf.save_classifier(model, tmp_path / "c.safetensors", 0.9)
    monkeypatch.setattr(clf, "STACKED_SAMPLES", 2600)  # 26,000 in the protocol; a tenth here
    common = dict(data_dir=str(shared_data / "mnist"), model="dcgan", width=8, noise_dim=8,
                  batch_size=16, steps=3, threads=2)
    mnist = Trainer(Config(data="mnist", **common), log=lambda m: None)
    mnist.fit(progress=False)
    results = mnist.evaluate(n=300, classifier=path)
    assert results["n"] == 300 and results["classifier_test_accuracy"] == pytest.approx(0.9)
    assert 1 <= results["classes_captured"] <= 10 and results["classes_total"] == 10
    assert 0 <= results["class_kl"] <= np.log(10) + 1e-9
    assert results["classifier_frechet"] > 0
    stacked = Trainer(Config(data="stacked-mnist", **common), log=lambda m: None)
    results = stacked.evaluate(n=200, classifier=path)
    assert results["stacked_samples"] == 2600 and results["stacked_modes_total"] == 1000
    assert 1 <= results["stacked_modes"] <= 1000 and results["stacked_kl"] >= 0
    with pytest.raises(ConfigError, match="need mnist or stacked-mnist"):
        Trainer(Config(data="digits", model="dcgan", width=8, noise_dim=8, steps=1),
                log=lambda m: None).evaluate(n=50, classifier=path)
