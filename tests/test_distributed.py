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


def test_torchrun_run_resumes_in_one_process_and_evaluates(tmp_path):
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
    proc = run_cli("train", "--resume", str(run), "--steps", "30", "--no-eval", "--no-report",
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "trained with 2 process(es), continuing with 1" in proc.stderr
    assert RunDir(run).latest_checkpoint()[2]["step"] == 30
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
