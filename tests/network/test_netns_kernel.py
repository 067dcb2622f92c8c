"""Namespaces and veths for real: made from a daemon thread, configured inside, removed without a trace."""

import asyncio
import os
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from pyroute2 import IPRoute  # type: ignore[import-untyped]

from hull.network import bridge, netns

pytestmark = pytest.mark.container


def _links_inside(thread: netns.NetnsThread, path: str) -> tuple[dict[str, list[str]], list[str], str]:
    def look() -> tuple[dict[str, list[str]], list[str], str]:
        with IPRoute() as ipr:
            links = {str(lk.get("ifname")): [] for lk in ipr.get_links()}
            for a in ipr.get_addr(family=2):
                links[str(ipr.get_links(a["index"])[0].get("ifname"))].append(f"{a.get('address')}/{a['prefixlen']}")
            routes = [
                f"{r.get('dst') or 'default'} via {r.get('gateway')}" for r in ipr.get_routes(family=2, table=254)
            ]
        return links, routes, os.readlink(netns.THREAD_NS)

    return asyncio.run(thread.run(thread.inside, path, look))


def test_namespace_veth_address_route_and_removal(tmp_path: Path) -> None:
    own_ns = os.readlink("/proc/self/ns/net")
    directory = str(tmp_path / "netns")
    netns.make_private_mount_dir(directory)
    thread = netns.NetnsThread()
    path = os.path.join(directory, "ns1")
    br, veth = "hulltestbr0", "hvtest0001"
    try:
        asyncio.run(thread.run(thread.create, path))
        assert os.readlink("/proc/self/ns/net") == own_ns  # the daemon stays where it was
        assert netns.is_mount_point(path)
        bridge.ensure_bridge(br, IPv4Address("10.251.0.1"), 24)
        bridge.add_veth(veth, br, path, "eth0", bridge.mac_for(IPv4Address("10.251.0.2")))

        def inside() -> None:
            bridge.loopback_up()
            bridge.configure_inside("eth0", "10.251.0.2", 24, "10.251.0.1")

        asyncio.run(thread.run(thread.inside, path, inside))
        links, routes, ns_id = _links_inside(thread, path)
        assert ns_id != own_ns
        assert links == {"lo": ["127.0.0.1/8"], "eth0": ["10.251.0.2/24"]}
        assert "default via 10.251.0.1" in routes
        assert veth in bridge.link_names()
        with IPRoute() as ipr:
            assert ipr.get_links(ifname=veth)[0].get("master") == ipr.link_lookup(ifname=br)[0]
    finally:
        bridge.delete_link(veth)
        netns.remove(path)
        bridge.delete_link(br)
        thread.close()
        netns.unmount_dir(directory)
    assert not os.path.exists(path) and not netns.is_mount_point(directory)
    assert veth not in bridge.link_names() and br not in bridge.link_names()
    assert os.readlink("/proc/self/ns/net") == own_ns
