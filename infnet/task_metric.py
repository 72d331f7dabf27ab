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


def task_of(data_cfg: Mapping[str, Any]) -> str:
    """"mlc" | "ner" | "pos": the task a ``data`` config describes, inferred as the loaders do (an explicit
    ``task``, else a tagging kind or preset means tagging, and the tagging task follows the kind)."""
    from infnet.data import SEQ_KINDS, SEQ_PRESETS, SYNTHETIC_SEQ_NAME

    task = data_cfg.get("task")
    if task is not None:
        return str(task)
    kind, name = data_cfg.get("kind"), data_cfg.get("name")
    if kind not in SEQ_KINDS and name not in (SYNTHETIC_SEQ_NAME, *SEQ_PRESETS):
        return "mlc"
    preset = SEQ_PRESETS.get(name)
    return preset.task if preset else "pos" if kind == "conllu" else "ner"


def metric_of(data_cfg: Mapping[str, Any]) -> TaskMetric:
    """The selection metric of the task a ``data`` config describes."""
    task = task_of(data_cfg)
    if task not in TASK_METRICS:
        raise ValueError(f"data.task must be one of {sorted(TASK_METRICS)}, got {task!r}")
    return TASK_METRICS[task]


__all__ = ["BY_KEY", "TASK_METRICS", "TaskMetric", "metric_of", "task_of"]
