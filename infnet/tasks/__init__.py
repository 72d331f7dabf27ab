"""Output structures (multi-label, sequence labelling) behind one interface, ``Task``."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from infnet.tasks.base import Selection, Task


def build_task(data: Any, model: DictConfig) -> Task:
    """The task of a loaded dataset: multi-label for an ``MLCDataset``, else sequence labelling."""
    from infnet.data.types import MLCDataset

    if isinstance(data, MLCDataset):
        from infnet.tasks.multilabel import MultiLabelTask

        return MultiLabelTask(data, model)
    from infnet.tasks.sequence import SequenceTask

    return SequenceTask(data, model)


__all__ = ["Selection", "Task", "build_task"]
