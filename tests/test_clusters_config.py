"""The cluster-launcher configs in ``clusters/`` -- validated offline, as far as ``ray up`` checks them
before it calls a cloud, and checked for the parts the walk-through relies on.

1. JSON Schema (draft 7) shipped inside the installed ``ray`` package (``ray/autoscaler/ray-schema.json``);
2. Ray's own ``prepare_config`` (merges the provider's defaults) and ``validate_config``;
3. our rules: a GPU worker type the autoscaler can add, Ray's image and ``setup_commands`` pinned to the
   driver's Ray and Python, the README's install (torch pin, the synced project), an MLflow server
   started on the head by ``clusters/start_mlflow.sh`` with the store locations set, bound to the
   head's private IP with flags the installed MLflow accepts, workers joining the head, no credentials.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

CLUSTERS = Path(__file__).resolve().parents[1] / "clusters"
CLOUD = ["gpu.yaml", "gpu-gcp.yaml"]
ALL = [*CLOUD, "local.yaml"]
PY = f"py{sys.version_info.major}{sys.version_info.minor}"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CLUSTERS / name).read_text())


def schema_errors(cfg: dict[str, Any]) -> list[str]:
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    return [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(cfg)]


def ray_prepared(cfg: dict[str, Any]) -> dict[str, Any]:
    """Ray's own offline step of ``ray up``: merge the provider defaults, then validate (raises)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    return prepared


def ray_version() -> str:
    import ray

    return ray.__version__


def torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]


@pytest.mark.parametrize("name", ALL)
def test_valid_for_ray_up(name: str) -> None:
    cfg = load(name)
    assert schema_errors(cfg) == []
    prepared = ray_prepared(cfg)
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize(("change", "expected"), [
    (lambda c: c["available_node_types"]["gpu_worker"]["resources"].update(GPU=0.5), "0.5 is not of type 'integer'"),
    (lambda c: c.update(max_worker=4), "'max_worker' was unexpected"),
    (lambda c: c["available_node_types"]["gpu_worker"].pop("resources"), "'resources' is a required property"),
])
def test_schema_catches_mistakes(change: Any, expected: str) -> None:
    cfg = load("gpu.yaml")
    change(cfg)
    assert any(expected in e for e in schema_errors(cfg))


def test_ray_validation_catches_mistakes() -> None:
    cfg = load("gpu.yaml")
    cfg["head_node_type"] = "gpu-head"
    with pytest.raises(ValueError, match="head_node_type"):
        ray_prepared(cfg)


@pytest.mark.parametrize("name", CLOUD)
def test_gpu_worker_type_autoscales(name: str) -> None:
    cfg = load(name)
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] == 0  # trials run on workers only
    (gpu,) = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]  # declared: GCP does not detect GPUs
    assert gpu["min_workers"] == 0 < gpu["max_workers"] <= cfg["max_workers"]
    assert gpu["resources"]["CPU"] >= 4 * gpu["resources"]["GPU"]  # room for fractional-GPU trials (1 CPU each)
    assert 0 < cfg["idle_timeout_minutes"] <= 30


def test_gcp_gpu_node_config() -> None:
    cfg = load("gpu-gcp.yaml")
    gpu = cfg["available_node_types"]["gpu_worker"]
    node = gpu["node_config"]
    assert sum(a["acceleratorCount"] for a in node["guestAccelerators"]) == gpu["resources"]["GPU"]
    assert {"onHostMaintenance": "TERMINATE"} in node["scheduling"]
    assert any("nvidia-smi" in c for c in gpu["initialization_commands"])  # the driver installs at first boot


@pytest.mark.parametrize("name", CLOUD)
def test_images_pin_the_drivers_ray_and_python(name: str) -> None:
    docker = load(name)["docker"]
    images = {docker["image"], docker["head_image"]}
    assert all("ray-ml" not in image for image in images)  # frozen at Ray 2.30
    assert docker["image"] == f"rayproject/ray:{ray_version()}-{PY}-gpu"
    assert docker["head_image"] == f"rayproject/ray:{ray_version()}-{PY}-cpu"
    assert "--gpus all" in docker["worker_run_options"]


@pytest.mark.parametrize("name", ALL)
def test_setup_installs_this_project_as_the_readme_does(name: str) -> None:
    cfg = load(name)
    assert cfg["file_mounts"]["~/infnet"] == "."
    commands = cfg["setup_commands"]
    pins = {re.sub(r"\[.*\]", "", p.strip("\"'")) for c in commands for p in shlex.split(c) if "==" in p}
    assert pins == {f"ray=={ray_version()}", f"torch=={torch_version()}"}
    installs = [c for c in commands if c.startswith("pip install")]
    assert installs[-1].endswith("-e ~/infnet")  # after torch, so pip keeps the pinned build
    if name == "local.yaml":  # no image: a virtual environment of the driver's Python
        assert f"python{sys.version_info.major}.{sys.version_info.minor} -m venv" in commands[0]


def mlflow_line(cfg: dict[str, Any]) -> str:
    (line,) = [c for c in cfg["head_start_ray_commands"] if "start_mlflow.sh" in c]
    return line


@pytest.mark.parametrize("name", ALL)
def test_head_starts_ray_and_mlflow_workers_join(name: str) -> None:
    cfg = load(name)
    head = cfg["head_start_ray_commands"]
    assert head[0] == "ray stop" and any("ray start --head --port=6379" in c for c in head)
    assert not any("0.0.0.0" in c for c in head)  # neither the dashboard nor MLflow on a public interface
    words = shlex.split(mlflow_line(cfg))
    assert words[-2:] == ["bash", "~/infnet/clusters/start_mlflow.sh"]
    settings = dict(w.split("=", 1) for w in words[:-2])
    assert set(settings) == {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION"}
    assert settings["MLFLOW_BACKEND_STORE_URI"].startswith(("sqlite:///", "postgresql://", "mysql://"))
    assert any("ray start --address=$RAY_HEAD_IP:6379" in c for c in cfg["worker_start_ray_commands"])


def mlflow_server_args() -> list[str]:
    """The ``mlflow server ...`` arguments of ``clusters/start_mlflow.sh`` (shell variables left in)."""
    script = (CLUSTERS / "start_mlflow.sh").read_text()
    match = re.search(r"nohup mlflow server (.*?)\s*>", script.replace("\\\n", " "))
    assert match, "no `nohup mlflow server ...` line in start_mlflow.sh"
    return shlex.split(match.group(1))


def test_mlflow_server_binds_the_private_ip_with_valid_flags() -> None:
    from mlflow.cli import server

    args = mlflow_server_args()
    assert args[args.index("--host") + 1] == "$ip"  # the node IP Ray registers (INFNET_HEAD_IP overrides)
    allowed = args[args.index("--allowed-hosts") + 1].split(",")
    assert allowed == ["$ip:$port", "localhost:$port", "127.0.0.1:$port"]  # workers, and the laptop's tunnel
    concrete = [a.replace("$ip", "10.0.0.1").replace("$port", "5000").replace("$MLFLOW_BACKEND_STORE_URI", "sqlite:////tmp/m.db")
                .replace("$MLFLOW_ARTIFACTS_DESTINATION", "s3://bucket/a") for a in args if a != "$@"]
    ctx = server.make_context("server", concrete)  # raises on an unknown option or a bad value
    assert ctx.params["host"] == "10.0.0.1" and ctx.params["port"] == 5000
    assert ctx.params["artifacts_destination"] == "s3://bucket/a"


@pytest.mark.parametrize("name", ALL)
def test_no_credentials(name: str) -> None:
    text = (CLUSTERS / name).read_text()
    secrets = [r"AKIA[0-9A-Z]{16}", r"aws_secret_access_key", r"private_key_id", r"-----BEGIN", r"://[^/\s:@]+:[^/\s@]+@",
               r"(?i)password\s*[:=]", r"(?i)token\s*[:=]"]
    assert [s for s in secrets if re.search(s, text)] == []
