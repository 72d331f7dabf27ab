"""The metric each task selects models on, named once for training, sweeps and reports.

Multi-label classification and NER select on F1 (example-based F1 at the dev-tuned threshold; entity-span
F1, seqeval-compatible), POS tagging on token accuracy. Training logs it to MLflow as ``dev/<key>``,
``dev/best_<key>`` and ``test/<key>``; a sweep reports it to Tune as ``dev_metric`` / ``test_metric``
(percent) and records ``key`` in its results table's ``metric`` column, so that Optuna, ASHA, the results
table, the summary and the report need no task-specific names. Plain data only: importing this module
imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskMetric:
    """A selection metric: ``key`` in metric names ("f1" | "acc"), ``label`` for people, ``description``."""

    key: str
    label: str
    description: str

    def dev_label(self) -> str:
        """Axis and column title of the dev value, e.g. ``dev F1 (%)``."""
        return f"dev {self.label} (%)"


#: task -> its selection metric
TASK_METRICS: dict[str, TaskMetric] = {
    "mlc": TaskMetric("f1", "F1", "example-based F1 (%); test at the dev-tuned threshold"),
    "ner": TaskMetric("f1", "F1", "entity-span F1 (%), seqeval-compatible"),
    "pos": TaskMetric("acc", "accuracy", "token accuracy (%)"),
}
#: metric key -> the metric (for tables that record only the key); F1's wording is task-neutral here
BY_KEY: dict[str, TaskMetric] = {"f1": TaskMetric("f1", "F1", "F1 (%)"), "acc": TASK_METRICS["pos"]}


def metric_of(data_cfg: Mapping[str, Any]) -> TaskMetric:
    """The selection metric of the task a ``data`` config describes (:func:`infnet.data.task_of`)."""
    # lazy: this module stays plain data for the report and the sweep summary
    from infnet.data import DataConfigError, task_of

    task = task_of(data_cfg)
    if task not in TASK_METRICS:
        raise DataConfigError(f"data.task must be one of {sorted(TASK_METRICS)}, got {task!r}")
    return TASK_METRICS[task]


__all__ = ["BY_KEY", "TASK_METRICS", "TaskMetric", "metric_of"]
