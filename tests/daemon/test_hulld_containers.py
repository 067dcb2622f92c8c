"""Container behaviour through hulld that Docker users rely on: log rotation, OOM kills, exit
codes, events, and records laid out as seeds/004 shows them."""

import json
import os
import socket
import threading
import time

import docker
import docker.errors
import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container


def test_log_rotation_with_log_opts(sdk: docker.DockerClient, hulld: HullDaemon) -> None:
    log_config = docker.types.LogConfig(type="json-file", config={"max-size": "1k", "max-file": "2"})
    c = sdk.containers.run("busybox", ["seq", "1", "500"], detach=True, log_config=log_config)
    try:
        assert c.wait()["StatusCode"] == 0
        files = sorted(f for f in os.listdir(hulld.data_root / "containers" / c.id) if "-json.log" in f)
        assert files == [f"{c.id}-json.log", f"{c.id}-json.log.1"]
        for f in files:
            assert os.path.getsize(hulld.data_root / "containers" / c.id / f) < 1000 + 200
        # What is left is the end of the output, oldest file first.
        lines = c.logs().decode().split()
        assert lines[-1] == "500" and lines == [str(n) for n in range(int(lines[0]), 501)]
    finally:
        c.remove(force=True)


def test_oom_killed_in_inspect(sdk: docker.DockerClient) -> None:
    c = sdk.containers.run(
        "busybox", ["sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived"], detach=True, mem_limit="8m"
    )
    try:
        assert c.wait()["StatusCode"] == 137
        c.reload()
        assert c.attrs["State"]["OOMKilled"] is True
        assert b"survived" not in c.logs()
    finally:
        c.remove(force=True)


def test_exit_codes_as_docker(hulld: HullDaemon) -> None:
    assert hulld.cli("docker", "run", "--rm", "busybox", "/etc/passwd").returncode == 126
    assert hulld.cli("docker", "run", "--rm", "busybox", "nosuchcommand").returncode == 127


def test_records_as_seeds_describe(sdk: docker.DockerClient, hulld: HullDaemon) -> None:
    c = sdk.containers.create("busybox", ["true"], name="recorded", hostname="rec")
    try:
        directory = hulld.data_root / "containers" / c.id
        assert {"config.v2.json", "hostconfig.json", "hostname", "hosts", "resolv.conf"} <= set(os.listdir(directory))
        config = json.loads((directory / "config.v2.json").read_text())
        assert config["ID"] == c.id and config["Name"] == "/recorded" and config["Driver"] == "overlay2"
        assert (directory / "hostname").read_text() == "rec\n"
        mounts = hulld.data_root / "image" / "overlay2" / "layerdb" / "mounts" / c.id
        assert sorted(os.listdir(mounts)) == ["init-id", "mount-id", "parent"]
        init_id = (mounts / "init-id").read_text()
        assert init_id == (mounts / "mount-id").read_text() + "-init"
        assert (hulld.data_root / "overlay2" / init_id / "diff" / "etc" / "hostname").exists()
    finally:
        c.remove()


def test_events_stream_and_filters(sdk: docker.DockerClient) -> None:
    since = time.time()
    seen: list[dict[str, object]] = []

    def listen() -> None:
        for ev in sdk.events(decode=True, filters={"type": "container", "container": "evented"}, since=since,
                             until=time.time() + 6):  # fmt: skip
            seen.append(ev)
            if ev.get("Action") == "destroy":
                return

    t = threading.Thread(target=listen)
    t.start()
    sdk.containers.run("busybox", ["true"], name="evented", remove=True)
    t.join(10)
    actions = [ev["Action"] for ev in seen]
    assert actions[:2] == ["create", "start"]
    assert "die" in actions and actions[-1] == "destroy"
    die = next(ev for ev in seen if ev["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "0"  # type: ignore[index]
    assert die["Actor"]["Attributes"]["name"] == "evented"  # type: ignore[index]


def test_start_and_stop_twice(sdk: docker.DockerClient, hulld: HullDaemon) -> None:
    c = sdk.containers.run("busybox", ["sleep", "30"], detach=True)
    try:
        assert hulld.request("POST", f"/containers/{c.id}/start")[0] == 304
        c.stop(timeout=0)
        assert hulld.request("POST", f"/containers/{c.id}/stop")[0] == 304
        status, body = hulld.request("POST", f"/containers/{c.id}/kill")
        assert status == 409 and body["message"] == f"Container {c.id} is not running"
    finally:
        c.remove(force=True)


def test_remove_running_needs_force(sdk: docker.DockerClient) -> None:
    c = sdk.containers.run("busybox", ["sleep", "30"], detach=True)
    try:
        with pytest.raises(docker.errors.APIError) as err:
            c.remove()
        assert err.value.status_code == 409
        assert "You cannot remove a running container" in str(err.value.explanation)
    finally:
        c.remove(force=True)


def _hijack_attach(hulld: HullDaemon, cid: str) -> socket.socket:
    """POST attach with Upgrade, as the docker CLI does; returns the socket after the 101 head."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(hulld.socket))
    s.sendall(
        f"POST /v1.43/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: d\r\n"
        "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101 ")
    return s


def test_attach_before_start_sees_all_output(sdk: docker.DockerClient, hulld: HullDaemon) -> None:
    # The client starts the container the moment it sees the 101: the attacher must already be
    # registered then, or a quick container ends unseen and the attach never ends.
    for _ in range(10):
        c = sdk.containers.create("busybox", ["echo", "hi"])
        try:
            s = _hijack_attach(hulld, c.id)
            sdk.api.start(c.id)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            s.close()
            assert out == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
        finally:
            c.remove(force=True)


def test_attach_of_a_removed_container_ends(sdk: docker.DockerClient, hulld: HullDaemon) -> None:
    c = sdk.containers.create("busybox", ["true"])
    s = _hijack_attach(hulld, c.id)
    c.remove()
    assert s.recv(65536) == b""  # the stream ends: nothing will ever start
    s.close()
