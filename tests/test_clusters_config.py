"""The cluster-launcher configs in ``clusters/`` -- validated offline, as far as ``ray up`` checks them
before it calls a cloud, and checked for the parts the walk-through relies on.

1. JSON Schema (draft 7) shipped inside the installed ``ray`` package (``ray/autoscaler/ray-schema.json``);
2. Ray's own ``prepare_config`` (merges the provider's defaults) and ``validate_config``;
3. our rules: a GPU worker type the autoscaler can add, Ray's image and ``setup_commands`` pinned to the
   driver's Ray and Python, the README's install (torch pin, the synced project), an MLflow server
   started on the head by ``clusters/start_mlflow.sh`` with the store locations set, bound to the
   head's private IP with flags the installed MLflow accepts and reachable through a tunnel on any local
   port, on the clouds a PostgreSQL store on the head's host (started by ``ray up`` on the head only, on
   its loopback, with the driver the ``cluster`` extra installs), workers joining the head, no credentials.
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

REPO = Path(__file__).resolve().parents[1]
CLUSTERS = REPO / "clusters"
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
    # a database server on the clouds (SQLite locks under concurrent trials, and the container takes it along);
    # on your own machines SQLite on the head's disk is the default
    stores = ("postgresql+psycopg2://",) if name in CLOUD else ("sqlite:///", "postgresql+psycopg2://")
    assert settings["MLFLOW_BACKEND_STORE_URI"].startswith(stores)
    assert any("ray start --address=$RAY_HEAD_IP:6379" in c for c in cfg["worker_start_ray_commands"])


def mlflow_server_args() -> list[str]:
    """The ``mlflow server ...`` arguments of ``clusters/start_mlflow.sh`` (shell variables left in)."""
    script = (CLUSTERS / "start_mlflow.sh").read_text()
    assert re.search(r'^setsid nohup mlflow server "\$\{args\[@\]\}" >', script, re.M), "no `mlflow server` started with args"
    match = re.search(r"^args=\((.*?)\)$", script, re.M | re.S)
    assert match, "no `args=(...)` in start_mlflow.sh"
    return shlex.split(match.group(1))


def test_mlflow_server_binds_the_private_ip_with_valid_flags() -> None:
    from mlflow.cli import server

    args = mlflow_server_args()
    assert args[args.index("--host") + 1] == "$ip"  # the node IP Ray registers (INFNET_HEAD_IP overrides)
    allowed = args[args.index("--allowed-hosts") + 1].split(",")
    assert allowed == ["$ip:$port", "localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"]  # workers, a tunnel's local end
    concrete = [a.replace("$ip", "10.0.0.1").replace("$port", "5000").replace("$MLFLOW_BACKEND_STORE_URI", "sqlite:////tmp/m.db")
                .replace("$MLFLOW_ARTIFACTS_DESTINATION", "s3://bucket/a") for a in args if a != "$@"]
    ctx = server.make_context("server", concrete)  # raises on an unknown option or a bad value
    assert ctx.params["host"] == "10.0.0.1" and ctx.params["port"] == 5000
    assert ctx.params["artifacts_destination"] == "s3://bucket/a"


def test_allowed_hosts_admit_a_tunnel_on_any_local_port_only() -> None:
    """MLflow's own Host-header check on the allowed hosts as the head fills them in (IP 10.0.0.1, port 5000)."""
    from mlflow.server.security_utils import is_allowed_host_header

    args = mlflow_server_args()
    hosts = [h.replace("$ip", "10.0.0.1").replace("$port", "5000") for h in args[args.index("--allowed-hosts") + 1].split(",")]
    for host in ["10.0.0.1:5000", "localhost:5000", "localhost:8765", "127.0.0.1:9999", "localhost"]:
        assert is_allowed_host_header(hosts, host), host
    for host in ["evil.example.com", "evil.example.com:5000", "localhost.evil.example.com:80", "10.0.0.1:8080", "10.0.0.2:5000"]:
        assert not is_allowed_host_header(hosts, host), host


def head_postgres(cfg: dict[str, Any]) -> list[str]:
    """The words of the ``docker run`` that starts MLflow's PostgreSQL among the head's initialization commands."""
    (line,) = [c for c in cfg["initialization_commands"] if "docker run" in c]
    return shlex.split(line)


@pytest.mark.parametrize("name", CLOUD)
def test_postgres_runs_on_the_head_host_only(name: str) -> None:
    from ray.autoscaler.v2.instance_manager.config import AutoscalingConfig

    cfg = ray_prepared(load(name))
    # `ray up` runs the top-level initialization_commands on the head (on the host, before its container
    # starts); it ignores the head type's own. The autoscaler runs a worker type's own, else the top-level ones.
    assert "initialization_commands" not in cfg["available_node_types"][cfg["head_node_type"]]
    words = head_postgres(cfg)
    autoscaler = AutoscalingConfig(cfg, skip_content_hash=True)
    for node_type in set(cfg["available_node_types"]) - {cfg["head_node_type"]}:
        assert not any("postgres" in c for c in autoscaler.get_initialization_commands(node_type)), node_type
    # started unless it runs (`ray up` again), restarted with the host, on the host's disk (outside the container)
    line = next(c for c in cfg["initialization_commands"] if "docker run" in c)
    assert line.startswith("docker start infnet-mlflow-db 2>/dev/null || docker run -d ")
    assert words[words.index("--restart") + 1] == "unless-stopped" and words[words.index("--name") + 1] == "infnet-mlflow-db"
    volume = words[words.index("-v") + 1]
    assert volume.startswith("$HOME/") and volume.endswith(":/var/lib/postgresql/data")
    image = next(w for w in words if w.startswith("postgres:"))
    assert re.fullmatch(r"postgres:\d+", image)  # a major version: its data files are only readable by that one
    # on the host's loopback only: the host's network (no published port) and listen_addresses
    assert words[words.index("--network") + 1] == "host" and "-p" not in words and "--publish" not in words
    assert words[words.index(image) + 1:] == ["-c", "listen_addresses=127.0.0.1"]
    env = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "-e")
    assert env == {"POSTGRES_USER": "mlflow", "POSTGRES_DB": "mlflow", "POSTGRES_HOST_AUTH_METHOD": "trust"}  # no password
    assert any("pg_isready" in c and "-h 127.0.0.1" in c for c in cfg["initialization_commands"])  # ready before MLflow
    # ... and the MLflow store is that server, through the driver the head installs
    from sqlalchemy.engine import make_url

    store = make_url(dict(w.split("=", 1) for w in shlex.split(mlflow_line(cfg))[:-2])["MLFLOW_BACKEND_STORE_URI"])
    assert (store.username, store.password, store.host, store.port, store.database) == ("mlflow", None, "127.0.0.1", 5432, "mlflow")
    assert store.get_dialect().driver == "psycopg2"  # SQLAlchemy >= 2.1 maps a bare postgresql:// to psycopg 3


@pytest.mark.parametrize("name", CLOUD)
def test_head_installs_the_cluster_extra(name: str) -> None:
    import tomllib

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["cluster"]
    assert {re.split(r"[<>=\[]", r)[0] for r in extra} >= {"psycopg2-binary", "boto3"}
    assert 'pip install -q -e "$HOME/infnet[cluster]"' in [c.split("  #")[0].strip() for c in load(name)["head_setup_commands"]]


@pytest.mark.parametrize("name", ALL)
def test_no_credentials(name: str) -> None:
    text = (CLUSTERS / name).read_text()
    secrets = [r"AKIA[0-9A-Z]{16}", r"aws_secret_access_key", r"private_key_id", r"-----BEGIN", r"://[^/\s:@]+:[^/\s@]+@",
               r"(?i)password\s*[:=]", r"(?i)token\s*[:=]"]
    assert [s for s in secrets if re.search(s, text)] == []
