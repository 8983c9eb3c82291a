"""The image-table script's bookkeeping: `--summary` and `--figure` over a results folder, and
the classifier a run needs.

Training and scoring are the CLI's (tested elsewhere); what the script adds is bookkeeping:
which curve point belongs to which segment of metrics.csv, the rank correlations the issue's
claim rests on, and that the MNIST classifier exists before a run whose metrics need it. The
state file below is written the way `one_run` writes it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest
import safetensors.torch
import torch

from conftest import REPO, run_cli

SCRIPT = REPO / "benchmarks" / "image_quality.py"


def test_summary_ranks_the_logged_objective_by_segment_and_draws_the_figure(tmp_path):
    # FID falls at every checkpoint and the fresh-sample estimate with it (Spearman +1). The
    # logged objective's value per checkpoint is the mean of the rows of the segment ending
    # there: rows 5, 4, 3 at steps 100, 200, 300, then a wild 50 at step 301, which belongs to
    # the last segment; a cut on the wrong side of a mark puts it in the third and flips rho.
    curve = [{"step": s, "fid": f, "critic_estimate": e} for s, f, e in
             ((100, 90.0, 3.0), (200, 60.0, 2.0), (300, 40.0, 1.5), (400, 30.0, 1.0))]
    (tmp_path / "mnist-wgan-s0.json").write_text(json.dumps(
        {"curve": curve, "train_s": 120.0, "eval_s": 60.0, "curve_n": 500,
         "final": {"step": 400, "fid": 12.5, "fid_n": 10000, "precision": 0.4, "recall": 0.7,
                   "classes_captured": 10, "classes_total": 10, "class_kl": 0.01}}))
    run = tmp_path / "mnist-wgan-s0"
    run.mkdir()
    rows = [(100, -5.0), (200, -4.0), (300, -3.0), (301, -50.0), (400, -0.5)]
    (run / "metrics.csv").write_text("step,critic_loss\n" + "".join(
        f"{step},{loss}\n" for step, loss in rows))
    figure = tmp_path / "curves.png"
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--summary",
                           "--figure", str(figure)], capture_output=True, text=True, check=True)
    row = next(line for line in done.stdout.splitlines() if line.startswith("| mnist-wgan-s0"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:3] == ["400", "12.50 (10000)"]
    assert cells[5] == "1.000"  # fresh estimate against FID
    # Logged, per segment: 5, 4, 3, mean(50, 0.5) = 25.25; ranks 3, 2, 1, 4 against FID's
    # 4, 3, 2, 1 give rho = 1 - 6 * 12 / 60 = -0.2. Putting step 301 in the third segment
    # instead (5, 4, 26.5, 0.5) would give +0.4.
    assert cells[6] == "-0.200"
    assert cells[7] == "10/10 (0.010)"
    assert figure.is_file() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_ranks_only_the_points_of_the_last_points_reference(tmp_path):
    # A run resumed across a change of FID reference (a protocol version, other real images):
    # its first two points' FIDs were measured against other images and run against the
    # critic's estimate; over all six rho would be -0.371. The last four, ranked alone: 1.
    curve = [{"step": s, "fid": f, "critic_estimate": e, "fid_protocol": "v2",
              "fid_reference": ref} for s, f, e, ref in
             ((100, 10.0, 3.0, "old"), (200, 5.0, 2.5, "old"), (300, 90.0, 2.0, "new"),
              (400, 60.0, 1.5, "new"), (500, 40.0, 1.2, "new"), (600, 30.0, 1.0, "new"))]
    (tmp_path / "mnist-wgan-s0.json").write_text(json.dumps(
        {"curve": curve, "train_s": 60.0, "eval_s": 6.0, "curve_n": 500}))
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--summary"],
                          capture_output=True, text=True, check=True)
    row = next(line for line in done.stdout.splitlines() if line.startswith("| mnist-wgan-s0"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[5] == "1.000 (4 of 6 points)"


def test_summary_averages_each_setting_over_its_seeds_scored_alike(tmp_path):
    # Three seeds of one setting (FID 10, 12, 14: mean 12, sd 2, worst 14); a fourth seed scored
    # with bf16 features must not join their mean (it would make it 11.5), a run with other flags
    # forms its own row, and a run not yet scored appears in none.
    def write(stem, fid, extra="--lr 1", protocol="v2", final=True):
        state = {"curve": [], "train_s": 1.0, "eval_s": 1.0, "steps": 100, "extra": extra}
        if final:
            state["final"] = {"step": 100, "fid": fid, "fid_n": 10000, "precision": fid / 100,
                              "recall": 0.5, "fid_protocol": protocol, "fid_reference": "r"}
        (tmp_path / f"{stem}.json").write_text(json.dumps(state))

    for seed, fid in enumerate((10.0, 12.0, 14.0)):
        write(f"mnist-wgan-gp-s{seed}", fid)
    write("mnist-wgan-gp-s3", 10.0, protocol="v2-bf16")
    write("mnist-wgan-gp-s4", 1.0, final=False)
    write("fashion-wgan-gp-s0", 20.0, extra="--lr 2")
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--summary"],
                          capture_output=True, text=True, check=True)
    rows = [[cell.strip() for cell in line.strip("|").split("|")]
            for line in done.stdout.splitlines() if line.startswith("| mnist-wgan-gp |")
            or line.startswith("| fashion-wgan-gp |")]
    by_seeds = {(row[0], row[4]): row for row in rows}
    assert set(by_seeds) == {("mnist-wgan-gp", "0, 1, 2"), ("mnist-wgan-gp", "3"),
                             ("fashion-wgan-gp", "0")}
    assert by_seeds["mnist-wgan-gp", "0, 1, 2"][3] == "v2 (10000)"
    assert by_seeds["mnist-wgan-gp", "0, 1, 2"][5:9] == ["12.00", "2.00", "14.00", "0.120"]
    assert by_seeds["fashion-wgan-gp", "0"][2] == "`--lr 2`"


def test_user_data_draws_score_one_run_with_other_evaluation_seeds(tmp_path):
    """`user_data.py --draws 3`: the first draw is the CLI's evaluation (the tables' number), the
    others use other seeds, so they differ; a loop that reused one seed would give three equal
    ratios, one that skipped the CLI's would not start with `w1_ratio`."""
    out = tmp_path / "rows.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "user_data.py"), "--datasets",
                    "moons", "--seeds", "0", "--steps", "20", "--rows", "3000", "--draws", "3",
                    "--set", "threads=1", "--json", str(out)],
                   capture_output=True, text=True, check=True, cwd=REPO / "benchmarks")
    (row,) = json.loads(out.read_text())
    draws = row["w1_ratio_draws"]
    assert len(draws) == 3 and draws[0] == row["w1_ratio"]
    assert len(set(draws)) == 3


def test_image_tables_train_the_classifier_before_a_run_that_needs_it(tmp_path, monkeypatch):
    # Without the classifier `wgan eval` only notes its absence, so a Stacked MNIST row would
    # come out without its modes. The script must train one first when none is cached, and only
    # for the data whose metrics use it.
    spec = importlib.util.spec_from_file_location("image_quality", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    calls = []
    monkeypatch.setattr(script, "wgan", lambda *args: calls.append(args) or
                        subprocess.CompletedProcess(args, 0))
    monkeypatch.setenv("WGAN_CACHE", str(tmp_path))
    script.ensure_classifier("fashion")
    assert calls == []
    script.ensure_classifier("stacked-mnist")
    assert calls == [("classifier", "train")]
    (tmp_path / "mnist-classifier.safetensors").write_bytes(b"cached")
    script.ensure_classifier("mnist")
    assert calls == [("classifier", "train")]
    monkeypatch.setattr(script, "wgan", lambda *args: subprocess.CompletedProcess(args, 1))
    (tmp_path / "mnist-classifier.safetensors").unlink()
    with pytest.raises(SystemExit, match="classifier train failed"):
        script.ensure_classifier("stacked-mnist")


def test_user_data_perfect_generator_scores_near_one_on_the_datasets_own_law(tmp_path):
    """`user_data.py --perfect`: fresh rows of each dataset's law, scored like a run. Their ratio
    must sit near 1, the floor of the metric; drawing blobs around other centres, or a Gaussian
    with another mixing matrix or offset (each depends on the data's seed), scores 5-14."""
    out = tmp_path / "perfect.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "user_data.py"), "--perfect",
                    "--datasets", "blobs-5d", "gaussian-6d", "--rows", "3000", "--draws", "4",
                    "--json", str(out)],
                   capture_output=True, text=True, check=True, cwd=REPO / "benchmarks")
    rows = json.loads(out.read_text())
    assert [row["data"] for row in rows] == ["blobs-5d", "gaussian-6d"]
    for row in rows:
        draws = row["w1_ratio_draws"]
        assert len(set(draws)) == 4 and row["n"] == 300
        assert 0.75 < sum(draws) / len(draws) < 1.25, row


def test_toy_quality_jobs_side_by_side_give_the_rows_of_one_after_another(tmp_path):
    """`--jobs 2` trains runs in two processes at once: each row must be the very row the same
    run gives alone (a worker that mixed up seeds, lost the `--set` overrides or reordered the
    rows would differ)."""
    script = REPO / "benchmarks" / "toy_quality.py"
    common = [sys.executable, str(script), "--losses", "wgan-gp", "--data", "ring8", "--seeds",
              "0", "1", "--steps", "40", "--check-every", "1000", "--budget", "1000",
              "--set", "width=32"]
    rows = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}.json"
        subprocess.run([*common, "--threads", "1", "--jobs", jobs, "--json", str(out)],
                       check=True, capture_output=True, text=True, timeout=300)
        rows[jobs] = [{k: v for k, v in row.items() if k not in ("seconds", "time_to_target",
                                                                   "time_to_all_modes")}
                      for row in json.loads(out.read_text())]
    assert [row["seed"] for row in rows["2"]] == [0, 1]
    assert rows["1"] == rows["2"]
    assert rows["2"][0]["w1_exact"] != rows["2"][1]["w1_exact"]  # two seeds, two runs
    done = subprocess.run([*common, "--jobs", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--jobs must be at least 1, got 0" in done.stderr


def test_toy_quality_extra_averages_score_as_the_runs_that_asked_for_their_decay(tmp_path):
    """`toy_quality.py --ema-decays`: each average carried beside a run's own must score as the
    run trained with that decay (`--set ema=D`; 0: the raw generator) and leave the run's own
    scores as they are without it. It would differ if an average missed updates, if one were
    scored with the run's own generator, or if the own average were not put back before the
    run's scoring."""
    script = REPO / "benchmarks" / "toy_quality.py"
    common = [sys.executable, str(script), "--losses", "wgan-gp", "--data", "ring8", "--seeds",
              "2", "--steps", "60", "--check-every", "1000", "--budget", "1000", "--threads",
              "1", "--set", "width=32", "--set", "lr_decay=none"]

    def row(*extra: str) -> dict:
        out = tmp_path / "rows.json"
        subprocess.run([*common, *extra, "--json", str(out)], check=True, capture_output=True,
                       text=True, timeout=300)
        (only,) = json.loads(out.read_text())
        return only

    keys = ("modes_captured", "high_quality_fraction", "reverse_kl", "mode_spread", "w1_exact")
    carried = row("--set", "ema=0.95", "--ema-decays", "0.5", "0")
    for decay, alone in (("0.5", row("--set", "ema=0.5")), ("0.0", row("--set", "ema=0"))):
        assert {k: carried["ema_decays"][decay][k] for k in keys} == {k: alone[k] for k in keys}
    own = row("--set", "ema=0.95")
    assert {k: carried[k] for k in keys} == {k: own[k] for k in keys}
    assert carried["ema_decays"]["0.5"]["w1_exact"] != own["w1_exact"]  # three averages apart


def test_user_data_jobs_side_by_side_give_the_rows_of_one_after_another(tmp_path):
    """`user_data.py --jobs 2`: each row is the row the same run gives alone, in the same order
    (a worker that lost the `--set` overrides, trained another file or mixed up seeds would
    differ), and a count below one is refused in one line."""
    script = REPO / "benchmarks" / "user_data.py"
    common = [sys.executable, str(script), "--datasets", "moons", "circles", "--seeds", "0", "1",
              "--steps", "20", "--rows", "2000", "--set", "width=32", "--set", "threads=1"]
    rows = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}.json"
        subprocess.run([*common, "--jobs", jobs, "--json", str(out)], check=True,
                       capture_output=True, text=True, timeout=300, cwd=REPO / "benchmarks")
        rows[jobs] = [{k: v for k, v in row.items() if k != "seconds"}
                      for row in json.loads(out.read_text())]
    assert [(row["data"], row["seed"]) for row in rows["2"]] == [
        ("moons", 0), ("moons", 1), ("circles", 0), ("circles", 1)]
    assert rows["1"] == rows["2"]
    assert len({row["w1_exact"] for row in rows["2"]}) == 4  # four runs, four results
    done = subprocess.run([*common, "--jobs", "0"], capture_output=True, text=True, timeout=60,
                          cwd=REPO / "benchmarks")
    assert done.returncode == 2 and "--jobs must be at least 1, got 0" in done.stderr


def test_ema_windows_shadow_is_the_run_that_asked_for_its_decay(tmp_path):
    """`ema_windows.py`: a shadow average carried beside a run's own must be what `wgan train
    --ema D` gives on the same trajectory, bit for bit, also when the script is stopped and run
    again. It would differ if a checkpoint were written before the shadows took that step's
    update (the resumed shadow one update short), if the shadows started from fresh weights
    instead of the run's average, or if the variant kept the run's own average."""
    train = ["--lr-decay", "none", "--checkpoint-every", "10", "--threads", "1"]
    direct = tmp_path / "direct"
    run_cli("train", "--data", "ring8", "--loss", "wgan-gp", "--seed", "3", "--steps", "40",
            "--ema", "0.5", *train, "--no-eval", "--no-report", "--quiet", "--out", str(direct),
            check=True)
    out = tmp_path / "windows"
    script = [sys.executable, str(REPO / "benchmarks" / "ema_windows.py"), "--data", "ring8",
              "--seed", "3", "--steps", "40", "--decays", "0.5", "--no-score", "--train-args",
              " ".join(["--ema", "0.95", *train]), "--out", str(out)]
    for stop in (["--stop-at", "25"], []):  # stopped between checkpoint steps, then finished
        subprocess.run(script + stop, capture_output=True, text=True, check=True, cwd=tmp_path)
        if stop:  # without its saved shadows, a run past the shared warm-up cannot go on
            lost = tmp_path / "lost"
            shutil.copytree(out, lost)
            shutil.rmtree(lost / "ring8-wgan-gp-s3" / "shadow-ema")
            done = subprocess.run(script[:-1] + [str(lost)], capture_output=True, text=True,
                                  cwd=tmp_path)
            assert done.returncode == 1 and "cannot start from it" in done.stderr

    def tensors(run):
        (path,) = sorted((run / "checkpoints").glob("step-*.safetensors"))[-1:]
        return safetensors.torch.load_file(path)

    want, got = tensors(direct), tensors(out / "ring8-wgan-gp-s3-ema0.5")
    own = tensors(out / "ring8-wgan-gp-s3")
    keys = [k for k in want if k.startswith(("ema.module.", "generator."))]
    assert keys and all(torch.equal(want[k], got[k]) for k in keys)
    # The shadow (0.5) left the warm-up it shared with the run's own (0.95) after step 9.
    assert not all(torch.equal(own[k], got[k]) for k in keys if k.startswith("ema.module."))
    assert json.loads((out / "ring8-wgan-gp-s3-ema0.5" / "config.json").read_text())["ema"] == 0.5


def test_default_job_passes_each_seed_and_arm_to_a_real_run(tmp_path):
    """`default_job.py` runs `wgan train` once per seed and arm and reads back each run's own
    evaluation. Arm `same` forces seed 0 (a later `--seed` wins), so its seed-1 row must be arm
    `plain`'s seed-0 row, while `plain`'s two seeds differ: a script that dropped the seed, the
    arm's arguments or mixed up which eval.json belongs to which row would break one of these.
    A run that fails, or writes no evaluation or report, is one line, not a traceback."""
    script = REPO / "benchmarks" / "default_job.py"
    small = "--steps 20 --width 32 --threads 1"
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, str(script), "--seeds", "0", "1", "--arm",
                           f"plain={small}", "--arm", f"same={small} --seed 0", "--json",
                           str(out)], capture_output=True, text=True, timeout=600, check=True)
    rows = {(row["arm"], row["seed"]): row for row in json.loads(out.read_text())}
    assert list(rows) == [("plain", 0), ("same", 0), ("plain", 1), ("same", 1)]
    scores = ("modes_captured", "high_quality_fraction", "reverse_kl", "w1_ratio")
    pick = {key: tuple(row[k] for k in scores) for key, row in rows.items()}
    assert pick["same", 1] == pick["plain", 0] == pick["same", 0]
    assert pick["plain", 1] != pick["plain", 0]
    assert all(row["wall_s"] > 0 and row["cpu_s"] > 0 and row["max_rss_mib"] > 50
               for row in rows.values())
    # The loop's own time (from metrics.csv) is a part of the wall time: start-up, evaluation
    # and report are the rest.
    assert all(0 < row["train_s"] < row["wall_s"] and row["steps_per_second"] > 0
               for row in rows.values())
    plain = [line for line in done.stdout.splitlines() if line.startswith("| plain |")]
    assert len(plain) == 2 and all(line.split("|")[4].strip() == "1.00" for line in plain)
    failed = subprocess.run([sys.executable, str(script), "--seeds", "0", "--arm",
                             "bad=--steps 0"], capture_output=True, text=True, timeout=120)
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert failed.returncode == 1 and len(lines) == 1, failed.stderr
    assert "failed (rc 2)" in lines[0] and "steps must be > 0, got 0" in lines[0]
    silent = subprocess.run([sys.executable, str(script), "--seeds", "0", "--arm",
                             f"quiet={small} --no-report"], capture_output=True, text=True,
                            timeout=300)
    lines = [line for line in silent.stderr.splitlines() if line.strip()]
    assert silent.returncode == 1 and len(lines) == 1, silent.stderr
    assert lines[0].endswith("report.html") and "wrote no" in lines[0]
