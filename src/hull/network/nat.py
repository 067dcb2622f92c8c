"""hull's iptables rules: masquerading, published ports (DNAT), forwarding and isolation.

Every rule lives in chains of this daemon's own (names carry a tag derived from its data root,
so two daemons on one host never touch each other's); the built-in chains only get one jump
each. The chains' whole content is rendered from the networks and published ports and loaded
with one `iptables-restore --noflush` (declaring a chain there empties it): one source of truth,
and a daemon that crashed is reconciled by its next `apply`.

    nat PREROUTING, OUTPUT (to a local address) -> HULL-<tag>       DNAT of published ports
    nat POSTROUTING                             -> HULL-POST-<tag>  masquerade
    filter FORWARD (first)                      -> HULL-FWD-<tag>   accept, isolation via HULL-ISO-<tag>
"""

import hashlib
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from hull.errors import HullError

IPTABLES = "iptables"
IPTABLES_RESTORE = "iptables-restore"
ANY_ADDRESS = "0.0.0.0"


@dataclass(frozen=True)
class BridgeRules:
    bridge: str
    subnet: str
    internal: bool


@dataclass(frozen=True)
class DnatRule:
    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


def tag_for(data_root: str) -> str:
    return hashlib.sha256(data_root.encode()).hexdigest()[:8]


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> bool:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise HullError(f"{' '.join(argv[:3])}: {done.stderr.strip()}")
    return done.returncode == 0


class Firewall:
    def __init__(self, tag: str) -> None:
        self.dnat = f"HULL-{tag}"
        self.post = f"HULL-POST-{tag}"
        self.fwd = f"HULL-FWD-{tag}"
        self.iso = f"HULL-ISO-{tag}"

    def _jumps(self) -> list[tuple[str, str, list[str]]]:
        local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", self.dnat]
        return [
            ("nat", "PREROUTING", local),
            ("nat", "OUTPUT", local),
            ("nat", "POSTROUTING", ["-j", self.post]),
            ("filter", "FORWARD", ["-j", self.fwd]),
        ]

    def install(self, bridges: Iterable[BridgeRules], dnats: Iterable[DnatRule]) -> None:
        """The chains with their rules, then the jumps into them (each once)."""
        self.apply(bridges, dnats)
        for table, chain, rule in self._jumps():
            if not _run([IPTABLES, "-w", "-t", table, "-C", chain, *rule], check=False):
                _run([IPTABLES, "-w", "-t", table, "-I", chain, "1", *rule])

    def apply(self, bridges: Iterable[BridgeRules], dnats: Iterable[DnatRule]) -> None:
        _run([IPTABLES_RESTORE, "-w", "--noflush"], stdin=self.render(list(bridges), list(dnats)))

    def render(self, bridges: list[BridgeRules], dnats: list[DnatRule]) -> str:
        nat = ["*nat", f":{self.dnat} - [0:0]", f":{self.post} - [0:0]"]
        for b in bridges:
            if not b.internal:
                nat.append(f"-A {self.post} -s {b.subnet} ! -o {b.bridge} -j MASQUERADE")
            # Host-to-container traffic DNAT'd from 127.0.0.1 needs a source the container can answer.
            nat.append(f"-A {self.post} -o {b.bridge} -m addrtype --src-type LOCAL -j MASQUERADE")
        for d in dnats:
            dest = "" if d.host_ip in ("", ANY_ADDRESS) else f"-d {d.host_ip} "
            nat.append(f"-A {self.dnat} {dest}-p {d.proto} -m {d.proto} --dport {d.host_port} "
                       f"-j DNAT --to-destination {d.container_ip}:{d.container_port}")  # fmt: skip
            # Hairpin: a container reaching its own published port through a host address. The
            # DNAT sends the packet back to it, which would see itself as the source and answer
            # itself; from the gateway's address, its answer comes back through the NAT.
            nat.append(f"-A {self.post} -s {d.container_ip} -d {d.container_ip} -p {d.proto} -m {d.proto} "
                       f"--dport {d.container_port} -j MASQUERADE")  # fmt: skip
        filt = ["*filter", f":{self.fwd} - [0:0]", f":{self.iso} - [0:0]"]
        for b in bridges:
            # Isolation first: nothing crosses from one hull network to another.
            filt.append(f"-A {self.fwd} -i {b.bridge} ! -o {b.bridge} -j {self.iso}")
            filt.append(f"-A {self.iso} -o {b.bridge} -j DROP")
        for b in bridges:
            if b.internal:
                filt.append(f"-A {self.fwd} -i {b.bridge} ! -o {b.bridge} -j DROP")
                filt.append(f"-A {self.fwd} -o {b.bridge} ! -i {b.bridge} -j DROP")
            filt.append(f"-A {self.fwd} -o {b.bridge} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT")
            filt.append(f"-A {self.fwd} -i {b.bridge} -j ACCEPT")
        return "\n".join([*nat, "COMMIT", *filt, "COMMIT", ""])

    def remove(self) -> None:
        """Jumps, rules and chains: nothing of this daemon's stays in the tables."""
        for table, chain, rule in self._jumps():
            while _run([IPTABLES, "-w", "-t", table, "-D", chain, *rule], check=False):
                pass
        for table, chains in (("nat", (self.dnat, self.post)), ("filter", (self.fwd, self.iso))):
            for chain in chains:
                _run([IPTABLES, "-w", "-t", table, "-F", chain], check=False)
            for chain in chains:
                _run([IPTABLES, "-w", "-t", table, "-X", chain], check=False)
