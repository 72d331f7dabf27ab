"""Driver-side Tune callbacks: close MLflow child runs, print one compact progress line per event,
say so when trials wait for GPUs, bring a restored sweep's search state in step with its trials.

They are module-level classes holding plain data: ``Tuner.restore`` unpickles them from ``tuner.pkl``,
as the driver that started the sweep made them. What may have changed since (the MLflow server's
address, after the sweep moved to a new head) is taken from the resuming driver in ``setup``: it
registers its child runs with :func:`use_child_runs` before ``fit``. This module imports Ray; import it lazily.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import ray
from ray import tune

from infnet.tune.child_runs import ChildRuns, ended_status
from infnet.tune.search import METRIC, ResumableSearch

log = logging.getLogger("infnet.tune")


def error_text(trial: Any, limit: int = 500) -> str:
    """The last line of the trial's error file (the exception), or ''."""
    try:
        with open(trial.error_file, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except (OSError, TypeError):
        return ""
    return lines[-1][:limit] if lines else ""


#: The child runs of the sweeps this driver process runs, by parent run id (see the module docstring).
CURRENT_RUNS: dict[str, ChildRuns] = {}


def use_child_runs(runs: ChildRuns) -> None:
    """Make callbacks of ``runs``' sweep (new or unpickled) use ``runs`` (its current tracking URI)."""
    CURRENT_RUNS[runs.parent_run_id] = runs


class ChildRunCloser(tune.Callback):
    """Terminates the MLflow runs of trials stopped by the scheduler (KILLED) or errored (FAILED).

    A trial stopped by ASHA never returns from ``tune.report``, so its own code cannot end its run; a
    worker that died cannot either. Runs the trainable already ended are left alone.
    """

    def __init__(self, runs: ChildRuns) -> None:
        self.runs = runs

    def setup(self, **info: Any) -> None:
        self.runs = CURRENT_RUNS.get(self.runs.parent_run_id, self.runs)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.runs.close(trial.trial_id, ended_status(trial.last_result))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.runs.close(trial.trial_id, "error", error_text(trial))


class ProgressPrinter(tune.Callback):
    """One line on stderr per trial start, end, error and retry, with the sweep's best dev metric so far."""

    def __init__(self, num_samples: int, param_names: list[str]) -> None:
        self.num_samples, self.param_names = num_samples, param_names
        self.start = time.monotonic()

    def setup(self, **info: Any) -> None:
        self.start = time.monotonic()

    def _line(self, trials: list[Any], trial: Any, event: str, ended: bool = True) -> None:
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials if t is not trial) + ended
        scores = [t.last_result.get(METRIC) for t in trials if t.last_result.get("completed")]
        best = f" best {max(scores):.2f}" if scores else ""
        result = trial.last_result
        metric = f" {METRIC}={result[METRIC]:.2f}@{result.get('epoch')}" if METRIC in result else ""
        test = f" test_metric={result['test_metric']:.2f}" if "test_metric" in result else ""
        params = " ".join(f"{k.rsplit('.', 1)[-1]}={_short(trial.config[k])}" for k in self.param_names if k in trial.config)
        print(f"[tune {time.monotonic() - self.start:6.0f}s {done}/{self.num_samples}{best}] {trial.trial_id} {event}"
              f"{metric}{test} {params}", file=sys.stderr, flush=True)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._line(trials, trial, "started", ended=False)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._line(trials, trial, ended_status(trial.last_result))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._line(trials, trial, f"ERROR ({error_text(trial, 120)})")

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._line(trials, trial, "failed; retrying from its last checkpoint", ended=False)


class GpuWaitReporter(tune.Callback):
    """Every ``every_s`` seconds that trials are pending while no GPU is free for them, logs "waiting for
    GPU nodes for N minutes" with what to check: on an autoscaling cluster the first GPU worker takes
    minutes to boot, and a cloud account without GPU quota never gets one (trials would wait silently)."""

    CHECK_S = 5.0  # how often the cluster's free GPUs are looked up (a call to the GCS)

    def __init__(self, gpus_per_trial: float, every_s: float) -> None:
        self.gpus, self.every_s = gpus_per_trial, every_s
        self.since: float | None = None
        self.reported = 0
        self.checked = 0.0

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if self.gpus <= 0 or now - self.checked < min(self.CHECK_S, self.every_s):
            return
        self.checked = now
        pending = sum(t.status == "PENDING" for t in trials)
        free = ray.available_resources().get("GPU", 0.0)
        if not pending or free >= self.gpus:
            self.since, self.reported = None, 0
            return
        self.since = self.since or now
        waited = now - self.since
        if waited >= self.every_s * (self.reported + 1):
            self.reported += 1
            total = ray.cluster_resources().get("GPU", 0.0)
            log.warning(
                "waiting for GPU nodes for %.1f minutes: %d trial(s) pending, %s GPU each; the cluster has %g GPU(s), "
                "%g free. An autoscaling cluster adds GPU workers now (watch `ray status`); if none arrive, check the "
                "account's GPU quota (clusters/README.md) or train on CPUs with tune.gpus_per_trial=0",
                waited / 60, pending, self.gpus, total, free)


class SearchReconciler(tune.Callback):
    """On the first step of a restored sweep, reconcile its search algorithm with Tune's trials
    (:meth:`infnet.tune.search.ResumableSearch.reconcile`), each change a warning. It holds the sweep's
    search algorithm itself: both are unpickled from ``tuner.pkl`` together, so they stay one object."""

    def __init__(self, search: ResumableSearch) -> None:
        self.search = search

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.search.unreconciled:
            for change in self.search.reconcile(trials):
                log.warning("Resumed sweep: %s", change)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value).replace(" ", "")


__all__ = ["CURRENT_RUNS", "ChildRunCloser", "GpuWaitReporter", "ProgressPrinter", "error_text", "use_child_runs"]
