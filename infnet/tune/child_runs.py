"""MLflow bookkeeping of a sweep: one parent run, exactly one child run per Ray trial.

A child run is found by its tags (``mlflow.parentRunId`` = the sweep's parent run, ``ray_trial_id``),
so a trial that is retried from a checkpoint or resumed after a driver restart reopens its run
instead of creating another one. Trial outcome vocabulary (tag ``infnet.status``, Parquet column
``status``) and the MLflow run status it ends with:

    completed -> FINISHED   ran its full budget (test metrics logged)
    stopped   -> KILLED     stopped early by the scheduler (ASHA)
    error     -> FAILED     raised (e.g. ``TrainingDiverged`` on NaN) or its worker died too often
    interrupted -> KILLED   the sweep was interrupted before the trial ended (resuming reopens it)

Used by the trainable (in Ray workers) and by driver-side callbacks; plain data, so it pickles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infnet.tracking import RunLogger

PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "ray_trial_id"
STATUS_TAG = "infnet.status"
ERROR_TAG = "infnet.error"
RESULT_TAG = "infnet.result"
RUN_STATUS = {"completed": "FINISHED", "stopped": "KILLED", "error": "FAILED", "interrupted": "KILLED"}


def ended_status(last_result: Mapping[str, Any]) -> str:
    """Status of a trial that ended without error: ``completed`` if its last result carries
    ``completed=1`` (the trainable's final report), else ``stopped`` (by the scheduler)."""
    return "completed" if last_result.get("completed") else "stopped"


@dataclass(frozen=True)
class ChildRuns:
    """The child runs of parent run ``parent_run_id`` in ``experiment`` (whose id is ``experiment_id``) at
    tracking URI ``uri``."""

    uri: str
    experiment: str
    parent_run_id: str
    sweep: str
    experiment_id: str

    def _client(self) -> Any:
        import mlflow

        return mlflow.MlflowClient(self.uri)

    def all(self) -> list[Any]:
        """Every (non-deleted) child run of the sweep, as ``mlflow.entities.Run``."""
        return self._client().search_runs([self.experiment_id], f"tags.`{PARENT_TAG}` = '{self.parent_run_id}'", max_results=50000)

    def find(self, trial_id: str) -> Any | None:
        """The child run of trial ``trial_id``, or None."""
        runs = self._client().search_runs(
            [self.experiment_id], f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and tags.{TRIAL_TAG} = '{trial_id}'", max_results=2
        )
        return runs[0] if runs else None

    def start(self, trial_id: str, trial_name: str, params: Mapping[str, Any], tags: Mapping[str, str], existing: Any | None) -> RunLogger:
        """Reopen ``existing`` (params already logged) or create the trial's run with ``params`` and ``tags``."""
        if existing is not None:
            logger = RunLogger(self.uri, self.experiment, run_id=existing.info.run_id)
            logger.set_tags({STATUS_TAG: "running"})
            return logger
        tags = {PARENT_TAG: self.parent_run_id, TRIAL_TAG: trial_id, "ray_trial_name": trial_name,
                "infnet.sweep": self.sweep, "infnet.entry": "tune", STATUS_TAG: "running", **tags}
        logger = RunLogger(self.uri, self.experiment, run_name=trial_name, params=params, tags=tags)
        logger.log_dict(dict(params), "config.yaml")
        return logger

    def finish(self, run_id: str, status: str, tags: Mapping[str, str] | None = None) -> None:
        """Tag run ``run_id`` with ``status`` (and ``tags``) and terminate it accordingly."""
        client = self._client()
        for key, value in {STATUS_TAG: status, **(tags or {})}.items():
            client.set_tag(run_id, key, str(value))
        client.set_terminated(run_id, RUN_STATUS[status])

    def close(self, trial_id: str, status: str, error: str | None = None) -> None:
        """Terminate trial ``trial_id``'s run with ``status`` if it is still RUNNING (driver side)."""
        run = self.find(trial_id)
        if run is not None and run.info.status == "RUNNING":
            self.finish(run.info.run_id, status, {ERROR_TAG: error[:500]} if error else None)

    def reconcile(self, statuses: Mapping[str, str]) -> int:
        """Make MLflow agree with Tune's final view ``{trial_id: status}``: close runs still RUNNING,
        and delete (soft, restorable) runs of trials Tune does not know -- trials started after the
        last experiment snapshot of a killed driver, which the resumed sweep samples afresh.
        Returns the number of deleted runs."""
        client, deleted = self._client(), 0
        for run in self.all():
            trial_id = run.data.tags.get(TRIAL_TAG)
            if trial_id not in statuses:
                client.delete_run(run.info.run_id)
                deleted += 1
            elif run.info.status == "RUNNING" and statuses[trial_id] in RUN_STATUS:
                self.finish(run.info.run_id, statuses[trial_id])
        return deleted


__all__ = ["ERROR_TAG", "RESULT_TAG", "RUN_STATUS", "STATUS_TAG", "TRIAL_TAG", "ChildRuns", "ended_status"]
