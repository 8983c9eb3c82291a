"""Seeing training (issue 14): the HTML report opened by a real headless browser, `wgan compare`,
the TensorBoard event files read back, and bad input."""

import json
import math
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli, run_cli_parallel

SMALL = ["--width", "32", "--depth", "2", "--batch-size", "64", "--noise-dim", "4", "--threads",
         "1", "--quiet", "--log-every", "10", "--eval-samples", "300"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Real runs through the CLI: three losses on ring8, a user's vectors, an image run."""
    root = tmp_path_factory.mktemp("runs")
    made = {name: root / name for name in ("gan-ns", "wgan", "wgan-gp", "vectors", "images")}
    rng = np.random.default_rng(0)
    np.save(root / "v.npy", rng.normal(size=(400, 3)) * [1.0, 5.0, 0.2])
    run_cli_parallel(
        *[["train", "--data", "ring8", "--loss", loss, "--steps", "50", "--out", str(made[loss]),
           *SMALL] for loss in ("gan-ns", "wgan", "wgan-gp")],
        ["train", "--data", str(root / "v.npy"), "--steps", "30", "--out", str(made["vectors"]),
         *SMALL],
        ["train", "--data", "digits", "--model", "dcgan", "--width", "8", "--noise-dim", "8",
         "--batch-size", "16", "--steps", "10", "--log-every", "5", "--eval-samples", "200",
         "--threads", "1", "--quiet", "--out", str(made["images"])])
    return made


def browser():
    """Playwright driving Debian's chromium (installed by .ci/run)."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if executable is None or sync_playwright is None:
        if os.environ.get("WGAN_REQUIRE_BROWSER") == "1":
            pytest.fail("the browser tests need chromium and playwright (WGAN_REQUIRE_BROWSER=1)")
        pytest.skip("chromium or playwright not installed (apt-get install chromium; "
                    "pip install playwright)")
    return sync_playwright, executable


def open_in_browser(html: Path, screenshot: Path) -> dict:
    sync_playwright, executable = browser()
    errors, requests = [], []
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = chromium.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.resolve().as_uri())
            page.wait_for_load_state("load")
            found = {
                "sections": page.eval_on_selector_all("section", "s => s.map(e => e.id)"),
                "images": page.evaluate("Array.from(document.images).map(i => [i.complete, "
                                        "i.naturalWidth, i.alt])"),
                "run_headers": page.eval_on_selector_all("#samples h3",
                                                         "h => h.map(e => e.textContent)"),
                "text": page.inner_text("body"),
            }
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            chromium.close()
    found["errors"], found["requests"] = errors, requests
    return found


@pytest.mark.parametrize("which", [["wgan-gp"], ["vectors"], ["images"],
                                   ["gan-ns", "wgan", "wgan-gp"]])
def test_report_renders_offline_in_a_real_browser(runs, tmp_path, which):
    out = tmp_path / "report.html"
    proc = run_cli("report", *[str(runs[w]) for w in which], "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    page = open_in_browser(out, tmp_path / "report.png")
    assert page["errors"] == []
    # nothing left the file: the page itself, and data: URIs (which are not requests at all)
    assert all(url.startswith(("file://", "data:")) for url in page["requests"]), page["requests"]
    assert page["sections"] == ["settings", "curves", "samples", "evaluation"]
    assert page["images"] and all(done and width > 0 for done, width, _ in page["images"])
    assert [h.split()[0] for h in page["run_headers"]] == [runs[w].name for w in which]
    snapshots = [alt for _, _, alt in page["images"] if alt.startswith("samples at step")]
    assert len(snapshots) >= (2 if which != ["images"] else 1) * len(which)
    assert "w1_exact" in page["text"] and "w1_floor" in page["text"]
    if "wgan-gp" in which:
        assert "modes_captured" in page["text"]
    assert (tmp_path / "report.png").stat().st_size > 10_000  # the screenshot, kept


def test_train_writes_a_report_unless_told_not_to(runs, tmp_path):
    assert (runs["wgan-gp"] / "report.html").read_text().count("data:image/png;base64,") >= 3
    proc = run_cli("train", "--data", "ring8", "--steps", "5", "--out", str(tmp_path / "r"),
                   "--no-report", *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "r" / "report.html").exists()


def test_compare_prints_differing_settings_and_metrics(runs):
    paths = [str(runs[w]) for w in ("gan-ns", "wgan", "wgan-gp")]
    proc = run_cli("compare", *paths)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    table = {line.split()[0]: line.split()[1:] for line in lines if line.strip()}
    assert table["run"] == ["gan-ns", "wgan", "wgan-gp"]
    assert table["loss"] == ["gan-ns", "wgan", "wgan-gp"]
    assert table["constraint"] == ["none", "clip", "gp"]
    assert table["optimizer"] == ["adam", "rmsprop", "adam"]
    assert "data" not in table and "steps" not in table  # the same in all three
    assert len(table["w1_exact"]) == 3 and len(table["modes_captured"]) == 3
    result = json.loads(run_cli("compare", *paths, "--json", check=True).stdout)
    assert result["differing_settings"]["loss"] == ["gan-ns", "wgan", "wgan-gp"]
    for metrics, path in zip(result["metrics"], paths):
        evaluation = json.loads((Path(path) / "eval.json").read_text())
        assert metrics["w1_exact"] == evaluation["w1_exact"]


def test_tensorboard_events_equal_the_csv(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = runs["wgan-gp"]
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0,
                                                                        "images": 0})
    events.Reload()
    header, *rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()]
    columns = [c for c in header if c != "step"]
    assert set(columns) <= set(events.Tags()["scalars"])
    assert {"critic_grad_norm", "generator_grad_norm", "steps_per_second", "penalty",
            "wasserstein_estimate"} <= set(columns)
    for column in columns:
        scalars = events.Scalars(column)
        csv_values = [(int(r[0]), float(r[header.index(column)])) for r in rows]
        assert [s.step for s in scalars] == [s for s, _ in csv_values]
        for scalar, (_, value) in zip(scalars, csv_values):
            assert math.isclose(scalar.value, value, rel_tol=1e-5, abs_tol=1e-6), column
    assert [e.step for e in events.Images("samples")] == [10, 20, 30, 40, 50]
    assert "config/text_summary" in events.Tags()["tensors"]
    # hparams with the final metrics, for TensorBoard's HPARAMS tab
    from tensorboard.plugins.hparams import plugin_data_pb2

    plugin = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/session_start_info"])
    assert session.session_start_info.hparams["loss"].string_value == "wgan-gp"
    evaluation = json.loads((run / "eval.json").read_text())
    final = events.Scalars("final/w1_exact")
    assert math.isclose(final[0].value, evaluation["w1_exact"], rel_tol=1e-6)


def test_report_and_compare_refuse_bad_input(runs, tmp_path):
    not_a_run = tmp_path / "folder"
    not_a_run.mkdir()
    for command in ("report", "compare"):
        assert_one_line_error(run_cli(command, str(not_a_run)), "not a wgan run directory")
    fresh = tmp_path / "fresh"
    shutil.copytree(runs["wgan"], fresh)
    shutil.rmtree(fresh / "checkpoints")
    (fresh / "checkpoints").mkdir()
    assert_one_line_error(run_cli("report", str(fresh), "--out", str(tmp_path / "x.html")),
                          "no checkpoint yet")
    assert not (tmp_path / "x.html").exists()
    no_metrics = tmp_path / "no-metrics"
    shutil.copytree(runs["wgan"], no_metrics)
    (no_metrics / "metrics.csv").unlink()
    assert_one_line_error(run_cli("compare", str(no_metrics)), "no metrics yet")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a path that cannot exist
            out = tmp_path / "file-not-folder" / "r.html"
            (tmp_path / "file-not-folder").write_text("x")
        else:
            out = locked / "r.html"
        before = sorted(p.name for p in tmp_path.rglob("*"))
        assert_one_line_error(run_cli("report", str(runs["wgan"]), "--out", str(out)),
                              str(out.parent))
        assert sorted(p.name for p in tmp_path.rglob("*")) == before
    finally:
        locked.chmod(stat.S_IRWXU)
    other = tmp_path / "mine.html"
    other.write_text("<html>my own page</html>")
    assert_one_line_error(run_cli("report", str(runs["wgan"]), "--out", str(other)),
                          "not a wgan report", "--force")
    assert other.read_text() == "<html>my own page</html>"
