"""System verbs: inspect, events, version, info, system df."""

from __future__ import annotations

import argparse
import json
import platform
import sys

from hull import humanize
from hull.cli import format as fmt
from hull.cli.client import MAX_API_VERSION, APIError, CLIError, ConnectError, filters_json, path_quote
from hull.cli.context import Context

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms of every start)
if TYPE_CHECKING:
    from typing import Any

CLIENT_VERSION = "0.1.0"

_INSPECT_PATHS = {
    "container": "/containers/{}/json",
    "image": "/images/{}/json",
    "network": "/networks/{}",
    "volume": "/volumes/{}",
}


def _render(template: str, data: Any) -> str:
    from hull.cli.template import TemplateError, render

    try:
        return render(fmt.normalize(template), data)
    except TemplateError as e:
        raise CLIError(f"template parsing error: {e}") from None


def inspect_objects(ctx: Context, names: list[str], kind: str | None, template: str | None, size: bool) -> int:
    """GET each object's JSON; print them as one indented JSON array or through the template."""
    client = ctx.client
    kinds = [kind] if kind else list(_INSPECT_PATHS)
    found: list[Any] = []
    status = 0
    for name in names:
        obj = None
        for k in kinds:
            params = {"size": True} if size and k == "container" else None
            try:
                obj = client.get(_INSPECT_PATHS[k].format(path_quote(name)), params)
                break
            except APIError as e:
                if e.code != 404:
                    raise
                last = e
        if obj is None:
            status = 1
            ctx.err(f"Error: No such object: {name}" if not kind else last.message)
            continue
        if template is None:
            found.append(obj)
        else:
            sys.stdout.write(_render(template, obj) + "\n")
    if template is None:
        print(json.dumps(found, indent=4, ensure_ascii=False))
    return status


def args_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default=None, help="format output using a custom template")
    p.add_argument("-s", "--size", action="store_true", help="display total file sizes if the type is container")
    p.add_argument("--type", default=None, choices=list(_INSPECT_PATHS), help="return JSON for specified type")
    p.add_argument("names", nargs="+", metavar="NAME|ID")


def cmd_inspect(ctx: Context, a: argparse.Namespace) -> int:
    return inspect_objects(ctx, a.names, a.type, a.format, a.size)


# ------------------------------------------------------------------------------ events
def format_event(e: dict[str, Any]) -> str:
    """One event as docker prints it: time, type, action, actor id, (sorted attributes)."""
    if e.get("timeNano"):
        head = fmt.rfc3339_nano_fixed(int(e["timeNano"])) + " "
    elif e.get("time"):
        head = fmt.rfc3339_nano_fixed(int(e["time"]) * 1_000_000_000) + " "
    else:
        head = ""
    actor = e.get("Actor") or {}
    line = f"{head}{e.get('Type', '')} {e.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


def args_events(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filter", action="append", default=[], help="filter output based on conditions provided")
    p.add_argument("--format", default=None, help="format output using a custom template")
    p.add_argument("--since", default="", help="show all events created since timestamp")
    p.add_argument("--until", default="", help="stream events until this timestamp")


def cmd_events(ctx: Context, a: argparse.Namespace) -> int:
    from hull.cli import units

    params = {
        "since": units.timestamp(a.since) if a.since else None,
        "until": units.timestamp(a.until) if a.until else None,
        "filters": filters_json(a.filter) if a.filter else None,
    }
    resp = ctx.client.request("GET", "/events", params)
    for event in ctx.client.json_lines(resp):
        if a.format == "json" or a.format == "{{json .}}":
            line = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        elif a.format:
            line = _render(a.format, event)
        else:
            line = format_event(event)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return 0


# ------------------------------------------------------------------------------ version / info
def args_version(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default=None, help="format output using a custom template")


def _client_info(api: str) -> dict[str, Any]:
    return {
        "Platform": {"Name": ""}, "Version": CLIENT_VERSION, "ApiVersion": api, "DefaultAPIVersion": MAX_API_VERSION,
        "GoVersion": f"python{platform.python_version()}", "GitCommit": "", "BuildTime": "",
        "Os": "linux", "Arch": platform.machine().replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "Context": "default",
    }  # fmt: skip


def cmd_version(ctx: Context, a: argparse.Namespace) -> int:
    server: dict[str, Any] | None = None
    error: CLIError | None = None
    api = MAX_API_VERSION
    try:
        server = ctx.client.get("/version")
        api = ctx.client.version
    except (ConnectError, APIError) as e:
        error = e
    client = _client_info(api)
    client["APIVersion"] = api
    if a.format:
        sys.stdout.write(_render(a.format, {"Client": client, "Server": server}) + "\n")
    else:
        downgraded = f" (downgraded from {MAX_API_VERSION})" if api != MAX_API_VERSION else ""
        lines = [
            "Client:",
            f" Version:           {client['Version']}",
            f" API version:       {api}{downgraded}",
            f" Python version:    {platform.python_version()}",
            f" OS/Arch:           {client['Os']}/{client['Arch']}",
            f" Context:           {client['Context']}",
        ]
        if server is not None:
            lines += [
                "",
                "Server:" + (f" {server['Platform']['Name']}" if (server.get("Platform") or {}).get("Name") else ""),
            ]
            for comp in server.get("Components") or [
                {"Name": "Engine", "Version": server.get("Version"), "Details": server}
            ]:
                d = comp.get("Details") or {}
                lines.append(f" {comp.get('Name')}:")
                lines.append(f"  Version:          {comp.get('Version', '')}")
                if comp.get("Name") == "Engine":
                    lines += [
                        f"  API version:      {d.get('ApiVersion', server.get('ApiVersion'))}"
                        f" (minimum version {d.get('MinAPIVersion', server.get('MinAPIVersion'))})",
                        f"  Go version:       {d.get('GoVersion', server.get('GoVersion', ''))}",
                        f"  Git commit:       {d.get('GitCommit', server.get('GitCommit', ''))}",
                        f"  Built:            {d.get('BuildTime', server.get('BuildTime', ''))}",
                        f"  OS/Arch:          {d.get('Os', server.get('Os', ''))}/"
                        f"{d.get('Arch', server.get('Arch', ''))}",
                        f"  Experimental:     {str(d.get('Experimental', server.get('Experimental', False))).lower()}",
                    ]
                else:
                    for k, v in d.items():
                        lines.append(f"  {k + ':':<18}{v}")
        print("\n".join(lines))
    if error is not None:
        raise error
    return 0


def args_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default=None, help="format output using a custom template")


def cmd_info(ctx: Context, a: argparse.Namespace) -> int:
    info = ctx.client.get("/info")
    if a.format:
        sys.stdout.write(
            _render(a.format, {**info, "ClientInfo": _client_info(ctx.client.version), **{"ServerErrors": None}}) + "\n"
        )
        return 0
    g = info.get
    lines = [
        "Client:", f" Version:    {CLIENT_VERSION}", " Context:    default", " Debug Mode: false", "",
        "Server:",
        f" Containers: {g('Containers', 0)}", f"  Running: {g('ContainersRunning', 0)}",
        f"  Paused: {g('ContainersPaused', 0)}", f"  Stopped: {g('ContainersStopped', 0)}",
        f" Images: {g('Images', 0)}", f" Server Version: {g('ServerVersion', '')}",
        f" Storage Driver: {g('Driver', '')}",
    ]  # fmt: skip
    lines += [f"  {k}: {v}" for k, v in g("DriverStatus") or []]
    lines += [
        f" Logging Driver: {g('LoggingDriver', '')}",
        f" Cgroup Driver: {g('CgroupDriver', '')}",
        f" Cgroup Version: {g('CgroupVersion', '')}",
        f" Runtimes: {' '.join(sorted(g('Runtimes') or {}))}",
        f" Default Runtime: {g('DefaultRuntime', '')}",
        f" Kernel Version: {g('KernelVersion', '')}",
        f" Operating System: {g('OperatingSystem', '')}",
        f" OSType: {g('OSType', '')}",
        f" Architecture: {g('Architecture', '')}",
        f" CPUs: {g('NCPU', 0)}",
        f" Total Memory: {humanize.bytes_size(g('MemTotal') or 0)}",
        f" Name: {g('Name', '')}",
        f" ID: {g('ID', '')}",
        f" Docker Root Dir: {g('DockerRootDir', '')}",
        f" Debug Mode: {str(g('Debug', False)).lower()}",
        f" Experimental: {str(g('ExperimentalBuild', False)).lower()}",
        f" Live Restore Enabled: {str(g('LiveRestoreEnabled', False)).lower()}",
    ]
    print("\n".join(lines))
    for w in g("Warnings") or []:
        ctx.err(w)
    return 0


# ------------------------------------------------------------------------------ system df
DF_DEFAULT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}


def _pct(reclaimable: int, total: int) -> str:
    if total > 0:
        return f"{humanize.human_size(reclaimable)} ({reclaimable * 100 // total}%)"
    return humanize.human_size(reclaimable)


def df_records(df: dict[str, Any]) -> list[dict[str, Any]]:
    """The four summary rows of `system df` from GET /system/df."""
    images = df.get("Images") or []
    containers = df.get("Containers") or []
    volumes = df.get("Volumes") or []
    cache = df.get("BuildCache") or []
    layers = int(df.get("LayersSize") or 0)
    used = sum(
        (i.get("Size", 0) or 0) - (i.get("SharedSize", 0) or 0)
        for i in images
        if i.get("Containers", 0) not in (0, -1) and i.get("SharedSize", 0) != -1
    )
    c_total = sum(int(c.get("SizeRw") or 0) for c in containers)
    c_active = [c for c in containers if c.get("State") in ("running", "paused", "restarting")]
    c_reclaim = c_total - sum(int(c.get("SizeRw") or 0) for c in c_active)
    v_sizes = [
        ((v.get("UsageData") or {}).get("Size", -1), (v.get("UsageData") or {}).get("RefCount", 0)) for v in volumes
    ]
    v_total = sum(s for s, _ in v_sizes if s != -1)
    v_reclaim = sum(s for s, r in v_sizes if s != -1 and r == 0)
    b_total = int(df.get("BuilderSize") or sum(int(b.get("Size") or 0) for b in cache))
    b_inuse = sum(int(b.get("Size") or 0) for b in cache if b.get("InUse") and not b.get("Shared"))
    return [
        {"Type": "Images", "TotalCount": str(len(images)),
         "Active": str(sum(1 for i in images if i.get("Containers", 0) > 0)),
         "Size": humanize.human_size(layers), "Reclaimable": _pct(layers - used, layers)},
        {"Type": "Containers", "TotalCount": str(len(containers)), "Active": str(len(c_active)),
         "Size": humanize.human_size(c_total), "Reclaimable": _pct(c_reclaim, c_total)},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)), "Active": str(sum(1 for _, r in v_sizes if r > 0)),
         "Size": humanize.human_size(v_total), "Reclaimable": _pct(v_reclaim, v_total)},
        {"Type": "Build Cache", "TotalCount": str(len(cache)), "Active": str(sum(1 for b in cache if b.get("InUse"))),
         "Size": humanize.human_size(b_total), "Reclaimable": humanize.human_size(b_total - b_inuse)},
    ]  # fmt: skip


def args_df(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="show detailed information on space usage")
    p.add_argument("--format", default=None, help="format output using a custom template")


def cmd_df(ctx: Context, a: argparse.Namespace) -> int:
    from hull.cli.commands.containers import container_record
    from hull.cli.commands.images import image_records

    df = ctx.client.get("/system/df") or {}
    if not a.verbose:
        fmt.write_records(a.format, DF_DEFAULT, DF_HEADERS, df_records(df))
        return 0
    print("Images space usage:\n")
    records = []
    for image, rec in ((i, r) for i in df.get("Images") or [] for r in image_records([i], True, False)):
        shared = image.get("SharedSize", -1)
        rec["SharedSize"] = "N/A" if shared == -1 else humanize.human_size(shared)
        rec["UniqueSize"] = "N/A" if shared == -1 else humanize.human_size((image.get("Size") or 0) - shared)
        records.append(rec)
    fmt.write_records(
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t"
        "{{.UniqueSize}}\t{{.Containers}}",
        "", {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED", "Size": "SIZE",
             "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS"}, records,
    )  # fmt: skip
    print("\nContainers space usage:\n")
    crecs = []
    for c in df.get("Containers") or []:
        rec = container_record(c, True)
        rec["Size"] = humanize.human_size(c.get("SizeRw") or 0, 3)
        crecs.append(rec)
    fmt.write_records(
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t"
        "{{.Names}}",
        "", {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "LocalVolumes": "LOCAL VOLUMES",
             "Size": "SIZE", "RunningFor": "CREATED", "Status": "STATUS", "Names": "NAMES"}, crecs,
    )  # fmt: skip
    print("\nLocal Volumes space usage:\n")
    vrecs = [
        {"Name": v.get("Name", ""), "Links": str((v.get("UsageData") or {}).get("RefCount", 0)),
         "Size": humanize.human_size((v.get("UsageData") or {}).get("Size", 0))}
        for v in df.get("Volumes") or []
    ]  # fmt: skip
    fmt.write_records(
        "table {{.Name}}\t{{.Links}}\t{{.Size}}", "", {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}, vrecs
    )
    cache = df.get("BuildCache") or []
    print(f"\nBuild cache usage: {humanize.human_size(int(df.get('BuilderSize') or 0))}\n")
    brecs = [
        {"ID": fmt.short_id(b.get("ID", "")), "Type": b.get("Type", ""),
         "Size": humanize.human_size(b.get("Size") or 0),
         "Created": fmt.since(fmt.parse_time(b.get("CreatedAt"))),
         "LastUsed": fmt.since(fmt.parse_time(b.get("LastUsedAt"))),
         "Usage": str(b.get("UsageCount", 0)), "Shared": str(bool(b.get("Shared"))).lower()}
        for b in cache
    ]  # fmt: skip
    fmt.write_records(
        "table {{.ID}}\t{{.Type}}\t{{.Size}}\t{{.Created}}\t{{.LastUsed}}\t{{.Usage}}\t{{.Shared}}", "",
        {"ID": "CACHE ID", "Type": "CACHE TYPE", "Size": "SIZE", "Created": "CREATED", "LastUsed": "LAST USED",
         "Usage": "USAGE", "Shared": "SHARED"}, brecs,
    )  # fmt: skip
    return 0
