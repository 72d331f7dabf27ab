"""Command-line plumbing shared by ``python -m infnet.train`` and ``python -m infnet.tune``.

Hydra parses the command line; bad input (an override Hydra rejects, a config value, a data file, a
search space, a sweep folder) ends the command with one line ``<prog>: <what is wrong>`` on stderr
and exit status 2. With ``HYDRA_FULL_ERROR=1`` (Hydra's convention) the traceback shows instead. Any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import hydra
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from infnet.config import ConfigError
from infnet.search_space import SearchSpaceError

T = TypeVar("T")

BAD_INPUT_STATUS = 2
FULL_ERROR = "HYDRA_FULL_ERROR"


def bad_input_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean bad input (their messages name the key, file or line), not a bug."""
    # lazy: the data package imports torch (a sweep's --help and config errors stay fast), and the train CLI
    # never imports the sweep package
    from infnet.data.errors import DataError
    from infnet.tune.sweep import SweepError

    return (ConfigError, DataError, SearchSpaceError, SweepError, FileNotFoundError, HydraException,
            MissingMandatoryValue, InterpolationResolutionError)


def full_error_requested() -> bool:
    """Whether the user asked for tracebacks (``HYDRA_FULL_ERROR=1``, tested as Hydra does)."""
    return os.environ.get(FULL_ERROR) == "1"


def _lines(exc: BaseException) -> list[str]:
    """The non-blank lines of ``exc``'s message, stripped."""
    return [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]


def _omegaconf_message(exc: Any) -> str:
    """OmegaConf's first line and the key it concerns; for an unknown key, the keys beside it."""
    key = str(exc.full_key or "")
    parent = exc.parent_node
    if isinstance(exc, (ConfigKeyError, ConfigAttributeError)) and key and isinstance(parent, DictConfig):
        known = ", ".join(sorted(str(k) for k in parent.keys() if k != "hydra"))
        return f"unknown key {key} (keys under {key.rpartition('.')[0] or 'the top level'}: {known})"
    text = _lines(exc)[0]
    return f"{text} (at {key})" if key and key not in text else text


def _hydra_message(exc: Any) -> str:
    """One line for an error Hydra raised while composing the command line's config."""
    lines = [line.removesuffix(".") for line in _lines(exc)]
    if isinstance(exc, MissingConfigException) and exc.options:
        return f"{lines[0]}; available: {', '.join(exc.options)}"
    if isinstance(exc.__cause__, OmegaConfBaseException):
        lines.insert(1, _omegaconf_message(exc.__cause__))
    text = "; ".join(lines)
    return f"cannot parse override {exc.override!r}: {text}" if isinstance(exc, OverrideParseException) else text


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (it names the key, or the file and line, and what is allowed)."""
    if isinstance(exc, HydraException):
        return _hydra_message(exc)
    if isinstance(exc, OmegaConfBaseException):
        return _omegaconf_message(exc)
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.strerror or 'file not found'}: {exc.filename}"
    return " ".join(_lines(exc))


def run_cli(prog: str, main: Callable[[], None]) -> None:
    """Run ``main``; bad input ends the process with ``<prog>: <message>`` on stderr and exit status 2."""
    try:
        main()
    except bad_input_errors() as exc:
        if full_error_requested():
            raise
        print(f"{prog}: {one_line(exc)}", file=sys.stderr, flush=True)
        sys.exit(BAD_INPUT_STATUS)


@contextmanager
def _hydra_raises() -> Iterator[None]:
    """Hydra raises its errors instead of printing them and exiting 1 (what it does under HYDRA_FULL_ERROR=1)."""
    before = os.environ.get(FULL_ERROR)
    os.environ[FULL_ERROR] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[FULL_ERROR]
        else:
            os.environ[FULL_ERROR] = before


def parse_command_line(prog: str, config_name: str, capture: Callable[[Any], T]) -> list[T]:
    """``capture(cfg)`` of each config Hydra composes from ``sys.argv`` with ``conf/<config_name>.yaml``:
    one, one per job with ``--multirun``, none for ``--help``/``--cfg``. Hydra's errors propagate (to
    :func:`run_cli`); ``capture`` runs inside Hydra's job (``HydraConfig.get()`` works there). Hydra
    names the job (``--help``: "<name> is powered by Hydra") after the last part of module ``prog``."""
    captured: list[T] = []

    def _capture(cfg: Any) -> None:
        captured.append(capture(cfg))

    _capture.__module__ = prog
    with _hydra_raises():
        hydra.main(config_path="pkg://infnet.conf", config_name=config_name, version_base="1.3")(_capture)()
    return captured
