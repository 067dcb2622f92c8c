"""Published ports: what a container asks for (-p, -P), and the host ports held for it.

A published host port is held by a bound, never listening socket of the daemon (as Docker's
userland proxy holds it): no other program can take it meanwhile, and a port some program
already has fails at once with Docker's wording. Traffic itself never reaches the socket: the
DNAT rules (nat.py) send it to the container.
"""

import errno
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hull.errors import Conflict, HullError, InvalidArgument
from hull.network.nat import ANY_ADDRESS
from hull.network.store import PortMapping

_PORT_KEY = re.compile(r"^([0-9]+)(?:/(tcp|udp|sctp))?$")
_SOCK_TYPE = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}
_Held = tuple[PortMapping, socket.socket]


@dataclass(frozen=True)
class PortRequest:
    proto: str
    container_port: int
    host_ip: str  # "" for every address
    host_ports: tuple[int, ...]  # candidates in order; () for any free port


def parse_port_key(key: str) -> tuple[int, str]:
    """ "80/tcp" or "80" -> (80, "tcp")."""
    m = _PORT_KEY.match(key)
    if not m or not 0 < int(m.group(1)) < 65536:
        raise InvalidArgument(f"invalid port specification: {key!r}")
    proto = m.group(2) or "tcp"
    if proto not in _SOCK_TYPE:
        raise InvalidArgument(f"invalid port specification: {key!r}: hull publishes tcp and udp ports")
    return int(m.group(1)), proto


def _host_ports(text: str, key: str) -> tuple[int, ...]:
    if not text:
        return ()
    lo, _, hi = text.partition("-")
    try:
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise InvalidArgument(f"invalid port specification: {text!r}") from None
    if not 0 < first <= last < 65536:
        raise InvalidArgument(f"invalid port specification: {text!r} for {key}")
    return tuple(range(first, last + 1))


def requests(config: Mapping[str, Any], host_config: Mapping[str, Any]) -> list[PortRequest]:
    """HostConfig.PortBindings, plus every other exposed port with -P (PublishAllPorts)."""
    out = []
    bindings = host_config.get("PortBindings") or {}
    if not isinstance(bindings, dict):
        raise InvalidArgument("PortBindings: expected an object of port -> bindings")
    for key, binds in bindings.items():
        port, proto = parse_port_key(key)
        for b in binds or [{}]:
            b = b or {}
            out.append(PortRequest(proto, port, b.get("HostIp") or "", _host_ports(b.get("HostPort") or "", key)))
    if host_config.get("PublishAllPorts"):
        for key in config.get("ExposedPorts") or {}:
            if key not in bindings:
                port, proto = parse_port_key(key)
                out.append(PortRequest(proto, port, "", ()))
    return out


def exposed_ports(config: Mapping[str, Any], host_config: Mapping[str, Any]) -> list[tuple[int, str]]:
    """Every port the container exposes or publishes."""
    keys = set(config.get("ExposedPorts") or {}) | set(host_config.get("PortBindings") or {})
    return sorted(parse_port_key(k) for k in keys)


def _overlap(ip_a: str, ip_b: str) -> bool:
    return ip_a == ip_b or ANY_ADDRESS in (ip_a, ip_b)


class PortReservations:
    """The host ports this daemon holds, per container."""

    def __init__(self) -> None:
        self._held: dict[str, list[_Held]] = {}

    def reserve(self, cid: str, wanted: list[PortRequest]) -> list[PortMapping]:
        """All of `wanted`, or (raising) none of them."""
        got: list[_Held] = []
        try:
            for r in wanted:
                got.append(self._reserve_one(r, got))
        except BaseException:
            for _, s in got:
                s.close()
            raise
        self._held.setdefault(cid, []).extend(got)
        return [m for m, _ in got]

    def hold(self, cid: str, mappings: list[PortMapping]) -> None:
        """At a daemon restart: hold again what a running container had."""
        for m in mappings:
            try:
                self._held.setdefault(cid, []).append(self._reserve_one(
                    PortRequest(m.proto, m.container_port, m.host_ip, (m.host_port,)), []))  # fmt: skip
            except HullError:
                pass  # taken meanwhile: the DNAT rule still sends its traffic to the container

    def _reserve_one(self, r: PortRequest, pending: list[_Held]) -> _Held:
        ip = r.host_ip or ANY_ADDRESS
        candidates: tuple[int, ...] = r.host_ports or (0,)
        error: HullError | None = None
        for port in candidates:
            if port and self._taken(r.proto, ip, port, pending):
                error = Conflict(f"Bind for {ip}:{port} failed: port is already allocated")
                continue
            s = socket.socket(socket.AF_INET, _SOCK_TYPE[r.proto])
            try:
                s.bind((ip, port))
            except OSError as e:
                s.close()
                listen = f"Error starting userland proxy: listen {r.proto}4 {ip}:{port}: bind"
                if e.errno == errno.EADDRINUSE:
                    error = Conflict(f"{listen}: address already in use")
                    continue
                if e.errno == errno.EADDRNOTAVAIL:
                    raise InvalidArgument(f"{listen}: cannot assign requested address") from None
                raise
            return PortMapping(r.proto, r.container_port, ip, s.getsockname()[1]), s
        assert error is not None
        raise error

    def _taken(self, proto: str, ip: str, port: int, pending: list[_Held]) -> bool:
        held = [m for ms in self._held.values() for m, _ in ms] + [m for m, _ in pending]
        return any(m.proto == proto and m.host_port == port and _overlap(m.host_ip, ip) for m in held)

    def release(self, cid: str) -> None:
        for _, s in self._held.pop(cid, []):
            s.close()

    def close(self) -> None:
        for cid in list(self._held):
            self.release(cid)


def settings_ports(
    config: Mapping[str, Any], host_config: Mapping[str, Any], mappings: list[PortMapping]
) -> dict[str, Any]:
    """NetworkSettings.Ports: each exposed port, with its host bindings or null."""
    out: dict[str, Any] = {f"{p}/{proto}": None for p, proto in exposed_ports(config, host_config)}
    for m in mappings:
        entry = out.get(f"{m.container_port}/{m.proto}") or []
        entry.append({"HostIp": m.host_ip, "HostPort": str(m.host_port)})
        out[f"{m.container_port}/{m.proto}"] = entry
    return out


def summary_ports(ports: Mapping[str, Any]) -> list[dict[str, Any]]:
    """GET /containers/json's Ports, from NetworkSettings.Ports."""
    out: list[dict[str, Any]] = []
    for key, binds in ports.items():
        port, proto = parse_port_key(key)
        if not binds:
            out.append({"PrivatePort": port, "Type": proto})
        for b in binds or []:
            out.append({"IP": b["HostIp"], "PrivatePort": port, "PublicPort": int(b["HostPort"]), "Type": proto})
    return out
