"""The sweep driver: Ray runtime, MLflow parent run, ``Tuner`` (new or restored), results and summary.

``run_sweep(sweep)`` runs on the machine that launched ``python -m infnet.tune``. Trials run in Ray
workers (:mod:`infnet.tune.trainable`); only the driver talks to Optuna. Order of events:

0. load the data (a missing or malformed data file fails here, before any MLflow run exists or Ray starts);
1. create the MLflow store/experiment on the driver (a fresh SQLite store migrates its schema on
   first contact; concurrent trials would race for it), open or reopen the sweep's parent run and
   persist it in ``infnet_sweep.json``;
2. start (or join, ``tune.address``) Ray; ship the data once with ``tune.with_parameters``;
3. ``Tuner.restore`` when Tune's ``experiment_state-*.json`` exists in the folder (``can_restore``
   alone is true as soon as ``tuner.pkl`` exists), else a new ``Tuner``; ``fit()``;
4. reconcile MLflow with Tune's final view, write ``results.parquet`` and ``best_config.json``, log
   them to the parent run, build the sweep report (:mod:`infnet.report`: ``report/`` beside the results
   and in the parent run's artifacts; a failure is only a warning) and end the parent run (KILLED if
   trials are left unfinished, FINISHED otherwise).

SIGTERM during steps 2-4 stops the sweep as Ctrl-C does (:func:`sigterm_as_interrupt`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
from omegaconf import OmegaConf

from infnet.sweep_layout import (
    BEST_FILE,
    CONFIG_ARTIFACT,
    RESULTS_FILE,
    SEARCH_SPACE_ARTIFACT,
    filesystem,
    join,
)
from infnet.tracking import (
    RunLogger,
    ensure_experiment,
    flatten,
    runs_url,
    share_runs_view,
)
from infnet.tune.child_runs import ERROR_TAG, TRIAL_TAG, ChildRuns
from infnet.tune.results import best_row, results_table, trial_rows, trial_status
from infnet.tune.sweep import Sweep, newest_tune_state, write_state

if TYPE_CHECKING:
    from infnet.data import MLCDataset, SeqDataset

log = logging.getLogger("infnet.tune")

QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_AIR_NEW_OUTPUT": "0",  # the legacy output engine honours verbose=0 (progress: our ProgressPrinter)
    "RAY_CHDIR_TO_TRIAL_DIR": "0",  # trials keep the driver's working directory (relative paths stay valid)
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",  # a checkpoint per epoch is intended
}


def quiet_environment() -> None:
    """Set ``QUIET_ENV`` defaults (before Ray starts: local workers inherit the environment)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def open_parent(sweep: Sweep) -> tuple[Sweep, RunLogger]:
    """Create the MLflow experiment if needed and open the sweep's parent run (reopen it when resuming)."""
    if sweep.parent_run_id is not None:
        ensure_experiment(sweep.tracking_uri, sweep.experiment)  # the store's schema (under its lock) and the experiment's kind tag
        return sweep, RunLogger(sweep.tracking_uri, sweep.experiment, run_id=sweep.parent_run_id)
    params = {"search_space": sweep.space.name, "base_overrides": list(sweep.space.base_overrides),
              "method": sweep.cfg.method.name, "data": sweep.cfg.data.name,
              **flatten({"tune": OmegaConf.to_container(sweep.cfg.tune, resolve=True)})}
    tags = {"infnet.entry": "tune", "infnet.sweep": sweep.name, "infnet.sweep_path": sweep.path,
            "infnet.method": str(sweep.cfg.method.name), "infnet.data": str(sweep.cfg.data.name)}
    parent = RunLogger(sweep.tracking_uri, sweep.experiment, run_name=sweep.name, params=params, tags=tags)
    parent.log_dict(sweep.space.spec, SEARCH_SPACE_ARTIFACT)
    parent.log_dict(OmegaConf.to_container(sweep.cfg, resolve=True), CONFIG_ARTIFACT)
    return sweep.with_parent(parent.run_id), parent


def start_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Start a local Ray runtime (``num_cpus``: None = all) or join the cluster at ``address``
    (``auto`` inside ``ray up`` clusters); False if Ray was already initialised in this process."""
    import ray

    if ray.is_initialized():
        return False
    quiet_environment()
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        ray.init(address=address, **quiet)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file for a private local runtime
        ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
    return True


def as_interrupt(signum: int, frame: Any) -> None:
    """Handle a signal as SIGINT: call SIGINT's current handler (Tune's while it runs), KeyboardInterrupt if
    there is none. Called directly, not by raising SIGINT: a Ray job's entrypoint runs with SIGINT blocked."""
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):
        raise KeyboardInterrupt
    handler(signal.SIGINT, frame)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, ``ray job stop``, a scheduler's preemption) stops the sweep as
    Ctrl-C does: Tune stops the trials and saves its state, the results so far are written, the parent run
    ends KILLED and the resume command is printed; a second signal stops it at once. (``ray.init`` makes
    SIGTERM a bare ``sys.exit`` in the driver, which writes nothing.) Once Tune has returned, its handler
    stays and only logs a first signal: the results being written are finished. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, as_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def warn_if_not_shared(sweep: Sweep) -> None:
    """On a multi-node cluster, trials on other nodes need a tracking server and shared storage."""
    import ray

    if len(ray.nodes()) < 2:
        return
    if not sweep.tracking_uri.startswith(("http://", "https://", "databricks")):
        log.warning("tracking.uri=%s is local to this node: trials on other nodes cannot log to it; "
                    "run `mlflow server` on the head node and pass tracking.uri=http://<head private IP>:5000",
                    sweep.tracking_uri)
    if "://" not in sweep.storage_path:
        log.warning("tune.storage_path=%s must be shared by every node (NFS) or a URI such as s3://...", sweep.storage_path)


def trial_resources(tune_cfg: Any) -> dict[str, float]:
    """CPUs and GPUs per trial (GPUs: :func:`infnet.tune.gpu.gpu_request`)."""
    import ray

    from infnet.tune.gpu import gpu_request  # lazy: torch

    gpus = gpu_request(float(tune_cfg.gpus_per_trial), ray.cluster_resources().get("GPU", 0), bool(tune_cfg.address))
    return {"cpu": float(tune_cfg.cpus_per_trial), "gpu": gpus}


def trial_dirname(trial: Any) -> str:
    """Trial folders are named by trial id (the default name embeds every sampled value)."""
    return trial.trial_id


def make_tuner(sweep: Sweep, runs: ChildRuns, pretraining: Any, data: MLCDataset | SeqDataset) -> Any:
    """A restored ``Tuner`` when Tune's experiment state exists in the sweep folder, else a new one;
    ``pretraining``: where trials share CE pretrainings (``pretrain_claims.SharedPretraining``); ``data``: the
    loaded dataset, shipped to the trials through Ray's object store."""
    from ray import tune

    # lazy: Ray and Optuna load when a sweep runs, not when it is prepared
    from infnet.tune.callbacks import (
        ChildRunCloser,
        GpuWaitReporter,
        ProgressPrinter,
        SearchReconciler,
        use_child_runs,
    )
    from infnet.tune.checkpoint_fallback import CheckpointFallback
    from infnet.tune.search import METRIC, MODE, make_scheduler, make_search
    from infnet.tune.trainable import BASE_KEY, TrialSettings, train_trial

    t = sweep.cfg.tune
    use_child_runs(runs)  # also for the callbacks a restore unpickles (the tracking URI may have moved)
    settings = TrialSettings(runs, sweep.metric.key, t.fault_injection.crash_after_epoch, pretraining)
    resources = trial_resources(t)
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=data, space=sweep.space, settings=settings),
        resources,
    )
    if newest_tune_state(sweep.path)["experiment_state-"] and tune.Tuner.can_restore(sweep.path):
        return tune.Tuner.restore(sweep.path, trainable, resume_errored=bool(t.resume_errored))
    main_epochs = int(sweep.cfg.trainer.max_epochs) - int(sweep.cfg.method.get("pretrain_epochs", 0))
    search = make_search(t, sweep.space, study_name=sweep.name)
    return tune.Tuner(
        trainable,
        param_space={BASE_KEY: sweep.training_config()},
        tune_config=tune.TuneConfig(
            metric=METRIC, mode=MODE, num_samples=int(t.num_samples), search_alg=search,
            scheduler=make_scheduler(t, main_epochs),
            trial_dirname_creator=trial_dirname, reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=sweep.name, storage_path=sweep.storage_path, verbose=0,
            callbacks=[ChildRunCloser(runs), ProgressPrinter(int(t.num_samples), sweep.space.names),
                       GpuWaitReporter(resources["gpu"], float(t.gpu_wait_report_s)), CheckpointFallback(),
                       SearchReconciler(search)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=int(t.checkpoints_to_keep)),
            failure_config=tune.FailureConfig(max_failures=int(t.max_failures)),
        ),
    )


def sweep_view(sweep: Sweep, experiment_id: str) -> str:
    """Store the runs view of ``sweep`` in its experiment ``experiment_id``: its parent run with the trials'
    child runs under it, the task metric's columns (the parent logs the best trial's under the same names),
    best first. Returns the view's key."""
    key = sweep.metric.key
    return share_runs_view(sweep.tracking_uri, experiment_id, f"sweep-{sweep.name}", f"tags.`infnet.sweep` = '{sweep.name}'",
                           [f"dev/best_{key}", f"test/{key}"], str(sweep.parent_run_id))


def mlflow_ui_command(uri: str, experiment_id: str, view: str | None = None) -> str:
    """How to open the MLflow UI of store ``uri`` on the runs of experiment ``experiment_id`` (in ``view``)."""
    if uri.startswith(("http://", "https://")):
        return f"open {runs_url(uri, experiment_id, view)} (the tracking server serves the UI)"
    return f"mlflow ui --backend-store-uri {uri} --port 5000  # then open {runs_url('http://127.0.0.1:5000', experiment_id, view)}"


def run_sweep(sweep: Sweep) -> dict[str, Any]:
    """Run (or resume) ``sweep`` to the end; returns the summary (the CLI's last stdout line)."""
    from infnet.data import load_data  # lazy: the loaders import torch

    quiet_environment()
    start = time.time()
    data = load_data(sweep.cfg.data)  # first: a missing or malformed data file fails before any run or Ray starts
    sweep, parent = open_parent(sweep)
    started_ray = False
    try:  # from here on, whatever fails ends the parent run (FAILED, or KILLED on Ctrl-C)
        from infnet.tune.pretrain_claims import start_claims  # lazy: Ray

        write_state(sweep)
        view = sweep_view(sweep, parent.experiment_id)  # stored now: the UI link works while the sweep runs
        runs = ChildRuns(sweep.tracking_uri, sweep.experiment, sweep.parent_run_id, sweep.name, parent.experiment_id)
        started_ray = start_ray(sweep.cfg.tune.address, sweep.cfg.tune.num_cpus)
        with sigterm_as_interrupt():
            warn_if_not_shared(sweep)
            pretraining, _claims = start_claims(sweep.storage_path, sweep.name)  # the actor lives while _claims does
            make_tuner(sweep, runs, pretraining, data).fit()
            summary = finish(sweep, runs, parent, view)
    except KeyboardInterrupt:
        parent.end("KILLED")
        raise
    except Exception:
        parent.end("FAILED")
        raise
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return {**summary, "wall_seconds": time.time() - start}


def collect(sweep: Sweep, runs: ChildRuns) -> tuple[list[dict[str, Any]], int]:
    """Tune's final view of every trial as table rows, after making MLflow agree with it (runs still
    RUNNING are closed, orphans deleted); returns the rows and the number of deleted orphan runs."""
    from ray import tune

    from infnet.tune.callbacks import error_text  # lazy: Ray

    trials = tune.ExperimentAnalysis(sweep.path).trials
    statuses = {t.trial_id: trial_status(t) for t in trials}
    deleted = runs.reconcile(statuses)
    child = {r.data.tags[TRIAL_TAG]: r for r in runs.all()}
    errors = {}
    for t in trials:
        if statuses[t.trial_id] == "error":
            tag = child[t.trial_id].data.tags.get(ERROR_TAG) if t.trial_id in child else None
            errors[t.trial_id] = tag or error_text(t)
    return trial_rows(trials, sweep.space, {k: r.info.run_id for k, r in child.items()}, errors, sweep.metric.key), deleted


def summarize(sweep: Sweep, rows: list[dict[str, Any]], deleted: int, experiment_id: str, view: str) -> dict[str, Any]:
    """The summary printed as the CLI's last line (best trial on dev, counts, where results are);
    ``view``: the key of the runs view of :func:`sweep_view` in experiment ``experiment_id``."""
    best = best_row(rows) or {}
    counts = {s: sum(r["status"] == s for r in rows) for s in ("completed", "stopped", "error", "interrupted")}
    return {
        "best_config": sweep.space.decode({k: best[k] for k in sweep.space.names if best[k] is not None}) if best else None,
        "best_dev_metric": best.get("dev_metric"),
        "best_test_metric": best.get("test_metric"),
        "metric": sweep.metric.key,
        "metric_description": f"{sweep.metric.description}: best dev value of a trial, and its test value",
        "best_trial_id": best.get("trial_id"),
        "best_trial_status": best.get("status"),
        "best_mlflow_run_id": best.get("mlflow_run_id"),
        "num_trials": len(rows),
        "num_completed": counts["completed"],
        "num_stopped": counts["stopped"],
        "num_errored": counts["error"],
        "num_interrupted": counts["interrupted"],
        "unfinished": bool(counts["interrupted"] or len(rows) < int(sweep.cfg.tune.num_samples)),  # stopped early
        "pretrain_computed": sum(r["pretrain"] == "computed" for r in rows),
        "pretrain_hits": sum(r["pretrain"] == "hit" for r in rows),
        "results_path": join(sweep.path, RESULTS_FILE),
        "experiment_path": sweep.path,
        "resumed": sweep.resumed,
        "resume_command": f"python -m infnet.tune tune.resume={sweep.path}",
        "mlflow_tracking_uri": sweep.tracking_uri,
        "mlflow_experiment": sweep.experiment,
        "mlflow_parent_run_id": sweep.parent_run_id,
        "mlflow_deleted_orphan_runs": deleted,
        "mlflow_ui": mlflow_ui_command(sweep.tracking_uri, experiment_id, view),
        "mlflow_runs_page": runs_url("", experiment_id, view),  # relative to the UI's base URL
    }


def finish(sweep: Sweep, runs: ChildRuns, parent: RunLogger, view: str) -> dict[str, Any]:
    """Write ``results.parquet`` and ``best_config.json`` (sweep folder and parent-run artifacts), log
    the parent's metrics and end it (KILLED if trials are unfinished: the summary's ``unfinished``); returns
    the summary."""

    rows, deleted = collect(sweep, runs)
    summary = summarize(sweep, rows, deleted, runs.experiment_id, view)
    best = {k: summary[k] for k in ("best_config", "metric", "best_dev_metric", "best_test_metric", "best_trial_id", "best_mlflow_run_id")}
    table = results_table(rows, sweep.space)
    fs, root = filesystem(sweep.path)
    pq.write_table(table, join(root, RESULTS_FILE), filesystem=fs)
    with fs.open_output_stream(join(root, BEST_FILE)) as f:
        f.write(json.dumps(best, indent=1).encode())
    with tempfile.TemporaryDirectory() as d:
        pq.write_table(table, Path(d) / RESULTS_FILE)
        parent.log_file(Path(d) / RESULTS_FILE)
    parent.log_dict(best, BEST_FILE)
    metrics = {f"num_{k}": float(summary[f"num_{k}"]) for k in ("trials", "completed", "stopped", "errored", "interrupted")}
    key = sweep.metric.key
    for split, value in (("dev", best["best_dev_metric"]), ("test", best["best_test_metric"])):
        # fractions, under the names the trials log them with: one runs-table column shows the sweep's best
        # next to each trial's
        if value is not None:
            metrics[f"best/{split}_{key}"] = metrics[f"dev/best_{key}" if split == "dev" else f"test/{key}"] = value / 100
    parent.log_metrics(metrics)
    summary["report_path"] = sweep_report(sweep)
    parent.end("KILLED" if summary["unfinished"] else "FINISHED")
    return summary


def sweep_report(sweep: Sweep) -> str | None:
    """Build the sweep's report (HTML + PNG figures in ``<sweep>/report/``, logged to the parent run);
    returns the HTML's path, or None after logging a warning: the results are already saved, and a
    report that cannot be built must not fail or lose the sweep."""
    try:
        # lazy: the report's plotting stack loads only to build it
        from infnet.report import build_report

        return build_report([join(sweep.path, RESULTS_FILE)])["report"]
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("the sweep report could not be built (results are saved; retry with `python -m infnet.report %s`): %s: %s",
                    sweep.path, type(exc).__name__, exc)
        return None


__all__ = ["mlflow_ui_command", "quiet_environment", "run_sweep", "start_ray"]
