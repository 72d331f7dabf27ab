"""Which checkpoint a trial falls back to when the one Tune remembers is gone (infnet.tune.checkpoint_fallback):
the checkpoint folders of a trial, newest first, and whether each reads back as a LoopState. Real files on
pyarrow's local filesystem (the code path S3 takes through pyarrow's S3 filesystem). The fallback itself, in a
resumed sweep, is tested end to end in test_tune_resume."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs
import torch

from infnet.loop import LoopState
from infnet.tune.checkpoint_fallback import checkpoints_on_storage, readable
from infnet.tune.trainable import CHECKPOINT_FILE


def write(folder: Path, content: object) -> Path:
    folder.mkdir(parents=True)
    torch.save(content, folder / CHECKPOINT_FILE)
    return folder


def test_checkpoint_folders_newest_first_and_only_readable_loop_states(tmp_path: Path) -> None:
    fs = pyarrow.fs.LocalFileSystem()
    trial = tmp_path / "trial"
    good = write(trial / "checkpoint_000009", LoopState(epoch=9, history=[{"epoch": 9.0, "dev/f1": 0.5}]))
    older = write(trial / "checkpoint_000002", LoopState(epoch=2))
    cut = write(trial / "checkpoint_000010", LoopState(epoch=10, history=[{"epoch": float(i)} for i in range(100)]))
    data = (cut / CHECKPOINT_FILE).read_bytes()
    (cut / CHECKPOINT_FILE).write_bytes(data[: len(data) // 2])  # the upload was cut short
    other = write(trial / "checkpoint_000011", {"epoch": 11})  # plain data, but not a LoopState
    empty = trial / "checkpoint_000012"
    empty.mkdir()
    (trial / "checkpoint_notes").mkdir()  # not Tune's name for a checkpoint
    (trial / "result.json").write_text("{}")

    found = checkpoints_on_storage(fs, str(trial))
    assert found == [(12, str(empty)), (11, str(other)), (10, str(cut)), (9, str(good)), (2, str(older))]
    assert [readable(fs, path) for _, path in found] == [False, False, False, True, True]
    assert checkpoints_on_storage(fs, str(tmp_path / "no such trial")) == []
