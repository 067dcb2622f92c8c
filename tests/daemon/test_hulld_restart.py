"""Live restore: containers outlive hulld (stopped or SIGKILLed) and a new hulld finds them again."""

import os
import signal
import time
from pathlib import Path

import docker
import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container



def _client(d: HullDaemon) -> docker.DockerClient:
    return docker.DockerClient(base_url=d.host, version="auto", timeout=60)


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_containers_survive_daemon_restart(own_hulld: HullDaemon, how: str) -> None:
    client = _client(own_hulld)
    names = ["keep1", "keep2", "victim"]
    for name in names:
        client.containers.run("busybox", ["sleep", "300"], detach=True, name=name)
    pids = {name: client.containers.get(name).attrs["State"]["Pid"] for name in names}
    client.close()

    getattr(own_hulld, how)()
    # While hulld is down: containers still run; one of them is killed.
    for pid in pids.values():
        assert os.path.exists(f"/proc/{pid}")
    os.kill(pids["victim"], signal.SIGKILL)
    _wait_gone(pids["victim"])
    own_hulld.start()

    client = _client(own_hulld)
    try:
        running = sorted(c.name for c in client.containers.list())
        assert running == ["keep1", "keep2"]
        victim = client.containers.get("victim")
        assert victim.status == "exited"
        assert victim.attrs["State"]["ExitCode"] == 137
        keep = client.containers.get("keep1")
        assert keep.attrs["State"]["Pid"] == pids["keep1"]
        keep.stop(timeout=0)
        keep.reload()
        assert keep.status == "exited" and keep.attrs["State"]["ExitCode"] == 137
        assert not os.path.exists(f"/proc/{pids['keep1']}")
        # The store is consistent: a new container runs, and every one of them can be removed.
        assert client.containers.run("busybox", ["echo", "ok"], remove=True) == b"ok\n"
        for c in client.containers.list(all=True):
            c.remove(force=True)
        assert client.containers.list(all=True) == []
    finally:
        client.close()


def test_a_killed_shim_takes_its_container_down_with_it(own_hulld: HullDaemon) -> None:
    """As containerd when a shim dies: the container is reported exited (255, nobody saw its
    status) and the runtime removes what the shim held: its processes and its cgroup."""
    client = _client(own_hulld)
    c = client.containers.run("busybox", ["sleep", "1000"], detach=True, name="orphaned")
    info = client.api.inspect_container(c.id)
    init_pid = info["State"]["Pid"]
    lines = Path(f"/proc/{init_pid}/cgroup").read_text().splitlines()
    cgroup = next(line.split(":", 2)[2] for line in lines if ":memory:" in line)
    shim = int((own_hulld.exec_root / "containers" / c.id / "shim.pid").read_text())
    os.kill(shim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while client.api.inspect_container(c.id)["State"]["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.api.inspect_container(c.id)["State"]["ExitCode"] == 255
    _wait_gone(init_pid)
    assert not os.path.exists(f"/proc/{init_pid}")
    assert not os.path.exists(f"/sys/fs/cgroup/memory{cgroup}")
    c.remove()
