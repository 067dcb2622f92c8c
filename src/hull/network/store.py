"""What the network manager keeps on disk under <data-root>/network/, each file written atomically.

    network/networks/<network id>.json     a NetworkRecord
    network/sandboxes/<container id>.json  a Sandbox: a running container's namespace, endpoints, ports

Networks survive daemon restarts; sandboxes tell a restarted daemon what a running container
holds (its addresses, veths, published ports) and what a crashed one left to clean up.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from hull.fsutil import atomic_write


@dataclass
class NetworkRecord:
    id: str
    name: str
    driver: str  # bridge, host or null
    created: str
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    bridge: str = ""  # the Linux bridge's name
    ipam_configured: bool = False  # the subnet was given (--subnet), not chosen: --ip may be used

    @property
    def user_defined(self) -> bool:
        """A network made by `network create` (Docker's predefined ones are bridge, host and none)."""
        return self.name not in ("bridge", "host", "none")


@dataclass
class PortMapping:
    proto: str  # tcp or udp
    container_port: int
    host_ip: str  # "0.0.0.0" for every address
    host_port: int


@dataclass
class Endpoint:
    network_id: str
    endpoint_id: str
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    ifname: str  # inside the container: eth0, eth1, ...
    host_ifname: str  # the veth's host end, hv...
    aliases: list[str] = field(default_factory=list)


@dataclass
class Sandbox:
    container_id: str
    key: str  # the namespace file, Docker's SandboxKey
    endpoints: list[Endpoint] = field(default_factory=list)
    ports: list[PortMapping] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Sandbox":
        return cls(
            container_id=d["container_id"],
            key=d["key"],
            endpoints=[Endpoint(**e) for e in d.get("endpoints") or []],
            ports=[PortMapping(**p) for p in d.get("ports") or []],
        )


class NetworkStore:
    def __init__(self, root: str) -> None:
        self.networks_dir = os.path.join(root, "networks")
        self.sandboxes_dir = os.path.join(root, "sandboxes")
        for d in (self.networks_dir, self.sandboxes_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)

    def load_networks(self) -> list[NetworkRecord]:
        return [NetworkRecord(**d) for d in _load_all(self.networks_dir)]

    def save_network(self, n: NetworkRecord) -> None:
        _save(os.path.join(self.networks_dir, n.id + ".json"), asdict(n))

    def delete_network(self, nid: str) -> None:
        _unlink(os.path.join(self.networks_dir, nid + ".json"))

    def load_sandboxes(self) -> list[Sandbox]:
        return [Sandbox.from_json(d) for d in _load_all(self.sandboxes_dir)]

    def save_sandbox(self, s: Sandbox) -> None:
        # Not fsynced: on the path of every start, and a crash loses the namespace it describes anyway.
        _save(os.path.join(self.sandboxes_dir, s.container_id + ".json"), s.to_json(), fsync=False)

    def delete_sandbox(self, cid: str) -> None:
        _unlink(os.path.join(self.sandboxes_dir, cid + ".json"))


def _load_all(directory: str) -> list[dict[str, Any]]:
    out = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue  # atomic_write's temp files of a crashed write
        with open(os.path.join(directory, name), "rb") as f:
            out.append(json.load(f))
    return out


def _save(path: str, data: dict[str, Any], fsync: bool = True) -> None:
    atomic_write(path, json.dumps(data).encode(), mode=0o600, fsync=fsync)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
