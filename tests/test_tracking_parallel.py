"""Parallel ``python -m infnet.train`` processes on a fresh SQLite store: one schema creation, one experiment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow

TINY = ["method=ce", "trainer.max_epochs=1", "trainer.num_threads=1", "data.n_train=64", "data.n_dev=32",
        "data.n_test=32", "tracking.log_model=false", "tracking.experiment=parallel"]


def test_four_trainings_started_together_on_a_fresh_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"  # the folder does not exist yet either
    procs = [subprocess.Popen([sys.executable, "-m", "infnet.train", *TINY, f"trainer.seed={seed}", f"tracking.uri={uri}"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in range(4)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    run_ids = {json.loads(out.strip().splitlines()[-1])["mlflow_run_id"] for out, _ in outputs}
    client = mlflow.MlflowClient(uri)
    experiments = [e for e in client.search_experiments() if e.name == "parallel"]
    assert len(experiments) == 1
    runs = client.search_runs([experiments[0].experiment_id])
    assert {r.info.run_id for r in runs} == run_ids and len(run_ids) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.params["trainer.seed"] for r in runs) == ["0", "1", "2", "3"]
