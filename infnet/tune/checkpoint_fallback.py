"""Resume a trial from the checkpoint that is on storage when the one Tune remembers is gone.

Tune keeps ``tune.checkpoints_to_keep`` checkpoints per trial: registering a new one deletes the older
ones at once, while the experiment state that names a trial's latest checkpoint is uploaded to storage
(S3, a shared folder) in the background. A head lost between the two leaves a state that names a
checkpoint already deleted, and Tune then fails that trial on every attempt ("Could not recover from
checkpoint as it does not exist on storage anymore"); seen on a sweep on S3 whose driver was killed
two seconds after a trial finished.

:class:`CheckpointFallback` (a driver-side callback, part of every sweep) looks once at each trial
that waits to be resumed, before Tune starts it. When its remembered checkpoint is missing, the trial
resumes from the newest ``checkpoint_NNNNNN`` in its folder whose ``LoopState`` reads back (so a
checkpoint cut short by the loss is skipped), and its next checkpoints are numbered after every
checkpoint there, so none is overwritten and then deleted as an old one. With no readable checkpoint
left the trial is left as it is (it fails with Tune's message, recorded as an errored trial); a storage
error while looking is a warning, never the sweep's end. Tune's own counters of the trial
(``training_iteration``, ``time_total_s``, hence the results table's ``wall_seconds``) go on from the
remembered checkpoint's. Sweeps started before this callback existed do not carry it (``Tuner.restore``
reuses the callbacks pickled when the sweep began). This module imports Ray; import it lazily.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
from typing import Any

import pyarrow.fs
from ray import tune

from infnet.checkpoint import UnsafeCheckpoint
from infnet.tune.trainable import CHECKPOINT_FILE, read_loop_state

log = logging.getLogger("infnet.tune")

#: Tune's name for a trial's n-th checkpoint folder
CHECKPOINT_DIR = re.compile(r"checkpoint_(\d+)")


def readable(fs: pyarrow.fs.FileSystem, folder: str) -> bool:
    """Whether ``folder`` (a checkpoint folder on ``fs``) holds a ``LoopState`` that reads back."""
    path = f"{folder}/{CHECKPOINT_FILE}"
    try:
        with fs.open_input_stream(path) as src:
            read_loop_state(io.BytesIO(src.read()), path)
    except (OSError, UnsafeCheckpoint, RuntimeError, EOFError):  # missing, cut short, not plain data
        return False
    return True


def checkpoints_on_storage(fs: pyarrow.fs.FileSystem, trial_folder: str) -> list[tuple[int, str]]:
    """``(index, path)`` of the checkpoint folders in ``trial_folder`` on ``fs``, newest first."""
    found = []
    for info in fs.get_file_info(pyarrow.fs.FileSelector(trial_folder, allow_not_found=True)):
        match = CHECKPOINT_DIR.fullmatch(info.base_name)
        if match and info.type == pyarrow.fs.FileType.Directory:
            found.append((int(match.group(1)), info.path))
    return sorted(found, reverse=True)


def fall_back(trial: Any) -> str | None:
    """Point ``trial`` (a ``ray.tune.experiment.Trial`` about to be resumed) at the newest readable
    checkpoint in its folder if the one it remembers is missing; returns that checkpoint's path, or None
    when nothing was changed (no checkpoint remembered, it exists, or none readable is left)."""
    result = trial.latest_checkpoint_result
    if result is None:
        return None
    fs, remembered = result.checkpoint.filesystem, result.checkpoint.path
    if fs.get_file_info(remembered).type != pyarrow.fs.FileType.NotFound:
        return None
    present = checkpoints_on_storage(fs, posixpath.dirname(remembered))
    chosen = next((path for _, path in present if readable(fs, path)), None)
    if chosen is None:
        return None
    # in place, as Tune itself moves a trial's checkpoints to new storage (Trial.set_storage)
    result.checkpoint = tune.Checkpoint(path=chosen, filesystem=fs)
    # the older checkpoints Tune keeps track of went before the remembered one: forget them, or deleting
    # them at the next checkpoint fails (Tune has no public call for this)
    trial.run_metadata.checkpoint_manager._checkpoint_results = [result]
    # the index of the last checkpoint written: Tune adds 1 before writing the next
    trial.storage.current_checkpoint_index = present[0][0]
    return chosen


class CheckpointFallback(tune.Callback):
    """Applies :func:`fall_back` to each trial that waits to be resumed, once per driver (see the module
    docstring)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        for trial in trials:
            if trial.trial_id in self.seen:
                continue
            self.seen.add(trial.trial_id)
            if trial.status != "PENDING":
                continue
            try:
                chosen = fall_back(trial)
            except Exception as exc:  # noqa: BLE001 - storage trouble is this trial's (Tune reports it), not the sweep's
                log.warning("trial %s: could not look for its checkpoints on storage: %s: %s", trial.trial_id, type(exc).__name__, exc)
                continue
            if chosen is not None:
                log.warning("trial %s: its last recorded checkpoint is gone from storage; resuming from %s", trial.trial_id, chosen)


__all__ = ["CheckpointFallback", "checkpoints_on_storage", "fall_back"]
