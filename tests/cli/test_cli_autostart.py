"""`hull` on a machine where no daemon answers: it starts hulld itself (default socket only)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from hull.daemon.config import DEFAULT_EXEC_ROOT, DEFAULT_HOST

pytestmark = pytest.mark.container

DEFAULT_SOCKET = DEFAULT_HOST.removeprefix("unix://")
PIDFILE = os.path.join(DEFAULT_EXEC_ROOT, "hulld.pid")


def _hull(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("HULL_HOST", "DOCKER_HOST")}
    return subprocess.run(
        [sys.executable, "-m", "hull.cli.main", *args], capture_output=True, text=True, timeout=60,
        env={**base, **(env or {})}, check=False,
    )  # fmt: skip


def _answers(path: str) -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_hull_starts_hulld_on_the_default_socket_only() -> None:
    # An explicit host is the user's choice: nothing is started there.
    done = _hull("version", env={"HULL_HOST": "unix:///tmp/hull-nobody-here.sock"})
    assert done.returncode == 1
    assert "Cannot connect to hulld at unix:///tmp/hull-nobody-here.sock" in done.stderr
    assert not os.path.exists("/tmp/hull-nobody-here.sock")

    already = _answers(DEFAULT_SOCKET)
    done = _hull("ps", "-a")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("CONTAINER ID")
    if already:
        assert "started hulld" not in done.stderr  # a daemon was there: used, not doubled
        return
    # We started it: it must say so, keep running for the next command, and we stop it again.
    assert "hull: started hulld (pid " in done.stderr
    with open(PIDFILE) as f:
        pid = int(f.read())
    try:
        again = _hull("version")
        assert again.returncode == 0 and "started hulld" not in again.stderr
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not _answers(DEFAULT_SOCKET)
