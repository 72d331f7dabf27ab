"""Sweep reports end to end: two tiny real sweeps (``implicit`` and ``ce``, each searching ``trainer.seed``) on a
real local Ray runtime and a real MLflow SQLite store, the report each writes at its end, a method comparison
over both, a report rebuilt from an MLflow run id, a report failure that leaves the sweep intact, and -- with
Debian's ``chromium`` -- a real ``mlflow server`` whose pages and the report are opened in headless Chromium
(screenshots under the test's tmp folder)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest
from processes import free_port

from infnet.tune import prepare, run_sweep

TINY = ["data.n_train=300", "data.n_dev=200", "data.n_test=100", "trainer.max_epochs=3", "tracking.log_model=false",
        "tune.max_concurrent=2", "tune.scheduler=none", "tune.searcher=random"]
SEEDS = "tune.points_to_evaluate=[{trainer.seed:0},{trainer.seed:1},{trainer.seed:0},{trainer.seed:1}]"  # every seed twice
SPACES = {  # method: (search space, overrides); both search the seed: the comparison has mean ± sd across seeds 0 and 1
    "implicit": (("base_overrides: [method=implicit]\nparams:\n"
                  "  trainer.seed: {type: categorical, choices: [0, 1]}\n"
                  "  method.inner_steps: {type: int, low: 1, high: 4}\n"
                  "  method.solver: {type: categorical, choices: [cg, identity]}\n"
                  "  method.iters: {type: int, low: 2, high: 4, when: {method.solver: cg}}\n"
                  "  model.energy.label_hidden: {type: int, low: 4, high: 16, log: true}\n"),
                 ["method.pretrain_epochs=1", "tune.num_samples=4", SEEDS]),
    "ce": (("base_overrides: [method=ce]\nparams:\n"
            "  trainer.seed: {type: categorical, choices: [0, 1]}\n"
            "  method.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"), ["tune.num_samples=2", SEEDS]),
}
FIGURES = ["optimization_history", "dev_metric_per_epoch", "param_importances", "parallel_coordinate", "contour_focus", "slice_focus",
           "learning_curves", "solver_diagnostics"]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Both sweeps, run to the end (each builds its report); ``{method: {"sweep", "summary"}}`` and ``root``."""
    import ray

    from infnet.tune.driver import start_ray

    root = tmp_path_factory.mktemp("report")
    start_ray(num_cpus=2)
    out: dict = {"root": root}
    try:
        for method, (space, extra) in SPACES.items():
            (root / f"{method}.yaml").write_text(space)
            sweep = prepare([*TINY, *extra, f"search_space={root / f'{method}.yaml'}", f"tune.name={method}",
                             f"tune.storage_path={root / 'runs'}", f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
                             f"data.cache_dir={root / 'cache'}"])
            out[method] = {"sweep": sweep, "summary": run_sweep(sweep)}
    finally:
        ray.shutdown()
    return out


def test_sweep_ends_with_its_report(sweeps: dict) -> None:
    summary, sweep = sweeps["implicit"]["summary"], sweeps["implicit"]["sweep"]
    folder = Path(sweep.path) / "report"
    assert summary["report_path"] == str(folder / "report.html") and summary["num_completed"] == 4

    for name in FIGURES:  # every figure drawn, as a real PNG next to the results
        png = (folder / "figures" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000, name
    html = (folder / "report.html").read_text()
    assert all(f'id="fig-implicit-{name}"' in html for name in FIGURES) and "not drawn" not in html
    assert "Plotly.newPlot" in html and not re.search(r"<script[^>]+src=", html)  # self-contained: plotly.js inlined
    rows = pq.read_table(summary["results_path"]).to_pylist()
    best = max((r for r in rows if r["status"] == "completed"), key=lambda r: r["dev_metric"])
    assert best["trial_id"] == summary["best_trial_id"] and f"dev {best['dev_metric']:.2f} · test {best['test_metric']:.2f}" in html
    assert "Over 4 trials: fell back on" in html  # the solver's verdict, from the trials' per-epoch diagnostics

    client = mlflow.MlflowClient(summary["mlflow_tracking_uri"])
    parent = summary["mlflow_parent_run_id"]
    assert {a.path for a in client.list_artifacts(parent, "report")} == {"report/report.html", "report/figures"}
    assert {Path(a.path).stem for a in client.list_artifacts(parent, "report/figures")} == set(FIGURES)
    assert client.get_run(parent).info.status == "FINISHED"


@pytest.fixture(scope="module")
def comparison(sweeps: dict) -> dict:
    """``python -m infnet.report <implicit sweep> <ce sweep> --out <tmp>/cmp``: its JSON result."""
    out = sweeps["root"] / "cmp"
    proc = subprocess.run([sys.executable, "-m", "infnet.report", sweeps["implicit"]["sweep"].path, sweeps["ce"]["sweep"].path,
                           "--out", str(out)], check=False, capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_method_comparison_over_two_sweeps(sweeps: dict, comparison: dict) -> None:
    out = sweeps["root"] / "cmp"
    assert comparison["report"] == str(out / "report.html") and comparison["mlflow_run_id"] is None
    assert comparison["notes"] == ["solver_diagnostics: not drawn: no such per-epoch metrics were logged by these trials"]  # ce's
    html = Path(comparison["report"]).read_text()

    def selected(method: str) -> dict[int, float]:  # per seed: the test F1 of the completed trial with the best dev F1
        rows = [r for r in pq.read_table(sweeps[method]["summary"]["results_path"]).to_pylist() if r["status"] == "completed"]
        return {s: max((r for r in rows if r["trainer.seed"] == s), key=lambda r: r["dev_metric"])["test_metric"] for s in (0, 1)}

    assert [r["trainer.seed"] for r in pq.read_table(sweeps["ce"]["summary"]["results_path"]).to_pylist()] in ([0, 1], [1, 0])

    implicit, ce = selected("implicit"), selected("ce")
    mean_sd = lambda v: f"{(v[0] + v[1]) / 2:.2f} ± {abs(v[0] - v[1]) / 2 ** 0.5:.2f}"
    diffs = [implicit[s] - ce[s] for s in (0, 1)]
    gain = mean_sd(diffs)
    assert mean_sd([implicit[0], implicit[1]]) in html and mean_sd([ce[0], ce[1]]) in html
    assert "2 seeds: no claim" in html and f"{gain} (paired" not in html  # 2 < MIN_SEEDS: the gain is not claimed
    for method in ("implicit", "ce"):  # each method's compute: the trial-seconds of all its trials
        rows = pq.read_table(sweeps[method]["summary"]["results_path"]).to_pylist()
        assert f"<td>{sum(r['wall_seconds'] or 0.0 for r in rows):.0f}</td>" in html
    assert 'id="fig-method_comparison"' in html and (out / "figures" / "method_comparison.png").is_file()
    for i, method in enumerate(("implicit", "ce"), 1):  # each sweep's own section and figures
        assert f'id="sweep-{i}-{method}"' in html and (out / "figures" / f"{i}-{method}" / "param_importances.png").is_file()


def test_report_from_the_parent_run_id(sweeps: dict, tmp_path: Path) -> None:
    from infnet.report import build_report

    summary = sweeps["ce"]["summary"]
    result = build_report([summary["mlflow_parent_run_id"]], out=str(tmp_path / "from_run"), tracking_uri=summary["mlflow_tracking_uri"],
                          log_to_mlflow=False)
    html = Path(result["report"]).read_text()
    assert f"Sweep {sweeps['ce']['sweep'].name}" in html and summary["best_trial_id"] in html
    assert "method <b>ce</b>" in html and "No solver diagnostics were logged" in html  # ce has no hypergradient solver
    assert result["notes"] == ["solver_diagnostics: not drawn: no such per-epoch metrics were logged by these trials"]


def test_a_failing_report_never_fails_the_sweep(sweeps: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from infnet.tune.driver import sweep_report

    sweep = sweeps["ce"]["sweep"]
    monkeypatch.setenv("INFNET_REPORT_TEMPLATE", str(tmp_path / "missing.html.j2"))  # a real failure: no template
    with caplog.at_level(logging.WARNING, logger="infnet.tune"):
        assert sweep_report(sweep) is None
    assert "the sweep report could not be built" in caplog.text and "missing.html.j2" in caplog.text
    assert pq.read_table(Path(sweep.path) / "results.parquet").num_rows == 2


# ---- in a real browser -------------------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--run-all-compositor-stages-before-draw",
                  # MLflow shows HTML artifacts in a sandboxed iframe: keep it in-process so that screenshots include it
                  "--disable-site-isolation-trials", "--disable-features=IsolateOrigins,site-per-process"]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no Chromium: install Debian's `chromium` (apt-get install -y chromium; .ci/run does) for the browser tests")
    return path


class Browser:
    """Headless Chromium from the command line (a fresh profile each time): the DOM after the page's scripts
    ran, and screenshots. Virtual time runs ahead while the browser is idle, so a budget costs little real time."""

    def __init__(self, binary: str, scratch: Path, shots: Path) -> None:
        self.binary, self.scratch, self.shots = binary, scratch, shots

    def _run(self, url: str, *args: str, budget_ms: int) -> str:
        with tempfile.TemporaryDirectory(dir=self.scratch) as profile:
            cmd = [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                   "--window-size=1500,1100", *args, url]
            return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240, env=ENV).stdout

    def dom(self, url: str, expected: list[str], attempts: int = 3) -> str:
        """The rendered DOM of ``url`` once it shows every ``expected`` string (a loaded machine may need a retry)."""
        for attempt in range(attempts):
            dom = self._run(url, "--dump-dom", budget_ms=30000 * (attempt + 1))
            if all(s in dom for s in expected):
                break
        return dom

    def screenshot(self, url: str, name: str, height: int = 1100) -> Path:
        """A screenshot after the page, and the report MLflow shows in an iframe, have been drawn."""
        path = self.shots / f"{name}.png"
        self._run(url, f"--screenshot={path}", f"--window-size=1500,{height}", budget_ms=120000)
        assert path.is_file() and path.stat().st_size > 20000, f"no screenshot of {url}"
        return path


@pytest.fixture(scope="module")
def browser(chromium: str, sweeps: dict) -> Browser:
    shots = sweeps["root"] / "screenshots"
    shots.mkdir()
    return Browser(chromium, sweeps["root"], shots)


@pytest.fixture(scope="module")
def mlflow_ui(sweeps: dict, chromium: str):
    """A real ``mlflow server`` on 127.0.0.1 (free port, one worker) over the sweeps' store; stopped afterwards."""
    port = free_port()
    root = sweeps["root"]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--artifacts-destination", str(root / "mlartifacts")],
        cwd=root, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start on {url}")
                time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers (their own session)
        server.wait(timeout=60)


def test_mlflow_ui_shows_the_sweep_its_metrics_and_its_report(sweeps: dict, mlflow_ui: str, browser: Browser) -> None:
    summary = sweeps["implicit"]["summary"]
    client = mlflow.MlflowClient(summary["mlflow_tracking_uri"])
    exp = client.get_experiment_by_name(summary["mlflow_experiment"]).experiment_id
    parent = summary["mlflow_parent_run_id"]
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent}'")
    names = [r.info.run_name for r in children]
    assert len(names) == 4

    # the page the sweep prints: a model-training experiment (not a GenAI overview) on the sweep's runs,
    # its parent run with every trial under it, the dev metric as a column
    assert client.get_experiment(exp).tags["mlflow.experimentKind"] == "custom_model_development"
    assert summary["mlflow_ui"].endswith(summary["mlflow_runs_page"]) and "viewStateShareKey=" in summary["mlflow_runs_page"]
    sweep_name = sweeps["implicit"]["sweep"].name
    dom = browser.dom(f"{mlflow_ui}/{summary['mlflow_runs_page']}", ["Training runs", sweep_name, *names, "dev/best_f1"])
    assert "Training runs" in dom and sweep_name in dom and all(n in dom for n in names)
    assert "dev/best_f1" in dom and f"{client.get_run(parent).data.metrics['dev/best_f1']}"[:6] in dom  # the parent's value
    browser.screenshot(f"{mlflow_ui}/{summary['mlflow_runs_page']}", "mlflow_sweep_runs")

    run_page = f"{mlflow_ui}/#/experiments/{exp}/runs/{parent}"  # the sweep's parent run: metrics, child runs
    dom = browser.dom(run_page, [sweeps["implicit"]["sweep"].name, "best/dev_f1", *names])
    assert sweeps["implicit"]["sweep"].name in dom and all(n in dom for n in names)
    assert all(m in dom for m in ("best/dev_f1", "best/test_f1", "num_trials"))
    browser.screenshot(run_page, "mlflow_parent_run")

    runs = urllib.parse.quote(json.dumps([r.info.run_id for r in children]))
    compare = f"{mlflow_ui}/#/compare-runs?runs={runs}&experiments={urllib.parse.quote(json.dumps([exp]))}"  # the trials side by side
    dom = browser.dom(compare, [*names, "dev/best_f1"])
    assert all(n in dom for n in names) and all(m in dom for m in ("dev/best_f1", "test/f1", "train/loss/inner"))
    assert "method.inner_steps" in dom
    browser.screenshot(compare, "mlflow_compare_trials", height=1400)

    artifact = f"{run_page}/artifacts/report/report.html"  # the report, shown by MLflow's HTML artifact viewer
    dom = browser.dom(artifact, ["mlflow-html-iframe"])
    assert "mlflow-html-iframe" in dom and "report/report.html" in dom
    browser.screenshot(artifact, "mlflow_report_artifact")


def test_report_figures_render_in_chromium(sweeps: dict, comparison: dict, browser: Browser) -> None:
    report = Path(comparison["report"]).as_uri()
    dom = browser.dom(report, ["main-svg"])

    def drawn(anchor: str) -> str:  # the figure's rendered markup; plotly.js must have drawn it
        assert f'id="{anchor}"' in dom, anchor
        figure = dom.split(f'id="{anchor}"', 1)[1].split("<figure", 1)[0]
        assert 'class="main-svg"' in figure, f"{anchor} not drawn by plotly.js"
        return figure

    for name in FIGURES:
        drawn(f"fig-1-implicit-{name}")
    for name in FIGURES[:-1]:  # ce logs no solver diagnostics
        drawn(f"fig-2-ce-{name}")
    assert ">implicit<" in drawn("fig-method_comparison") and ">ce<" in drawn("fig-method_comparison")  # the x tick labels
    for anchor, mine, other in (("fig-1-implicit-param_importances", "model.energy.label_hidden", "method.lr"),
                                ("fig-2-ce-param_importances", "method.lr", "model.energy.label_hidden")):
        figure = drawn(anchor)  # each sweep's own figure in its own section
        assert f">{mine}<" in figure and f">{other}<" not in figure
    assert "Method comparison" in dom and "Best configuration" in dom and "2 seeds: no claim" in dom
    browser.screenshot(report, "report", height=3000)
