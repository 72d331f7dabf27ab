"""Process helpers for tests that start real servers and Ray runtimes: free ports, process groups, and the
Ray processes of one runtime (found by its RAY_TMPDIR, never ``ray stop``, which stops every Ray on the machine)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

#: environment for subprocesses that start Ray or MLflow: no auth token, no usage reporting, no telemetry
QUIET_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the test skips when none can be bound)."""
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    except OSError as exc:
        pytest.skip(f"cannot bind a port on 127.0.0.1: {exc}")


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is still running (zombies, which nothing may reap here, aside)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if group == str(pgid) and state != "Z":
            return True
    return False


def terminate(send: Callable[[int], None], alive: Callable[[], bool], timeout: float) -> None:
    """``send(SIGTERM)``, then ``send(SIGKILL)`` if something is still ``alive()`` after ``timeout`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        send(sig)
        deadline = time.monotonic() + timeout
        while alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not alive():
            return


def stop_group(pgid: int, timeout: float = 30) -> None:
    """SIGTERM process group ``pgid``; SIGKILL it if it has not ended within ``timeout`` seconds."""
    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)

    terminate(send, lambda: group_alive(pgid), timeout)


def lose_head(driver: subprocess.Popen) -> None:
    """SIGKILL the whole session of ``driver`` (started with ``start_new_session``) at once, as a lost head
    loses the driver and its Ray runtime together, and reap the driver."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()


def started_under(proc: Path, temp: str) -> bool:
    """Whether process ``proc`` (``/proc/<pid>``) belongs to the Ray runtime under ``temp``: by its command
    line, its environment, or a file it holds open there (its logs). Ray's agents rename their process title
    (``ray::DashboardAgent``), which can overwrite both command line and environment; their logs stay open."""
    if temp in (proc / "cmdline").read_bytes().decode(errors="replace") or f"RAY_TMPDIR={temp}".encode() in (proc / "environ").read_bytes():
        return True
    for fd in (proc / "fd").iterdir():
        try:
            if os.readlink(fd).startswith(temp):
                return True
        except OSError:
            continue  # closed meanwhile
    return False


def ray_pids(temp: str) -> list[int]:
    """The processes of the Ray runtime started under RAY_TMPDIR=``temp`` (this process aside)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int(proc.name) != os.getpid() and started_under(proc, temp):
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue  # ended meanwhile, or not ours to read
    return found


def stop_ray_under(temp: str, timeout: float = 30) -> None:
    """Kill the Ray processes started under RAY_TMPDIR=``temp``: the cluster a test started, and nothing else
    (a leftover agent would keep its port)."""
    def send(sig: int) -> None:
        for pid in ray_pids(temp):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    terminate(send, lambda: bool(ray_pids(temp)), timeout)
