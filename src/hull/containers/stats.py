"""A container's resource usage as Docker's stats JSON (`GET /containers/{id}/stats`).

A *sample* is one reading of the container's cgroup (CgroupManager.stats(), runc's shape,
either cgroup version) together with the host's CPU time from /proc/stat, turned into
Docker's field names: cpu_stats, memory_stats, pids_stats, blkio_stats, read. Clients
compute CPU % from two samples (cpu_stats against precpu_stats), so `with_previous` carries
the last sample's cpu_stats and read time into the next one, as dockerd's stats loop does.
A container that is not running has the *empty* stats dockerd sends: zeros, name and id.
"""

import functools
import os
from typing import Any

from hull.containers.manager import rfc3339_now
from hull.containers.record import ZERO_TIME
from hull.runtime.cgroups import CgroupManager

PROC_STAT = "/proc/stat"
PROC_MEMINFO = "/proc/meminfo"
NANOS_PER_SECOND = 1_000_000_000
# The /proc/stat fields dockerd adds up for the host's CPU time: user nice system idle iowait irq softirq.
SYSTEM_CPU_FIELDS = 7
# Docker's blkio_stats keys; hull reads the first two (the throttle layer's counters), as runc does.
BLKIO_KEYS = (
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
)
_RUNC_BLKIO = {"io_service_bytes_recursive": "ioServiceBytesRecursive", "io_serviced_recursive": "ioServicedRecursive"}


def system_cpu() -> tuple[int, int]:
    """(the host's CPU time in ns, the number of online CPUs), from /proc/stat as dockerd reads it."""
    total, cpus = 0, 0
    with open(PROC_STAT) as f:
        for line in f:
            fields = line.split()
            if not fields or not fields[0].startswith("cpu"):
                break  # the cpu lines come first
            if fields[0] == "cpu":
                total = sum(int(v) for v in fields[1 : 1 + SYSTEM_CPU_FIELDS])
            else:
                cpus += 1
    return total * NANOS_PER_SECOND // os.sysconf("SC_CLK_TCK"), cpus


@functools.cache
def machine_memory() -> int:
    """MemTotal in bytes: the limit Docker reports for a container without one."""
    with open(PROC_MEMINFO) as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _empty_cpu() -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def empty(name: str, container_id: str) -> dict[str, Any]:
    """What dockerd answers for a container that is not running."""
    return {
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": dict.fromkeys(BLKIO_KEYS),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _empty_cpu(),
        "precpu_stats": _empty_cpu(),
        "memory_stats": {},
        "name": "/" + name,
        "id": container_id,
    }


def _cpu_stats(cpu: dict[str, Any]) -> dict[str, Any]:
    usage, throttling = cpu.get("usage") or {}, cpu.get("throttling") or {}
    cpu_usage: dict[str, Any] = {"total_usage": usage.get("total", 0)}
    if usage.get("percpu"):
        cpu_usage["percpu_usage"] = usage["percpu"]
    cpu_usage["usage_in_kernelmode"] = usage.get("kernel", 0)
    cpu_usage["usage_in_usermode"] = usage.get("user", 0)
    system_ns, online = system_cpu()
    return {
        "cpu_usage": cpu_usage,
        "system_cpu_usage": system_ns,
        "online_cpus": online,
        "throttling_data": {
            "periods": throttling.get("periods", 0),
            "throttled_periods": throttling.get("throttledPeriods", 0),
            "throttled_time": throttling.get("throttledTime", 0),
        },
    }


def _memory_stats(memory: dict[str, Any]) -> dict[str, Any]:
    usage = memory.get("usage") or {}
    out: dict[str, Any] = {"usage": usage.get("usage", 0)}
    if usage.get("max"):
        out["max_usage"] = usage["max"]
    out["stats"] = memory.get("raw") or {}
    if usage.get("failcnt"):
        out["failcnt"] = usage["failcnt"]
    # An unlimited cgroup reports the kernel's "no limit" (2^63 rounded to pages): Docker shows the host's memory.
    host = machine_memory()
    limit = usage.get("limit", 0)
    out["limit"] = host if host and (limit <= 0 or limit > host) else limit
    return out


def _blkio_stats(blkio: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {key: [] for key in BLKIO_KEYS}
    for key, runc_key in _RUNC_BLKIO.items():
        out[key] = [
            {"major": e["major"], "minor": e["minor"], "op": e["op"], "value": e["value"]}
            for e in blkio.get(runc_key) or []
        ]
    return out


def sample(cgroup: CgroupManager, name: str, container_id: str) -> dict[str, Any]:
    """One reading of the container's cgroup in Docker's shape, with no previous sample yet."""
    raw = cgroup.stats()
    pids = raw.get("pids") or {}
    out = empty(name, container_id)
    out["read"] = rfc3339_now()
    # Docker leaves a limit of 0 (none) out.
    out["pids_stats"] = {"current": pids.get("current", 0), **({"limit": pids["limit"]} if pids.get("limit") else {})}
    out["blkio_stats"] = _blkio_stats(raw.get("blkio") or {})
    out["cpu_stats"] = _cpu_stats(raw.get("cpu") or {})
    out["memory_stats"] = _memory_stats(raw["memory"]) if "memory" in raw else {}
    return out


def with_previous(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """`current` with precpu_stats and preread from the sample before it."""
    if previous is not None:
        current["precpu_stats"] = previous["cpu_stats"]
        current["preread"] = previous["read"]
    return current
