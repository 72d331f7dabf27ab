"""``clusters/start_mlflow.sh`` as the cluster YAMLs run it on the head, with a real ``mlflow server``
(SQLite store) bound to 127.0.0.1 as it binds to the head's private IP there.

The UI must be reachable through an ssh tunnel on any local port (the browser then sends the Host header
``localhost:<port>``) while an unknown Host is refused, the server must listen on that one address and
never on 0.0.0.0, and re-running the script (every re-run of ``ray up`` does) must leave a healthy server
with the same settings alone and restart one whose settings changed or that does not answer.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from processes import QUIET_ENV, free_port, group_alive, stop_group

REPO = Path(__file__).resolve().parents[1]


def status(port: int, path: str, host: str) -> int:
    """The HTTP status of GET ``path`` on 127.0.0.1:``port`` sent with this ``Host`` header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"Host": host})
        return conn.getresponse().status
    finally:
        conn.close()


def listening(pgid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket that a process of group ``pgid`` listens on (/proc/net/tcp{,6})."""
    inodes = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            inodes |= {t[8:-1] for t in (os.readlink(fd) for fd in (proc / "fd").iterdir()) if t.startswith("socket:[")}
        except (OSError, ValueError):
            continue  # a process that ended meanwhile
    found = set()
    for family, table in ((socket.AF_INET, "tcp"), (socket.AF_INET6, "tcp6")):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addr, port = fields[1].split(":")
                raw = bytes.fromhex(addr)  # host-order 32-bit words
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add((socket.inet_ntop(family, raw), int(port, 16)))
    return found


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    """``start(**env)``: run ``clusters/start_mlflow.sh`` to its end with these settings over a SQLite store on
    127.0.0.1 (a free port); returns (its output, the server's pid). Every server started is stopped after."""
    root = tmp_path / "mlflow"
    base = {**os.environ, **QUIET_ENV, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{root / 'mlflow.db'}", "MLFLOW_ARTIFACTS_DESTINATION": str(root / "artifacts"),
            "MLFLOW_PORT": str(free_port()), "INFNET_HEAD_IP": "127.0.0.1", "INFNET_MLFLOW_DIR": str(root)}
    pids = []

    def run(**env: str) -> tuple[str, int]:
        done = subprocess.run(["bash", str(REPO / "clusters" / "start_mlflow.sh"), "--workers", "1"], env={**base, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=400)
        assert done.returncode == 0, done.stdout
        pids.append(int((root / "server.pid").read_text()))
        return done.stdout, pids[-1]

    run.port = int(base["MLFLOW_PORT"])
    run.root = root
    try:
        yield run
    finally:
        for pid in set(pids):
            stop_group(pid)


def test_ui_through_a_tunnel_on_any_local_port_and_loopback_only(start) -> None:
    _, pid = start()
    assert os.getpgid(pid) == pid  # its own process group: what a restart (and this test) stops
    for path in ["/health", "/", "/api/2.0/mlflow/experiments/search?max_results=1"]:
        for host in ["localhost:8765", "127.0.0.1:9999", f"127.0.0.1:{start.port}", "localhost"]:
            assert status(start.port, path, host) == 200, (path, host)
    # DNS rebinding: a page of another site must not reach the UI or the API (/health is exempt in MLflow)
    for path in ["/", "/api/2.0/mlflow/experiments/search?max_results=1"]:
        assert status(start.port, path, "evil.example.com") == 403
        assert status(start.port, path, "evil.example.com:5000") == 403
    assert listening(pid) == {("127.0.0.1", start.port)}  # the server and its workers: one socket, never 0.0.0.0


def test_rerun_keeps_a_healthy_server_and_restarts_on_changes(start) -> None:
    _, pid = start()
    uri = (start.root / "tracking_uri").read_text().strip()
    experiment = mlflow.MlflowClient(uri).create_experiment("kept")

    # `ray up` again, same settings: the server a sweep may be logging to is left alone
    output, same = start()
    assert same == pid and "already running" in output and group_alive(pid)
    assert status(start.port, "/health", "localhost:8765") == 200

    # another artifacts destination: a new server (the old one and its workers gone), same store
    output, changed = start(MLFLOW_ARTIFACTS_DESTINATION=str(start.root / "artifacts2"))
    assert changed != pid and not group_alive(pid) and "already running" not in output
    assert mlflow.MlflowClient(uri).get_experiment(experiment).name == "kept"
    assert listening(changed) == {("127.0.0.1", start.port)}

    # a server that does not answer (stopped) is replaced, even with the same settings
    os.killpg(changed, signal.SIGSTOP)
    _, replaced = start(MLFLOW_ARTIFACTS_DESTINATION=str(start.root / "artifacts2"))
    assert replaced != changed and not group_alive(changed)
    assert status(start.port, "/health", "127.0.0.1:9999") == 200
