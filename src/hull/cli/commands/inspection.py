"""Container resource verbs: top (processes), stats (usage), update (limits).

The stats table is the docker CLI's: CPU % from each answer's cpu_stats against its
precpu_stats, memory used without the inactive page cache (the kernel can drop it at once),
sizes as go-units prints them. Several containers are read in parallel, one thread each:
each `stats?stream=0` answer takes a second (the daemon's two samples).
"""

from __future__ import annotations

import argparse
import sys

from hull import humanize
from hull.cli import format as fmt
from hull.cli import units
from hull.cli.client import APIError, CLIError, path_quote
from hull.cli.context import Context

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms of every start)
if TYPE_CHECKING:
    from typing import Any

STATS_DEFAULT = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
)
STATS_HEADERS = {
    "ID": "CONTAINER ID",
    "Container": "CONTAINER",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}
# docker top's tabwriter: columns at least 20 wide.
TOP_MIN_WIDTH = 20
# What a terminal is told to clear itself with between two tables of `stats` (as docker does).
CLEAR_SCREEN = "\033[2J\033[H"


def _c(ident: str) -> str:
    return f"/containers/{path_quote(ident)}"


# ------------------------------------------------------------------------------------- top


def args_top(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]")


def cmd_top(ctx: Context, a: argparse.Namespace) -> int:
    params = {"ps_args": " ".join(a.ps_args)} if a.ps_args else None
    procs = ctx.client.get(f"{_c(a.container)}/top", params)
    lines = ["\t".join(procs["Titles"])] + ["\t".join(p) for p in procs.get("Processes") or []]
    sys.stdout.write(fmt.tabwrite("\n".join(lines), minwidth=TOP_MIN_WIDTH) + "\n")
    return 0


# ----------------------------------------------------------------------------------- stats


def args_stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default shows just running)")
    p.add_argument("--format", default="", help="format output using a custom template")
    p.add_argument("--no-stream", action="store_true", help="disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")


def _cpu_percent(s: dict[str, Any]) -> float:
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    return cpu_delta / system_delta * online * 100.0 if system_delta > 0 and cpu_delta > 0 else 0.0


def _memory_used(mem: dict[str, Any]) -> int:
    """Usage without the inactive page cache: cgroup v1's total_inactive_file, v2's inactive_file."""
    usage = int(mem.get("usage") or 0)
    stats = mem.get("stats") or {}
    inactive = stats.get("total_inactive_file", stats.get("inactive_file"))
    return usage - inactive if inactive is not None and inactive < usage else usage


def _block_io(s: dict[str, Any]) -> tuple[int, int]:
    read = write = 0
    for entry in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = (entry.get("op") or " ")[0].lower()
        if op == "r":
            read += entry.get("value", 0)
        elif op == "w":
            write += entry.get("value", 0)
    return read, write


def _net_io(s: dict[str, Any]) -> tuple[int, int]:
    nets = (s.get("networks") or {}).values()
    return sum(n.get("rx_bytes", 0) for n in nets), sum(n.get("tx_bytes", 0) for n in nets)


def stats_record(container: str, s: dict[str, Any], no_trunc: bool) -> dict[str, Any]:
    """The docker CLI's row of one stats answer."""
    mem = s.get("memory_stats") or {}
    used, limit = _memory_used(mem), int(mem.get("limit") or 0)
    blk_read, blk_write = _block_io(s)
    rx, tx = _net_io(s)
    cid = s.get("id") or ""
    return {
        "Container": container,
        "ID": cid if no_trunc else cid[:12],
        "Name": (s.get("name") or "").lstrip("/") or "--",
        "CPUPerc": f"{_cpu_percent(s):.2f}%",
        "MemUsage": f"{humanize.bytes_size(used)} / {humanize.bytes_size(limit)}",
        "MemPerc": f"{used / limit * 100.0 if limit else 0.0:.2f}%",
        "NetIO": f"{humanize.human_size(rx, 3)} / {humanize.human_size(tx, 3)}",
        "BlockIO": f"{humanize.human_size(blk_read, 3)} / {humanize.human_size(blk_write, 3)}",
        "PIDs": str((s.get("pids_stats") or {}).get("current", 0)),
    }


def _targets(ctx: Context, a: argparse.Namespace) -> list[str]:
    if a.containers:
        return list(a.containers)
    listed = ctx.client.get("/containers/json", {"all": True if a.all else None})
    return [c["Id"] for c in listed]


def cmd_stats(ctx: Context, a: argparse.Namespace) -> int:
    import threading

    client = ctx.client
    names = _targets(ctx, a)
    latest: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}

    def read(name: str) -> None:
        try:
            if a.no_stream:
                latest[name] = client.get(f"{_c(name)}/stats", {"stream": False})
                return
            resp = client.request("GET", f"{_c(name)}/stats", {"stream": True})
            for s in client.json_lines(resp):
                latest[name] = s
        except (APIError, CLIError) as e:
            errors[name] = e.message

    threads = [threading.Thread(target=read, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    if a.no_stream:
        for t in threads:
            t.join()
        for name in names:
            if name in errors:
                raise CLIError(errors[name])
        _print_stats(a, names, latest, clear=False)
        return 0
    import time

    while True:
        time.sleep(1.0)
        failed = [n for n in names if n in errors]
        if failed and len(failed) == len(names):
            raise CLIError(errors[failed[0]])
        _print_stats(a, [n for n in names if n in latest], latest, clear=sys.stdout.isatty())


def _print_stats(a: argparse.Namespace, names: list[str], latest: dict[str, dict[str, Any]], clear: bool) -> None:
    if clear:
        sys.stdout.write(CLEAR_SCREEN)
    records = [stats_record(n, latest[n], a.no_trunc) for n in names]
    fmt.write_records(a.format, STATS_DEFAULT, STATS_HEADERS, records)
    sys.stdout.flush()


# ---------------------------------------------------------------------------------- update


def args_update(p: argparse.ArgumentParser) -> None:
    p.add_argument("--blkio-weight", type=int, default=0, help="block IO (relative weight), between 10 and 1000")
    p.add_argument("--cpu-period", type=int, default=0, help="limit CPU CFS (Completely Fair Scheduler) period")
    p.add_argument("--cpu-quota", type=int, default=0, help="limit CPU CFS (Completely Fair Scheduler) quota")
    p.add_argument("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)")
    p.add_argument("--cpus", default="", help="number of CPUs")
    p.add_argument("--cpuset-cpus", default="", help="CPUs in which to allow execution (0-3, 0,1)")
    p.add_argument("--cpuset-mems", default="", help="MEMs in which to allow execution (0-3, 0,1)")
    p.add_argument("-m", "--memory", default="", help="memory limit")
    p.add_argument("--memory-reservation", default="", help="memory soft limit")
    p.add_argument("--memory-swap", default="", help="memory plus swap limit (-1: unlimited swap)")
    p.add_argument("--pids-limit", type=int, default=None, help="tune container pids limit (set -1 for unlimited)")
    p.add_argument("--restart", default=None, help="restart policy to apply when a container exits")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def update_body(a: argparse.Namespace) -> dict[str, Any]:
    """The HostConfig fragment docker sends: every resource field (0: unchanged), PidsLimit and
    RestartPolicy only when given."""
    body: dict[str, Any] = {
        "BlkioWeight": a.blkio_weight,
        "CpuPeriod": a.cpu_period,
        "CpuQuota": a.cpu_quota,
        "CpuShares": a.cpu_shares,
        "NanoCpus": units.nano_cpus(a.cpus) if a.cpus else 0,
        "CpusetCpus": a.cpuset_cpus,
        "CpusetMems": a.cpuset_mems,
        "Memory": units.ram_in_bytes(a.memory) if a.memory else 0,
        "MemoryReservation": units.ram_in_bytes(a.memory_reservation) if a.memory_reservation else 0,
        "MemorySwap": units.memory_swap(a.memory_swap) if a.memory_swap else 0,
    }
    if a.pids_limit is not None:
        body["PidsLimit"] = a.pids_limit
    if a.restart is not None:
        body["RestartPolicy"] = units.restart_policy(a.restart)
    return body


def cmd_update(ctx: Context, a: argparse.Namespace) -> int:
    body = update_body(a)
    if not any(body.values()) and "PidsLimit" not in body and "RestartPolicy" not in body:
        raise CLIError("you must provide one or more flags when using this command")
    client = ctx.client
    warnings: list[str] = []
    errors: list[str] = []
    for name in a.containers:
        try:
            answer = client.post(f"{_c(name)}/update", body=body) or {}
        except APIError as e:
            errors.append(e.message)
            continue
        print(name, flush=True)
        warnings += answer.get("Warnings") or []
    if warnings:
        print("\n".join(warnings))
    if errors:
        raise CLIError("\n".join(errors))
    return 0
