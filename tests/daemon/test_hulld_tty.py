"""hulld's attach and resize answers for terminals, as dockerd 20.10 gives them: detach keys in
the stdin of a TTY attach end it and leave the container running, bad keys are a 400, a paused
container a 409; resize of a container without a terminal is a 200 that changes nothing, of a
stopped one a 409, with a bad size a 400."""

import socket
import time
from typing import Any

import docker
import pytest

from hull import detachkeys
from hull.testing.hulld import HullDaemon


def test_parse_detach_keys() -> None:
    assert detachkeys.parse(detachkeys.DEFAULT) == b"\x10\x11"
    assert detachkeys.parse("ctrl-@,a,ctrl-_,DEL,ctrl-\\") == b"\x00a\x1f\x7f\x1c"
    for bad in ("", "ctrl-", "ab", "ctrl-P", "ctrl-p,"):
        with pytest.raises(ValueError):
            detachkeys.parse(bad)


def test_scanner_holds_a_prefix_until_it_is_decided() -> None:
    s = detachkeys.Scanner(b"\x10\x11")
    assert s.feed(b"ab\x10") == (b"ab", False)
    assert s.feed(b"c") == (b"\x10c", False)
    assert s.feed(b"\x10\x10") == (b"\x10", False)
    assert s.feed(b"\x11rest") == (b"", True)
    assert detachkeys.Scanner(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


def _hijack(hulld: HullDaemon, cid: str, query: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(hulld.host.removeprefix("unix://"))
    sock.sendall(
        f"POST /v1.43/containers/{cid}/attach?{query} HTTP/1.1\r\nHost: x\r\n"
        "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _read_until(sock: socket.socket, text: bytes) -> bytes:
    got = b""
    while text not in got:
        chunk = sock.recv(4096)
        assert chunk, got
        got += chunk
    return got


def test_detach_keys_end_a_tty_attach(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    c = sdk.containers.run("busybox", ["cat"], tty=True, stdin_open=True, detach=True)
    try:
        sock = _hijack(hulld, c.id, "stream=1&stdin=1&stdout=1&detachKeys=ctrl-a,x")
        sock.sendall(b"one\r")
        _read_until(sock, b"one")
        sock.sendall(b"\x01x")
        rest = b""
        while chunk := sock.recv(4096):  # the daemon ends the stream
            rest += chunk
        sock.close()
        assert b"\x01" not in rest
        c.reload()
        assert c.status == "running"
        assert b"\x01" not in c.logs()
    finally:
        c.remove(force=True)


def _status(hulld: HullDaemon, method: str, path: str) -> tuple[int, Any]:
    return hulld.request(method, path)  # type: ignore[no-any-return]


def test_attach_and_resize_errors(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    c = sdk.containers.run("busybox", ["sleep", "100"], detach=True)
    try:
        assert _status(hulld, "POST", f"/containers/{c.id}/resize?h=10&w=20")[0] == 200
        for q in ("h=abc&w=20", "w=20", "h=10&w=70000"):
            status, body = _status(hulld, "POST", f"/containers/{c.id}/resize?{q}")
            assert status == 400 and "invalid value for" in body["message"], (q, body)
        status, body = _status(hulld, "POST", f"/containers/{c.id}/attach?stream=1&stdout=1&detachKeys=ctrl-")
        assert (status, body["message"]) == (400, "Invalid detach keys (ctrl-) provided")
        c.pause()
        status, body = _status(hulld, "POST", f"/containers/{c.id}/attach?stream=1&stdout=1")
        assert (status, body["message"]) == (409, f"container {c.id} is paused, unpause the container before attach")
        c.unpause()
        c.kill()
        c.wait(timeout=10)
        status, body = _status(hulld, "POST", f"/containers/{c.id}/resize?h=10&w=20")
        assert (status, body["message"]) == (409, f"Container {c.id} is not running")
        assert _status(hulld, "POST", "/containers/nonesuch/resize?h=1&w=1")[0] == 404
    finally:
        c.remove(force=True)


def test_tty_resize_reaches_the_pty(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    c = sdk.containers.run("busybox", ["sh"], tty=True, stdin_open=True, detach=True)
    try:
        assert _status(hulld, "POST", f"/containers/{c.id}/resize?h=33&w=77")[0] == 200
        deadline = time.monotonic() + 5
        while (
            out := c.exec_run(["stty", "-F", "/proc/1/fd/0", "size"]).output
        ) != b"33 77\n" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out == b"33 77\n"
    finally:
        c.remove(force=True)
