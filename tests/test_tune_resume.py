"""``python -m infnet.tune`` as a subprocess: a driver killed (SIGKILL) mid-sweep is resumed without
losing or duplicating trials or MLflow runs; re-running a finished sweep's command changes nothing;
the README's main command exactly (the embedded default), and a sweep logging to an ``http://`` MLflow
tracking server (the cluster's path)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pyarrow.fs
import pyarrow.parquet as pq
from processes import free_port, lose_head
from test_tune_sweep import TINY

from infnet.tune.__main__ import STOPPED_STATUS
from infnet.tune.checkpoint_fallback import readable
from infnet.tune.sweep import unreadable
from infnet.tune.trainable import read_loop_state

SMALL = ["data.n_train=1000", "data.n_dev=200", "data.n_test=200", "trainer.max_epochs=8", "method.pretrain_epochs=4",
         "tracking.log_model=false"]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def tune_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**ENV, "INFNET_CACHE": str(cwd / "cache")}  # data and pretraining caches of this test only
    return subprocess.run([sys.executable, "-m", "infnet.tune", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def last_json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_runs(uri: str, parent_run_id: str) -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("infnet-sweep")
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


def finished_child_runs(uri: str, state_file: Path) -> list:
    if not state_file.exists():
        return []
    parent = json.loads(state_file.read_text())["parent_run_id"]
    return [r for r in child_runs(uri, parent) if r.info.status == "FINISHED"]


def block_interrupts() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def start_sweep(tmp_path: Path, name: str, num_samples: int, *extra: str,
                block_sigint: bool = False) -> tuple[str, Path, list[str], subprocess.Popen]:
    """A small sweep ``name`` (with the ``extra`` overrides) started in the background (its own session, to be
    killed; its output in ``<tmp_path>/<name>.out`` and ``.err``; with SIGINT blocked, as Ray runs a job's
    entrypoint, if ``block_sigint``): its SQLite tracking URI, its folder, its command-line arguments and its
    driver process."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*SMALL, *extra, f"tune.num_samples={num_samples}", "tune.max_concurrent=2", "tune.scheduler=none", f"tune.name={name}",
            f"tune.storage_path={tmp_path / 'runs'}", f"tracking.uri={uri}", f"data.cache_dir={tmp_path / 'cache'}"]
    with open(tmp_path / f"{name}.out", "w") as out, open(tmp_path / f"{name}.err", "w") as err:
        driver = subprocess.Popen([sys.executable, "-m", "infnet.tune", *args], cwd=tmp_path, env=ENV, start_new_session=True,
                                  stdout=out, stderr=err, preexec_fn=block_interrupts if block_sigint else None)
    return uri, tmp_path / "runs" / name, args, driver


def wait_for_a_finished_trial(uri: str, path: Path, driver: subprocess.Popen) -> set[str]:
    """The trial ids of the sweep at ``path`` whose MLflow runs are FINISHED, once there is one (4 minutes at most)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert driver.poll() is None, "the sweep ended before it could be stopped"
        if finished := {r.data.tags["ray_trial_id"] for r in finished_child_runs(uri, path / "infnet_sweep.json")}:
            return finished
        time.sleep(0.2)
    raise AssertionError("no trial finished within 4 minutes")


def test_killed_driver_resumes_without_losing_or_duplicating(tmp_path: Path) -> None:
    uri, path, args, driver = start_sweep(tmp_path, "killed", 4)
    try:
        wait_for_a_finished_trial(uri, path, driver)
    finally:
        driver.send_signal(signal.SIGKILL)  # the driver only; Ray's processes share its fate
        driver.wait()
    time.sleep(2)
    try:
        os.killpg(driver.pid, signal.SIGKILL)  # anything of that session still alive (not the test's own group)
    except ProcessLookupError:
        pass
    parent_id = json.loads((path / "infnet_sweep.json").read_text())["parent_run_id"]
    before = {r.data.tags["ray_trial_id"]: r.info.run_id for r in finished_child_runs(uri, path / "infnet_sweep.json")}
    assert 1 <= len(before) < 4, "killed mid-sweep"

    resumed = tune_cli([f"tune.resume={path}"], tmp_path)
    summary = last_json(resumed)
    assert summary["resumed"] and summary["mlflow_parent_run_id"] == parent_id
    assert summary["num_trials"] == summary["num_completed"] == 4 and summary["num_errored"] == 0
    assert f"mlflow ui --backend-store-uri {uri}" in resumed.stdout and "Best trial" in resumed.stdout
    table = pq.read_table(summary["results_path"]).to_pylist()
    assert len({r["trial_id"] for r in table}) == 4 and {r["status"] for r in table} == {"completed"}
    runs = child_runs(uri, parent_id)
    by_trial = {r.data.tags["ray_trial_id"]: r for r in runs}
    assert len(runs) == len(by_trial) == 4 and set(by_trial) == {r["trial_id"] for r in table}
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all(by_trial[t].info.run_id == run_id for t, run_id in before.items())  # finished trials kept, not redone
    client = mlflow.MlflowClient(uri)
    assert client.get_run(parent_id).info.status == "FINISHED"

    again = last_json(tune_cli(args, tmp_path))  # the original command again: the sweep is found and already done
    assert again["resumed"] and again["mlflow_parent_run_id"] == parent_id and again["num_completed"] == 4
    assert len(child_runs(uri, parent_id)) == 4
    assert len(client.search_runs([client.get_experiment_by_name("infnet-sweep").experiment_id], "attributes.run_name = 'killed'")) == 1

    state = max(path.glob("experiment_state-*.json"))  # Tune's state cut short (a head lost while it was written)
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    torn = tune_cli(args, tmp_path)
    assert torn.returncode == 2 and f"{state.name} does not read back" in torn.stderr, torn.stderr[-2000:]
    assert len(child_runs(uri, parent_id)) == 4  # not started over


def test_embedded_default(tmp_path: Path) -> None:
    proc = tune_cli([], tmp_path, timeout=600)
    summary = last_json(proc)
    assert {"best_config", "best_dev_metric", "best_test_metric", "num_trials", "num_errored", "results_path",
            "mlflow_experiment", "mlflow_parent_run_id"} <= set(summary)
    assert summary["num_trials"] == 8 and summary["best_test_metric"] > 50
    assert Path(summary["results_path"]).is_relative_to(tmp_path / "tune_results") and (tmp_path / "mlflow.db").exists()
    assert "[tune" in proc.stderr and f"mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}" in proc.stdout


def test_sweep_logs_to_an_http_tracking_server(tmp_path: Path) -> None:
    import urllib.request

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=tmp_path, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        summary = last_json(tune_cli([*TINY, "tune.num_samples=2", "tune.scheduler=none", f"tracking.uri={uri}"], tmp_path))
        runs = child_runs(uri, summary["mlflow_parent_run_id"])
        assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
        assert "results.parquet" in {a.path for a in mlflow.MlflowClient(uri).list_artifacts(summary["mlflow_parent_run_id"])}
        assert not (tmp_path / "mlflow.db").exists() and summary["mlflow_ui"].startswith(f"open {uri}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers (their own session)
        server.wait(timeout=30)


def test_sigterm_stops_the_sweep_as_ctrl_c_does(tmp_path: Path) -> None:
    """``kill <driver>`` (what ``ray job stop`` and schedulers send first): the sweep stops as after Ctrl-C,
    keeping what finished (results table, report, KILLED parent run, the resume command, exit status 3), and
    resumes. The driver runs with SIGINT blocked, as Ray runs a job's entrypoint: the stop must not rely on
    SIGINT being delivered."""
    uri, path, _, driver = start_sweep(tmp_path, "terminated", 4, block_sigint=True)
    try:
        finished = wait_for_a_finished_trial(uri, path, driver)
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=120) == STOPPED_STATUS, (tmp_path / "terminated.err").read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # whatever of its session is left, had it not stopped
    stdout = (tmp_path / "terminated.out").read_text()
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert f"Resume: python -m infnet.tune tune.resume={path}" in stdout
    assert summary["unfinished"] and summary["num_interrupted"] >= 1 and summary["num_errored"] == 0
    assert summary["num_completed"] >= len(finished)
    table = pq.read_table(summary["results_path"]).to_pylist()
    assert {r["status"] for r in table} == {"completed", "interrupted"}
    assert finished <= {r["trial_id"] for r in table if r["status"] == "completed"}
    assert Path(summary["report_path"]).exists()
    parent_id = summary["mlflow_parent_run_id"]
    assert mlflow.MlflowClient(uri).get_run(parent_id).info.status == "KILLED"

    resumed = last_json(tune_cli([f"tune.resume={path}"], tmp_path))
    assert resumed["mlflow_parent_run_id"] == parent_id and resumed["num_trials"] == resumed["num_completed"] == 4
    assert mlflow.MlflowClient(uri).get_run(parent_id).info.status == "FINISHED"


def unfinished_checkpoints(runs: Path, finished: set[str]) -> dict[str, list[Path]]:
    """The checkpoint folders (oldest first) of each trial of sweep folder ``runs`` not in ``finished``."""
    trials = [t for t in runs.iterdir() if t.is_dir()] if runs.exists() else []
    found = {t.name: sorted(p.parent for p in t.glob("checkpoint_*/loop_state.pt")) for t in trials}
    return {trial: folders for trial, folders in found.items() if folders and trial not in finished}


def test_resume_when_the_remembered_checkpoint_is_gone(tmp_path: Path) -> None:
    """A head lost between Tune deleting a trial's old checkpoint and writing the experiment state that
    names the new one: the state names a checkpoint that no longer exists. Made certain here by keeping only
    each unfinished trial's newest readable checkpoint folder after the kill, renamed (index + 1, a name the
    state cannot know). Every trial completes; each whose checkpoint the state named resumes from the one
    that is there (not failing, not starting over)."""
    uri, path, _, driver = start_sweep(tmp_path, "gone", 2, "trainer.max_epochs=12")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert driver.poll() is None, "the sweep ended before it could be killed"
            # a trial on its 3rd to 6th checkpoint of 11: Tune has saved a state naming one of them (it saves
            # at every checkpoint when it keeps one), and the trial is several epochs from its end
            newest = [f[-1].name for f in unfinished_checkpoints(path, set()).values()]
            if any("checkpoint_000002" <= name <= "checkpoint_000005" for name in newest):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no trial reached its 3rd checkpoint within 4 minutes")
    finally:
        lose_head(driver)
    time.sleep(2)
    finished = {r.data.tags["ray_trial_id"] for r in finished_child_runs(uri, path / "infnet_sweep.json")}
    moved = {}  # the trials unfinished when the head was lost: only their newest checkpoint is left, renamed
    for trial, folders in unfinished_checkpoints(path, finished).items():
        kept = next(f for f in reversed(folders) if readable(pyarrow.fs.LocalFileSystem(), str(f)))  # the kill may cut one short
        for other in folders:
            if other != kept:
                shutil.rmtree(other)
        target = kept.with_name(f"checkpoint_{int(folders[-1].name.removeprefix('checkpoint_')) + 1:06d}")
        kept.rename(target)
        moved[trial] = read_loop_state(target / "loop_state.pt").epoch
    assert moved and all(epoch > 0 for epoch in moved.values())

    resumed = tune_cli([f"tune.resume={path}"], tmp_path)
    summary = last_json(resumed)
    assert summary["num_trials"] == summary["num_completed"] == 2 and summary["num_errored"] == 0, resumed.stderr[-3000:]
    rows = {r["trial_id"]: r for r in pq.read_table(summary["results_path"]).to_pylist()}
    # a trial the saved state never recorded runs again under a new id, and one whose checkpoints it never
    # recorded starts over: each trial the state remembered a checkpoint of resumes from the renamed one
    fell_back = {t: e for t, e in moved.items() if f"trial {t}: its last recorded checkpoint is gone from storage" in resumed.stderr}
    assert fell_back, (moved, {t: (r["start_epoch"], r["failures"]) for t, r in rows.items()}, resumed.stderr[-3000:])
    assert all(rows[t]["start_epoch"] == epoch and rows[t]["failures"] == 0 for t, epoch in fell_back.items()), (
        fell_back, {t: (r["start_epoch"], r["failures"]) for t, r in rows.items()}, resumed.stderr[-3000:])


def saved_trials(path: Path) -> int:
    """How many trials the experiment state Tune saved in ``path`` holds (0 before the first, or while one is written)."""
    states = sorted(path.glob("experiment_state-*.json"))
    try:
        return len(json.loads(states[-1].read_text())["trial_data"]) if states else 0
    except (OSError, ValueError):
        return 0


def test_resume_with_a_search_state_older_than_its_trials(tmp_path: Path) -> None:
    """Tune saves its trials and the search state (Optuna's study, the trial counter, the concurrency limiter)
    as separate files, uploaded in the background: a head lost in between leaves them from different moments
    (seen in CI on S3: the resume crashed with a KeyError in OptunaSearch). Made certain here: the search state
    of the sweep's first moments is put back over the one saved when a third trial was running. The resume
    takes that trial in and completes the sweep with the 4 trials asked for."""
    uri, path, _, driver = start_sweep(tmp_path, "stale", 4, "trainer.max_epochs=24")  # the 3rd trial runs for seconds
    early = tmp_path / "early_search_state"
    try:
        deadline = time.monotonic() + 240
        while not early.exists() or saved_trials(path) < 3:
            assert driver.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no state with a third trial within 4 minutes"
            search_files = [*path.glob("search_gen_state-*.json"), *path.glob("searcher-state-*.pkl")]
            if not early.exists() and len(search_files) == 2 and 0 < saved_trials(path) <= 2:
                copied = {f.name: f.read_bytes() for f in search_files}
                if not any(unreadable(name, data) for name, data in copied.items()):  # not caught while Tune rewrote one
                    early.mkdir()
                    for name, data in copied.items():
                        (early / name).write_bytes(data)
            time.sleep(0.1)
    finally:
        lose_head(driver)
    for f in early.iterdir():
        shutil.copy2(f, path / f.name)
    trials_before = saved_trials(path)

    resumed = tune_cli([f"tune.resume={path}"], tmp_path, timeout=600)
    summary = last_json(resumed)
    assert summary["num_trials"] == summary["num_completed"] == 4 and summary["num_errored"] == 0, resumed.stderr[-3000:]
    assert f"Resumed sweep: the search counted 2 trials, Tune has {trials_before}" in resumed.stderr
    assert "the Optuna study did not know trial" in resumed.stderr
    runs = child_runs(uri, json.loads((path / "infnet_sweep.json").read_text())["parent_run_id"])
    assert len(runs) == len({r.data.tags["ray_trial_id"] for r in runs}) == 4 and {r.info.status for r in runs} == {"FINISHED"}
