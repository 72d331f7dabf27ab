"""Sweeps on a real local Ray runtime (shared by this module) with a real MLflow SQLite store.

Covers: Optuna + ASHA end to end (one child run per trial, params once, per-epoch metrics, statuses,
Parquet table, parent-run artifacts, ASHA-stopped trials PRUNED in Optuna), a NaN trial that errors
while the sweep goes on, and a worker that dies mid-trial and resumes from its checkpoint.
"""

from __future__ import annotations

import glob
import pickle
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest

from infnet.tune import prepare, run_sweep

TINY = ["data.n_train=300", "data.n_dev=200", "data.n_test=100", "trainer.max_epochs=6", "method.pretrain_epochs=3",
        "method.inner_steps=2", "tracking.log_model=false"]


@pytest.fixture(scope="module")
def ray_runtime():
    import ray

    from infnet.tune.driver import start_ray

    start_ray(num_cpus=2)  # shared by the sweeps of this module (run_sweep leaves it running)
    yield
    ray.shutdown()


def sweep_overrides(tmp_path: Path, *extra: str) -> list[str]:
    return [*TINY, f"tune.storage_path={tmp_path / 'runs'}", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"data.cache_dir={tmp_path / 'cache'}", *extra]


def write_space(tmp_path: Path, base_overrides: list[str], params: list[str]) -> Path:
    """A search-space file with these base overrides and ``params`` lines (``key: {distribution}``)."""
    space = tmp_path / "space.yaml"
    space.write_text(f"base_overrides: [{', '.join(base_overrides)}]\nparams:\n" + "".join(f"  {p}\n" for p in params))
    return space


def child_runs(summary: dict) -> list:
    client = mlflow.MlflowClient(summary["mlflow_tracking_uri"])
    exp = client.get_experiment_by_name(summary["mlflow_experiment"])
    return client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{summary['mlflow_parent_run_id']}'")


def epochs_logged(client: mlflow.MlflowClient, run_id: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, "dev/f1")]


@pytest.mark.filterwarnings("ignore:Fixed parameter:UserWarning")  # the NaN point lies outside the range
def test_sweep_with_asha_and_a_diverging_trial(ray_runtime, tmp_path: Path) -> None:
    space = write_space(tmp_path, ["method=implicit"], [
        "method.lr_energy: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}",
        "method.solver: {type: categorical, choices: [cg, identity]}",
        "method.iters: {type: int, low: 2, high: 4, when: {method.solver: cg}}",
        "model.energy.label_hidden: {type: int, low: 4, high: 16, log: true}",
    ])
    sweep = prepare(sweep_overrides(
        tmp_path, f"search_space={space}", "tune.num_samples=6", "tune.max_concurrent=1", "tune.startup_trials=2",
        "tune.asha.grace_period=2", "tune.asha.reduction_factor=2", "tune.max_failures=1", "tune.name=asha",
        # the first trial: an absurd outer learning rate that reliably gives NaN in the first main-phase epoch
        "tune.points_to_evaluate=[{method.lr_energy:1.0e+38,method.solver:identity}]",
    ))
    summary = run_sweep(sweep)

    assert summary["num_trials"] == 6 and summary["num_errored"] == 1 and summary["num_stopped"] >= 1
    assert summary["num_completed"] == 6 - 1 - summary["num_stopped"]
    assert summary["best_trial_status"] == "completed" and summary["best_config"]["method.lr_energy"] <= 1e-3
    table = pq.read_table(summary["results_path"]).to_pylist()
    assert len({r["trial_id"] for r in table}) == 6
    (bad,) = [r for r in table if r["status"] == "error"]
    assert bad["method.lr_energy"] == 1e38 and "TrainingDiverged" in bad["error"] and bad["test_metric"] is None
    assert bad["failures"] == 2 and bad["epochs"] == 3  # its one retry re-raised at once (deterministic)
    for r in table:
        if r["status"] == "completed":
            assert r["epochs"] == 6 and r["test_metric"] > 0
        if r["status"] == "stopped":
            assert r["epochs"] == 5 and r["test_metric"] is None  # stopped at the ASHA rung: 3 pretraining + 2 epochs
        assert (r["method.iters"] is None) == (r["method.solver"] != "cg")

    client = mlflow.MlflowClient(summary["mlflow_tracking_uri"])
    runs = {r.data.tags["ray_trial_id"]: r for r in child_runs(summary)}
    assert set(runs) == {r["trial_id"] for r in table}  # exactly one child run per trial
    expected = {"completed": "FINISHED", "stopped": "KILLED", "error": "FAILED"}
    for r in table:
        run = runs[r["trial_id"]]
        assert run.info.status == expected[r["status"]] and run.data.tags["infnet.status"] == r["status"]
        assert run.info.run_id == r["mlflow_run_id"]
        assert run.data.params["method.lr_energy"] == str(r["method.lr_energy"])
        # one value per epoch, the CE pretraining's too when it came from the cache (replayed to MLflow)
        assert epochs_logged(client, run.info.run_id) == list(range(r["epochs"]))
        if r["status"] == "completed":
            assert "test/f1" in run.data.metrics and "train/solver/iterations" in run.data.metrics  # solver diagnostics
    assert "TrainingDiverged" in runs[bad["trial_id"]].data.tags["infnet.error"]

    parent = client.get_run(summary["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.metrics["num_errored"] == 1
    assert {"results.parquet", "best_config.json", "search_space.yaml", "sweep_config.yaml"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)}

    (state,) = glob.glob(str(Path(summary["experiment_path"]) / "searcher-state-*.pkl"))
    with open(state, "rb") as f:
        study = pickle.load(f)["_ot_study"]
    states = [t.state.name for t in study.trials]
    assert states.count("PRUNED") == summary["num_stopped"] and states.count("FAIL") == 1
    assert states.count("COMPLETE") == summary["num_completed"]


def test_worker_death_resumes_from_checkpoint(ray_runtime, tmp_path: Path) -> None:
    sweep = prepare(sweep_overrides(
        tmp_path, "search_space=implicit", "tune.num_samples=2", "tune.scheduler=none", "tune.name=crash",
        "tune.fault_injection.crash_after_epoch=4",
    ))
    summary = run_sweep(sweep)

    assert summary["num_completed"] == 2 and summary["num_errored"] == 0
    table = pq.read_table(summary["results_path"]).to_pylist()
    client = mlflow.MlflowClient(summary["mlflow_tracking_uri"])
    runs = {r.data.tags["ray_trial_id"]: r for r in child_runs(summary)}
    assert len(runs) == 2
    for r in table:
        assert r["failures"] == 1 and r["start_epoch"] == 4 and r["epochs"] == 6  # resumed after epoch 4
        run = runs[r["trial_id"]]
        assert run.info.status == "FINISHED"
        assert epochs_logged(client, run.info.run_id) == list(range(6))  # every epoch once, none trained twice


def write_conllu(path: Path, rng: object, n: int, vocab: dict[str, str]) -> None:
    """``n`` random sentences of 3-10 words of ``vocab`` (word -> its one UPOS tag) as a CoNLL-U file."""
    words = sorted(vocab)
    blocks = []
    for _ in range(n):
        sentence = rng.choice(words, size=int(rng.integers(3, 11)))
        blocks.append("".join(f"{i + 1}\t{w}\t_\t{vocab[w]}\t_\t_\t0\tdep\t_\t_\n" for i, w in enumerate(sentence)))
    path.write_text("\n".join(blocks) + "\n", encoding="utf-8")


def test_pos_sweep_selects_on_token_accuracy(ray_runtime, tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    tags = ["NOUN", "VERB", "ADJ", "DET", "ADP"]
    vocab = {f"{stem}{tag.lower()[:2]}": tag for tag in tags for stem in ("ka", "lo", "mi", "ru", "te", "zo")}
    for split, n in (("train", 300), ("dev", 80), ("test", 80)):
        write_conllu(tmp_path / f"{split}.conllu", rng, n, vocab)
    space = write_space(tmp_path, ["method=implicit", "data=ud_ewt"], ["method.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}"])
    overrides = sweep_overrides(
        tmp_path, f"search_space={space}", "tune.num_samples=3", "tune.scheduler=asha", "tune.asha.grace_period=1", "tune.name=pos",
        "data.name=toy_pos", f"data.root={tmp_path}", "data.files={train:train.conllu,dev:dev.conllu,test:test.conllu}",
    )
    sweep = prepare([o for o in overrides if not o.startswith("data.n_")])  # sizes of the synthetic data only
    summary = run_sweep(sweep)

    assert summary["metric"] == "acc" and "token accuracy" in summary["metric_description"]
    assert summary["num_completed"] >= 1 and summary["num_errored"] == 0
    table = pq.read_table(summary["results_path"]).to_pylist()
    assert {r["metric"] for r in table} == {"acc"} and all(r["test_f1_at_0.5"] is None for r in table)
    client = mlflow.MlflowClient(summary["mlflow_tracking_uri"])
    runs = {r.data.tags["ray_trial_id"]: r for r in child_runs(summary)}
    for r in table:  # the table's dev value is the run's best dev accuracy, never an F1
        history = [m.value for m in sorted(client.get_metric_history(runs[r["trial_id"]].info.run_id, "dev/acc"), key=lambda m: m.step)]
        main = history[3:]  # after the 3 pretraining epochs: what the trial delivers
        assert r["dev_metric"] == pytest.approx(100 * max(main)) and "dev/f1" not in runs[r["trial_id"]].data.metrics
        if r["status"] == "completed":
            assert r["test_metric"] == pytest.approx(100 * runs[r["trial_id"]].data.metrics["test/acc"])
    completed = [r for r in table if r["status"] == "completed"]
    best = max(completed, key=lambda r: r["dev_metric"])
    assert summary["best_trial_id"] == best["trial_id"] and summary["best_dev_metric"] == best["dev_metric"]
    assert summary["best_test_metric"] > 40  # a word's tag is fixed: far above the majority tag's ~20%
    parent = client.get_run(summary["mlflow_parent_run_id"]).data.metrics
    assert parent["best/dev_acc"] == pytest.approx(best["dev_metric"] / 100) and parent["dev/best_acc"] == pytest.approx(best["dev_metric"] / 100)
    html = Path(summary["report_path"]).read_text(encoding="utf-8")
    assert "dev accuracy" in html and "token accuracy (%)" in html and "dev F1" not in html


def test_ner_sweep_on_sequence_data(ray_runtime, tmp_path: Path) -> None:
    space = write_space(tmp_path, ["method=implicit", "data=synthetic_seq"], [
        "model.seq_energy.high_order: {type: categorical, choices: [conv, lstm]}",
        "model.seq_energy.order_hidden: {type: int, low: 4, high: 16, log: true}",
    ])
    sweep = prepare(sweep_overrides(
        tmp_path, f"search_space={space}", "tune.num_samples=2", "tune.scheduler=none", "tune.name=ner",
        "data.n_train=400", "data.n_dev=100", "method.lr=5e-3",
    ))
    summary = run_sweep(sweep)

    assert summary["num_completed"] == 2 and summary["num_errored"] == 0
    table = pq.read_table(summary["results_path"]).to_pylist()
    for r in table:
        assert r["model.seq_energy.high_order"] in ("conv", "lstm") and r["epochs"] == 6
        assert 0 < r["test_metric"] <= 100 and r["test_f1_at_0.5"] is None  # span F1: no threshold
    client = mlflow.MlflowClient(summary["mlflow_tracking_uri"])
    for run in child_runs(summary):
        assert run.data.params["data.name"] == "synthetic_seq" and "test/predictions.conll" in {
            a.path for a in client.list_artifacts(run.info.run_id, "test")}
    assert summary["report_path"] and Path(summary["report_path"]).is_file()
