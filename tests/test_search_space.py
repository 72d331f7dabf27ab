"""Search-space files: the shipped spaces, define-by-run sampling, and validation errors (no Ray)."""

from __future__ import annotations

import pickle
from pathlib import Path

import optuna
import pytest

from infnet.compose import compose
from infnet.search_space import (
    SearchSpaceError,
    load_search_space,
    merge_overrides,
    search_space_dir,
)

SHIPPED = ["implicit", "ce", "spen", "tu_gimpel", "seal"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spaces_load_and_match_the_config(name: str) -> None:
    space = load_search_space(name)  # also composes its base overrides and checks every key and bound
    assert space.base_overrides == (f"method={name}",)
    assert (search_space_dir() / f"{name}.yaml").is_file()


def test_sequence_space_searches_the_sequence_energy() -> None:
    space = load_search_space("implicit_seq")
    assert space.base_overrides == ("method=implicit", "data=synthetic_seq")
    assert {"method.inner_steps", "method.iters", "model.seq_energy.order_hidden", "model.seq_energy.high_order"} <= set(space.names)


def test_implicit_space_searches_what_the_issue_asks_for() -> None:
    names = set(load_search_space("implicit").names)
    assert {"method.inner_steps", "method.solver", "method.iters", "method.damping", "method.lam", "method.lr",
            "method.lr_energy", "model.energy.label_hidden", "model.energy.depth", "model.hidden"} <= names


def _sample(space, n: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        space(trial)
        out.append(trial.params)
        study.tell(trial, 0.0)
    return out


def test_define_by_run_conditions_lists_and_pickling() -> None:
    space = pickle.loads(pickle.dumps(load_search_space("implicit")))  # Tune pickles it with the searcher
    samples = _sample(space, 40)
    for params in samples:
        iterative = params["method.solver"] in ("cg", "neumann")
        assert ("method.iters" in params) == iterative and ("method.damping" in params) == iterative
        assert 1 <= params["method.inner_steps"] <= 40 and params["method.implicit_params"] in ("head", "all")
    assert {p["method.solver"] for p in samples} == {"cg", "neumann", "identity"}
    cfg = space.apply(compose(["method=implicit"]), samples[0])
    assert list(cfg.model.hidden) in ([150, 150], [300, 300], [150])  # JSON-encoded list choice decoded
    assert cfg.method.inner_steps == samples[0]["method.inner_steps"]


def _write(tmp_path: Path, body: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        ("params: {method.lam: {type: beta, low: 0, high: 1}}", "method.lam", "unknown distribution type 'beta'"),
        ("params: {method.lam: {type: float, low: 2.0, high: 1.0}}", "method.lam", "low=2.0 > high=1.0"),
        ("params: {method.lam: {type: float, low: 0.0, high: 1.0, log: true}}", "method.lam", "log=true needs low > 0"),
        ("params: {method.solver: {type: categorical, choices: []}}", "method.solver", "non-empty list 'choices'"),
        ("params: {method.inner_steps: {type: int, low: 1.5, high: 4}}", "method.inner_steps", "must be a finite integer"),
        ("params: {method.lam: {type: float, low: 0.1, high: 1, when: {method.solver: cg}}}", "method.lam",
         "unknown parameter 'method.solver'"),
        ("params: {method.lam: {type: float, low: 0.1, high: 1}, method.iters: {type: int, low: 1, high: 3, when: {method.lam: 1}}}",
         "method.iters", "not categorical"),
        ("params: {method.solver: {type: categorical, choices: [cg]}, method.iters: {type: int, low: 1, high: 3, when: {method.solver: lu}}}",
         "method.iters", "are not choices of 'method.solver'"),
        ("params: {data.n_train: {type: int, low: 100, high: 200}}", "data.n_train", "fixed per sweep"),
        ("params: {trainer.max_epochs: {type: int, low: 10, high: 20}}", "trainer.max_epochs", "fixed per sweep"),
        ("params: {method.lam: {type: float, low: 0.1, high: 1, scale: 2}}", "method.lam", "unknown field(s) ['scale']"),
        ("params: {method.lam: {type: float, low: 0.1, high: 1}}\nmetric: dev_f1", "<top>", "unknown field(s) ['metric']"),
        ("params: {}", "params", "non-empty mapping"),
        ("base_overrides: method=implicit\nparams: {method.lam: {type: float, low: 0.1, high: 1}}", "base_overrides", "list of Hydra overrides"),
    ],
)
def test_structural_errors_name_file_and_key(tmp_path: Path, body: str, key: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(SearchSpaceError) as info:
        load_search_space(path, check=False)
    assert str(path) in str(info.value) and f"{key}:" in str(info.value) and message in str(info.value)


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        ("base_overrides: [method=implicit]\nparams: {method.inner_step: {type: int, low: 1, high: 5}}", "method.inner_step",
         "is not a key of the training config"),
        ("base_overrides: [method=ce]\nparams: {method.inner_steps: {type: int, low: 1, high: 5}}", "method.inner_steps",
         "is not a key of the training config"),
        ("base_overrides: [method=implicit]\nparams: {method.energy: {type: int, low: 1, high: 5}}", "method.energy",
         "is not a key of the training config"),
        ("base_overrides: [method=implicit]\nparams: {method.solver: {type: categorical, choices: [cg, newton]}}", "method.solver",
         "method.solver='newton'"),
        ("base_overrides: [method=implicit]\nparams: {method.inner_steps: {type: int, low: 0, high: 5}}", "method.inner_steps",
         "an integer >= 1"),
        ("base_overrides: [method=implicit]\nparams: {model.hidden: {type: categorical, choices: [150, 300]}}", "model.hidden",
         "does not match the config value"),
        ("base_overrides: [method=implicit, data=synthetic_seq]\nparams: {model.seq_energy.high_order: {type: categorical, choices: [conv, gru]}}",
         "model.seq_energy.high_order", "none | conv | lstm"),
        ("base_overrides: [method=nonexistent]\nparams: {method.lam: {type: float, low: 0.1, high: 1}}", "base_overrides",
         "nonexistent"),
    ],
)
def test_errors_against_the_composed_config(tmp_path: Path, body: str, key: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(SearchSpaceError) as info:
        load_search_space(path)
    assert str(path) in str(info.value) and f"{key}:" in str(info.value) and message in str(info.value)


def test_unknown_name_lists_available_spaces() -> None:
    with pytest.raises(SearchSpaceError, match=r"search space 'implict' not found .*available: ce, implicit"):
        load_search_space("implict")


def test_command_line_overrides_win_over_base_overrides() -> None:
    assert merge_overrides(["method=implicit", "method.lam=2"], ["method=ce", "tune.num_samples=2"]) == [
        "method.lam=2", "method=ce", "tune.num_samples=2"]
