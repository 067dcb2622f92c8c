"""Volume verbs: volume create, ls, inspect, rm, prune."""

from __future__ import annotations

import argparse

from hull import humanize
from hull.cli import format as fmt
from hull.cli.client import CLIError, filters_json, path_quote
from hull.cli.commands.containers import confirm, each
from hull.cli.context import Context

VOLUMES_DEFAULT = "table {{.Driver}}\t{{.Name}}"
VOLUMES_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE",
                   "Labels": "LABELS", "CreatedAt": "CREATED"}  # fmt: skip


def _v(name: str) -> str:
    return f"/volumes/{path_quote(name)}"


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if flag == "--opt" and not sep:
            raise CLIError(f'invalid argument "{item}" for "-o, --opt" flag: bad format for {flag}: {item}')
        out[k] = v
    return out


def args_volume_create(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--driver", default="local", help='specify volume driver name (default "local")')
    p.add_argument("--label", action="append", default=[], help="set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", default=[], help="set driver specific options")
    p.add_argument("--name", default="", help=argparse.SUPPRESS)
    p.add_argument("name_arg", nargs="?", default="", metavar="VOLUME")


def cmd_volume_create(ctx: Context, a: argparse.Namespace) -> int:
    if a.name and a.name_arg and a.name != a.name_arg:
        raise CLIError("conflicting options: either specify --name or provide positional arg, not both")
    body = {
        "Name": a.name_arg or a.name,
        "Driver": a.driver,
        "DriverOpts": _pairs(a.opt, "--opt"),
        "Labels": _pairs(a.label, "--label"),
    }
    result = ctx.client.post("/volumes/create", body=body) or {}
    print(result.get("Name", ""))
    return 0


def args_volume_ls(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filter", action="append", default=[], help="provide filter values (e.g. 'dangling=true')")
    p.add_argument("--format", default=None, help="pretty-print volumes using a Go template")
    p.add_argument("-q", "--quiet", action="store_true", help="only display volume names")


def _record(v: dict[str, object]) -> dict[str, object]:
    labels = v.get("Labels") or {}
    assert isinstance(labels, dict)
    return {**v, "Labels": ",".join(f"{k}={val}" for k, val in labels.items())}


def cmd_volume_ls(ctx: Context, a: argparse.Namespace) -> int:
    params = {"filters": filters_json(a.filter) if a.filter else None}
    volumes = (ctx.client.get("/volumes", params) or {}).get("Volumes") or []
    records = [_record(v) for v in sorted(volumes, key=lambda v: v.get("Name", ""))]
    fmt.write_records("{{.Name}}" if a.quiet and a.format is None else a.format, VOLUMES_DEFAULT,
                      VOLUMES_HEADERS, records)  # fmt: skip
    return 0


def args_volume_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default=None, help="format output using a custom template")
    p.add_argument("names", nargs="+", metavar="VOLUME")


def cmd_volume_inspect(ctx: Context, a: argparse.Namespace) -> int:
    from hull.cli.commands.system import inspect_objects

    return inspect_objects(ctx, a.names, "volume", a.format, False)


def args_volume_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="force the removal of one or more volumes")
    p.add_argument("names", nargs="+", metavar="VOLUME")


def cmd_volume_rm(ctx: Context, a: argparse.Namespace) -> int:
    client = ctx.client
    return each(ctx, a.names, lambda name: client.delete(_v(name), {"force": a.force or None}))


def args_volume_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="remove all unused volumes, not just anonymous ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help='provide filter values (e.g. "label=<label>")')


def cmd_volume_prune(ctx: Context, a: argparse.Namespace) -> int:
    warning = (
        "WARNING! This will remove all local volumes not used by at least one container."
        if a.all
        else "WARNING! This will remove anonymous local volumes not used by at least one container."
    )
    if not a.force and not confirm(ctx, warning):
        return 0
    filters = [*a.filter, "all=true"] if a.all else list(a.filter)
    result = ctx.client.post("/volumes/prune", {"filters": filters_json(filters) if filters else None}) or {}
    deleted = result.get("VolumesDeleted") or []
    if deleted:
        print("Deleted Volumes:")
        for name in deleted:
            print(name)
        print()
    print(f"Total reclaimed space: {humanize.human_size(result.get('SpaceReclaimed') or 0)}")
    return 0
