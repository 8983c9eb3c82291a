"""Multi-process training (issue 13) with real torchrun processes on the CPU (gloo, 2 ranks, tiny
models, a timeout on each): gradients equal across ranks and to one process on the global batch,
a torchrun run resumed by one process, and a killed rank."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import distributed_worker as worker
from conftest import run_cli
from wgan import RunDir, Trainer
from wgan.constraints import GradientPenalty
from wgan.data import TensorDataset
from wgan.distributed import step_seed
from wgan.objectives import gradient_penalty

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
TINY = ["--width", "16", "--depth", "2", "--batch-size", "16", "--noise-dim", "4",
        "--sample-every", "0", "--quiet"]


def torchrun(*args, timeout=180):
    return subprocess.run([*TORCHRUN, *args], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


class FixedEpsilon(GradientPenalty):
    """The penalty with the interpolation weights the two ranks drew, concatenated."""

    def __init__(self, base, epsilon):
        super().__init__(base.weight, base.fast)
        self.one_sided, self.epsilon = base.one_sided, epsilon

    def penalty(self, critic, real, fake, generator):
        return gradient_penalty(critic, real, fake, one_sided=self.one_sided,
                                epsilon=self.epsilon, fast=self.fast)


def single_process_weights(constraint):
    """One process, one step, on the global batch: both ranks' real batches, noises and
    interpolation weights, concatenated."""
    config = worker.config(constraint).replace(batch_size=2 * worker.BATCH)
    trainer = Trainer(config, dataset=TensorDataset("points", worker.points()),
                      log=lambda m: None)
    calls = iter(range(100))
    trainer.algorithm.real_batch = lambda n: torch.cat([worker.real_batch(r) for r in (0, 1)])

    def noise(n):
        call = next(calls)
        return torch.cat([worker.noise_batch(r, call) for r in (0, 1)])

    trainer.algorithm.noise = noise
    if constraint in ("gp", "lp"):
        epsilon = torch.cat([torch.rand(worker.BATCH, generator=torch.Generator().manual_seed(
            step_seed(trainer.config.seed, r, 0))) for r in (0, 1)])
        trainer.algorithm.constraint = FixedEpsilon(trainer.constraint, epsilon)
    trainer.train_step()
    return torch.cat([p.detach().flatten() for m in (trainer.generator, trainer.critic)
                      for p in m.parameters()]).numpy()


def initial_weights(constraint):
    trainer = Trainer(worker.config(constraint), dataset=TensorDataset("points", worker.points()),
                      log=lambda m: None)
    return torch.cat([p.detach().flatten() for m in (trainer.generator, trainer.critic)
                      for p in m.parameters()]).numpy()


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_gradients_equal_across_ranks_and_to_one_process_on_the_global_batch(tmp_path, float64):
    (tmp_path / "ddp").mkdir()
    (tmp_path / "trap").mkdir()
    proc = torchrun("tests/distributed_worker.py", str(tmp_path / "ddp"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = torchrun("tests/distributed_worker.py", str(tmp_path / "trap"), "--separate-backward")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for constraint in worker.CONSTRAINTS:
        ranks = [np.load(tmp_path / "ddp" / f"{constraint}-rank{r}.npy") for r in (0, 1)]
        reference = single_process_weights(constraint)
        assert np.array_equal(ranks[0], ranks[1]), constraint
        np.testing.assert_allclose(ranks[0], reference, rtol=1e-6, atol=1e-6, err_msg=constraint)
        # the step moved the weights, so agreeing is not agreeing on the initial ones
        assert np.abs(ranks[0] - initial_weights(constraint)).max() > 1e-4, constraint
    # The trap: the penalty backpropagated on its own leaves the ranks apart, with no error.
    trap = [np.load(tmp_path / "trap" / f"gp-rank{r}.npy") for r in (0, 1)]
    assert np.abs(trap[0] - trap[1]).max() > 1e-4
    assert np.abs(trap[0] - single_process_weights("gp")).max() > 1e-4


def test_conv_critic_with_the_fast_penalty_on_the_real_data_path(tmp_path, float64):
    """DCGAN critic (layer norm, fast penalty), batches from the real data stream: the ranks draw
    different batches, and their weights equal one process's on the concatenated inputs."""
    proc = torchrun("tests/distributed_worker.py", str(tmp_path), "--conv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [np.load(tmp_path / f"conv-rank{r}.npy") for r in (0, 1)]
    drawn = [torch.load(tmp_path / f"conv-drawn-rank{r}.pt") for r in (0, 1)]
    assert np.array_equal(ranks[0], ranks[1])
    for name in ("real", "noise", "epsilon"):
        assert len(drawn[0][name]) == len(drawn[1][name]) > 0, name
        assert not torch.equal(drawn[0][name][0], drawn[1][name][0]), name
    config = worker.conv_config().replace(batch_size=2 * worker.BATCH)
    trainer = Trainer(config, log=lambda m: None)
    before = torch.cat([p.detach().flatten() for m in (trainer.generator, trainer.critic)
                        for p in m.parameters()]).numpy()
    calls = {"real": iter(range(100)), "noise": iter(range(100))}

    def replay(name):
        return lambda n: (lambda i: torch.cat([drawn[r][name][i] for r in (0, 1)]))(
            next(calls[name]))

    trainer.algorithm.real_batch, trainer.algorithm.noise = replay("real"), replay("noise")
    epsilons = iter(range(100))

    class Replayed(FixedEpsilon):
        def penalty(self, critic, real, fake, generator):
            i = next(epsilons)
            self.epsilon = torch.cat([drawn[r]["epsilon"][i] for r in (0, 1)])
            return super().penalty(critic, real, fake, generator)

    trainer.algorithm.constraint = Replayed(trainer.constraint, None)
    trainer.train_step()
    reference = torch.cat([p.detach().flatten() for m in (trainer.generator, trainer.critic)
                           for p in m.parameters()]).numpy()
    np.testing.assert_allclose(ranks[0], reference, rtol=1e-6, atol=1e-8)
    assert np.abs(reference - before).max() > 1e-4


def test_torchrun_run_resumes_in_one_process_and_evaluates(tmp_path):
    """Also: --batch-size may change on a resume with another number of processes only."""
    run = tmp_path / "run"
    proc = torchrun("-m", "wgan", "train", "--data", "ring8", "--steps", "20",
                    "--checkpoint-every", "10", "--log-every", "5", "--eval-samples", "200",
                    "--out", str(run), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "global batch 16 x 2 = 32" in proc.stderr
    assert proc.stderr.count("run directory:") == 1  # one process speaks
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [s for s, _ in RunDir(run).checkpoints()] == [10, 20]
    steps = [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [5, 10, 15, 20]
    writers = {p.name.split(".")[-2] for p in (run / "tensorboard").glob("events.out.tfevents.*")}
    assert len(writers) == 1  # event files from one process (their names end in its pid)
    proc = run_cli("train", "--resume", str(run), "--steps", "30", "--batch-size", "32",
                   "--no-eval", "--no-report", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert ("trained with 2 process(es), continuing with 1: the global batch was 16 x 2 = 32, "
            "now 32 x 1 = 32") in proc.stderr
    assert RunDir(run).latest_checkpoint()[2]["step"] == 30
    assert RunDir(run).load_config().batch_size == 32
    same = run_cli("train", "--resume", str(run), "--steps", "31", "--batch-size", "16")
    assert same.returncode == 2 and "same number of processes (1)" in same.stderr
    result = run_cli("eval", str(run), "--n", "200", "--json", check=True)
    assert '"step": 30' in result.stdout
    run_cli("sample", str(run), "--n", "10", "--out", str(tmp_path / "s.npy"), check=True)
    assert np.load(tmp_path / "s.npy").shape == (10, 2)


def _children(pid):
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_killed_rank_ends_the_run_in_bounded_time_and_resume_completes(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([*TORCHRUN, "-m", "wgan", "train", "--data", "ring8", "--steps",
                             "100000", "--checkpoint-every", "20", "--log-every", "10", "--out",
                             str(run), *TINY], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not RunDir(run).checkpoints():
        time.sleep(0.2)
    assert RunDir(run).checkpoints(), "no checkpoint in 120 s"
    workers = _children(proc.pid)
    assert len(workers) == 2, workers
    os.kill(max(workers), signal.SIGKILL)  # one rank dies mid-run
    start = time.time()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert time.time() - start < 120
    assert "exitcode" in err and "-9" in err  # torchrun names the dead rank
    saved = RunDir(run).latest_checkpoint()[2]["step"]
    resumed = run_cli("train", "--resume", str(run), "--steps", str(saved + 10), "--no-eval",
                      "--no-report", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert RunDir(run).latest_checkpoint()[2]["step"] == saved + 10


# ---- control decisions taken together (issue 21) ------------------------------------------------

CONTROL = [*TORCHRUN, "tests/distributed_control_worker.py"]


def _rank_pids(pid, timeout=60):
    """{rank: pid} of torchrun's worker processes, read from their environments."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ranks = {}
        for child in _children(pid):
            try:
                env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for entry in env:
                if entry.startswith(b"RANK="):
                    ranks[int(entry[5:])] = child
        if len(ranks) == 2:
            return ranks
        time.sleep(0.2)
    raise AssertionError("torchrun's two workers not found")


def _wait_for_metrics(run, rows=2, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = run / "metrics.csv"
        if path.is_file() and len(path.read_text().splitlines()) > rows:
            return
        time.sleep(0.2)
    raise AssertionError(f"no training progress in {timeout} s")


def test_sigterm_to_one_rank_stops_every_rank_with_a_checkpoint(tmp_path):
    """As when one node of a job is preempted. Before: that rank exited 130 at once, torchrun
    killed the others and reported a failure, and no checkpoint was written."""
    run = tmp_path / "run"
    proc = subprocess.Popen([*CONTROL, "train", "--data", "ring8", "--steps", "1000000",
                             "--checkpoint-every", "1000000", "--log-every", "10", "--out",
                             str(run), "--no-eval", "--no-report", *TINY], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ranks = _rank_pids(proc.pid)
    _wait_for_metrics(run)
    assert not RunDir(run).checkpoints()
    os.kill(ranks[1], signal.SIGTERM)
    start = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - start < 30
    assert proc.returncode == 0, err[-3000:]
    assert "FAILED" not in err and "ChildFailedError" not in err
    stopped = [line for line in err.splitlines() if "SIGTERM received" in line]
    assert len(stopped) == 1 and f"wgan train --resume {run}" in stopped[0], err[-2000:]
    saved = RunDir(run).latest_checkpoint()[2]["step"]  # written after the signal
    assert f"stopped at step {saved} " in stopped[0]
    resumed = run_cli("train", "--resume", str(run), "--steps", str(saved + 10), "--no-eval",
                      "--no-report", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert RunDir(run).latest_checkpoint()[2]["step"] == saved + 10


def test_a_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """Rank 1 alone sees a NaN loss at step 14, a checkpoint step. Before: rank 1 stopped, rank 0
    wrote a checkpoint of step 14 and trained on until torchrun killed it."""
    run = tmp_path / "run"
    start = time.time()
    proc = subprocess.run([*CONTROL, "train", "--data", "ring8", "--steps", "40",
                           "--checkpoint-every", "7", "--log-every", "5", "--out", str(run),
                           "--no-eval", "--no-report", *TINY],
                          env={**ENV, "WGAN_TEST_NAN_STEP": "14"}, capture_output=True,
                          text=True, timeout=120)
    assert time.time() - start < 90
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "training diverged" in line]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "at step 14: critic loss (on rank 1) is NaN or infinite" in lines[0]
    assert [step for step, _ in RunDir(run).checkpoints()] == [7]  # the last good one, kept
    resumed = run_cli("train", "--resume", str(run), "--steps", "20", "--no-eval", "--no-report",
                      "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert RunDir(run).latest_checkpoint()[2]["step"] == 20


def test_every_rank_resumes_from_rank_0s_checkpoint_or_none_does(tmp_path):
    """Ranks that see different files (two copies of a run, one missing its newest
    checkpoint): every rank loads the one rank 0 chose, or all stop with one line."""
    import shutil

    full = tmp_path / "full"
    run_cli("train", "--data", "ring8", "--steps", "10", "--checkpoint-every", "5",
            "--no-eval", "--no-report", "--out", str(full), *TINY, check=True)
    older = tmp_path / "older"
    shutil.copytree(full, older)
    for suffix in (".safetensors", ".sha256"):
        (older / "checkpoints" / f"step-00000010{suffix}").unlink()
    common = ["--steps", "14", "--no-eval", "--no-report", "--quiet"]
    # rank 0 sees step 10, rank 1 does not have it: nobody trains
    proc = subprocess.run([*CONTROL, *common], env={**ENV, "WGAN_TEST_RESUME": f"{full},{older}"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "cannot resume" in line]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "rank 0 resumes from step-00000010.safetensors" in errors[0]
    assert "(on rank 1)" in errors[0] and str(older) in errors[0]
    assert RunDir(full).latest_checkpoint()[2]["step"] == 10  # nothing written
    # rank 0 sees step 5 as its newest, rank 1 would have taken 10: both load 5
    dump = tmp_path / "dump"
    dump.mkdir()
    proc = subprocess.run([*CONTROL, *common],
                          env={**ENV, "WGAN_TEST_RESUME": f"{older},{full}",
                               "WGAN_TEST_DUMP": str(dump)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "from step-00000005.safetensors" in proc.stderr
    assert int(np.load(dump / "step-rank0.npy")) == int(np.load(dump / "step-rank1.npy")) == 14
    assert np.array_equal(np.load(dump / "rank0.npy"), np.load(dump / "rank1.npy"))
