"""IPv4 address management: subnets from Docker's default pools, addresses within a subnet.

Pure functions of what the caller says is in use (other networks, the host's routes): no
kernel access here. Errors are worded as Docker's.
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from hull.errors import Conflict, HullError, InvalidArgument

Net = ipaddress.IPv4Network
Addr = ipaddress.IPv4Address

# Docker's default address pools: 172.17-31.0.0/16, then 192.168.0-240.0/20.
DEFAULT_POOLS: tuple[Net, ...] = tuple(
    [Net(f"172.{n}.0.0/16") for n in range(17, 32)] + [Net(f"192.168.{n}.0/20") for n in range(0, 256, 16)]
)
NO_POOL = "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"


def overlaps(net: Net, used: Iterable[Net]) -> bool:
    return any(net.overlaps(u) for u in used)


def choose_subnet(used: Iterable[Net]) -> Net:
    """The first default pool that overlaps nothing in `used` (networks, host routes)."""
    taken = list(used)
    for pool in DEFAULT_POOLS:
        if not overlaps(pool, taken):
            return pool
    raise HullError(NO_POOL)


def parse_network(text: str, what: str) -> Net:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text}") from None
    if not isinstance(net, Net):
        raise InvalidArgument(f"invalid {what} {text}: only IPv4 is supported")
    return net


def parse_address(text: str, what: str) -> Addr:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text}") from None
    if not isinstance(addr, Addr):
        raise InvalidArgument(f"invalid {what} {text}: only IPv4 is supported")
    return addr


@dataclass(frozen=True)
class Pool:
    """One network's addresses: its subnet, gateway and the range containers get addresses from."""

    subnet: Net
    gateway: Addr
    ip_range: Net

    @classmethod
    def make(cls, subnet: Net, gateway: str = "", ip_range: str = "") -> "Pool":
        gw = parse_address(gateway, "gateway") if gateway else next(subnet.hosts())
        if gw not in subnet:
            raise InvalidArgument(f"no matching subnet for gateway {gw}")
        rng = parse_network(ip_range, "ip-range") if ip_range else subnet
        if not rng.subnet_of(subnet):
            raise InvalidArgument(f"no matching subnet for range {ip_range}")
        if subnet.prefixlen > 30:
            raise InvalidArgument(f"subnet {subnet} is too small: no address for containers")
        return cls(subnet, gw, rng)

    def allocate(self, used: set[Addr], network_name: str, wanted: str = "") -> Addr:
        """`wanted` if free (--ip), else the lowest free address of the range."""
        if wanted:
            addr = parse_address(wanted, "IP address")
            if addr not in self.subnet:
                raise InvalidArgument(f"no configured subnet or ip-range contain the IP address {addr}")
            if addr in used or addr == self.gateway or addr in (self.subnet.network_address,
                                                                self.subnet.broadcast_address):  # fmt: skip
                raise Conflict("Address already in use")
            return addr
        for addr in self.ip_range.hosts():
            if addr not in used and addr != self.gateway and addr != self.subnet.broadcast_address:
                return addr
        raise HullError(f"no available IPv4 addresses on this network's address pools: {network_name}")
