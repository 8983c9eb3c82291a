"""Runs that travel and never crash (issue 11): checkpoints across device types, EMA with batch
norm, bf16 autocast with the fast penalty, time-based checkpoints, non-finite weights never saved,
and the small traps (W1 solver limit, Frechet imaginary parts, a biased floor, a process-wide
fast-penalty flag, process-wide side effects of constructing a Trainer)."""

import hashlib
import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from conftest import TINY, run_cli
from wgan import Config, RunDir, Trainer
from wgan.data import TensorDataset
from wgan.errors import TrainingDiverged

QUIET = dict(log=lambda m: None)


def _rewrite_checkpoint(path, change_tensors=None, change_meta=None):
    """Rewrite a checkpoint in place (with a matching checksum), as another machine would have
    written it."""
    with open(path, "rb") as handle:
        data = handle.read()
    tensors = safetensors.torch.load(data)
    with safetensors.safe_open(path, framework="pt") as handle:
        meta = json.loads(handle.metadata()["wgan"])
    if change_tensors:
        change_tensors(tensors)
    if change_meta:
        change_meta(meta)
    data = safetensors.torch.save(tensors, metadata={"wgan": json.dumps(meta)})
    path.write_bytes(data)
    path.with_suffix(".sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")


def _cuda_generator_state(seed=0, offset=1234):
    """What ``torch.Generator('cuda').get_state()`` holds: 8 bytes of seed, 8 of Philox offset."""
    return torch.tensor(list(seed.to_bytes(8, "little") + offset.to_bytes(8, "little")),
                        dtype=torch.uint8)


# ---- 1. checkpoints move between device types -------------------------------------------------

def test_checkpoint_written_on_a_gpu_evaluates_samples_and_resumes_on_cpu(tmp_path):
    run = tmp_path / "run"
    run_cli("train", "--data", "ring8", "--steps", "20", "--checkpoint-every", "10", "--out",
            str(run), "--no-eval", *TINY, check=True)
    newest = run / "checkpoints" / "step-00000020.safetensors"

    def as_cuda(meta):  # the device the run was trained on, as a GPU run records it
        if "rng_device" in meta:
            meta["rng_device"] = "cuda"
        meta["config"]["device"] = "cuda"

    _rewrite_checkpoint(newest, lambda t: t.update(rng=_cuda_generator_state()), as_cuda)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "device": "cuda"}))

    proc = run_cli("eval", str(run), "--n", "200", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["step"] == 20
    proc = run_cli("sample", str(run), "--n", "50", "--out", str(tmp_path / "s.npy"))
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "s.npy").shape == (50, 2)
    proc = run_cli("train", "--resume", str(run), "--steps", "30", "--device", "cpu", "--no-eval",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "random state" in line]
    assert len(notes) == 1 and "cuda" in notes[0] and "cpu" in notes[0], proc.stderr
    assert RunDir(run).latest_checkpoint()[2]["step"] == 30


def test_rng_state_is_restored_on_the_same_device_type_and_reseeded_on_another():
    from wgan.state import restore_rng

    source = torch.Generator().manual_seed(5)
    torch.rand(10, generator=source)
    saved = source.get_state()
    same = torch.Generator()
    assert restore_rng(same, saved, "cpu", seed=5, step=40) is None
    assert torch.equal(torch.rand(3, generator=same), torch.rand(3, generator=source))
    # A state saved on another device type is never forced into this generator: it is reseeded
    # from (seed, step), the same way every time, and the caller gets one line to print.
    first, second = torch.Generator(), torch.Generator()
    note = restore_rng(first, _cuda_generator_state(), "cuda", seed=5, step=40)
    restore_rng(second, _cuda_generator_state(), "cuda", seed=5, step=40)
    assert "cuda" in note and "cpu" in note
    assert torch.equal(torch.rand(3, generator=first), torch.rand(3, generator=second))
    other_step = torch.Generator()
    restore_rng(other_step, _cuda_generator_state(), "cuda", seed=5, step=41)
    assert not torch.equal(torch.rand(3, generator=other_step), torch.rand(3, generator=first))


def test_sampling_and_evaluation_do_not_need_the_training_random_state(tmp_path):
    config = Config(data="ring8", steps=10, checkpoint_every=10, **TINY_API).resolve()
    trainer = Trainer(config, run=RunDir.create(tmp_path / "r", config), **QUIET)
    trainer.fit(progress=False)
    expected = trainer.sample(20, seed=3)
    ckpt = RunDir(tmp_path / "r").checkpoints()[-1][1]
    _rewrite_checkpoint(ckpt, lambda t: t.update(rng=torch.zeros(7, dtype=torch.uint8)))
    import wgan

    finished = wgan.load_run(tmp_path / "r")
    assert torch.equal(finished.sample(20, seed=3), expected)


# ---- 2. EMA with a batch-norm generator --------------------------------------------------------

TINY_API = dict(width=8, depth=2, batch_size=16, noise_dim=4, threads=1)


@pytest.mark.parametrize("model", ["dcgan", "resnet"])
def test_ema_with_batch_norm_trains_resumes_bit_exactly_and_samples(tmp_path, model):
    base = Config(data="digits", model=model, ema=0.9, steps=6, checkpoint_every=3,
                  log_every=3, lr_decay="none", **TINY_API).resolve()
    straight = Trainer(base, run=RunDir.create(tmp_path / "a", base), **QUIET)
    straight.fit(progress=False)
    half = base.replace(steps=3)
    Trainer(half, run=RunDir.create(tmp_path / "b", half), **QUIET).fit(progress=False)
    resumed = Trainer.resume(tmp_path / "b", steps=6, **QUIET)
    resumed.fit(progress=False)
    a = load_file(tmp_path / "a" / "checkpoints" / "step-00000006.safetensors")
    b = load_file(tmp_path / "b" / "checkpoints" / "step-00000006.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # Integer buffers are copied, floating ones averaged: the average lags the raw generator.
    ema = {k[len("ema.module."):]: v for k, v in a.items() if k.startswith("ema.module.")}
    raw = {k[len("generator."):]: v for k, v in a.items() if k.startswith("generator.")}
    counters = [k for k in raw if k.endswith("num_batches_tracked")]
    assert counters and all(torch.equal(ema[k], raw[k]) for k in counters)
    assert any(not torch.equal(ema[k], raw[k]) for k in raw if raw[k].is_floating_point())
    proc = run_cli("sample", str(tmp_path / "b"), "--n", "9", "--out", str(tmp_path / "s.png"))
    assert proc.returncode == 0, proc.stderr


# ---- 3. bf16 autocast with the fast penalty, on CPU too --------------------------------------

@pytest.mark.parametrize("model", ["mlp", "dcgan", "infogan", "resnet"])
@pytest.mark.parametrize("loss", ["wgan", "wgan-gp", "wgan-lp"])
def test_bf16_autocast_trains_every_model_and_constraint_on_cpu(model, loss):
    data = "ring8" if model == "mlp" else "digits"
    config = Config(data=data, model=model, loss=loss, amp="bf16", steps=4, log_every=2,
                    critic_boost=False, **TINY_API)
    trainer = Trainer(config, **QUIET)
    row = trainer.fit(progress=False)
    assert row["step"] == 4
    for key in ("critic_loss", "generator_loss", "penalty"):
        assert np.isfinite(row[key]), (key, row)
    if loss == "wgan-gp":
        assert row["penalty"] > 0  # (the one-sided penalty is 0 while every norm is below 1)
    for p in [*trainer.generator.parameters(), *trainer.critic.parameters()]:
        assert p.dtype == torch.float32 and torch.isfinite(p).all()


@pytest.mark.parametrize("model,shape", [("mlp", (2,)), ("dcgan", (1, 16, 16)),
                                         ("resnet", (1, 16, 16))])
@pytest.mark.parametrize("one_sided", [False, True])
def test_bf16_penalty_agrees_with_float32_to_bf16_precision(model, shape, one_sided):
    from wgan.models import build_models
    from wgan.objectives import gradient_penalty

    torch.manual_seed(0)
    config = Config(data="x", model=model, loss="wgan-gp", width=8, depth=2, noise_dim=4)
    _, critic = build_models(config.resolve(), shape)
    real, fake = torch.randn(32, *shape), torch.randn(32, *shape)
    eps = torch.rand(32)
    # Scale the critic's last layer so that a quarter of the gradient norms are below 1: both
    # sides of the one-sided penalty's hinge occur.
    x_hat = torch.lerp(fake, real, eps.view(-1, *[1] * len(shape))).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
    last = [m for m in critic.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1]
    norms = grad.flatten(1).norm(dim=1)
    with torch.no_grad():
        last.weight.div_(norms.quantile(0.25))
    rms_norm = float((norms / norms.quantile(0.25)).pow(2).mean().sqrt())
    results = {}
    for amp in (False, True):
        for fast in (False, True):
            critic.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                penalty = gradient_penalty(critic, real, fake, epsilon=eps, one_sided=one_sided,
                                           fast=fast)
            assert penalty.dtype == torch.float32  # the norm is taken in float32
            penalty.backward()
            grads = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten()
                               for p in critic.parameters()])
            results[amp, fast] = penalty.detach(), grads
    reference, reference_grads = results[False, False]
    assert reference > 0
    for key, (value, grads) in results.items():
        # bf16 keeps 8 bits of mantissa: allow each gradient norm n a 1% error, which moves
        # mean (n - 1)^2 by at most 2 sqrt(penalty) rms(n) 1% + (rms(n) 1%)^2 (Cauchy-Schwarz).
        delta = 1e-2 * rms_norm
        atol = 2 * float(reference.sqrt()) * delta + delta**2 if key[0] else 1e-7
        assert torch.allclose(value, reference, rtol=1e-5, atol=atol), (key, value, reference)
        cos = F.cosine_similarity(grads, reference_grads, dim=0)
        assert cos > (0.99 if key[0] else 1 - 1e-6), (key, cos)


@pytest.mark.parametrize("model,shape", [("mlp", (2,)), ("dcgan", (1, 16, 16)),
                                         ("resnet", (1, 16, 16))])
def test_bf16_keeps_the_layers_that_touch_the_samples_in_float32(model, shape):
    """Under autocast the generator's output layer and the critic's first layer compute in
    float32: the generator's outputs are not rounded to bf16 (they would all be representable
    in bf16 if its last layer ran in bf16), and the critic's first layer gives exactly what it
    gives outside autocast on the same input."""
    from wgan.models import build_models

    torch.manual_seed(0)
    config = Config(data="x", model=model, loss="wgan-gp", width=8, depth=2, noise_dim=4)
    generator, critic = build_models(config.resolve(), shape)
    generator.eval()
    z = torch.randn(64, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = generator(z)
    assert out.dtype == torch.float32
    assert (out != out.bfloat16().float()).float().mean() > 0.5
    first = next(m for m in critic.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    seen = []
    # (a copy: the DCGAN critic applies its activation in place)
    first.register_forward_hook(lambda module, inputs, out: seen.append((inputs[0], out.clone())))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        score = critic(torch.randn(16, *shape))
    assert score.dtype == torch.bfloat16  # the rest of the critic does run in bf16
    x, y = seen[0]
    assert y.dtype == torch.float32
    with torch.no_grad():
        assert torch.equal(y, first(x))


# ---- 4. killed early, resumable ----------------------------------------------------------------

def test_checkpoints_by_wall_time_survive_an_early_sigkill(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "wgan", "train", "--data", "ring8", "--steps",
                             "1000000", "--checkpoint-every", "1000000", "--checkpoint-minutes",
                             "0.02", "--out", str(run), "--no-eval", *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and len(RunDir(run).checkpoints()) < 2:
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    steps = [s for s, _ in RunDir(run).checkpoints()]
    assert len(steps) >= 2 and all(0 < s < 1000000 for s in steps), steps
    proc = run_cli("train", "--resume", str(run), "--steps", str(steps[-1] + 5), "--no-eval",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"step {steps[-1]} of {steps[-1] + 5}" in proc.stderr


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_at_step_0(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "wgan", "train", "--data", "ring8", "--steps",
                             "1000000", "--out", str(run), *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (run / "config.json").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run / "config.json").exists() and not RunDir(run).checkpoints()
    proc = run_cli("train", "--resume", str(run), "--steps", "10", "--no-eval", "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "no checkpoint" in line]
    assert len(lines) == 1 and "step 0" in lines[0], proc.stderr
    assert RunDir(run).latest_checkpoint()[2]["step"] == 10


# ---- 5. a checkpoint never holds non-finite weights --------------------------------------------

class PoisonedData(TensorDataset):
    """Finite points until the ``after``-th batch, then NaN: the critic's weights turn NaN on
    that step, between two logging steps."""

    def __init__(self, after):
        super().__init__("poisoned", torch.randn(256, 2, generator=torch.Generator().manual_seed(0)))
        self.calls, self.after = 0, after

    def sample(self, n, generator):
        self.calls += 1
        batch = super().sample(n, generator)
        return batch * float("nan") if self.calls > self.after else batch


def test_non_finite_weights_are_never_checkpointed_and_the_last_good_one_is_kept(tmp_path):
    config = Config(data="poisoned", loss="wgan-gp", steps=40, checkpoint_every=2,
                    keep_checkpoints=1, log_every=1000, critic_boost=False, **TINY_API).resolve()
    run = RunDir.create(tmp_path / "r", config)
    trainer = Trainer(config, run=run, dataset=PoisonedData(after=5 * 7), **QUIET)  # step 7
    with pytest.raises(TrainingDiverged, match="step 8"):
        trainer.fit(progress=False)
    kept = run.checkpoints()
    assert [s for s, _ in kept] == [6]
    tensors, _ = run.read_checkpoint(kept[-1][1])
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


# ---- 6. small traps ------------------------------------------------------------------------------

def test_w1_solver_limit_is_raised_or_reported(monkeypatch):
    from wgan.metrics import wasserstein

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 0.5
    exact = wasserstein.w1_exact(x, y)
    monkeypatch.setattr(wasserstein, "FIRST_ITERATION_LIMIT", 50)
    assert wasserstein.w1_exact(x, y) == pytest.approx(exact, rel=1e-12)  # limit raised
    monkeypatch.setattr(wasserstein, "MAX_ITERATION_LIMIT", 50)
    with pytest.raises(wasserstein.SolverLimitReached):
        wasserstein.w1_exact(x, y)
    # The evaluation reports it instead of a silently too-high number.
    trainer = Trainer(Config(data="ring8", steps=1, **TINY_API), **QUIET)
    results = trainer.evaluate(n=300)
    assert results["w1_exact"] is None and "iteration limit" in results["w1_note"]


def test_frechet_distance_refuses_an_imaginary_root_and_survives_singular_covariances():
    from wgan.metrics.frechet import frechet_distance

    good = np.diag([1.0, 2.0])
    assert frechet_distance(np.zeros(2), good, np.zeros(2), good) == pytest.approx(0, abs=1e-9)
    not_a_covariance = np.diag([1.0, -4.0])  # sqrtm of the product is imaginary
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), good, np.zeros(2), not_a_covariance)
    # 40 samples in 300 dimensions: singular covariances, where scipy's sqrtm(S1 S2) has large
    # spurious imaginary parts. Check against the closed form for commuting (diagonal-free)
    # matrices: the same samples shifted have FID = |shift|^2 exactly.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 300))
    cov = np.cov(x, rowvar=False)
    shift = np.full(300, 0.1)
    # (the trace terms, about 600 each, cancel to 1e-7 of their size)
    assert frechet_distance(x.mean(0), cov, x.mean(0) + shift, cov) == pytest.approx(
        shift @ shift, abs=1e-4)


def test_w1_floor_uses_disjoint_real_samples_on_small_data():
    rng = torch.Generator().manual_seed(0)
    points = torch.randn(60, 2, generator=rng)
    data = TensorDataset("small", points)
    trainer = Trainer(Config(data="small", steps=1, **TINY_API), dataset=data, **QUIET)
    results = trainer.evaluate(n=2000)
    # Two disjoint halves of 30 points each: what the floor must measure. Drawing 2,000 with
    # replacement from the same 60 points twice would give a floor near 0.
    from wgan.metrics import w1_exact

    splits = [torch.randperm(60, generator=rng) for _ in range(20)]
    disjoint = np.mean([w1_exact(points[s[:30]], points[s[30:]]) for s in splits])
    assert results["n"] == 30
    assert results["w1_floor"] > 0.6 * disjoint, (results["w1_floor"], disjoint)


def test_fast_penalty_flag_is_thread_local_and_user_double_backward_keeps_every_gradient():
    from wgan.models import build_models
    from wgan.models.layers import _fast_penalty_forward

    torch.manual_seed(0)
    _, critic = build_models(Config(data="x", model="dcgan", width=8).resolve(), (1, 16, 16))
    x = torch.randn(4, 1, 16, 16, requires_grad=True)

    def user_regulariser():  # an R1-style penalty written by hand, not through wgan's penalty
        critic.zero_grad(set_to_none=True)
        (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        grad.pow(2).sum().backward()
        return [p.grad for p in critic.parameters()]

    expected = user_regulariser()
    inside, release = threading.Event(), threading.Event()

    def penalty_thread():
        with _fast_penalty_forward():
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=penalty_thread)
    thread.start()
    try:
        inside.wait(30)
        got = user_regulariser()  # while another thread is inside the penalty's forward
    finally:
        release.set()
        thread.join()
    assert sum(g is not None for g in expected) >= 4  # every layer's weight has a gradient
    for a, b in zip(expected, got):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(b, a)


def test_constructing_a_trainer_leaves_process_wide_state_alone():
    from torch._dynamo import config as dynamo_config

    threads = torch.get_num_threads()
    suppress = dynamo_config.suppress_errors
    torch.manual_seed(123)
    state = torch.get_rng_state()
    Trainer(Config(data="ring8", compile=True, threads=1, seed=9, **{k: v for k, v in
                                                                     TINY_API.items()
                                                                     if k != "threads"}),
            **QUIET)
    assert torch.equal(torch.get_rng_state(), state)
    assert dynamo_config.suppress_errors == suppress
    assert torch.get_num_threads() == threads


def test_dependency_floors_admit_only_versions_with_the_apis_used():
    from pathlib import Path

    import tomllib
    from packaging.requirements import Requirement
    from packaging.version import Version

    root = Path(__file__).resolve().parents[1]
    deps = {Requirement(d).name: Requirement(d).specifier
            for d in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]}
    sources = "\n".join(p.read_text() for p in (root / "src").rglob("*.py"))
    assert "fused=" in sources and "np.trapezoid" in sources
    # fused CPU Adam/SGD arrived in torch 2.4; np.trapezoid in numpy 2.0
    assert not deps["torch"].contains(Version("2.3.1"))
    assert not deps["numpy"].contains(Version("1.26.4"))


def test_amp_auto_takes_bf16_only_where_the_device_computes_it(monkeypatch):
    """``--amp auto``: bf16 on a CPU with bf16 units, float32 on one
    without (emulated bf16 is slower) or where /proc/cpuinfo cannot be read; an explicit choice
    is kept whatever the CPU."""
    from wgan import runtime

    cpu = torch.device("cpu")
    for units, expected in ((True, "bf16"), (False, "none"), (None, "none")):
        monkeypatch.setattr(runtime, "cpu_bf16_units", lambda units=units: units)
        assert runtime.resolve_amp("auto", cpu)[0] == expected
        assert runtime.resolve_amp("bf16", cpu)[0] == "bf16"
        assert runtime.resolve_amp("none", cpu)[0] == "none"
        lines = []
        config = Config(data="grid25", amp="auto", device="cpu").resolve()
        made = runtime.Runtime.from_config(config, lines.append)
        assert (made.amp_dtype is torch.bfloat16) == (expected == "bf16")
        assert made.precision == ("bf16" if units else "fp32")
        assert lines == [f"precision: {'bf16 autocast' if units else 'float32'} "
                         f"(auto: this CPU has {'' if units else 'no '}bf16 units)"]
