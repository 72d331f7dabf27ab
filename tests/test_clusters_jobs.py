"""A sweep submitted as a Ray job, as ``clusters/sweep.sh submit`` does on the head: its script
``clusters/submit_sweep.sh tune.address=auto ...`` (``ray job submit --no-wait -- python -m infnet.tune ...``,
retried while the head's job agent registers) against a real Ray head with its job server (started with
``ray start --head`` under a private ``RAY_TMPDIR``). The submitting command returns at once -- like an ssh
session that is closed -- and the sweep must still run to the end under Ray's job supervisor, joining the
cluster it was submitted to, with its results and summary where they belong. A submission that fails for
another reason (no job server) ends at once with Ray's message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from processes import free_port, stop_ray_under
from test_tune_sweep import TINY

RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture
def ray_head() -> Iterator[tuple[dict[str, str], str]]:
    """A Ray head with 2 CPUs and its dashboard (the job server); yields (environment, dashboard address)."""
    pytest.importorskip("aiohttp", reason="Ray's job server needs ray[default]")
    temp = tempfile.mkdtemp(prefix="infnet-job-", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    env = {**os.environ, "RAY_TMPDIR": temp, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # the head's `python` is this venv's, as on a cluster
    dashboard = free_port()
    subprocess.run([RAY, "start", "--head", f"--port={free_port()}", "--num-cpus=2", "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--node-ip-address=127.0.0.1",
                    # not the agents' fixed default ports, which a Ray runtime of another test may hold
                    f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}"],
                   env=env, check=True, capture_output=True, timeout=180)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        wait_for_job_server(address)
        yield env, address
    finally:
        stop_ray_under(temp)
        shutil.rmtree(temp, ignore_errors=True)


def wait_for_job_server(address: str, timeout: float = 180) -> None:
    """The dashboard (and its job server) starts after ``ray start`` returns: wait until it answers."""
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + timeout
    while True:
        try:
            JobSubmissionClient(address).list_jobs()
            return
        except Exception:  # noqa: BLE001 - connection refused / not ready yet, in whichever form the SDK raises it
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


REPO = Path(__file__).resolve().parents[1]


def submit_sweep(env: dict[str, str], address: str, overrides: list[str]) -> subprocess.CompletedProcess:
    """``bash clusters/submit_sweep.sh <overrides>`` against the job server at ``address``, with this venv's
    ``ray`` and ``python`` first on PATH (as on the head)."""
    path = f"{Path(sys.executable).parent}:{env['PATH']}"
    return subprocess.run(["bash", str(REPO / "clusters" / "submit_sweep.sh"), *overrides],
                          env={**env, "RAY_ADDRESS": address, "PATH": path},
                          capture_output=True, text=True, timeout=420, check=False)


def test_sweep_runs_as_a_ray_job_after_the_submitter_is_gone(ray_head: tuple, tmp_path: Path) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    env, address = ray_head
    args = [*TINY, "tune.address=auto", "tune.num_samples=2", "tune.scheduler=none", "tune.name=job",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"tune.storage_path={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}"]
    submit = submit_sweep(env, address, args)  # returns at once, the job runs on
    if submit.returncode != 0:
        logs = sorted(Path(env["RAY_TMPDIR"]).glob("ray/session_*/logs/dashboard_agent.log"))
        agent = logs[-1].read_text(errors="replace")[-3000:] if logs else "(no dashboard_agent.log)"
        pytest.fail(f"{submit.stderr[-2000:]}\n--- the head's dashboard agent log:\n{agent}")
    job_id = next(line.split("'")[1] for line in (submit.stdout + submit.stderr).splitlines() if "submitted successfully" in line)
    client = JobSubmissionClient(address)
    deadline = time.monotonic() + 600
    while (status := client.get_job_status(job_id)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, "the sweep job did not finish"
        time.sleep(2)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    summary = json.loads([line for line in logs.splitlines() if line.startswith("{")][-1])
    assert summary["num_trials"] == summary["num_completed"] == 2
    assert Path(summary["results_path"]) == tmp_path / "runs" / "job" / "results.parquet"
    assert len(pq.read_table(summary["results_path"])) == 2


def test_a_submission_that_cannot_reach_a_job_server_fails_at_once(tmp_path: Path) -> None:
    env = {**os.environ, "RAY_TMPDIR": str(tmp_path), "RAY_USAGE_STATS_ENABLED": "0"}
    start = time.monotonic()
    submit = submit_sweep(env, f"http://127.0.0.1:{free_port()}", ["tune.num_samples=1"])
    assert submit.returncode == 1 and "retrying" not in submit.stderr  # not the agent-registration case
    assert time.monotonic() - start < 120 and submit.stderr.strip()  # Ray's own message, without the 5-minute retry
