"""From command-line overrides to a sweep (no Ray): composition order, defaults, resume detection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infnet.config import ConfigError
from infnet.search_space import SearchSpaceError
from infnet.tune import SweepError, prepare
from infnet.tune.sweep import write_state


def test_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = prepare([])
    assert sweep.space.name == "implicit" and sweep.cfg.method.name == "implicit" and not sweep.resumed
    assert sweep.name.startswith("implicit-") and sweep.path == str(tmp_path / "tune_results" / sweep.name)
    assert sweep.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}" and sweep.experiment == "infnet-sweep"
    assert sweep.cfg.tune.num_samples == 8 and sweep.cfg.tune.max_concurrent == 2 and sweep.cfg.trainer.pretrain_cache
    base = sweep.training_config()  # what every trial starts from
    assert "tune" not in base and "search_space" not in base and base["trainer"]["num_threads"] == 1


def test_search_space_base_overrides_then_command_line(tmp_path: Path) -> None:
    sweep = prepare(["search_space=seal", "method.lam=3.0", "data.n_train=500", f"tune.storage_path={tmp_path}"])
    assert sweep.cfg.method.name == "seal" and sweep.cfg.method.lam == 3.0 and sweep.cfg.data.n_train == 500
    with pytest.raises(SearchSpaceError, match="method.inner_steps"):  # the command line replaced method=implicit
        prepare(["method=ce", f"tune.storage_path={tmp_path}"])
    with pytest.raises(ConfigError, match="no main-phase epoch"):
        prepare(["trainer.max_epochs=5", f"tune.storage_path={tmp_path}"])


def test_sequence_spaces_select_on_their_task_metric(tmp_path: Path) -> None:
    sweep = prepare(["search_space=implicit_seq", f"tune.storage_path={tmp_path}"])
    assert sweep.cfg.data.name == "synthetic_seq" and sweep.cfg.data.task == "ner" and sweep.metric.key == "f1"
    pos = prepare(["search_space=implicit_seq", "data=ud_ewt", f"tune.storage_path={tmp_path}"])
    assert pos.metric.key == "acc" and pos.metric.label == "accuracy"
    assert prepare([f"tune.storage_path={tmp_path}"]).metric.key == "f1"  # the default multi-label sweep


def test_task_inferred_from_a_data_config_as_the_loaders_do() -> None:
    from infnet.data import task_of
    from infnet.task_metric import metric_of

    files = {"root": "/data/mine", "files": {"train": "a", "dev": "b", "test": "c"}}
    assert [task_of(d) for d in ({"name": "bibtex"}, {"name": "ud_ewt"}, {"name": "wnut17"}, {"name": "mine", "kind": "conllu", **files},
                                 {"name": "mine", "kind": "conll", **files}, {"name": "synthetic_seq"}, {"name": "x", "task": "pos"})] == [
        "mlc", "pos", "ner", "pos", "ner", "ner", "pos"]
    with pytest.raises(ValueError, match="data.task must be one of"):
        metric_of({"task": "parsing"})


def test_a_sweep_of_an_older_version_is_not_resumed(tmp_path: Path) -> None:
    first = prepare(["tune.name=old", f"tune.storage_path={tmp_path}"])
    write_state(first.with_parent("parent123"))
    state = tmp_path / "old" / "infnet_sweep.json"
    state.write_text(state.read_text().replace('"infnet-sweep-2"', '"infnet-sweep-1"'))
    with pytest.raises(SweepError, match="older infnet whose trials reported dev_f1"):
        prepare([f"tune.resume={tmp_path / 'old'}"])


def test_an_existing_sweep_folder_is_resumed_with_its_stored_config(tmp_path: Path) -> None:
    first = prepare(["tune.name=again", "tune.num_samples=3", "method.lam=2.0", f"tune.storage_path={tmp_path}"])
    write_state(first.with_parent("parent123"))
    for overrides in (["tune.name=again", "tune.num_samples=50", f"tune.storage_path={tmp_path}"],
                      [f"tune.resume={tmp_path / 'again'}"]):
        sweep = prepare(overrides)
        assert sweep.resumed and sweep.parent_run_id == "parent123" and sweep.path == first.path
        assert sweep.cfg.tune.num_samples == 3 and sweep.cfg.method.lam == 2.0  # the stored config wins
    with pytest.raises(SweepError, match="not an infnet sweep"):
        prepare([f"tune.resume={tmp_path}"])


def test_overrides_of_the_method_a_space_selects(tmp_path: Path) -> None:
    from infnet.tune.__main__ import with_space_overrides

    sweep = prepare(["search_space=spen", "method.inference_steps=30", f"tune.storage_path={tmp_path}"])
    assert sweep.cfg.method.name == "spen" and sweep.cfg.method.inference_steps == 30
    assert with_space_overrides(["--cfg", "job", "search_space=spen", "method.inference_steps=30"]) == [
        "--cfg", "job", "method=spen", "search_space=spen", "method.inference_steps=30"]
    assert with_space_overrides(["method=ce", "method.lr=0.01"]) == ["method=ce", "method.lr=0.01"]  # own key wins


def test_cli_checks_overrides_with_hydra(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "infnet.tune", *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, check=False)

    shown = cli("search_space=spen", "method.inference_steps=30", "--cfg", "job")
    assert shown.returncode == 0 and "inference_steps: 30" in shown.stdout and "name: spen" in shown.stdout
    typo = cli("tune.num_sample=3")
    assert typo.returncode != 0 and "Could not override 'tune.num_sample'" in typo.stderr
    unknown = cli("search_space=nope")
    assert unknown.returncode != 0 and "search space 'nope' not found" in unknown.stderr and "Traceback" not in unknown.stderr
    assert not list(tmp_path.iterdir())  # nothing written: no outputs/ folder, no store, no results


def test_a_sweep_whose_tune_state_is_not_whole_is_not_resumed(tmp_path: Path) -> None:
    from infnet.tune.search import make_search  # lazy: imports Ray and Optuna

    first = prepare(["tune.name=torn", f"tune.storage_path={tmp_path}"])
    write_state(first.with_parent("parent123"))
    folder = tmp_path / "torn"
    assert prepare([f"tune.resume={folder}"]).resumed  # no Tune state yet (killed before Tune saved one): it starts afresh
    make_search(first.cfg.tune, first.space, "torn").save_to_dir(str(folder), session_str="2026-12-06_10-00-00")
    (folder / "experiment_state-2026-12-06_10-00-00.json").write_text(json.dumps({"trial_data": [], "runner_data": {}}))
    assert prepare([f"tune.resume={folder}"]).resumed  # whole: resumed
    searcher = next(folder.glob("searcher-state-*.pkl"))
    whole = searcher.read_bytes()
    searcher.write_bytes(whole[: len(whole) // 2])  # the head was lost while Tune wrote it
    with pytest.raises(SweepError, match=rf"Optuna's study is not whole: {searcher.name} does not read back"):
        prepare([f"tune.resume={folder}"])
    searcher.write_bytes(whole)
    next(folder.glob("search_gen_state-*")).unlink()
    with pytest.raises(SweepError, match=r"the trial counter is not whole: no search_gen_state-\* file"):
        prepare(["tune.name=torn", f"tune.storage_path={tmp_path}"])  # the same command line resumes it too
