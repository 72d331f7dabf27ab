"""Loading checkpoints without running code from them.

Trial checkpoints and pretraining-cache entries come from shared storage (``s3://...`` on a cluster),
so they are read with ``torch.load(weights_only=True)``: plain data only (tensors, numbers, strings,
lists, tuples, dicts) plus infnet's own plain-data containers allow-listed here (``LoopState``, and
``SeqBatch``, a batch a method may keep between steps). A file that names any other Python object (a
function, a class with a custom ``__reduce__``) is refused with :class:`UnsafeCheckpoint` before
anything in it is called.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import IO, Any

import torch

from infnet.data.seq.types import SeqBatch
from infnet.loop import LoopState


class UnsafeCheckpoint(RuntimeError):
    """A checkpoint holds something other than plain data; it was not loaded (nothing in it ran)."""


def safe_load(source: str | Path | IO[bytes], what: str) -> Any:
    """The object stored in ``source`` (a path or a binary file object; tensors mapped to the CPU),
    loaded as plain data only. ``what`` names the file in the error.

    Raises:
        UnsafeCheckpoint: ``source`` is not plain data (it names a Python object outside the allow-list,
            or is no torch file at all).
    """
    try:
        with torch.serialization.safe_globals([LoopState, SeqBatch]):
            return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpoint(f"refused to load {what}: not a plain-data checkpoint, and loading it anyway could "
                               f"run code ({_reason(exc)})") from exc


def _reason(exc: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler refused (e.g. an unsupported GLOBAL), without its advice."""
    text = str(exc)
    for pattern in (r"WeightsUnpickler error: *(\S.*)", r"(.*GLOBAL.*)", r"(Unsupported .*)"):
        if found := re.search(pattern, text):
            return found.group(1).split(". Please")[0].strip()
    return text.splitlines()[0]


__all__ = ["UnsafeCheckpoint", "safe_load"]
