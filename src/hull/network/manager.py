"""The networks of one daemon and the containers' places in them.

Vocabulary: a *network* is a NetworkRecord (Docker's predefined `bridge`, `host`, `none`, and
user-defined bridge networks); a running container on bridge networks has a *sandbox*: its
network namespace (a file under <exec-root>/netns/, Docker's SandboxKey) holding one
*endpoint* per network, each a veth pair whose host end (hv...) sits on the network's bridge.
Which networks a container belongs to is its NetworkSettings.Networks (config.v2.json); the
sandbox exists only while it runs. The default bridge is named by the daemon's `bridge`
setting (hull0; "none" for no default bridge network, as dockerd's --bridge none).

Every change to networks, sandboxes and rules happens under one lock; the kernel work of a
sandbox runs on the NetnsThread. Failures undo what was made: nothing half-made stays.
"""

import asyncio
import fcntl
import ipaddress
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hull.containers.files import HOST_RESOLV_CONF
from hull.errors import Conflict, Forbidden, HullError, InvalidArgument, NotFound
from hull.network import bridge, ipam, netns, ports
from hull.network.dns import DnsServer
from hull.network.nat import BridgeRules, DnatRule, Firewall, tag_for
from hull.network.store import Endpoint, NetworkRecord, NetworkStore, Sandbox

if TYPE_CHECKING:
    from hull.containers.record import Container
    from hull.daemon.daemon import Daemon

log = logging.getLogger("hulld.network")

BRIDGE, HOST, NONE = "bridge", "host", "none"
PREDEFINED = {BRIDGE: "bridge", HOST: "host", NONE: "null"}  # name -> driver
DEFAULT_MODE = "default"
CONTAINER_MODE_PREFIX = "container:"
USER_BRIDGE_PREFIX = "hull-"  # + the network id's first 10 digits: 15 characters, the kernel's limit
VETH_PREFIX = "hv"
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
HOST_GATEWAY = "host-gateway"  # --add-host name:host-gateway means the default bridge's gateway
# Subnet choice and bridge address of every hulld on this host happen under this lock, so two
# daemons starting together do not both take the same free subnet.
IPAM_LOCK = "/run/lock/hull-ipam.lock"


def rfc3339_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"


@contextmanager
def host_ipam_lock() -> Iterator[None]:
    os.makedirs(os.path.dirname(IPAM_LOCK), exist_ok=True)
    with open(IPAM_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def network_mode_name(mode: str) -> str:
    """HostConfig.NetworkMode -> the network it names ("default" is the bridge)."""
    return BRIDGE if mode in ("", DEFAULT_MODE) else mode


def host_nameservers() -> list[str]:
    try:
        with open(HOST_RESOLV_CONF) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return [w[1] for w in (line.split() for line in lines) if len(w) > 1 and w[0] == "nameserver"]


@dataclass
class _Plan:
    """An endpoint about to be made: its network and what it was given."""

    network: NetworkRecord
    endpoint: Endpoint


class NetworkManager:
    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.store = NetworkStore(daemon.root.network)
        self.netns_dir = os.path.join(daemon.config.exec_root, "netns")
        self.default_bridge = daemon.config.bridge
        self.firewall = Firewall(tag_for(os.path.abspath(daemon.config.data_root)))
        self.reservations = ports.PortReservations()
        self._networks: dict[str, NetworkRecord] = {}
        self._sandboxes: dict[str, Sandbox] = {}
        # The networks each running container was announced on (`network connect` events):
        # its `disconnect` events name the same ones when it ends.
        self._announced: dict[str, list[NetworkRecord]] = {}
        self._dns: dict[str, DnsServer] = {}
        self._thread: netns.NetnsThread | None = None
        self._lock = asyncio.Lock()

    # --- lookup -------------------------------------------------------------------------------

    def all(self) -> list[NetworkRecord]:
        return sorted(self._networks.values(), key=lambda n: n.created)

    def get(self, ref: str) -> NetworkRecord:
        """By full id, name, or unique id prefix, as Docker resolves them."""
        if ref in self._networks:
            return self._networks[ref]
        for n in self._networks.values():
            if n.name == ref:
                return n
        found = [n for n in self._networks.values() if ref and n.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        raise NotFound(f"network {ref} not found")

    def find(self, ref: str) -> NetworkRecord | None:
        try:
            return self.get(ref)
        except NotFound:
            return None

    def _container(self, ref: str) -> "Container | None":
        try:
            return self.daemon.containers.get(ref)
        except HullError:
            return None

    def sandbox(self, cid: str) -> Sandbox | None:
        return self._sandboxes.get(cid)

    def endpoints_on(self, nid: str) -> list[tuple[str, Endpoint]]:
        """(container id, endpoint) of every running container on the network."""
        return [(s.container_id, e) for s in self._sandboxes.values() for e in s.endpoints if e.network_id == nid]

    # --- daemon start and stop ----------------------------------------------------------------

    async def start(self) -> None:
        """Networks from the store, their bridges and rules; the predefined networks if missing."""
        self._thread = netns.NetnsThread()
        await self.daemon.blocking(self._load)
        for n in self._networks.values():
            if n.driver == "bridge" and n.user_defined:
                await self._start_dns(n)

    def _load(self) -> None:
        bridge.enable_forwarding()
        netns.make_private_mount_dir(self.netns_dir)
        self._networks = {n.id: n for n in self.store.load_networks()}
        self._sandboxes = {s.container_id: s for s in self.store.load_sandboxes()}
        names = {n.name: n for n in self._networks.values()}
        for name, driver in PREDEFINED.items():
            if name == BRIDGE and self.default_bridge == NONE:
                stale = names.get(BRIDGE)
                if stale is not None:
                    self._networks.pop(stale.id)
                    self.store.delete_network(stale.id)
                continue
            if name not in names:
                n = NetworkRecord(id=secrets.token_hex(32), name=name, driver=driver, created=rfc3339_now())
                self._networks[n.id] = n
                names[name] = n
        default = names.get(BRIDGE)
        if default is not None:
            default.bridge = self.default_bridge
            default.options = {
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                BRIDGE_NAME_OPTION: self.default_bridge,
                "com.docker.network.driver.mtu": "1500",
            }
        with host_ipam_lock():
            for n in self._networks.values():
                if n.driver == "bridge":
                    self._bring_up(n)
        for s in self._sandboxes.values():
            self.reservations.hold(s.container_id, s.ports)
        self.firewall.install(self._bridge_rules(), self._dnat_rules())
        self._remove_stray_namespaces()

    def _bring_up(self, n: NetworkRecord) -> None:
        """The bridge of `n` with its gateway and, first, its subnet. Called holding the host's IPAM lock."""
        # A subnet hull chose may have been taken while the bridge was down (the daemon stopped
        # with nothing running): it is chosen afresh. A subnet the user gave stays.
        if not n.subnet or (not n.ipam_configured and self._routed_elsewhere(n)):
            n.subnet = str(ipam.choose_subnet(self._used_subnets(exclude=n.id)))
            n.gateway = str(next(ipaddress.IPv4Network(n.subnet).hosts()))
        self.store.save_network(n)
        bridge.ensure_bridge(n.bridge, ipaddress.IPv4Address(n.gateway), ipaddress.IPv4Network(n.subnet).prefixlen)

    def _routed_elsewhere(self, n: NetworkRecord) -> bool:
        if n.bridge in bridge.link_names():
            return False  # our own bridge routes it
        return ipam.overlaps(ipaddress.IPv4Network(n.subnet), bridge.host_networks())

    def _used_subnets(self, exclude: str = "") -> list[ipaddress.IPv4Network]:
        mine = [ipaddress.IPv4Network(n.subnet) for n in self._networks.values() if n.subnet and n.id != exclude]
        return mine + bridge.host_networks()

    def _remove_stray_namespaces(self) -> None:
        """Namespace files no sandbox names: left by a daemon that crashed while starting one."""
        known = {s.key for s in self._sandboxes.values()}
        for name in os.listdir(self.netns_dir):
            path = os.path.join(self.netns_dir, name)
            if path not in known:
                netns.remove(path)

    async def reconcile(self, running: set[str]) -> None:
        """After the containers' restore: free the sandboxes of containers that no longer run."""
        for cid in [cid for cid in self._sandboxes if cid not in running]:
            async with self._lock:
                await self._teardown(cid)
        for cid in running:
            c = self._container(cid)
            if c is not None:
                try:
                    self._announced[cid] = self._networks_of(c)
                except NotFound:
                    pass  # a network removed under it: no event to pair with

    async def stop(self, containers_running: bool) -> None:
        """Stop serving DNS and holding ports; with no container running, take the bridges and
        rules down too (the networks stay in the store for the next start)."""
        for server in self._dns.values():
            server.close()
        self._dns.clear()
        self.reservations.close()
        if not containers_running:
            await self.daemon.blocking(self._take_down)
        if self._thread is not None:
            self._thread.close()

    def _take_down(self) -> None:
        self.firewall.remove()
        for n in self._networks.values():
            if n.bridge:
                bridge.delete_link(n.bridge)
        netns.unmount_dir(self.netns_dir)

    # --- rules and DNS ------------------------------------------------------------------------

    def _bridge_rules(self) -> list[BridgeRules]:
        return [BridgeRules(n.bridge, n.subnet, n.internal) for n in self.all() if n.driver == "bridge"]

    def _dnat_rules(self) -> list[DnatRule]:
        out = []
        for s in self._sandboxes.values():
            if not s.endpoints:
                continue
            ip = s.endpoints[0].ip
            out += [DnatRule(p.proto, p.host_ip, p.host_port, ip, p.container_port) for p in s.ports]
        return out

    async def _apply_rules(self) -> None:
        await self.daemon.blocking(self.firewall.apply, self._bridge_rules(), self._dnat_rules())

    async def _start_dns(self, n: NetworkRecord) -> None:
        try:
            server = await DnsServer.serve(n.gateway, lambda name: self._resolve(n.id, name), host_nameservers())
            self._dns[n.id] = server
        except OSError as e:
            log.warning("network %s: no embedded DNS on %s:53: %s", n.name, n.gateway, e)

    def _resolve(self, nid: str, name: str) -> list[str] | None:
        """Names on network `nid`: container names, their aliases there, short ids."""
        out = []
        for cid, e in self.endpoints_on(nid):
            c = self._container(cid)
            names = {a.lower() for a in e.aliases} | {cid[:12]}
            if c is not None:
                names.add(c.name.lower())
            if name in names:
                out.append(e.ip)
        return out or None

    # --- network create, remove, prune --------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> NetworkRecord:
        name = str(body.get("Name") or "")
        if not name:
            raise InvalidArgument("network name is required")
        driver = body.get("Driver") or "bridge"
        async with self._lock:
            if any(n.name == name for n in self._networks.values()):
                raise Conflict(f"network with name {name} already exists")
            if driver in ("host", "null"):
                raise Forbidden(f'only one instance of "{driver}" network is allowed')
            if driver != "bridge":
                raise NotFound(f'plugin "{driver}" not found')
            if body.get("EnableIPv6"):
                raise InvalidArgument("hull networks are IPv4 only: EnableIPv6 is not supported")
            configs = (body.get("IPAM") or {}).get("Config") or []
            if len(configs) > 1:
                raise InvalidArgument("hull networks take one IPAM config (one IPv4 subnet)")
            conf = configs[0] if configs else {}
            nid = secrets.token_hex(32)
            options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
            n = NetworkRecord(
                id=nid, name=name, driver="bridge", created=rfc3339_now(), internal=bool(body.get("Internal")),
                labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()}, options=options,
                bridge=options.get(BRIDGE_NAME_OPTION) or USER_BRIDGE_PREFIX + nid[:10],
            )  # fmt: skip
            await self.daemon.blocking(self._create_bridge, n, conf)
            self._networks[nid] = n
            try:
                await self._apply_rules()
            except HullError:
                del self._networks[nid]
                await self.daemon.blocking(self._delete_bridge, n)
                raise
            await self._start_dns(n)
        self.daemon.events.publish("network", "create", nid, {"name": name, "type": "bridge"})
        return n

    def _create_bridge(self, n: NetworkRecord, conf: dict[str, Any]) -> None:
        if conf.get("IPRange") and not conf.get("Subnet"):
            raise InvalidArgument("ip-range can only be used with a subnet")
        if conf.get("Gateway") and not conf.get("Subnet"):
            raise InvalidArgument("gateway can only be used with a subnet")
        if n.bridge in bridge.link_names():
            raise Conflict(f"bridge {n.bridge} already exists")
        with host_ipam_lock():
            if conf.get("Subnet"):
                subnet = ipam.parse_network(str(conf["Subnet"]), "subnet")
                if ipam.overlaps(subnet, self._used_subnets()):
                    raise Forbidden("Pool overlaps with other one on this address space")
            else:
                subnet = ipam.choose_subnet(self._used_subnets())
            pool = ipam.Pool.make(subnet, str(conf.get("Gateway") or ""), str(conf.get("IPRange") or ""))
            n.subnet, n.gateway, n.ip_range = str(subnet), str(pool.gateway), str(conf.get("IPRange") or "")
            n.ipam_configured = bool(conf.get("Subnet"))
            try:
                bridge.ensure_bridge(n.bridge, pool.gateway, subnet.prefixlen)
                self.store.save_network(n)
            except BaseException:
                bridge.delete_link(n.bridge)
                raise

    def _delete_bridge(self, n: NetworkRecord) -> None:
        bridge.delete_link(n.bridge)
        self.store.delete_network(n.id)

    async def remove(self, ref: str) -> None:
        async with self._lock:
            n = self.get(ref)
            if not n.user_defined:
                raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
            if self.endpoints_on(n.id):
                raise Forbidden(f"error while removing network: network {n.name} id {n.id} has active endpoints")
            server = self._dns.pop(n.id, None)
            if server is not None:
                server.close()
            del self._networks[n.id]
            await self._apply_rules()
            await self.daemon.blocking(self._delete_bridge, n)
        self.daemon.events.publish("network", "destroy", n.id, {"name": n.name, "type": n.driver})

    async def prune(self, keep: Callable[[NetworkRecord], bool] | None = None) -> list[str]:
        """Remove user-defined networks no running container uses; `keep(n)` spares some."""
        removed = []
        for n in self.all():
            if n.user_defined and not self.endpoints_on(n.id) and not (keep and keep(n)):
                try:
                    await self.remove(n.id)
                    removed.append(n.name)
                except HullError as e:
                    log.warning("prune: network %s: %s", n.name, e.message)
        return removed

    # --- containers: settings at create -------------------------------------------------------

    def settings_at_create(self, host_config: dict[str, Any], networking: dict[str, Any] | None) -> dict[str, Any]:
        """NetworkSettings of a new container, checked: the networks must exist; --ip and
        --network-alias need a user-defined network, as in Docker."""
        ports.requests({}, host_config)  # the published ports' syntax
        mode = host_config.get("NetworkMode") or DEFAULT_MODE
        wanted = dict((networking or {}).get("EndpointsConfig") or {})
        networks: dict[str, Any] = {}
        if not mode.startswith(CONTAINER_MODE_PREFIX):
            name = network_mode_name(mode)
            if name == BRIDGE and self.find(BRIDGE) is None:
                name = NONE  # no default bridge (--bridge none): the container gets loopback only
            # As Docker: a network that does not exist fails the start, not the create.
            n = self.find(name)
            conf = wanted.pop(mode, None) or (wanted.pop(n.name, None) or wanted.pop(n.id, None) if n else None)
            networks[n.name if n else name] = self._endpoint_settings(n, conf or {})
            for ref, conf in wanted.items():
                other = self.find(ref)
                networks[other.name if other else ref] = self._endpoint_settings(other, conf or {})
        for link in host_config.get("Links") or []:
            if not isinstance(link, str) or not link:
                raise InvalidArgument(f"invalid link: {link!r}")
        return {
            "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": networks,
        }  # fmt: skip

    def _endpoint_settings(self, n: NetworkRecord | None, conf: dict[str, Any]) -> dict[str, Any]:
        ipam_conf = conf.get("IPAMConfig") or None
        aliases = list(conf.get("Aliases") or []) or None
        wants_ip = bool(ipam_conf and (ipam_conf.get("IPv4Address") or ipam_conf.get("IPv6Address")))
        if n is None:
            pass  # checked when the network exists, at start
        elif not n.user_defined:
            if wants_ip:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            if aliases:
                raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        elif wants_ip and not n.ipam_configured:
            raise InvalidArgument(
                "user specified IP address is supported only when connecting to networks with user configured subnets"
            )
        elif wants_ip:
            assert ipam_conf is not None
            ipam.parse_address(str(ipam_conf.get("IPv4Address")), "IPv4 address")
        return {
            "IPAMConfig": ipam_conf, "Links": conf.get("Links"), "Aliases": aliases, "NetworkID": n.id if n else "",
            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": conf.get("DriverOpts"),
        }  # fmt: skip

    # --- containers: start and end ------------------------------------------------------------

    def _networks_of(self, c: "Container") -> list[NetworkRecord]:
        """The networks `c` is on (none and host too), first its NetworkMode's (which gives the
        default route)."""
        mode = c.host_config.get("NetworkMode") or DEFAULT_MODE
        if mode.startswith(CONTAINER_MODE_PREFIX):
            return []  # another container's: no endpoint of its own
        settings = c.network_settings.get("Networks") or {}
        primary = self.find(network_mode_name(mode))
        first = primary.name if primary is not None else network_mode_name(mode)
        out = []
        for name in sorted(settings, key=lambda x: x != first):
            n = self.find(settings[name].get("NetworkID") or name) or self.find(name)
            if n is None:
                raise NotFound(f"network {name} not found")
            out.append(n)
        return out

    def _announce(self, c: "Container", networks: list[NetworkRecord], action: str) -> None:
        """`network connect` or `disconnect` events for `c` on each network, as dockerd sends
        them when a container starts (before its `start`) and after it ends (after its `die`)."""
        for n in networks:
            self.daemon.events.publish("network", action, n.id, {"container": c.id, "name": n.name, "type": n.driver})

    async def attach(self, c: "Container") -> str | None:
        """Before `c` runs: its namespace (loopback up) with an endpoint on each of its bridge
        networks and its published ports. The namespace file; None for host and container:<x>."""
        mode = c.host_config.get("NetworkMode") or DEFAULT_MODE
        on = self._networks_of(c)
        if mode == HOST or mode.startswith(CONTAINER_MODE_PREFIX):
            self._announced[c.id] = on
            self._announce(c, on, "connect")
            return None
        networks = [n for n in on if n.driver == "bridge"]
        async with self._lock:
            await self._teardown(c.id)  # a crash's leftover
            # Published ports need a bridge to reach the container (Docker ignores them on none too).
            requests = ports.requests(c.config, c.host_config) if networks else []
            mappings = self.reservations.reserve(c.id, requests)
            sandbox = Sandbox(c.id, os.path.join(self.netns_dir, c.id[:12] + "-" + secrets.token_hex(4)))
            try:
                plans = [self._plan(c, n, i) for i, n in enumerate(networks)]
                assert self._thread is not None
                await self._thread.run(self._plumb, sandbox.key, plans, True)
                sandbox.endpoints = [p.endpoint for p in plans]
                sandbox.ports = mappings
                self._sandboxes[c.id] = sandbox
                if mappings:
                    await self._apply_rules()
                await self.daemon.blocking(self.store.save_sandbox, sandbox)
            except BaseException as e:
                self._sandboxes.pop(c.id, None)
                self.reservations.release(c.id)
                await self.daemon.blocking(self._unplumb, sandbox)
                if isinstance(e, Exception) and not isinstance(e, HullError):
                    raise HullError(f"failed to set up container networking: {e}") from e
                raise
        self._fill_settings(c, sandbox)
        self._announced[c.id] = on
        self._announce(c, on, "connect")
        return sandbox.key

    def _plan(self, c: "Container", n: NetworkRecord, index: int, sandbox: Sandbox | None = None) -> _Plan:
        conf = (c.network_settings.get("Networks") or {}).get(n.name) or {}
        wanted = str(((conf.get("IPAMConfig") or {}).get("IPv4Address")) or "")
        pool = ipam.Pool.make(ipaddress.IPv4Network(n.subnet), n.gateway, n.ip_range)
        used = {ipaddress.IPv4Address(e.ip) for _, e in self.endpoints_on(n.id)}
        if sandbox is not None:  # endpoints being added to a running container's sandbox count too
            used |= {ipaddress.IPv4Address(e.ip) for e in sandbox.endpoints if e.network_id == n.id}
        addr = pool.allocate(used, n.name, wanted)
        aliases = list(conf.get("Aliases") or [])
        if n.user_defined and c.id[:12] not in aliases:
            aliases.append(c.id[:12])
        return _Plan(n, Endpoint(
            network_id=n.id, endpoint_id=secrets.token_hex(32), ip=str(addr), prefixlen=pool.subnet.prefixlen,
            gateway=n.gateway, mac=bridge.mac_for(addr), ifname=f"eth{index}",
            host_ifname=VETH_PREFIX + secrets.token_hex(5), aliases=aliases,
        ))  # fmt: skip

    def _plumb(self, key: str, plans: list[_Plan], new_namespace: bool) -> None:
        """On the netns thread: the namespace (if new), the veths, their addresses and routes."""
        assert self._thread is not None
        thread = self._thread
        if new_namespace:
            thread.create(key)
        made: list[str] = []
        try:
            for p in plans:
                bridge.add_veth(p.endpoint.host_ifname, p.network.bridge, key, p.endpoint.ifname, p.endpoint.mac)
                made.append(p.endpoint.host_ifname)

            def inside() -> None:
                if new_namespace:
                    bridge.loopback_up()
                for p in plans:
                    e = p.endpoint
                    bridge.configure_inside(e.ifname, e.ip, e.prefixlen, e.gateway if e.ifname == "eth0" else None)

            thread.inside(key, inside)
        except BaseException:
            for name in made:
                bridge.delete_link(name)
            if new_namespace:
                netns.remove(key)
            raise

    def _unplumb(self, sandbox: Sandbox) -> None:
        # The veths go first, explicitly: a namespace's devices otherwise vanish only when the
        # kernel gets round to destroying it, after we report the container gone.
        for e in sandbox.endpoints:
            bridge.delete_link(e.host_ifname)
        netns.remove(sandbox.key)

    def _fill_settings(self, c: "Container", sandbox: Sandbox) -> None:
        """NetworkSettings of a running container, from its sandbox."""
        ns = c.network_settings
        by_id = {e.network_id: e for e in sandbox.endpoints}
        for conf in (ns.get("Networks") or {}).values():
            e = by_id.get(conf.get("NetworkID") or "")
            if e is not None:
                conf.update(EndpointID=e.endpoint_id, Gateway=e.gateway, IPAddress=e.ip, IPPrefixLen=e.prefixlen,
                            MacAddress=e.mac, Aliases=e.aliases or None)  # fmt: skip
        ns["SandboxKey"] = sandbox.key
        ns["SandboxID"] = os.path.basename(sandbox.key)
        ns["Ports"] = ports.settings_ports(c.config, c.host_config, sandbox.ports)
        default = self.find(BRIDGE)
        top = by_id.get(default.id) if default is not None else None
        ns["Bridge"] = default.bridge if top is not None and default is not None else ""
        ns.update(EndpointID=top.endpoint_id if top else "", Gateway=top.gateway if top else "",
                  IPAddress=top.ip if top else "", IPPrefixLen=top.prefixlen if top else 0,
                  MacAddress=top.mac if top else "")  # fmt: skip

    async def detach(self, c: "Container") -> None:
        """After `c` ended: its endpoints, namespace and ports go; its settings say so."""
        async with self._lock:
            await self._teardown(c.id)
        self._clear_settings(c)
        self._announce(c, self._announced.pop(c.id, []), "disconnect")

    async def _teardown(self, cid: str) -> None:
        sandbox = self._sandboxes.pop(cid, None)
        if sandbox is None:
            return
        self.reservations.release(cid)
        if sandbox.ports:
            await self._apply_rules()
        await self.daemon.blocking(self._unplumb, sandbox)
        await self.daemon.blocking(self.store.delete_sandbox, cid)

    @staticmethod
    def _clear_settings(c: "Container") -> None:
        ns = c.network_settings
        for conf in (ns.get("Networks") or {}).values():
            conf.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="")
        ns.update(SandboxKey="", SandboxID="", Ports={}, Bridge="", EndpointID="", Gateway="", IPAddress="",
                  IPPrefixLen=0, MacAddress="")  # fmt: skip

    # --- containers: connect and disconnect ---------------------------------------------------

    async def connect(self, ref: str, c: "Container", conf: dict[str, Any]) -> None:
        mode = c.host_config.get("NetworkMode") or DEFAULT_MODE
        if mode == HOST or mode.startswith(CONTAINER_MODE_PREFIX):
            raise Forbidden(
                "container sharing network namespace with another container or host "
                "cannot be connected to any other network"
            )
        async with self._lock:
            n = self.get(ref)
            networks = c.network_settings.setdefault("Networks", {})
            if n.name in networks:
                raise Forbidden(f"endpoint with name {c.name} already exists in network {n.name}")
            if n.driver == "host":
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            if n.driver != "bridge" or NONE in networks:
                raise Forbidden(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode"
                )
            networks[n.name] = self._endpoint_settings(n, conf)
            sandbox = self._sandboxes.get(c.id)
            if sandbox is None:
                return
            try:
                plan = self._plan(c, n, len(sandbox.endpoints), sandbox)
                assert self._thread is not None
                await self._thread.run(self._plumb, sandbox.key, [plan], False)
            except BaseException:
                del networks[n.name]
                raise
            sandbox.endpoints.append(plan.endpoint)
            await self.daemon.blocking(self.store.save_sandbox, sandbox)
            self._fill_settings(c, sandbox)
        if c.id in self._announced:  # running: its end disconnects this one too
            self._announced[c.id].append(n)
        self._announce(c, [n], "connect")

    async def disconnect(self, ref: str, c: "Container", force: bool = False) -> None:
        async with self._lock:
            n = self.find(ref)
            networks = c.network_settings.get("Networks") or {}
            name = n.name if n is not None else ref
            if name not in networks:
                if n is None and not force:
                    raise NotFound(f"network {ref} not found")
                raise Forbidden(f"container {c.id} is not connected to network {name}")
            del networks[name]
            sandbox = self._sandboxes.get(c.id)
            if sandbox is not None and n is not None:
                gone = [e for e in sandbox.endpoints if e.network_id == n.id]
                sandbox.endpoints = [e for e in sandbox.endpoints if e.network_id != n.id]
                for e in gone:
                    await self.daemon.blocking(bridge.delete_link, e.host_ifname)
                await self.daemon.blocking(self.store.save_sandbox, sandbox)
                self._fill_settings(c, sandbox)
        if n is not None:
            if c.id in self._announced:
                self._announced[c.id] = [x for x in self._announced[c.id] if x.id != n.id]
            self._announce(c, [n], "disconnect")

    # --- what the container's files say -------------------------------------------------------

    def hosts_entries(self, c: "Container") -> list[tuple[str, str]]:
        """/etc/hosts lines after the base ones: --link targets, --add-host, its own address."""
        out: list[tuple[str, str]] = []
        for link in c.host_config.get("Links") or []:
            target, _, alias = link.lstrip("/").partition(":")
            other = self._container(target)
            s = self._sandboxes.get(other.id) if other is not None else None
            if other is None or s is None or not s.endpoints:
                raise HullError(f"Cannot link to a non running container: /{target} AS /{c.name}/{alias or target}")
            alias = alias.rsplit("/", 1)[-1]
            names = " ".join(dict.fromkeys([alias or other.name, other.config.get("Hostname") or "", other.name]))
            out.append((s.endpoints[0].ip, names.strip()))
        default = self.find(BRIDGE)
        for entry in c.host_config.get("ExtraHosts") or []:
            name, _, ip = entry.partition(":")
            if ip == HOST_GATEWAY:
                if default is None or not default.gateway:
                    raise InvalidArgument("unable to derive the IP value for host-gateway")
                ip = default.gateway
            out.append((ip, name))
        s = self._sandboxes.get(c.id)
        if s is not None and s.endpoints:
            hostname = str(c.config.get("Hostname") or "")
            domain = str(c.config.get("Domainname") or "")
            out.append((s.endpoints[0].ip, f"{hostname}.{domain} {hostname}" if domain else hostname))
        return out

    def dns_servers(self, c: "Container") -> list[str]:
        """--dns, else the embedded DNS of its first user-defined network, else [] (the host's)."""
        dns = list(c.host_config.get("Dns") or [])
        if dns:
            return dns
        s = self._sandboxes.get(c.id)
        for e in s.endpoints if s is not None else []:
            n = self._networks.get(e.network_id)
            if n is not None and n.user_defined and n.id in self._dns:
                return [n.gateway]
        return []

    # --- the API's views ----------------------------------------------------------------------

    def inspect_json(self, n: NetworkRecord) -> dict[str, Any]:
        containers = {}
        for cid, e in self.endpoints_on(n.id):
            c = self._container(cid)
            containers[cid] = {
                "Name": c.name if c is not None else "", "EndpointID": e.endpoint_id, "MacAddress": e.mac,
                "IPv4Address": f"{e.ip}/{e.prefixlen}", "IPv6Address": "",
            }  # fmt: skip
        config = []
        if n.subnet:
            entry = {"Subnet": n.subnet, "Gateway": n.gateway}
            if n.ip_range:
                entry["IPRange"] = n.ip_range
            config.append(entry)
        ipam_json: dict[str, Any] = {"Driver": "default", "Options": {}, "Config": config}
        return {
            "Name": n.name, "Id": n.id, "Created": n.created, "Scope": "local", "Driver": n.driver,
            "EnableIPv6": False, "IPAM": ipam_json,
            "Internal": n.internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": containers, "Options": n.options, "Labels": n.labels,
        }  # fmt: skip
