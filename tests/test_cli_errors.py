"""Bad input through the real CLIs: one line on stderr naming the file/line or key, exit status 2, before any
MLflow run exists; the traceback only with ``HYDRA_FULL_ERROR=1``. A bug (any other exception) keeps its traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from test_data_helpers import write_generic

from infnet.cli import BAD_INPUT_STATUS, run_cli
from infnet.config import ConfigError

Case = Callable[[Path], tuple[list[str], list[str]]]  # folder -> (overrides, fragments the error line must hold)


def malformed_arff(folder: Path) -> tuple[list[str], list[str]]:
    """A MULAN dataset whose third training row has 3 values instead of 7."""
    write_generic(folder, "toy", sparse=False)
    path = folder / "toy-train.arff"
    lines = path.read_text().splitlines()
    row = lines.index("% rows follow") + 3  # 0-based index of the third data row
    lines[row] = "1,2,3"
    path.write_text("\n".join(lines) + "\n")
    return [*mulan(folder), "data.cache=false"], [f"{path}:{row + 1}:", "expected 7", "found 3"]


def missing_file(folder: Path) -> tuple[list[str], list[str]]:
    """A MULAN dataset without its label file."""
    write_generic(folder, "toy", sparse=False)
    (folder / "toy.xml").unlink()
    return mulan(folder), [str(folder / "toy.xml"), "missing"]


def bad_value(folder: Path) -> tuple[list[str], list[str]]:
    return ["method.lr=-1"], ["method.lr=-1", "expected a positive number"]


def unknown_key(folder: Path) -> tuple[list[str], list[str]]:
    return ["trainer.max_epoch=2"], ["trainer.max_epoch", "max_epochs", "+trainer.max_epoch=2"]


def mulan(folder: Path) -> list[str]:
    return ["data=mulan", "data.name=toy", f"data.root={folder}"]


def cli(module: str, overrides: list[str], cwd: Path, full_error: bool = False) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <overrides>`` with its store (and sweep folder) in ``cwd``."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | ({"HYDRA_FULL_ERROR": "1"} if full_error else {})
    extra = [f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}"]
    if module == "infnet.tune":
        extra += [f"tune.storage_path={cwd / 'tune'}", "tune.num_samples=1", "tune.num_cpus=1"]
    return subprocess.run([sys.executable, "-m", module, *overrides, *extra], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


CASES: list[tuple[str, Case]] = [(module, case) for module in ("infnet.train", "infnet.tune")
                                 for case in (malformed_arff, missing_file, bad_value, unknown_key)]


@pytest.mark.parametrize(("module", "case"), CASES, ids=[f"{m}-{c.__name__}" for m, c in CASES])
def test_bad_input_is_one_line_and_exit_status_2(module: str, case: Case, tmp_path: Path) -> None:
    overrides, fragments = case(tmp_path / "data")
    proc = cli(module, overrides, tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == BAD_INPUT_STATUS, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{module}: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # it failed before any MLflow run (or Ray) was started


FULL = [("infnet.train", case) for case in (malformed_arff, missing_file, bad_value, unknown_key)] + [
    ("infnet.tune", bad_value),  # raised by prepare()
    ("infnet.tune", missing_file),  # raised by the driver, before it opens the sweep's run or starts Ray
]


@pytest.mark.parametrize(("module", "case"), FULL, ids=[f"{m}-{c.__name__}" for m, c in FULL])
def test_hydra_full_error_shows_the_traceback(module: str, case: Case, tmp_path: Path) -> None:
    overrides, fragments = case(tmp_path / "data")
    proc = cli(module, overrides, tmp_path, full_error=True)
    assert proc.returncode != 0 and "Traceback (most recent call last)" in proc.stderr
    assert fragments[0] in proc.stderr.strip().splitlines()[-1]  # the exception's own line ends the traceback


def test_bad_input_exits_2_and_bugs_propagate(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def bad_input() -> None:
        raise ConfigError("invalid config value x=1: expected y")

    def bug() -> None:
        raise KeyError("internal")

    with pytest.raises(SystemExit) as exited:
        run_cli("prog", bad_input)
    assert exited.value.code == BAD_INPUT_STATUS
    assert capsys.readouterr().err == "prog: invalid config value x=1: expected y\n"
    with pytest.raises(KeyError, match="internal"):
        run_cli("prog", bug)
    assert capsys.readouterr().err == ""
