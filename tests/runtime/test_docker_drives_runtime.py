"""Real Docker drives hull-runtime: dockerd --add-runtime hull=..., through containerd's runc shim.

This is the runtime's compatibility contract: an engine that drives runc drives hull-runtime
unchanged (create --console-socket/--pid-file, start, state, kill, delete, exec --process,
ps, pause, resume, exit statuses and error shapes).
"""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.testing.dockerd import DockerDaemon

pytestmark = pytest.mark.container

IMAGE = "busybox:hull-test"


@pytest.fixture(scope="module")
def dockerd(busybox_rootfs: Path) -> Iterator[DockerDaemon]:
    daemon = DockerDaemon(runtimes={"hull": str(Path(sys.executable).parent / "hull-runtime")})
    try:
        archive = subprocess.run(["tar", "-C", str(busybox_rootfs), "-c", "."], capture_output=True, check=True)
        daemon.docker("import", "-", IMAGE, input=archive.stdout)
        yield daemon
    finally:
        daemon.stop()


def test_run_prints_from_inside_and_returns_the_exit_status(dockerd: DockerDaemon) -> None:
    out = dockerd.docker("run", "--rm", "--runtime", "hull", "--hostname", "box", IMAGE,
                         "sh", "-c", "echo pid=$$; hostname; ls /proc | grep -c '^[0-9]'").stdout.split()  # fmt: skip
    assert out[:2] == ["pid=1", "box"]
    assert int(out[2]) <= 3
    assert dockerd.docker("run", "--rm", "--runtime", "hull", IMAGE, "sh", "-c", "exit 3", check=False).returncode == 3


def test_detached_container_limits_exec_top_pause_stop(dockerd: DockerDaemon) -> None:
    cid = dockerd.docker("run", "-d", "--runtime", "hull", "--memory", "64m", "--pids-limit", "20", IMAGE,
                         "sleep", "300").stdout.strip()  # fmt: skip
    try:
        limit = dockerd.docker("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
        assert int(limit) == 64 << 20
        assert dockerd.docker("exec", cid, "cat", "/sys/fs/cgroup/pids/pids.max").stdout.strip() == "20"
        assert dockerd.docker("exec", cid, "sh", "-c", "exit 4", check=False).returncode == 4
        assert "sleep 300" in dockerd.docker("top", cid).stdout
        dockerd.docker("pause", cid)
        assert dockerd.docker("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "paused"
        dockerd.docker("unpause", cid)
        assert dockerd.docker("exec", "-t", cid, "tty").stdout.strip() == "/dev/pts/0"
        dockerd.docker("stop", "-t", "1", cid)
        assert dockerd.docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "137"
    finally:
        dockerd.docker("rm", "-f", cid, check=False)


def test_terminal(dockerd: DockerDaemon) -> None:
    out = dockerd.docker("run", "--rm", "-t", "--runtime", "hull", IMAGE, "tty").stdout
    assert out == "/dev/pts/0\r\n"
