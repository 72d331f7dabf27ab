"""GPU requests on an autoscaling cluster, with Ray's own autoscaler (its ``fake_multinode`` provider:
"nodes" are raylets started on this machine, declaring the resources of their node type).

The cluster starts as ``ray up`` clusters do: a head with no CPU and no GPU, and a GPU worker type
with ``min_workers: 0`` (4 CPUs, 1 GPU, up to 2 nodes). ``python -m infnet.tune tune.address=auto
tune.gpus_per_trial=0.25`` must keep the request although the cluster has no GPU when the sweep
starts, so that the autoscaler starts a GPU node for the trials; 4 trials of 0.25 GPU pack onto ONE
node (with 1 GPU per trial it would start 2), each seeing one GPU. While they wait, the driver says
"waiting for GPU nodes". The node's GPU is declared, not real (this machine has none), so every trial
must then fail with a clear error naming torch's CUDA build and the driver -- never train on the CPU.
Also unit checks of the request rule and the message.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest
import torch
from processes import stop_ray_under
from test_tune_resume import child_runs
from test_tune_sweep import TINY

from infnet.tune import gpu
from infnet.tune.gpu import CudaUnavailable, gpu_request, trial_device

GCS_PORT = 6379  # the fake provider's nodes join the head at this port


def autoscaling_config() -> dict:
    node = {"node_config": {}}
    return {
        "cluster_name": "fake-gpu", "max_workers": 2, "upscaling_speed": 1.0, "idle_timeout_minutes": 5,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True},
        "auth": {"ssh_user": "ubuntu"}, "docker": {}, "head_node_type": "ray.head.default",
        "available_node_types": {"ray.head.default": {**node, "resources": {"CPU": 0}, "max_workers": 0},
                                 "gpu_worker": {**node, "resources": {"CPU": 4, "GPU": 1}, "min_workers": 0, "max_workers": 2}},
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False, "rsync_exclude": [],
        "rsync_filter": [], "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


@pytest.fixture
def autoscaling_cluster() -> Iterator[dict[str, str]]:
    """A fake-provider autoscaling cluster under a private RAY_TMPDIR; yields the environment that reaches it."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", GCS_PORT)) == 0:
            pytest.skip(f"port {GCS_PORT} is in use (the fake autoscaler's nodes join the head there)")
    temp = tempfile.mkdtemp(prefix="infnet-as-", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    config = Path(temp) / "autoscaling.json"
    config.write_text(json.dumps(autoscaling_config()))
    env = {**os.environ, "RAY_TMPDIR": temp, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    ray_cli = str(Path(sys.executable).parent / "ray")
    subprocess.run([ray_cli, "start", "--head", f"--port={GCS_PORT}", "--num-cpus=0", "--num-gpus=0", "--include-dashboard=false",
                    f"--autoscaling-config={config}"], env=env, check=True, capture_output=True, timeout=120)
    try:
        yield env
    finally:
        stop_ray_under(temp)
        shutil.rmtree(temp, ignore_errors=True)


def gpu_nodes_ever(env: dict[str, str]) -> list[str]:
    """The ids of the nodes with a GPU that joined the cluster (alive or gone), asked in a fresh process."""
    code = ("import json, ray; ray.init('auto', log_to_driver=False); "
            "print(json.dumps([n['NodeID'] for n in ray.nodes() if n['Resources'].get('GPU', 0) > 0]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of trials that hold a GPU torch cannot use")
def test_autoscaler_starts_one_gpu_node_for_four_quarter_gpu_trials(autoscaling_cluster: dict, tmp_path: Path) -> None:
    env = autoscaling_cluster
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*TINY, "tune.address=auto", "tune.gpus_per_trial=0.25", "tune.cpus_per_trial=1", "tune.num_samples=4",
            "tune.max_concurrent=4", "tune.scheduler=none", "tune.gpu_wait_report_s=1", "tune.max_failures=0", "trainer.pretrain_cache=false",
            f"tracking.uri={uri}", f"tune.storage_path={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}", "tune.name=gpu"]
    proc = subprocess.run([sys.executable, "-m", "infnet.tune", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "requesting 0 GPUs" not in proc.stderr  # the request stood although the cluster had no GPU at start
    assert "waiting for GPU nodes for" in proc.stderr  # the wait for the autoscaler was reported, not silent
    assert summary["num_trials"] == summary["num_errored"] == 4  # no trial trained on the CPU instead

    (node,) = gpu_nodes_ever(env)  # 4 x 0.25 GPU packed onto one autoscaled node (1 GPU each: 2 nodes)
    table = pq.read_table(summary["results_path"]).to_pylist()
    assert len(table) == 4 and {r["status"] for r in table} == {"error"} and all("CudaUnavailable" in r["error"] for r in table)
    runs = child_runs(uri, summary["mlflow_parent_run_id"])
    assert len(runs) == 4
    for run in runs:
        assert run.data.tags["ray_node_id"] == node
        assert run.data.tags["infnet.cuda_visible_devices"] == "0"  # each trial sees only its GPU
        error = run.data.tags["infnet.error"]
        assert error.startswith("CudaUnavailable:") and f"torch {torch.__version__}" in error and "NVIDIA driver" in error
    assert mlflow.MlflowClient(uri).get_run(summary["mlflow_parent_run_id"]).info.status == "FINISHED"


@pytest.mark.parametrize(("requested", "cluster_gpus", "joined", "expected"), [
    (0.25, 0, True, 0.25),   # a joined cluster without GPUs yet: its autoscaler adds them
    (0.25, 0, False, 0.0),   # a local runtime without GPUs: nothing could ever run the trials
    (1.0, 2, False, 1.0),    # a local runtime with GPUs
    (0.0, 4, True, 0.0),
])
def test_gpu_request(requested: float, cluster_gpus: float, joined: bool, expected: float) -> None:
    assert gpu_request(requested, cluster_gpus, joined) == expected


def test_cuda_unavailable_names_the_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    driver_file = tmp_path / "version"
    driver_file.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
                           "GCC version:  gcc version 12.3.0\n")
    monkeypatch.setattr(gpu, "DRIVER_FILE", driver_file)
    assert gpu.nvidia_driver_version() == "535.104.05"
    message = gpu.cuda_unavailable_message(["0"])
    assert "NVIDIA driver 535.104.05" in message and f"torch {torch.__version__}" in message and "GPU(s) ['0']" in message
    monkeypatch.setattr(gpu, "DRIVER_FILE", tmp_path / "absent")
    assert gpu.nvidia_driver_version() is None and "NVIDIA driver not found" in gpu.cuda_unavailable_message(["0"])


def test_trial_device() -> None:
    assert trial_device([]) == ("cpu", {"infnet.device": "cpu"})
    if torch.cuda.is_available():
        device, tags = trial_device(["0"])
        assert device == "cuda" and tags["infnet.gpu_name"] == torch.cuda.get_device_name(0)
    else:
        with pytest.raises(CudaUnavailable, match="cannot use CUDA"):
            trial_device(["0"])
