"""The issue's scenario through the Docker SDK for Python against hulld (a real, unmodified client)."""

import io
import os
import time

import docker
import docker.errors
import pytest

from hull.testing import mounts_under
from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container


def test_run_with_output(sdk: docker.DockerClient) -> None:
    out = sdk.containers.run("busybox", ["sh", "-c", "echo hello; echo oops >&2"], remove=True, stderr=True)
    assert out == b"hello\noops\n"


def test_exit_status_and_logs(sdk: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.ContainerError) as err:
        sdk.containers.run("busybox", ["sh", "-c", "echo bye; exit 3"], remove=True)
    assert err.value.exit_status == 3


def test_detached_logs_follow_stop_rm(sdk: docker.DockerClient, hulld: HullDaemon) -> None:
    c = sdk.containers.run(
        "busybox", ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done; sleep 60"], detach=True
    )
    try:
        stream = c.logs(stream=True, follow=True)
        got = b""
        while got.count(b"\n") < 3:
            got += next(stream)
        assert got == b"line1\nline2\nline3\n"
        c.reload()
        assert c.status == "running"
        assert c.attrs["State"]["Pid"] > 0
        t0 = time.monotonic()
        c.stop(timeout=1)  # sh ignores SIGTERM as PID 1: the kill after the timeout ends it
        assert time.monotonic() - t0 < 10
        c.reload()
        assert c.status == "exited"
        assert c.attrs["State"]["ExitCode"] == 137
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        sdk.containers.get(c.id)
    assert not os.path.exists(hulld.data_root / "containers" / c.id)


def test_name_conflict(sdk: docker.DockerClient) -> None:
    c = sdk.containers.create("busybox", "true", name="conflicted")
    try:
        with pytest.raises(docker.errors.APIError) as err:
            sdk.containers.create("busybox", "true", name="conflicted")
        assert err.value.status_code == 409
        assert 'The container name "/conflicted" is already in use' in str(err.value.explanation)
    finally:
        c.remove()


def test_inspect_fields(sdk: docker.DockerClient, hulld: HullDaemon) -> None:
    c = sdk.containers.run(
        "busybox", ["sleep", "30"], detach=True, name="inspected", hostname="box", environment=["A=1"]
    )
    try:
        c.reload()
        a = c.attrs
        assert a["Name"] == "/inspected"
        assert a["State"]["Status"] == "running" and a["State"]["Running"] is True
        assert a["State"]["StartedAt"] != "0001-01-01T00:00:00Z"
        assert a["Config"]["Hostname"] == "box"
        assert "A=1" in a["Config"]["Env"]
        assert a["Config"]["Image"] == "busybox"
        assert a["Image"].startswith("sha256:")
        assert a["GraphDriver"]["Name"] == "overlay2"
        lowers = a["GraphDriver"]["Data"]["LowerDir"].split(":")
        assert len(lowers) == 2 and lowers[0].endswith("-init/diff")  # the init layer, then busybox's one layer
        merged = a["GraphDriver"]["Data"]["MergedDir"]
        assert merged in mounts_under(hulld.data_root)
        assert a["HostConfig"]["NetworkMode"] == "default"
        assert a["LogPath"].endswith(f"{c.id}-json.log")
        with open(f"/proc/{a['State']['Pid']}/root/etc/hostname") as f:
            assert f.read() == "box\n"
    finally:
        c.remove(force=True)


def test_resource_flags_in_cgroup_files(sdk: docker.DockerClient) -> None:
    script = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/pids/pids.max"
    )
    out = sdk.containers.run(
        "busybox",
        ["sh", "-c", script],
        remove=True,
        mem_limit="64m",
        nano_cpus=500_000_000,
        cpu_shares=512,
        pids_limit=42,
    )
    assert out.decode().split() == [str(64 << 20), "50000", "512", "42"]


def test_rm_leaves_nothing(sdk: docker.DockerClient, hulld: HullDaemon) -> None:
    before = set(os.listdir(hulld.data_root / "overlay2"))
    sdk.containers.run("busybox", "true", remove=True)
    assert sdk.containers.list(all=True) == []
    assert set(os.listdir(hulld.data_root / "overlay2")) == before
    assert os.listdir(hulld.data_root / "containers") == []
    assert os.listdir(hulld.data_root / "image" / "overlay2" / "layerdb" / "mounts") == []
    assert [m for m in mounts_under(hulld.data_root) if "/merged" in m] == []


def test_save_load_round_trip(sdk: docker.DockerClient) -> None:
    image = sdk.images.get("busybox")
    data = b"".join(sdk.api.get_image("busybox"))  # by name: the archive keeps the tag
    sdk.images.remove(image.id, force=True)
    loaded = sdk.images.load(io.BytesIO(data).read())
    assert [i.id for i in loaded] == [image.id]
    assert "busybox:latest" in sdk.images.get(image.id).tags


def test_commit(sdk: docker.DockerClient) -> None:
    c = sdk.containers.run("busybox", ["sh", "-c", "echo made > /made"], detach=True)
    try:
        c.wait()
        image = c.commit(repository="committed", tag="v1", changes=['CMD ["cat", "/made"]'])
        out = sdk.containers.run("committed:v1", remove=True)
        assert out == b"made\n"
        assert image.attrs["Config"]["Cmd"] == ["cat", "/made"]
    finally:
        c.remove(force=True)
    sdk.images.remove("committed:v1")
