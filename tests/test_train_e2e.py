"""End-to-end runs of ``python -m infnet.train`` for every method, with a real MLflow SQLite store."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from infnet.compose import compose
from infnet.config import ConfigError
from infnet.train import main_with_tracking

SMALL = ["trainer.max_epochs=4", "trainer.num_threads=1", "data.n_train=600", "data.n_dev=200", "data.n_test=300"]
PRETRAIN = ["method.pretrain_epochs=2"]


def _overrides(method: str, uri: str) -> list[str]:
    extra = [] if method == "ce" else list(PRETRAIN)
    if method == "implicit":
        extra += ["method.inner_steps=3"]
    return [f"method={method}", f"tracking.uri={uri}", *SMALL, *extra]


@pytest.mark.parametrize("method", ["ce", "spen", "tu_gimpel", "seal", "implicit"])
def test_each_method_trains_and_is_tracked(method: str, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = main_with_tracking(compose(_overrides(method, uri)))
    assert result["method"] == method and result["data"] == "synthetic_mlc"
    for key in ("dev_f1", "test_f1", "test_f1_at_0.5", "threshold", "train_seconds"):
        assert math.isfinite(result[key])
    assert 20.0 < result["test_f1"] <= 100.0  # far above an empty prediction on this data
    client = mlflow.MlflowClient(uri)
    run = client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["method.name"] == method
    history = client.get_metric_history(run.info.run_id, "dev/f1")
    assert [m.step for m in history] == [0, 1, 2, 3]
    assert "test/f1" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "history.json", "best_model.pt", "test"} <= artifacts
    if method != "ce":
        for key in ("energy/grad_ratio_global_local", "energy/gold_minus_pred", "energy/rel_change_local", "energy/rel_change_label"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [2, 3], key  # every main-phase epoch
        assert result["energy_rel_change_local"] >= 0 and "energy_rel_change_label" in result
    if method == "implicit":
        for key in ("train/solver/iterations", "train/solver/fallback", "train/loss/outer", "train/outer/loss_before",
                    "train/outer/loss_after", "train/outer/descent_fraction"):
            assert key in run.data.metrics, key
        steps = client.get_metric_history(run.info.run_id, "train/outer/steps")
        assert [m.step for m in steps] == [2, 3] and all(m.value >= 1 for m in steps)  # 600 examples / 32 / T=3 per epoch
        assert result["energy_rel_change_label"] > 0  # θ moved


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infnet.train", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_prints_json_last_line_and_uses_local_store(tmp_path: Path) -> None:
    proc = _cli(["method=ce", "trainer.max_epochs=2", "trainer.num_threads=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"method", "data", "dev_f1", "test_f1", "threshold", "train_seconds", "mlflow_run_id"} <= set(result)
    assert (tmp_path / "mlflow.db").exists()  # embedded default: a local store in the working directory
    assert "[epoch 2/2 main]" in proc.stderr  # progress is shown
    run = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"


def test_test_predictions_artifact_matches_the_reported_f1(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    import torch

    from infnet.metrics import example_f1

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = main_with_tracking(compose([*_overrides("ce", uri), "trainer.max_epochs=2"]))
    path = mlflow.artifacts.download_artifacts(
        run_id=result["mlflow_run_id"], artifact_path="test/predictions.parquet", tracking_uri=uri, dst_path=str(tmp_path)
    )
    table = pq.read_table(path)
    assert table.column_names == ["example", "gold", "predicted", "scores"] and table.num_rows == 300
    predicted, gold = ([set(row) for row in table.column(c).to_pylist()] for c in ("predicted", "gold"))
    labels = sorted(set().union(*predicted, *gold))

    def indicator(sets: list[set[str]]) -> torch.Tensor:
        return torch.tensor([[float(n in s) for n in labels] for s in sets])

    assert 100 * example_f1(indicator(predicted), indicator(gold), 0.5) == pytest.approx(result["test_f1"])
    assert len(table.column("scores")[0]) >= len(labels)


def test_cli_rejects_unknown_key_with_hydra_error(tmp_path: Path) -> None:
    proc = _cli(["trainer.max_epoch=2"], tmp_path)
    assert proc.returncode != 0
    assert "trainer.max_epoch" in proc.stderr and "Could not override" in proc.stderr


def test_bad_values_get_clear_errors() -> None:
    with pytest.raises(ConfigError, match=r"method.solver='newton'"):
        from infnet.config import validate

        validate(compose(["method.solver=newton"]))
    with pytest.raises(ConfigError, match="no main-phase epoch"):
        validate(compose(["trainer.max_epochs=3", "method.pretrain_epochs=5"]))


def test_nan_loss_fails_the_run_clearly_and_records_it(tmp_path: Path) -> None:
    import numpy as np

    from infnet.data import load_mlc
    from infnet.data.mlc.types import MLCDataset, MLCSplit, SparseRows
    from infnet.loop import TrainingDiverged

    cfg = compose(_overrides("ce", f"sqlite:///{tmp_path / 'mlflow.db'}"))
    good = load_mlc(cfg.data)
    x = good.train.features.dense().numpy()
    x[::7] = np.nan
    bad_train = MLCSplit(SparseRows.from_dense(x), good.train.labels)
    data = MLCDataset(**{**good.__dict__, "train": bad_train})
    with pytest.raises(TrainingDiverged, match="non-finite loss at epoch 0"):
        main_with_tracking(cfg, data=data)
    runs = mlflow.MlflowClient(cfg.tracking.uri).search_runs(
        [mlflow.MlflowClient(cfg.tracking.uri).get_experiment_by_name("infnet").experiment_id]
    )
    assert [r.info.status for r in runs] == ["FAILED"]


def test_pretrain_cache_reproduces_the_uncached_run(tmp_path: Path) -> None:
    from infnet.train import run_training

    base = [*_overrides("implicit", "unused"), f"data.cache_dir={tmp_path}", "trainer.max_epochs=4"]
    plain = run_training(compose(base), verbose=False)
    first = run_training(compose([*base, "trainer.pretrain_cache=true"]), verbose=False)
    assert list((tmp_path / "pretrain").glob("*.pt")), "the first cached run stores its pretraining"
    second = run_training(compose([*base, "trainer.pretrain_cache=true"]), verbose=False)
    for key in ("dev_f1", "test_f1", "threshold", "best_epoch"):
        assert plain[key] == first[key] == second[key], key
    other_seed = run_training(compose([*base, "trainer.pretrain_cache=true", "trainer.seed=1"]), verbose=False)
    assert len(list((tmp_path / "pretrain").glob("*.pt"))) == 2 and other_seed["test_f1"] != plain["test_f1"]


def test_pretrain_cache_is_shared_across_methods_and_energy_sizes(tmp_path: Path) -> None:
    from infnet.train import run_training

    cache = [f"data.cache_dir={tmp_path}", "trainer.pretrain_cache=true"]
    run_training(compose([*_overrides("implicit", "unused"), *cache]), verbose=False)
    for overrides in (
        [*_overrides("implicit", "unused"), "model.energy.label_hidden=5", "model.energy.depth=2"],
        _overrides("spen", "unused"),
    ):
        uncached = run_training(compose([*overrides, *cache, "trainer.pretrain_cache=false"]), verbose=False)
        cached = run_training(compose([*overrides, *cache]), verbose=False)
        assert cached["test_f1"] == uncached["test_f1"] and cached["dev_f1"] == uncached["dev_f1"]
    assert len(list((tmp_path / "pretrain").glob("*.pt"))) == 1
