"""Faults and hostile input: SIGKILL at random moments, disk full, code-running pickles,
symlinks out of the run directory, and determinism."""

import os
import pickle
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, run_cli
from wgan import Config, RunDir, Trainer

KILL_ARGS = ["--data", "grid25", "--loss", "wgan-gp", "--lr-decay", "none", "--checkpoint-every",
             "20", "--log-every", "1", "--keep-checkpoints", "2", "--no-eval", *TINY]
TOTAL = 300


def _checkpoint_steps(run):
    return [s for s, _ in RunDir(run).checkpoints()]


def _logged_steps(run):
    path = run / "metrics.csv"
    if not path.exists():
        return 0
    rows = [line.split(",")[0] for line in path.read_text().splitlines()[1:] if line]
    return max((int(r) for r in rows if r.isdigit()), default=0)


def test_sigkill_at_random_moments_then_resume_is_bit_exact(tmp_path):
    reference = tmp_path / "reference"
    run_cli("train", "--steps", str(TOTAL), "--out", str(reference), *KILL_ARGS, check=True)

    run = tmp_path / "killed"
    rng = random.Random(1234)
    kills = 0
    first = True
    while True:
        args = (["train", "--steps", str(TOTAL), "--out", str(run), *KILL_ARGS] if first
                else ["train", "--resume", str(run), "--no-eval", "--quiet"])
        proc = subprocess.Popen([sys.executable, "-m", "wgan", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        if kills < 4:
            # Wait for training to start (a metrics row past the resume point), then a random
            # delay: with a checkpoint every 20 steps, some kills land during a write.
            start_step = max(_checkpoint_steps(run), default=0)
            deadline = time.time() + 60
            while time.time() < deadline and proc.poll() is None and \
                    _logged_steps(run) <= start_step:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.6))
            if proc.poll() is None:
                progress = _logged_steps(run)
                proc.kill()  # SIGKILL: no handler runs
                proc.wait()
                kills += 1
                saved = max(_checkpoint_steps(run), default=0)
                # At most one checkpoint interval is lost (the log may lag the step by one).
                assert saved >= progress - 20 - 1, (saved, progress)
                if not RunDir(run).checkpoints():  # killed before the first checkpoint
                    shutil.rmtree(run, ignore_errors=True)
                    first = True
                else:
                    first = False
                continue
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        break
    assert kills >= 3
    a = load_file(reference / "checkpoints" / f"step-{TOTAL:08d}.safetensors")
    b = load_file(run / "checkpoints" / f"step-{TOTAL:08d}.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    steps = [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)), "a resumed run logged some steps twice"


def test_half_written_newest_checkpoint_is_skipped_with_a_message(tmp_path):
    run = tmp_path / "r"
    run_cli("train", "--steps", "40", "--checkpoint-every", "20", "--out", str(run), "--no-eval",
            "--data", "ring8", *TINY, check=True)
    newest = run / "checkpoints" / "step-00000040.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])  # as if the machine died mid-write
    proc = run_cli("train", "--resume", str(run), "--steps", "60", "--no-eval", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "skipping bad checkpoint" in proc.stderr and "step-00000040" in proc.stderr
    assert "step 20 of 60" in proc.stderr


def _limit_file_size(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_during_checkpoint_keeps_the_previous_one(tmp_path):
    run = tmp_path / "r"
    run_cli("train", "--steps", "20", "--checkpoint-every", "20", "--out", str(run), "--no-eval",
            "--data", "ring8", *TINY, check=True)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    size = len(before["step-00000020.safetensors"])
    # Every file may grow to only half a checkpoint: the next checkpoint cannot be written.
    proc = subprocess.run([sys.executable, "-m", "wgan", "train", "--resume", str(run), "--steps",
                           "40", "--no-eval", "--quiet"], capture_output=True, text=True,
                          preexec_fn=_limit_file_size(size // 2), timeout=300)
    # progress notes come first; the error is one line, last, with exit status 2
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert "cannot write checkpoint at step 40" in error and "previous checkpoint" in error
    after = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    assert after["step-00000020.safetensors"] == before["step-00000020.safetensors"]
    assert not [n for n in after if n.startswith("step-00000040.safetensors") or "tmp" in n]
    assert RunDir(run).latest_checkpoint()[2]["step"] == 20


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_checkpoint_never_runs_code(tmp_path):
    run = tmp_path / "r"
    run_cli("train", "--steps", "20", "--checkpoint-every", "20", "--out", str(run), "--no-eval",
            "--data", "ring8", *TINY, check=True)
    marker = tmp_path / "PWNED"
    evil = pickle.dumps({"generator": _Exploit(marker)})
    ckpt = run / "checkpoints" / "step-00000020.safetensors"
    ckpt.write_bytes(evil)
    import hashlib
    (run / "checkpoints" / "step-00000020.sha256").write_text(
        f"{hashlib.sha256(evil).hexdigest()}  {ckpt.name}\n")  # even a matching checksum
    (run / "checkpoints" / "legacy.pt").write_bytes(evil)
    proc = run_cli("eval", str(run))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "not a wgan checkpoint" in proc.stderr  # the skip message, then the one-line error
    assert "no valid checkpoint" in proc.stderr.strip().splitlines()[-1]
    proc = run_cli("sample", str(run), "--out", str(tmp_path / "s.npy"))
    assert proc.returncode == 2
    assert not marker.exists()
    # ... and as a dataset: a pickled .npy is refused without unpickling
    data = tmp_path / "evil.npy"
    data.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
                     .ljust(127) + b"\n" + evil)
    proc = run_cli("train", "--data", str(data), "--out", str(tmp_path / "run2"), *TINY)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "run2").exists()


def test_symlinked_checkpoint_outside_the_run_is_ignored(tmp_path):
    run = tmp_path / "r"
    run_cli("train", "--steps", "20", "--checkpoint-every", "20", "--out", str(run), "--no-eval",
            "--data", "ring8", *TINY, check=True)
    other = tmp_path / "other"
    run_cli("train", "--steps", "40", "--checkpoint-every", "40", "--out", str(other),
            "--no-eval", "--data", "ring8", *TINY, check=True)
    for suffix in (".safetensors", ".sha256"):
        os.symlink(other / "checkpoints" / f"step-00000040{suffix}",
                   run / "checkpoints" / f"step-00000040{suffix}")
    assert [s for s, _ in RunDir(run).checkpoints()] == [20]


def test_same_seed_same_weights_bit_for_bit():
    config = Config(data="grid25", steps=25, width=32, depth=2, batch_size=32, noise_dim=4, seed=7)
    states = []
    for _ in range(2):
        trainer = Trainer(config, log=lambda m: None)
        trainer.fit(progress=False)
        states.append(trainer.state_tensors()[0])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = Trainer(config.replace(seed=8), log=lambda m: None)
    other.fit(progress=False)
    assert not torch.equal(other.state_tensors()[0]["generator.net.0.weight"],
                           states[0]["generator.net.0.weight"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_a_checkpoint_and_says_how_to_resume(tmp_path, signum):
    run = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "wgan", "train", "--steps", "100000", "--out",
                             str(run), "--data", "ring8", "--log-every", "1", *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and _logged_steps(run) < 5:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"wgan train --resume {run}" in err
    assert RunDir(run).latest_checkpoint()[2]["step"] >= 5
