"""A sweep of 8 concurrent trials logging to MLflow on PostgreSQL, as on a cluster's head.

A real PostgreSQL server (``initdb`` + ``pg_ctl``, on a free 127.0.0.1 port, the user and database the
cluster YAMLs use, no password as there), a real ``mlflow server`` on it with two worker processes,
started by ``clusters/start_mlflow.sh``, and ``python -m infnet.tune`` running 8 trials at once against
it. Every trial's child run must be in the server exactly once with its full per-epoch metrics, the
server must not have hit a lock or a database error, and the runs must really be rows in PostgreSQL.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest
from processes import QUIET_ENV, free_port, ray_pids, stop_group
from test_tune_resume import child_runs
from test_tune_sweep import TINY

REPO = Path(__file__).resolve().parents[1]
TRIALS = 8
EPOCHS = 6  # TINY's trainer.max_epochs
LOCK_ERRORS = re.compile(r"database is locked|OperationalError|deadlock|could not obtain lock|LockNotAvailable", re.I)
SERVER_ERROR = re.compile(r'HTTP/1\.1" 5\d\d')  # uvicorn's access log: a request the server failed (clients retry those)


def postgres_bin() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent  # /usr/local/bin/pg_ctl may link there
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: float(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def unprivileged() -> dict:
    """subprocess arguments that run PostgreSQL as a non-root user: it refuses to run as root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    pytest.skip("running as root and neither a postgres nor a nobody user exists to run PostgreSQL")


@pytest.fixture
def postgres() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL server on 127.0.0.1:<free port> with user ``mlflow`` (no password) and database ``mlflow``;
    yields (its URI, its log file)."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin")
    user = unprivileged()
    # Not in tmp_path: the database user must reach it (pytest's base folder is private to root), and the
    # server's unix socket path must stay under 108 characters.
    root = Path(tempfile.mkdtemp(prefix="infnet-pg-", dir="/tmp"))
    if user:
        os.chown(root, user["user"], user["group"])
    data, log, port = root / "data", root / "postgres.log", free_port()

    def pg(*args: str) -> None:
        done = subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=root, timeout=180, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, **user)
        assert done.returncode == 0, done.stdout

    try:
        pg("initdb", "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        pg("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "120", "start",
           "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {root}")
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="mlflow", dbname="postgres")
        conn.autocommit = True  # CREATE DATABASE runs outside a transaction
        conn.cursor().execute("CREATE DATABASE mlflow")
        conn.close()
        yield f"postgresql+psycopg2://mlflow@127.0.0.1:{port}/mlflow", log  # as the cloud YAMLs name it
    finally:
        postmaster = data / "postmaster.pid"
        if postmaster.exists():
            pid = int(postmaster.read_text().split()[0])
            subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"],
                           cwd=root, timeout=120, stdout=subprocess.DEVNULL, **user)
            stop_group(pid)  # pg_ctl starts the server in its own session: nothing is left if the stop failed
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mlflow_on_postgres(postgres: tuple[str, Path], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``clusters/start_mlflow.sh`` with the PostgreSQL store and 2 server workers; yields (tracking URI, its log)."""
    store, _ = postgres
    root = tmp_path / "mlflow"
    env = {**os.environ, **QUIET_ENV, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "MLFLOW_BACKEND_STORE_URI": store, "MLFLOW_ARTIFACTS_DESTINATION": str(root / "artifacts"),
           "MLFLOW_PORT": str(free_port()), "INFNET_HEAD_IP": "127.0.0.1", "INFNET_MLFLOW_DIR": str(root)}
    try:
        done = subprocess.run(["bash", str(REPO / "clusters" / "start_mlflow.sh"), "--workers", "2"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=400)
        assert done.returncode == 0, done.stdout
        yield (root / "tracking_uri").read_text().strip(), root / "server.log"
    finally:
        if (root / "server.pid").exists():
            stop_group(int((root / "server.pid").read_text()))  # the server and its workers: their own group


def most_at_once(runs: list) -> int:
    """The largest number of these runs that were running at the same moment."""
    events = sorted([(r.info.start_time, 1) for r in runs] + [(r.info.end_time, -1) for r in runs])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def test_concurrent_trials_log_to_postgres(postgres: tuple[str, Path], mlflow_on_postgres: tuple[str, Path],
                                           tmp_path: Path) -> None:
    store, pg_log = postgres
    uri, server_log = mlflow_on_postgres
    ray_tmp = tempfile.mkdtemp(prefix="infnet-ray-", dir="/tmp")  # a private Ray runtime (short socket paths)
    args = [*TINY, f"tune.num_samples={TRIALS}", f"tune.max_concurrent={TRIALS}", f"tune.num_cpus={TRIALS}",
            "tune.cpus_per_trial=1", "tune.scheduler=none", "trainer.pretrain_cache=false", f"tracking.uri={uri}",
            f"tune.storage_path={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}", "tune.name=pg"]
    out, err = tmp_path / "driver.out", tmp_path / "driver.err"
    try:
        with open(out, "w") as stdout, open(err, "w") as stderr:
            driver = subprocess.Popen([sys.executable, "-m", "infnet.tune", *args], cwd=tmp_path, start_new_session=True,
                                      env={**os.environ, **QUIET_ENV, "RAY_TMPDIR": ray_tmp}, stdout=stdout, stderr=stderr)
        try:
            driver.wait(timeout=600)
        finally:
            if driver.poll() is None:
                stop_group(driver.pid)
                driver.wait()
        assert driver.returncode == 0, err.read_text()[-4000:]
        assert glob.glob(f"{ray_tmp}/ray/session_*")  # the sweep's Ray runtime was this private one
        # the driver shut its Ray runtime down: nothing of it outlives the sweep
        deadline = time.monotonic() + 60
        while ray_pids(ray_tmp) and time.monotonic() < deadline:
            time.sleep(1)
        assert ray_pids(ray_tmp) == []
    finally:
        stop_group(driver.pid)  # the driver's session: whatever of its Ray runtime is left
        shutil.rmtree(ray_tmp, ignore_errors=True)
    summary = json.loads(out.read_text().strip().splitlines()[-1])
    assert summary["mlflow_tracking_uri"] == uri
    assert summary["num_trials"] == summary["num_completed"] == TRIALS and summary["num_errored"] == 0
    table = {r["trial_id"]: r for r in pq.read_table(summary["results_path"]).to_pylist()}
    assert len(table) == TRIALS

    # exactly one child run per trial, finished, with every epoch's dev/f1 and the test metrics
    client = mlflow.MlflowClient(uri)
    runs = child_runs(uri, summary["mlflow_parent_run_id"])
    per_trial = Counter(r.data.tags.get("ray_trial_id") for r in runs)
    assert per_trial == Counter(dict.fromkeys(table, 1))
    for run in runs:
        trial = table[run.data.tags["ray_trial_id"]]
        assert run.info.status == "FINISHED" and run.info.run_id == trial["mlflow_run_id"]
        assert "test/f1" in run.data.metrics
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "dev/f1")) == list(range(EPOCHS))
    assert most_at_once(runs) >= TRIALS // 2  # the trials really logged concurrently (all 8, unless the machine lags)

    # several server processes wrote at once: no lock or database error anywhere, no request failed
    assert not [line for line in server_log.read_text().splitlines() if LOCK_ERRORS.search(line) or SERVER_ERROR.search(line)]
    assert not [line for line in pg_log.read_text().splitlines() if LOCK_ERRORS.search(line)]

    # the runs are rows in PostgreSQL (not in some other store the server fell back to)
    import psycopg2

    conn = psycopg2.connect(store.replace("+psycopg2", ""))  # libpq's URI form
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT run_uuid, status FROM runs")
            rows = dict(cur.fetchall())
            cur.execute("SELECT run_uuid, count(DISTINCT step) FROM metrics WHERE key = 'dev/f1' GROUP BY run_uuid")
            epochs = dict(cur.fetchall())
    finally:
        conn.close()
    assert len(rows) == TRIALS + 1 and rows[summary["mlflow_parent_run_id"]] == "FINISHED"  # + the sweep's parent run
    assert {r["mlflow_run_id"]: "FINISHED" for r in table.values()}.items() <= rows.items()
    assert epochs == {r["mlflow_run_id"]: EPOCHS for r in table.values()}
