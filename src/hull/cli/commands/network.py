"""Network verbs: network create, ls, inspect, rm, connect, disconnect, prune; and `port`."""

from __future__ import annotations

import argparse

from hull.cli import format as fmt
from hull.cli.client import APIError, CLIError, filters_json, path_quote
from hull.cli.commands.containers import confirm, each
from hull.cli.context import Context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NETWORKS_DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORKS_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
                    "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}  # fmt: skip


def _n(ref: str) -> str:
    return f"/networks/{path_quote(ref)}"


def _pairs(items: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (item.partition("=") for item in items)}


def args_network_create(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--driver", default="bridge", help='driver to manage the network (default "bridge")')
    p.add_argument("--subnet", action="append", default=[], help="subnet in CIDR format")
    p.add_argument("--gateway", action="append", default=[], help="IPv4 gateway for the master subnet")
    p.add_argument("--ip-range", action="append", default=[], help="allocate container ip from a sub-range")
    p.add_argument("--internal", action="store_true", help="restrict external access to the network")
    p.add_argument("--label", action="append", default=[], help="set metadata on a network")
    p.add_argument("-o", "--opt", action="append", default=[], help="set driver specific options")
    p.add_argument("--ipv6", action="store_true", help="enable IPv6 networking")
    p.add_argument("name", metavar="NETWORK")


def cmd_network_create(ctx: Context, a: argparse.Namespace) -> int:
    if len(a.gateway) > len(a.subnet) or len(a.ip_range) > len(a.subnet):
        raise CLIError("every ip-range or gateway must have a corresponding subnet")
    configs = []
    for i, subnet in enumerate(a.subnet):
        conf = {"Subnet": subnet}
        if i < len(a.gateway):
            conf["Gateway"] = a.gateway[i]
        if i < len(a.ip_range):
            conf["IPRange"] = a.ip_range[i]
        configs.append(conf)
    body = {
        "Name": a.name, "CheckDuplicate": True, "Driver": a.driver, "Internal": a.internal,
        "EnableIPv6": a.ipv6, "Options": _pairs(a.opt), "Labels": _pairs(a.label),
        "IPAM": {"Driver": "default", "Options": {}, "Config": configs},
    }  # fmt: skip
    print((ctx.client.post("/networks/create", body=body) or {}).get("Id", ""))
    return 0


def args_network_ls(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filter", action="append", default=[], help="provide filter values (e.g. 'driver=bridge')")
    p.add_argument("--format", default=None, help="pretty-print networks using a Go template")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    p.add_argument("-q", "--quiet", action="store_true", help="only display network IDs")


def cmd_network_ls(ctx: Context, a: argparse.Namespace) -> int:
    networks = ctx.client.get("/networks", {"filters": filters_json(a.filter) if a.filter else None}) or []
    records = [
        {**n, "ID": fmt.short_id(n.get("Id", ""), not a.no_trunc), "IPv6": str(n.get("EnableIPv6", False)).lower(),
         "Internal": str(n.get("Internal", False)).lower(), "CreatedAt": n.get("Created", ""),
         "Labels": ",".join(f"{k}={v}" for k, v in (n.get("Labels") or {}).items())}
        for n in sorted(networks, key=lambda n: n.get("Name", ""))
    ]  # fmt: skip
    fmt.write_records("{{.ID}}" if a.quiet and a.format is None else a.format, NETWORKS_DEFAULT,
                      NETWORKS_HEADERS, records)  # fmt: skip
    return 0


def args_network_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default=None, help="format output using a custom template")
    p.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("names", nargs="+", metavar="NETWORK")


def cmd_network_inspect(ctx: Context, a: argparse.Namespace) -> int:
    from hull.cli.commands.system import inspect_objects

    return inspect_objects(ctx, a.names, "network", a.format, False)


def args_network_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="do not error if the network does not exist")
    p.add_argument("names", nargs="+", metavar="NETWORK")


def cmd_network_rm(ctx: Context, a: argparse.Namespace) -> int:
    def remove(name: str) -> None:
        try:
            ctx.client.delete(_n(name))
        except APIError as e:
            if not (a.force and e.code == 404):
                raise

    return each(ctx, a.names, remove)


def args_network_connect(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alias", action="append", default=[], help="add network-scoped alias for the container")
    p.add_argument("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    p.add_argument("--link", action="append", default=[], help="add link to another container")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")


def cmd_network_connect(ctx: Context, a: argparse.Namespace) -> int:
    endpoint: dict[str, Any] = {"Aliases": a.alias or None, "Links": a.link or None}
    if a.ip:
        endpoint["IPAMConfig"] = {"IPv4Address": a.ip}
    ctx.client.post(_n(a.network) + "/connect", body={"Container": a.container, "EndpointConfig": endpoint})
    return 0


def args_network_disconnect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="force the container to disconnect from a network")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")


def cmd_network_disconnect(ctx: Context, a: argparse.Namespace) -> int:
    ctx.client.post(_n(a.network) + "/disconnect", body={"Container": a.container, "Force": a.force})
    return 0


def args_network_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help='provide filter values (e.g. "label=<label>")')


def cmd_network_prune(ctx: Context, a: argparse.Namespace) -> int:
    warning = "WARNING! This will remove all custom networks not used by at least one container."
    if not a.force and not confirm(ctx, warning):
        return 0
    result = ctx.client.post("/networks/prune", {"filters": filters_json(a.filter) if a.filter else None}) or {}
    deleted = result.get("NetworksDeleted") or []
    if deleted:
        print("Deleted Networks:")
        for name in deleted:
            print(name)
        print()
    return 0


def args_port(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", default="", metavar="PRIVATE_PORT[/PROTO]")


def cmd_port(ctx: Context, a: argparse.Namespace) -> int:
    info = ctx.client.get(f"/containers/{path_quote(a.container)}/json") or {}
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if a.port:
        number, _, proto = a.port.partition("/")
        key = f"{number}/{proto or 'tcp'}"
        binds = ports.get(key)
        if not binds:
            raise CLIError(f"Error: No public port '{a.port}' published for {a.container}")
        for b in binds:
            print(f"{b['HostIp']}:{b['HostPort']}")
        return 0
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0]), k)):
        for b in ports[key] or []:
            print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0
