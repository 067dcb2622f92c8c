"""`docker cp` against hulld: the official docker CLI, the SDK's get_archive/put_archive, raw HEAD/GET/PUT.

A container made by `_make` has /d (a file f, a directory sub with g), a symlink /hostetc-link
-> /etc and a symlink /d/pw -> ../../../../etc/passwd: both must lead to the container's /etc,
never the host's.
"""

import base64
import io
import json
import os
import tarfile
import time
import uuid
from pathlib import Path

import docker
import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container

SETUP = (
    "mkdir -p /d/sub && echo hi > /d/f && echo x > /d/sub/g && ln -s /etc /hostetc-link"
    " && ln -s ../../../../etc/passwd /d/pw && echo ready > /tmp/ready"
)


def _make(sdk: docker.DockerClient, running: bool) -> docker.models.containers.Container:
    name = "cp-" + uuid.uuid4().hex[:8]
    if running:
        c = sdk.containers.run("busybox", ["sh", "-c", SETUP + " && sleep 600"], name=name, detach=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                c.get_archive("/tmp/ready")
                return c
            except docker.errors.NotFound:
                time.sleep(0.1)
        raise AssertionError("container did not get ready")
    c = sdk.containers.run("busybox", ["sh", "-c", SETUP], name=name, detach=True)
    assert c.wait(timeout=30)["StatusCode"] == 0
    return c


@pytest.fixture(params=["running", "stopped"])
def ctr(request: pytest.FixtureRequest, sdk: docker.DockerClient) -> docker.models.containers.Container:
    c = _make(sdk, request.param == "running")
    yield c
    c.remove(force=True)


def _tar(stream: object) -> tarfile.TarFile:
    return tarfile.open(fileobj=io.BytesIO(b"".join(stream)))  # type: ignore[arg-type]


def _one_file_tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_get_archive_file_dir_and_contents(ctr: docker.models.containers.Container) -> None:
    bits, st = ctr.get_archive("/d/f")
    t = _tar(bits)
    assert t.getnames() == ["f"]
    assert t.extractfile("f").read() == b"hi\n"  # type: ignore[union-attr]
    assert (st["name"], st["size"], st["mode"], st["linkTarget"]) == ("f", 3, 0o644, "")
    assert st["mtime"].endswith("Z")

    bits, st = ctr.get_archive("/d")
    assert _tar(bits).getnames() == ["d", "d/f", "d/pw", "d/sub", "d/sub/g"]
    assert st["mode"] == (1 << 31) | 0o755 and st["name"] == "d"

    bits, st = ctr.get_archive("/d/.")
    names = _tar(bits).getnames()
    assert names == [".", "./f", "./pw", "./sub", "./sub/g"] and st["name"] == "."


def test_symlinks_resolve_inside_the_container(ctr: docker.models.containers.Container) -> None:
    bits, st = ctr.get_archive("/hostetc-link")
    t = _tar(bits)
    assert [(m.name, m.linkname) for m in t.getmembers()] == [("hostetc-link", "/etc")]
    assert st["mode"] == (1 << 27) | 0o777 and st["linkTarget"] == "/etc"

    # Through the link (trailing "/"): the container's /etc, whose passwd is busybox's, not the host's.
    bits, _ = ctr.get_archive("/hostetc-link/")
    t = _tar(bits)
    assert t.getnames()[0] == "hostetc-link"
    container_passwd = t.extractfile("hostetc-link/passwd").read()  # type: ignore[union-attr]
    assert container_passwd != Path("/etc/passwd").read_bytes()

    _, st = ctr.get_archive("/d/pw")
    assert st["linkTarget"] == "/etc/passwd"  # ../../../../ stops at the container's root
    # A file named with a trailing "/" (dockerd 20.10 answers 500 with the host path of the file).
    with pytest.raises(docker.errors.NotFound, match="Could not find the file /d/pw/ in container"):
        ctr.get_archive("/d/pw/")

    # PUT through both links lands in the container's /etc; the host's stays as it was.
    name = "hull-cp-" + uuid.uuid4().hex[:8]
    assert ctr.put_archive("/hostetc-link", _one_file_tar(name, b"inside\n"))
    assert not os.path.exists(f"/etc/{name}")
    bits, _ = ctr.get_archive(f"/etc/{name}")
    assert _tar(bits).extractfile(name).read() == b"inside\n"  # type: ignore[union-attr]
    host_passwd = Path("/etc/passwd").read_bytes()
    with pytest.raises(docker.errors.APIError, match="extraction point is not a directory"):
        ctr.put_archive("/d/pw", _one_file_tar("x", b"no"))
    assert Path("/etc/passwd").read_bytes() == host_passwd


def test_put_archive_and_errors(hulld: HullDaemon, ctr: docker.models.containers.Container) -> None:
    assert ctr.put_archive("/d/sub", _one_file_tar("new", b"payload"))
    bits, _ = ctr.get_archive("/d/sub/new")
    assert _tar(bits).extractfile("new").read() == b"payload"  # type: ignore[union-attr]

    with pytest.raises(docker.errors.NotFound, match="Could not find the file /nodir in container"):
        ctr.put_archive("/nodir", _one_file_tar("x", b"x"))
    with pytest.raises(docker.errors.APIError, match="extraction point is not a directory") as e:
        ctr.put_archive("/d/f", _one_file_tar("x", b"x"))
    assert e.value.status_code == 400
    with pytest.raises(docker.errors.NotFound, match="Could not find the file /missing in container"):
        ctr.get_archive("/missing")

    # Entries that climb out are refused, and nothing lands outside the extraction point.
    for bad in ("../escaped", "/abs-escaped"):
        with pytest.raises(docker.errors.APIError):
            ctr.put_archive("/d/sub", _one_file_tar(bad, b"evil"))
    for where in ("/d/escaped", "/escaped", "/abs-escaped", "/d/sub/abs-escaped"):
        with pytest.raises(docker.errors.NotFound):
            ctr.get_archive(where)

    # HEAD: the stat header, and 404 without one for a missing path.
    status, _ = hulld.request("HEAD", f"/containers/{ctr.id}/archive?path=/missing")
    assert status == 404
    status, body = hulld.request("GET", f"/containers/{ctr.id}/archive")
    assert status == 400
    status, body = hulld.request("GET", "/containers/nonexistent/archive?path=/")
    assert (status, body) == (404, {"message": "No such container: nonexistent"})


def test_head_stat_header(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    c = _make(sdk, running=False)
    try:
        import http.client
        import socket

        class Conn(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(hulld.host.removeprefix("unix://"))

        conn = Conn("localhost")
        conn.request("HEAD", f"/containers/{c.name}/archive?path=/d/sub")
        resp = conn.getresponse()
        assert resp.status == 200
        st = json.loads(base64.b64decode(resp.getheader("X-Docker-Container-Path-Stat", "")))
        assert set(st) == {"name", "size", "mode", "mtime", "linkTarget"}
        assert (st["name"], st["mode"], st["linkTarget"]) == ("sub", (1 << 31) | 0o755, "")
        conn.close()
        stat = sdk.api.get_archive(c.id, "/d/f")[1]
        assert stat["size"] == 3
    finally:
        c.remove(force=True)


def test_events_archive_path_and_extract_to_dir(sdk: docker.DockerClient) -> None:
    c = _make(sdk, running=False)
    try:
        since = time.time() - 1
        b"".join(c.get_archive("/d/f")[0])
        c.put_archive("/d", _one_file_tar("e", b"e"))
        events = sdk.events(since=since, until=time.time() + 1, decode=True, filters={"container": c.id})
        actions = [ev["Action"] for ev in events]
        assert "archive-path" in actions and "extract-to-dir" in actions
    finally:
        c.remove(force=True)


def test_docker_cli_both_ways(hulld: HullDaemon, sdk: docker.DockerClient, tmp_path: Path) -> None:
    c = _make(sdk, running=True)
    try:
        r = hulld.cli("docker", "cp", f"{c.name}:/d/f", str(tmp_path / "f"))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "f").read_bytes() == b"hi\n"
        r = hulld.cli("docker", "cp", f"{c.name}:/d/sub/.", str(tmp_path / "subcopy"))
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "subcopy" / "g").read_bytes() == b"x\n"
        (tmp_path / "up").mkdir()
        (tmp_path / "up" / "a").write_bytes(b"A")
        r = hulld.cli("docker", "cp", str(tmp_path / "up"), f"{c.name}:/d/sub")
        assert r.returncode == 0, r.stderr
        assert c.exec_run(["cat", "/d/sub/up/a"]).output == b"A"
        r = hulld.cli("docker", "cp", str(tmp_path / "f"), f"{c.name}:/hostetc-link/from-cli")
        assert r.returncode == 0, r.stderr
        assert c.exec_run(["cat", "/etc/from-cli"]).output == b"hi\n"
        assert not os.path.exists("/etc/from-cli")
        r = hulld.cli("docker", "cp", f"{c.name}:/nope", str(tmp_path))
        assert r.returncode == 1
        assert "Could not find the file /nope in container" in r.stderr
        r = hulld.cli("docker", "cp", str(tmp_path / "f"), f"{c.name}:/nodir/x")
        assert r.returncode == 1 and "Could not find the file /nodir in container" in r.stderr
    finally:
        c.remove(force=True)
