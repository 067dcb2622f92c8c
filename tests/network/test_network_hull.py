"""The issue's network scenarios through `hull` against a private hulld with its own default bridge."""

import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from webcheck import SERVE, fetch

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container

# Debian's busybox-static wget crashes with -T (its timeout): plain wget, and nc -w where a
# connection is expected to fail.


def hull(d: HullDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    return d.cli("hull", *args)


def ok(d: HullDaemon, *args: str) -> str:
    r = hull(d, *args)
    assert r.returncode == 0, f"hull {' '.join(args)}: {r.stderr}"
    return r.stdout


def assert_no_sandboxes(d: HullDaemon) -> None:
    """No namespace file, no veth on the daemon's bridge; every thread of hulld in the host's namespace."""
    assert os.listdir(d.exec_root / "netns") == []
    bridge = Path("/sys/class/net") / d.bridge / "brif"
    assert list(bridge.iterdir()) == []
    host_ns = os.readlink("/proc/self/ns/net")
    for task in Path(f"/proc/{d.pid}/task").iterdir():
        assert os.readlink(task / "ns" / "net") == host_ns


def inspect(d: HullDaemon, ref: str) -> dict[str, Any]:
    return dict(json.loads(ok(d, "inspect", ref))[0])


def test_two_containers_on_a_user_network(hulld: HullDaemon) -> None:
    nid = ok(hulld, "network", "create", "--label", "t=1", "appnet").strip()
    try:
        ok(
            hulld,
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "appnet",
            "--network-alias",
            "www",
            "busybox",
            "sh",
            "-c",
            SERVE,
        )
        # By name, by alias, by short id; the server's /etc/hosts carries its own name.
        for host in ("web", "www", inspect(hulld, "web")["Id"][:12]):
            out = ok(hulld, "run", "--rm", "--network", "appnet", "busybox", "wget", "-qO-", f"http://{host}/")
            assert out.startswith("hello from ")
        hosts = ok(hulld, "exec", "web", "cat", "/etc/hosts")
        settings = inspect(hulld, "web")["NetworkSettings"]
        ep = settings["Networks"]["appnet"]
        assert f"{ep['IPAddress']}\t" in hosts and ep["NetworkID"] == nid and "www" in ep["Aliases"]
        assert settings["IPAddress"] == ""  # top-level fields are the default bridge's
        net = json.loads(ok(hulld, "network", "inspect", "appnet"))[0]
        assert net["Labels"] == {"t": "1"} and ep["Gateway"] == net["IPAM"]["Config"][0]["Gateway"]
        assert [c["Name"] for c in net["Containers"].values()] == ["web"]
        # The default bridge has no DNS for names (as in Docker) and is isolated from appnet.
        r = hull(hulld, "run", "--rm", "busybox", "wget", "-qO-", "http://web/")
        assert r.returncode != 0
        r = hull(hulld, "run", "--rm", "busybox", "nc", "-w", "2", ep["IPAddress"], "80")
        assert r.returncode != 0
        r = hull(hulld, "network", "rm", "appnet")
        assert r.returncode != 0 and "has active endpoints" in r.stderr
        assert "appnet" in ok(hulld, "network", "ls")
    finally:
        hull(hulld, "rm", "-f", "web")
        hull(hulld, "network", "rm", "appnet")
    assert "appnet" not in ok(hulld, "network", "ls")
    assert_no_sandboxes(hulld)
    assert not any(name.startswith("hull-" + nid[:10]) for name in os.listdir("/sys/class/net"))


def test_connect_disconnect_and_link(hulld: HullDaemon) -> None:
    ok(hulld, "network", "create", "--subnet", "10.123.0.0/24", "--gateway", "10.123.0.254", "cnet")
    try:
        ok(hulld, "run", "-d", "--name", "lsrv", "busybox", "sh", "-c", SERVE)
        out = ok(hulld, "run", "--rm", "--link", "lsrv:db", "busybox", "wget", "-qO-", "http://db/")
        assert out.startswith("hello from")
        ok(hulld, "network", "connect", "--ip", "10.123.0.9", "cnet", "lsrv")
        assert inspect(hulld, "lsrv")["NetworkSettings"]["Networks"]["cnet"]["IPAddress"] == "10.123.0.9"
        out = ok(hulld, "run", "--rm", "--network", "cnet", "busybox", "wget", "-qO-", "http://lsrv/")
        assert out.startswith("hello from")
        ok(hulld, "network", "disconnect", "cnet", "lsrv")
        assert "cnet" not in inspect(hulld, "lsrv")["NetworkSettings"]["Networks"]
        r = hull(hulld, "network", "disconnect", "cnet", "lsrv")
        assert r.returncode != 0 and "is not connected to network cnet" in r.stderr
    finally:
        hull(hulld, "rm", "-f", "lsrv")
        hull(hulld, "network", "rm", "cnet")


def test_published_ports(hulld: HullDaemon, free_port: Callable[[], int]) -> None:
    port = free_port()
    try:
        ok(hulld, "run", "-d", "--name", "pub", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", SERVE)
        assert fetch(f"http://127.0.0.1:{port}/").startswith("hello from")
        assert f"127.0.0.1:{port}->80/tcp" in ok(hulld, "ps")
        assert ok(hulld, "port", "pub").strip() == f"80/tcp -> 127.0.0.1:{port}"
        ok(hulld, "run", "-d", "--name", "puball", "--expose", "80", "-P", "busybox", "sh", "-c", SERVE)
        binds = inspect(hulld, "puball")["NetworkSettings"]["Ports"]["80/tcp"]
        assert binds[0]["HostIp"] == "0.0.0.0" and int(binds[0]["HostPort"]) > 1024
        assert fetch(f"http://127.0.0.1:{binds[0]['HostPort']}/").startswith("hello from")
    finally:
        hull(hulld, "rm", "-f", "pub", "puball")
    assert ok(hulld, "ps", "-aq") == ""
    assert_no_sandboxes(hulld)


def test_nat_egress_from_the_default_bridge(hulld: HullDaemon, outside_server: Any) -> None:
    url = f"http://{outside_server.address}:{outside_server.port}/"
    out = ok(hulld, "run", "--rm", "busybox", "wget", "-qO-", url)
    assert out.strip() == f"from {outside_server.host_address}"  # masqueraded behind the host's address


def test_bad_input(hulld: HullDaemon) -> None:
    r = hull(hulld, "run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert r.returncode != 0 and "network nosuchnet not found" in r.stderr
    ok(hulld, "network", "create", "--subnet", "10.124.0.0/16", "ov1")
    try:
        r = hull(hulld, "network", "create", "--subnet", "10.124.5.0/24", "ov2")
        assert r.returncode != 0 and "Pool overlaps with other one on this address space" in r.stderr
        r = hull(hulld, "network", "create", "ov1")
        assert r.returncode != 0 and "network with name ov1 already exists" in r.stderr
        assert "ov2" not in ok(hulld, "network", "ls")
    finally:
        hull(hulld, "network", "rm", "ov1")
    r = hull(hulld, "network", "rm", "bridge")
    assert r.returncode != 0 and "bridge is a pre-defined network and cannot be removed" in r.stderr
    r = hull(hulld, "run", "--rm", "--ip", "172.30.0.9", "busybox", "true")
    assert r.returncode != 0 and "user specified IP address is supported on user defined networks only" in r.stderr


def test_port_in_use(hulld: HullDaemon, free_port: Callable[[], int]) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = hull(hulld, "run", "-d", "--name", "busy", "-p", f"{port}:80", "busybox", "sleep", "30")
        assert r.returncode != 0 and "address already in use" in r.stderr
    other = free_port()
    try:
        ok(hulld, "run", "-d", "--name", "first", "-p", f"{other}:80", "busybox", "sleep", "30")
        r = hull(hulld, "run", "-d", "--name", "second", "-p", f"{other}:80", "busybox", "sleep", "30")
        assert r.returncode != 0 and f"Bind for 0.0.0.0:{other} failed: port is already allocated" in r.stderr
        # Nothing half-made: the failed container is created, not running, with no sandbox.
        failed = inspect(hulld, "second")
        assert failed["State"]["Status"] == "created" and failed["NetworkSettings"]["SandboxKey"] == ""
        bridge_net = json.loads(ok(hulld, "network", "inspect", "bridge"))[0]
        assert [c["Name"] for c in bridge_net["Containers"].values()] == ["first"]
    finally:
        hull(hulld, "rm", "-f", "busy", "first", "second")
    assert_no_sandboxes(hulld)


def test_restart_keeps_networks_and_endpoints(own_hulld: HullDaemon, free_port: Callable[[], int]) -> None:
    d = own_hulld
    port = free_port()
    ok(d, "network", "create", "keepnet")
    ok(
        d,
        "run",
        "-d",
        "--name",
        "kept",
        "--network",
        "keepnet",
        "-p",
        f"127.0.0.1:{port}:80",
        "busybox",
        "sh",
        "-c",
        SERVE,
    )
    assert fetch(f"http://127.0.0.1:{port}/").startswith("hello from")
    before = inspect(d, "kept")["NetworkSettings"]["Networks"]["keepnet"]["IPAddress"]
    d.restart()
    assert "keepnet" in ok(d, "network", "ls")
    assert inspect(d, "kept")["NetworkSettings"]["Networks"]["keepnet"]["IPAddress"] == before
    assert fetch(f"http://127.0.0.1:{port}/").startswith("hello from")
    out = ok(d, "run", "--rm", "--network", "keepnet", "busybox", "wget", "-qO-", "http://kept/")
    assert out.startswith("hello from")
    ok(d, "rm", "-f", "kept")
    ok(d, "network", "rm", "keepnet")


def test_internal_network_has_no_way_out(hulld: HullDaemon, outside_server: Any) -> None:
    ok(hulld, "network", "create", "--internal", "inner")
    try:
        r = hull(hulld, "run", "--rm", "--network", "inner", "busybox", "nc", "-w", "2", outside_server.address, "8000")
        assert r.returncode != 0
        net = json.loads(ok(hulld, "network", "inspect", "inner"))[0]
        assert net["Internal"] is True
    finally:
        hull(hulld, "network", "rm", "inner")


def test_crash_then_restart_frees_what_a_dead_container_held(
    own_hulld: HullDaemon, free_port: Callable[[], int]
) -> None:
    d = own_hulld
    port = free_port()
    ok(d, "run", "-d", "--name", "doomed", "-p", f"{port}:80", "busybox", "sleep", "300")
    pid = inspect(d, "doomed")["State"]["Pid"]
    d.kill()  # SIGKILL: hulld tidies nothing
    os.kill(pid, 9)  # the container dies while nobody watches
    d.start()
    deadline = time.monotonic() + 10
    while inspect(d, "doomed")["State"]["Running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert inspect(d, "doomed")["NetworkSettings"]["Ports"] == {}
    assert (
        f"--dport {port} " not in subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    )
    assert_no_sandboxes(d)
    # The port is free again: a new container takes it.
    ok(d, "run", "-d", "--name", "heir", "-p", f"{port}:80", "busybox", "sleep", "300")
    ok(d, "rm", "-f", "doomed", "heir")


def test_none_has_loopback_only(hulld: HullDaemon) -> None:
    out = ok(hulld, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "-4", "addr")
    assert "127.0.0.1/8" in out and "eth0" not in out
    assert_no_sandboxes(hulld)


def _dns_query(qid: int, name: str) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", 1, 1)  # A, IN


def _a_records(reply: bytes) -> list[str]:
    """The A records of a reply whose answers name the question by pointer (as the server's do)."""
    count = struct.unpack("!H", reply[6:8])[0]
    pos = reply.index(b"\0", 12) + 5  # past the question's name, type and class
    out = []
    for _ in range(count):
        rtype, _, _, size = struct.unpack("!HHIH", reply[pos + 2 : pos + 12])
        if rtype == 1:
            out.append(".".join(str(b) for b in reply[pos + 12 : pos + 12 + size]))
        pos += 12 + size
    return out


def _recv_exactly(s: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := s.recv(size - len(data))):
        data += chunk
    return data


def test_embedded_dns_answers_over_tcp_as_over_udp(hulld: HullDaemon) -> None:
    # Resolvers retry over TCP when an answer is too long for a datagram (the TC bit).
    docker = ["docker", "--host", hulld.host]
    subprocess.run([*docker, "network", "create", "tcpdns"], check=True, capture_output=True)
    try:
        subprocess.run([*docker, "run", "-d", "--name", "named-one", "--network", "tcpdns", "busybox", "sleep", "60"],
                       check=True, capture_output=True)  # fmt: skip
        ip = subprocess.run([*docker, "inspect", "-f", "{{.NetworkSettings.Networks.tcpdns.IPAddress}}", "named-one"],
                            check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
        gateway = subprocess.run([*docker, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", "tcpdns"],
                                 check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
        with socket.create_connection((gateway, 53), timeout=5) as s:
            for qid, name in ((1, "named-one"), (2, "NAMED-ONE.")):  # two queries on one connection
                query = _dns_query(qid, name)
                s.sendall(struct.pack("!H", len(query)) + query)
                size = struct.unpack("!H", _recv_exactly(s, 2))[0]
                reply = _recv_exactly(s, size)
                assert struct.unpack("!H", reply[:2])[0] == qid and _a_records(reply) == [ip]
            s.sendall(struct.pack("!H", 3) + b"bad")  # shorter than a header: no answer, the server hangs up
            assert s.recv(16) == b""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            u.sendto(_dns_query(3, "named-one"), (gateway, 53))
            assert _a_records(u.recv(512)) == [ip]
    finally:
        subprocess.run([*docker, "rm", "-f", "named-one"], capture_output=True)
        subprocess.run([*docker, "network", "rm", "tcpdns"], capture_output=True)
