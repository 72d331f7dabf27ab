"""Output structures (multi-label, sequence labelling) behind one interface, ``Task``."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from infnet.data.mlc.types import MLCDataset
from infnet.tasks.base import Selection, Task
from infnet.tasks.multilabel import MultiLabelTask
from infnet.tasks.sequence import SequenceTask


def build_task(data: Any, model: DictConfig) -> Task:
    """The task of a loaded dataset: multi-label for an ``MLCDataset``, else sequence labelling."""
    return MultiLabelTask(data, model) if isinstance(data, MLCDataset) else SequenceTask(data, model)


__all__ = ["Selection", "Task", "build_task"]
