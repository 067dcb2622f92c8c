"""Netlink work for the bridge driver, through pyroute2: bridges, veth pairs, addresses, routes.

Each function opens its own netlink socket: a socket belongs to the network namespace of the
thread that opened it, so `configure_inside` works in whatever namespace NetnsThread put its
thread in, and the others in the host's.
"""

import errno
import os
from ipaddress import IPv4Address, IPv4Network

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

LOOPBACK = IPv4Network("127.0.0.0/8")
RT_TABLE_MAIN = 254
RTN_UNICAST = 1


def write_sysctl(path: str, value: str) -> None:
    with open(os.path.join("/proc/sys", path), "w") as f:
        f.write(value)


def enable_forwarding() -> None:
    write_sysctl("net/ipv4/ip_forward", "1")


def host_networks() -> list[IPv4Network]:
    """Every IPv4 network the host routes or has an address in (the default route aside)."""
    out = []
    with IPRoute() as ipr:
        for r in ipr.get_routes(family=2, table=RT_TABLE_MAIN):
            if r["dst_len"] and r["type"] == RTN_UNICAST and r.get("dst"):
                out.append(IPv4Network(f"{r.get('dst')}/{r['dst_len']}", strict=False))
        for a in ipr.get_addr(family=2):
            net = IPv4Network(f"{a.get('address')}/{a['prefixlen']}", strict=False)
            if not net.subnet_of(LOOPBACK):
                out.append(net)
    return out


def link_names() -> list[str]:
    with IPRoute() as ipr:
        return [str(link.get("ifname")) for link in ipr.get_links()]


def ensure_bridge(name: str, gateway: IPv4Address, prefixlen: int) -> None:
    """The bridge `name`, up, holding the gateway address; created or completed as needed."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            try:
                ipr.link("add", ifname=name, kind="bridge")
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
            found = ipr.link_lookup(ifname=name)
        index = found[0]
        have = {(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(family=2, index=index)}
        if (str(gateway), prefixlen) not in have:
            ipr.addr("add", index=index, address=str(gateway), prefixlen=prefixlen)
        ipr.link("set", index=index, state="up")
    # Published ports answer on 127.0.0.1 too: DNAT'd loopback packets may then leave by the bridge.
    write_sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")


def delete_link(name: str) -> None:
    """Delete a device (a veth takes its peer along); absent is fine."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as e:
                if e.code != errno.ENODEV:
                    raise


def add_veth(host_ifname: str, bridge: str, netns_path: str, ifname: str, mac: str) -> None:
    """A veth pair: `host_ifname` on `bridge`, up, in hairpin mode; its peer `ifname` (with
    `mac`) in the namespace.

    Hairpin mode lets the bridge send a frame back out of the port it came in by: a
    container's packet to its own published port (through a host address) comes back to it
    once DNAT'd, and the bridge (br_netfilter NATs bridged frames) would otherwise drop it.
    """
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=host_ifname, kind="veth",
                     peer={"ifname": ifname, "net_ns_fd": fd, "address": mac})  # fmt: skip
            try:
                master = ipr.link_lookup(ifname=bridge)[0]
                ipr.link("set", ifname=host_ifname, master=master, state="up")
                ipr.brport("set", index=ipr.link_lookup(ifname=host_ifname)[0], mode=1)  # IFLA_BRPORT_MODE: hairpin
            except BaseException:
                ipr.link("del", ifname=host_ifname)
                raise
    finally:
        os.close(fd)


def loopback_up() -> None:
    """Inside a new namespace: lo up (the kernel gives it 127.0.0.1 then)."""
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def configure_inside(ifname: str, address: str, prefixlen: int, gateway: str | None) -> None:
    """Inside a container's namespace: `ifname` addressed and up, the default route."""
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
        ipr.link("set", index=index, state="up")
        if gateway:
            ipr.route("add", dst="0.0.0.0/0", gateway=gateway)


def mac_for(address: IPv4Address) -> str:
    """Docker's rule: 02:42 then the four bytes of the IPv4 address, so a MAC is unique per network."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)
