"""IPAM: subnets from Docker's pools around what is in use; addresses within a subnet."""

from ipaddress import IPv4Address, IPv4Network

import pytest

from hull.errors import Conflict, HullError, InvalidArgument
from hull.network import ipam


def test_first_free_pool_skips_used_and_host_routes() -> None:
    assert ipam.choose_subnet([]) == IPv4Network("172.17.0.0/16")
    # Docker's default bridge on the host, and a route that overlaps 172.18/16 partly.
    used = [IPv4Network("172.17.0.0/16"), IPv4Network("172.18.5.0/24")]
    assert ipam.choose_subnet(used) == IPv4Network("172.19.0.0/16")


def test_pools_exhausted() -> None:
    with pytest.raises(HullError, match="could not find an available, non-overlapping IPv4 address pool"):
        ipam.choose_subnet([IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16")])


def test_allocation_skips_gateway_and_used_then_exhausts() -> None:
    pool = ipam.Pool.make(IPv4Network("10.9.0.0/29"))
    assert pool.gateway == IPv4Address("10.9.0.1")
    used: set[IPv4Address] = set()
    for _ in range(5):  # .2 .. .6: .0 is the network, .1 the gateway, .7 the broadcast
        used.add(pool.allocate(used, "small"))
    assert sorted(str(a) for a in used) == [f"10.9.0.{i}" for i in range(2, 7)]
    with pytest.raises(HullError, match="no available IPv4 addresses on this network's address pools: small"):
        pool.allocate(used, "small")


def test_ip_range_and_wanted_address() -> None:
    pool = ipam.Pool.make(IPv4Network("10.9.0.0/24"), "10.9.0.254", "10.9.0.128/25")
    assert pool.allocate(set(), "n") == IPv4Address("10.9.0.129")
    assert pool.allocate(set(), "n", "10.9.0.7") == IPv4Address("10.9.0.7")
    with pytest.raises(Conflict, match="Address already in use"):
        pool.allocate({IPv4Address("10.9.0.7")}, "n", "10.9.0.7")
    with pytest.raises(Conflict):
        pool.allocate(set(), "n", "10.9.0.254")  # the gateway
    with pytest.raises(InvalidArgument, match=r"no configured subnet or ip-range contain the IP address 10\.8\.0\.1"):
        pool.allocate(set(), "n", "10.8.0.1")


def test_bad_configs() -> None:
    with pytest.raises(InvalidArgument, match="no matching subnet for gateway"):
        ipam.Pool.make(IPv4Network("10.9.0.0/24"), "10.8.0.1")
    with pytest.raises(InvalidArgument, match="no matching subnet for range"):
        ipam.Pool.make(IPv4Network("10.9.0.0/24"), "", "10.8.0.0/25")
    with pytest.raises(InvalidArgument, match="invalid subnet"):
        ipam.parse_network("10.9.0.0/33", "subnet")
    assert ipam.overlaps(IPv4Network("10.0.0.0/8"), [IPv4Network("10.9.0.0/24")])
    assert not ipam.overlaps(IPv4Network("10.10.0.0/16"), [IPv4Network("10.9.0.0/24")])
