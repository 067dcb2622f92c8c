"""The network scenarios through the official docker CLI against hulld (DOCKER_HOST = its socket)."""

import json
import subprocess
import time
from collections.abc import Callable

import pytest
from webcheck import SERVE, fetch

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container

def docker(d: HullDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    return d.cli("docker", *args)


def ok(d: HullDaemon, *args: str) -> str:
    r = docker(d, *args)
    assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr}"
    return r.stdout


def test_user_network_by_name_and_published_ports(hulld: HullDaemon, free_port: Callable[[], int]) -> None:
    port = free_port()
    ok(hulld, "network", "create", "--subnet", "10.125.0.0/24", "dnet")
    try:
        ls = ok(hulld, "network", "ls")
        assert ls.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        assert any(line.split()[1:] == ["dnet", "bridge", "local"] for line in ls.splitlines()[1:])
        ok(hulld, "run", "-d", "--name", "dweb", "--network", "dnet", "--network-alias", "site",
           "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", SERVE)  # fmt: skip
        for host in ("dweb", "site"):
            out = ok(hulld, "run", "--rm", "--network", "dnet", "busybox", "wget", "-qO-", f"http://{host}/")
            assert out.startswith("hello from")
        assert fetch(f"http://127.0.0.1:{port}/").startswith("hello from")
        assert ok(hulld, "port", "dweb").strip() == f"80/tcp -> 127.0.0.1:{port}"
        assert f"127.0.0.1:{port}->80/tcp" in ok(hulld, "ps", "--filter", "name=dweb")
        ip = ok(hulld, "inspect", "-f", "{{.NetworkSettings.Networks.dnet.IPAddress}}", "dweb").strip()
        assert ip.startswith("10.125.0.")
        net = json.loads(ok(hulld, "network", "inspect", "dnet"))[0]
        assert net["IPAM"]["Config"] == [{"Subnet": "10.125.0.0/24", "Gateway": "10.125.0.1"}]
        assert [c["IPv4Address"] for c in net["Containers"].values()] == [f"{ip}/24"]
        r = docker(hulld, "network", "rm", "dnet")
        assert r.returncode != 0 and "has active endpoints" in r.stderr
    finally:
        docker(hulld, "rm", "-f", "dweb")
        docker(hulld, "network", "rm", "dnet")


def test_publish_all_and_default_bridge(hulld: HullDaemon) -> None:
    try:
        ok(hulld, "run", "-d", "--name", "dall", "--expose", "80", "-P", "busybox", "sh", "-c", SERVE)
        host_port = ok(hulld, "port", "dall", "80").strip().rsplit(":", 1)[1]
        assert fetch(f"http://127.0.0.1:{host_port}/").startswith("hello from")
        info = json.loads(ok(hulld, "inspect", "dall"))[0]["NetworkSettings"]
        assert info["IPAddress"] and info["Gateway"] and info["Networks"]["bridge"]["IPAddress"] == info["IPAddress"]
        hosts = ok(hulld, "exec", "dall", "cat", "/etc/hosts")
        assert f"{info['IPAddress']}\t" in hosts
    finally:
        docker(hulld, "rm", "-f", "dall")


def test_errors_as_docker_words_them(hulld: HullDaemon) -> None:
    r = docker(hulld, "run", "--rm", "--network", "ghostnet", "busybox", "true")
    assert r.returncode != 0 and "network ghostnet not found" in r.stderr
    ok(hulld, "network", "create", "--subnet", "10.126.0.0/16", "dov1")
    try:
        r = docker(hulld, "network", "create", "--subnet", "10.126.1.0/24", "dov2")
        assert r.returncode != 0 and "Pool overlaps with other one on this address space" in r.stderr
    finally:
        docker(hulld, "network", "rm", "dov1")


def test_connect_disconnect_prune(hulld: HullDaemon) -> None:
    ok(hulld, "network", "create", "dcn")
    ok(hulld, "network", "create", "dunused")
    try:
        ok(hulld, "run", "-d", "--name", "dcon", "busybox", "sh", "-c", SERVE)
        ok(hulld, "network", "connect", "--alias", "other", "dcn", "dcon")
        out = ok(hulld, "run", "--rm", "--network", "dcn", "busybox", "wget", "-qO-", "http://other/")
        assert out.startswith("hello from")
        ok(hulld, "network", "disconnect", "dcn", "dcon")
        pruned = ok(hulld, "network", "prune", "-f")
        assert "dcn" in pruned and "dunused" in pruned
        assert "dcn" not in ok(hulld, "network", "ls")
    finally:
        docker(hulld, "rm", "-f", "dcon")
        docker(hulld, "network", "rm", "dcn", "dunused")


def test_network_events_follow_the_container(hulld: HullDaemon) -> None:
    # As dockerd: connect before start on each network, disconnect after die on each, those
    # connected while it ran included.
    ok(hulld, "network", "create", "evnet1")
    ok(hulld, "network", "create", "evnet2")
    try:
        since = str(int(time.time()) - 1)
        cid = ok(hulld, "run", "-d", "--network", "evnet1", "busybox", "sleep", "60").strip()
        ok(hulld, "network", "connect", "evnet2", cid)
        ok(hulld, "rm", "-f", cid)
        fmt = "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}"
        events = ok(hulld, "events", "--since", since, "--until", str(int(time.time()) + 1), "--format", fmt)
        ours = [f"{f[0]} {f[1]} {f[3]}" for f in map(str.split, events.splitlines()) if cid in (f[2], f[4])]
        assert [e for e in ours if e.startswith("network ")] == [
            "network connect evnet1", "network connect evnet2",
            "network disconnect evnet1", "network disconnect evnet2",
        ]  # fmt: skip
        assert ours.index("network connect evnet1") < next(i for i, e in enumerate(ours) if " start " in e)
        assert next(i for i, e in enumerate(ours) if " die " in e) < ours.index("network disconnect evnet1")
    finally:
        ok(hulld, "network", "rm", "evnet1", "evnet2")


def test_a_container_reaches_its_own_published_port(hulld: HullDaemon, free_port: Callable[[], int]) -> None:
    # Hairpin NAT: out to a host address, DNAT'd back to the same container, which must see the
    # answer come from where it sent the request.
    port = free_port()
    ok(hulld, "run", "-d", "--name", "hairpin", "-p", f"{port}:80", "busybox", "sh", "-c", SERVE)
    try:
        gateway = ok(hulld, "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", "bridge").strip()
        assert fetch(f"http://127.0.0.1:{port}/").startswith("hello from")  # serving by now
        out = ok(hulld, "exec", "hairpin", "timeout", "10", "wget", "-qO-", f"http://{gateway}:{port}/")
        assert out.startswith("hello from")
    finally:
        ok(hulld, "rm", "-f", "hairpin")
