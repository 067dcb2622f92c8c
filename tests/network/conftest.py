"""Helpers of the network tests: a free host port, a scratch namespace with a server in it."""

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a host TCP port that is free now."""
    return _free_port


@dataclass
class OutsideServer:
    """A TCP server on a non-loopback address of a test network namespace, reached through a veth."""

    address: str
    port: int
    host_address: str  # the host's end: what the server sees when traffic is masqueraded


NS = "hulltest-egress"
HOST_END, NS_END = "hvtest0egress", "eth0"
# Answers one line per connection: the client's address, as the server sees it. It reads the
# request first: closing a socket with unread data resets the connection, and wget then fails.
SERVER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)\n"
    "while True:\n"
    "    c, a = s.accept(); d = b''\n"
    "    try:\n"
    "        while b'\\r\\n\\r\\n' not in d and (x := c.recv(4096)): d += x\n"
    "        c.sendall(f'HTTP/1.0 200 OK\\r\\n\\r\\nfrom {a[0]}\\n'.encode())\n"
    "    except OSError: pass  # a probe that connected and left\n"
    "    c.close()\n"
)


def _wait_listening(address: str, port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def outside_server() -> Iterator[OutsideServer]:
    sh = lambda cmd: subprocess.run(cmd, shell=True, check=True)  # noqa: E731
    host, inside = "10.250.77.1", "10.250.77.2"
    sh(f"ip netns add {NS}")
    server = None
    try:
        sh(f"ip link add {HOST_END} type veth peer name {NS_END} netns {NS}")
        sh(f"ip addr add {host}/30 dev {HOST_END} && ip link set {HOST_END} up")
        sh(f"ip -n {NS} addr add {inside}/30 dev {NS_END} && ip -n {NS} link set {NS_END} up")
        server = subprocess.Popen(["ip", "netns", "exec", NS, "python3", "-c", SERVER, inside, "8000"])
        _wait_listening(inside, 8000)
        yield OutsideServer(inside, 8000, host)
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", HOST_END], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", NS], check=False)
