"""A cluster lost its head: the sweep resumes on a new head from its S3 storage against the surviving
MLflow store, which now answers at another address.

The sweep runs as ``python -m infnet.tune`` (a subprocess) with ``tune.storage_path`` on a local
S3-compatible server (moto's server mode) and an ``mlflow server`` on a SQLite store. Once a trial has
finished, the driver is killed (SIGKILL) and the tracking server stopped; a new server on another port
serves the same store (the database survived, its address did not). ``tune.resume=s3://...
tracking.uri=<new>`` must finish the sweep logging to the new address, reopening the same parent run,
with every trial completed exactly once: finished trials kept (same MLflow runs), none duplicated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest
from processes import free_port, lose_head, stop_group
from test_tune_resume import SMALL, child_runs

from infnet.sweep_layout import read_state


def env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def start_server(store: str, artifacts: Path, port: int) -> subprocess.Popen:
    """``mlflow server`` on ``store`` at 127.0.0.1:``port`` (its own process group), once it answers."""
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--artifacts-destination",
                               str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              env=env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            assert server.poll() is None, "the MLflow server exited"
            time.sleep(1)
    stop_group(server.pid)
    pytest.fail("the MLflow server did not come up")


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for server in started:
        stop_group(server.pid)
        server.wait()


def test_resume_on_a_new_head_from_s3_with_a_moved_tracking_server(s3_storage: str, servers: list, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    old_uri, new_port = f"http://127.0.0.1:{(old_port := free_port())}", free_port()
    new_uri = f"http://127.0.0.1:{new_port}"
    servers.append(start_server(store, tmp_path / "artifacts", old_port))
    path = f"{s3_storage}/moved"
    args = [*SMALL, "tune.num_samples=4", "tune.max_concurrent=2", "tune.scheduler=none", "tune.name=moved",
            f"tune.storage_path={s3_storage}", f"tracking.uri={old_uri}", f"data.cache_dir={tmp_path / 'cache'}"]
    driver = subprocess.Popen([sys.executable, "-m", "infnet.tune", *args], cwd=tmp_path, env=env(), start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        finished: list = []
        while not finished and time.monotonic() < deadline:
            assert driver.poll() is None, "the sweep ended before its head could be lost"
            state = read_state(path)
            if state is not None:
                finished = [r for r in child_runs(old_uri, state["parent_run_id"]) if r.info.status == "FINISHED"]
            time.sleep(0.5)
    finally:
        lose_head(driver)
    assert finished, "no trial finished before the head was lost"
    before = {r.data.tags["ray_trial_id"]: r.info.run_id for r in finished}
    parent_id = read_state(path)["parent_run_id"]
    stop_group(servers[0].pid)  # the old head's tracking server goes with it; the store survives
    servers.append(start_server(store, tmp_path / "artifacts", new_port))

    proc = subprocess.run([sys.executable, "-m", "infnet.tune", f"tune.resume={path}", f"tracking.uri={new_uri}"], cwd=tmp_path,
                          env=env(), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert f"tracking.uri={new_uri}" in proc.stderr  # the resume says what it took from the command line
    assert summary["resumed"] and summary["mlflow_tracking_uri"] == new_uri and summary["mlflow_parent_run_id"] == parent_id
    outcome = [(r["trial_id"], r["status"], r["epochs"], r["error"]) for r in pq.read_table(summary["results_path"]).to_pylist()]
    assert summary["num_trials"] == summary["num_completed"] == 4 and summary["num_errored"] == 0, (outcome, proc.stderr[-3000:])
    assert read_state(path)["tracking_uri"] == new_uri  # the next resume finds the new address
    table = pq.read_table(summary["results_path"]).to_pylist()  # read back from S3
    assert summary["results_path"].startswith("s3://") and {r["status"] for r in table} == {"completed"}
    runs = child_runs(new_uri, parent_id)
    by_trial = {r.data.tags["ray_trial_id"]: r for r in runs}
    assert len(runs) == len(by_trial) == 4 and set(by_trial) == {r["trial_id"] for r in table}  # none lost, none twice
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all(by_trial[t].info.run_id == run_id for t, run_id in before.items())  # finished trials kept, not redone
    assert mlflow.MlflowClient(new_uri).get_run(parent_id).info.status == "FINISHED"
