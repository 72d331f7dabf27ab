"""``python -m infnet.tune tune.address=<head>`` on a real multi-node Ray cluster on 127.0.0.1.

A head node (1 CPU) and an extra node (1 CPU, its own raylet and object store) started with Ray's
cluster utilities in this process, under a private ``RAY_TMPDIR`` (so that no other Ray runtime on the
machine sees or joins them), and a real ``mlflow server`` with a SQLite backend on a free port, started
by ``clusters/start_mlflow.sh`` -- the script the cluster YAMLs run on the head -- bound to 127.0.0.1 as
it binds to the head's private IP there. The sweep runs as the CLI does on a cluster, two trials at a
time, so trials land on both nodes. Once the extra node has finished a trial and is early in another,
it is killed: the finished trial must stay finished (Parquet row, MLflow run and its node), the
interrupted one must be retried on the head (from its checkpoint if it had written one), and the sweep
must complete with every trial's child run and per-epoch metrics in the server. The sweep's storage is
``s3://...`` on a local S3-compatible server (moto's server mode): both nodes write their checkpoints
and results there, and the retry resumes from S3.

Second test: 4 trials that share one CE pretraining, two at a time on the two nodes, compute it
exactly once (the sweep's shared pretraining cache in S3, :mod:`infnet.tune.pretrain_claims`).
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

import mlflow
import pyarrow.parquet as pq
import pytest
from processes import QUIET_ENV, free_port, stop_group
from test_tune_resume import child_runs
from test_tune_sweep import TINY

from infnet.sweep_layout import read_state
from infnet.tune.trainable import NODE_ID_TAG

REPO = Path(__file__).resolve().parents[1]

NUM_SAMPLES = 6
MAX_EPOCHS = 10  # (TINY has 6) long enough that a trial on the extra node is reliably caught mid-way


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """``clusters/start_mlflow.sh`` started (it returns once the server answers, ~20 s: set up the
    cluster meanwhile) with a SQLite store and local artifacts; yields (the script, its state folder)."""
    root = tmp_path / "mlflow"
    env = {**os.environ, **QUIET_ENV, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{root / 'mlflow.db'}", "MLFLOW_ARTIFACTS_DESTINATION": str(root / "artifacts"),
           "MLFLOW_PORT": str(free_port()), "INFNET_HEAD_IP": "127.0.0.1", "INFNET_MLFLOW_DIR": str(root)}
    starter = subprocess.Popen(["bash", str(REPO / "clusters" / "start_mlflow.sh"), "--workers", "1"], env=env,
                               start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield starter, root
    finally:
        stop_group(starter.pid)
        starter.wait()
        if (root / "server.pid").exists():
            stop_group(int((root / "server.pid").read_text()))  # the server and its workers: their own session


@pytest.fixture
def cluster() -> Iterator[tuple[object, object]]:
    """(Cluster, extra node): a head with 1 CPU and a second node with 1 CPU, both on 127.0.0.1."""
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="infnet-ray-", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    # single-machine mode: Ray would otherwise replace 127.0.0.1 in addresses by the machine's own IP
    loopback = {"RAY_TMPDIR": temp, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**QUIET_ENV, **loopback}.items():
            mp.setenv(key, value)
        cl = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False})
        try:
            extra = cl.add_node(num_cpus=1, node_ip_address="127.0.0.1", resources={"extra_node": 1})
            cl.wait_for_nodes()
            yield cl, extra
        finally:
            cl.shutdown()
            shutil.rmtree(temp, ignore_errors=True)


def runs_on(uri: str, parent: str, node_id: str) -> list:
    return [r for r in child_runs(uri, parent) if r.data.tags.get(NODE_ID_TAG) == node_id]


def kill_extra_node_mid_sweep(driver: subprocess.Popen, cluster: object, extra: object, uri: str, path: str) -> str:
    """Wait until the extra node has finished a trial and is at most halfway through another, then
    kill it; returns the id of the trial it was running."""
    client = mlflow.MlflowClient(uri)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert driver.poll() is None, "the sweep ended before the extra node could be killed"
        if (state := read_state(path)) is not None:
            runs = runs_on(uri, state["parent_run_id"], extra.node_id)
            finished = [r for r in runs if r.info.status == "FINISHED"]
            early = [r for r in runs if r.info.status == "RUNNING"
                     and len(client.get_metric_history(r.info.run_id, "dev/f1")) <= MAX_EPOCHS // 2]
            if finished and early:
                cluster.remove_node(extra, allow_graceful=False)
                return early[0].data.tags["ray_trial_id"]
        time.sleep(0.25)
    pytest.fail("the extra node never had a finished trial and a running one at once")


def tracking_uri(mlflow_server: tuple) -> str:
    """The URI of the fixture's server, once ``start_mlflow.sh`` has returned."""
    starter, mlflow_dir = mlflow_server
    output, _ = starter.communicate(timeout=240)
    assert starter.returncode == 0, output
    uri = (mlflow_dir / "tracking_uri").read_text().strip()
    assert uri.startswith("http://127.0.0.1:")
    return uri


def start_driver(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen, Path, Path]:
    """``python -m infnet.tune *args`` in the background; returns it and its stdout and stderr files."""
    out, err = tmp_path / "driver.out", tmp_path / "driver.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        driver = subprocess.Popen([sys.executable, "-m", "infnet.tune", *args], cwd=tmp_path, env=dict(os.environ),
                                  start_new_session=True, stdout=stdout, stderr=stderr)
    return driver, out, err


def finish(driver: subprocess.Popen, out: Path, err: Path, timeout: float = 400) -> dict:
    """Wait for the driver (stopping it on a timeout) and return its summary."""
    try:
        driver.wait(timeout=timeout)
    finally:
        if driver.poll() is None:
            stop_group(driver.pid)
            driver.wait()
    assert driver.returncode == 0, err.read_text()[-4000:]
    return json.loads(out.read_text().strip().splitlines()[-1])


def test_sweep_across_nodes_survives_losing_a_node(s3_storage: str, mlflow_server: tuple, cluster: tuple, tmp_path: Path) -> None:
    cl, extra = cluster
    head_id = cl.head_node.node_id
    uri = tracking_uri(mlflow_server)
    args = [*TINY, f"trainer.max_epochs={MAX_EPOCHS}", "trainer.pretrain_cache=false", f"tune.num_samples={NUM_SAMPLES}",
            "tune.max_concurrent=2", "tune.scheduler=none", "tune.max_failures=2", "tune.name=multinode", f"tune.address={cl.address}",
            f"tracking.uri={uri}", f"tune.storage_path={s3_storage}", f"data.cache_dir={tmp_path / 'cache'}"]
    driver, out, err = start_driver(args, tmp_path)
    try:
        killed = kill_extra_node_mid_sweep(driver, cl, extra, uri, f"{s3_storage}/multinode")
    finally:
        summary = finish(driver, out, err)
    assert summary["results_path"] == f"{s3_storage}/multinode/results.parquet"

    # the sweep completed: every trial, once, in the Parquet table
    assert summary["num_trials"] == summary["num_completed"] == NUM_SAMPLES and summary["num_errored"] == 0
    table = {r["trial_id"]: r for r in pq.read_table(summary["results_path"]).to_pylist()}
    assert len(table) == NUM_SAMPLES and {r["status"] for r in table.values()} == {"completed"}
    assert all(r["epochs"] == MAX_EPOCHS and r["test_metric"] > 0 and r["node_ip"] == "127.0.0.1" for r in table.values())
    # trials ran on both nodes; what the extra node finished before it died stays finished there
    nodes = {r["node_id"] for r in table.values()}
    assert nodes == {head_id, extra.node_id}
    on_extra = [r for r in table.values() if r["node_id"] == extra.node_id]
    assert on_extra and all(r["failures"] == 0 and r["startup_seconds"] > 0 for r in on_extra)
    # the trial interrupted by the node's death was retried on the head and completed there
    assert table[killed]["failures"] >= 1 and table[killed]["node_id"] == head_id
    assert table[killed]["startup_seconds"] is None

    # every trial's child run is in the server, finished, with its per-epoch metrics and test metrics
    client = mlflow.MlflowClient(uri)
    runs = {r.data.tags["ray_trial_id"]: r for r in child_runs(uri, summary["mlflow_parent_run_id"])}
    assert set(runs) == set(table) and {r.info.status for r in runs.values()} == {"FINISHED"}
    for trial_id, run in runs.items():
        assert run.info.run_id == table[trial_id]["mlflow_run_id"]
        assert run.data.tags[NODE_ID_TAG] == table[trial_id]["node_id"]
        assert "test/f1" in run.data.metrics and "dev/best_f1" in run.data.metrics
        assert {m.step for m in client.get_metric_history(run.info.run_id, "dev/f1")} == set(range(MAX_EPOCHS))
    assert client.get_run(summary["mlflow_parent_run_id"]).info.status == "FINISHED"


def test_nodes_share_one_pretraining(s3_storage: str, mlflow_server: tuple, cluster: tuple, tmp_path: Path) -> None:
    import pyarrow.fs
    from test_tune_sweep import write_space

    cl, _ = cluster
    uri = tracking_uri(mlflow_server)
    space = write_space(tmp_path, [], ["method.inner_steps: {type: categorical, choices: [1, 2, 3, 4]}"])  # main phase only
    args = [*TINY, "trainer.pretrain_cache=true", "tune.num_samples=4", "tune.max_concurrent=2", "tune.scheduler=none",
            "tune.name=shared", f"search_space={space}", f"tune.address={cl.address}", f"tracking.uri={uri}",
            f"tune.storage_path={s3_storage}", f"data.cache_dir={tmp_path / 'cache'}"]
    summary = finish(*start_driver(args, tmp_path))
    table = pq.read_table(summary["results_path"]).to_pylist()
    assert {r["status"] for r in table} == {"completed"} and len({r["node_id"] for r in table}) == 2  # both nodes trained
    assert sorted(r["pretrain"] for r in table) == ["computed", "hit", "hit", "hit"]
    assert summary["pretrain_computed"] == 1 and summary["pretrain_hits"] == 3
    fs, root = pyarrow.fs.FileSystem.from_uri(f"{s3_storage}/pretrain_cache")
    entries = [i for i in fs.get_file_info(pyarrow.fs.FileSelector(root)) if i.type == pyarrow.fs.FileType.File]
    assert [Path(i.path).suffix for i in entries] == [".pt"]  # one entry, no temp file left
    assert not (tmp_path / "cache" / "pretrain").exists()  # not on a node's own disk
    client = mlflow.MlflowClient(uri)
    histories = {r.data.tags["ray_trial_id"]: client.get_metric_history(r.info.run_id, "dev/f1")
                 for r in child_runs(uri, summary["mlflow_parent_run_id"])}
    pretrain_epochs = int(next(a for a in TINY if a.startswith("method.pretrain_epochs=")).split("=")[1])
    max_epochs = int(next(a for a in TINY if a.startswith("trainer.max_epochs=")).split("=")[1])
    for history in histories.values():  # every epoch in MLflow, the reused ones replayed from the cache
        assert sorted(m.step for m in history) == list(range(max_epochs))
    pretraining = {tuple(m.value for m in sorted(h, key=lambda m: m.step)[:pretrain_epochs]) for h in histories.values()}
    assert len(pretraining) == 1  # one pretraining, the same curve in every trial
