"""What both cgroup versions do alike: controllers whose files are the same in v1 and v2
(cpuset, pids), the memory check before an update, and the stats shapes built from them.

A *write* is a (file name, value) pair for the container's directory of the controller the
file's prefix names; setters here return writes and leave the writing to the manager, which
knows the directory (v1: one per controller; v2: one for all).
"""

from hull.errors import Conflict
from hull.runtime.cgroups.files import parse_limit, read_cgroup_file
from hull.runtime.cgroups.resources import LinuxCPU, LinuxPids

CPUSET_CPUS = "cpuset.cpus"
CPUSET_MEMS = "cpuset.mems"
PIDS_MAX = "pids.max"
PIDS_CURRENT = "pids.current"

Write = tuple[str, str | int]


def cpuset_writes(cpu: LinuxCPU) -> list[Write]:
    return [(name, value) for name, value in ((CPUSET_CPUS, cpu.cpus), (CPUSET_MEMS, cpu.mems)) if value]


def pids_writes(pids: LinuxPids) -> list[Write]:
    return [(PIDS_MAX, pids.limit if pids.limit > 0 else "max")]


def check_memory_usage(directory: str, usage_file: str, limit: int | None) -> None:
    """Refuse a memory limit below what the cgroup already uses (the spec's checkBeforeUpdate)."""
    if limit is None or limit < 0:
        return
    usage = int(read_cgroup_file(directory, usage_file))
    if usage > limit:
        raise Conflict(f"linux.resources.memory.limit: {limit} is below the current memory usage ({usage} bytes)")


def pids_stats(directory: str) -> dict[str, int]:
    """runc's `pids` stats: a limit of 0 means none."""
    return {
        "current": int(read_cgroup_file(directory, PIDS_CURRENT)),
        "limit": parse_limit(read_cgroup_file(directory, PIDS_MAX)),
    }


def throttling_stats(cpu_stat: dict[str, int], throttled_ns: int) -> dict[str, int]:
    """runc's `cpu.throttling` from a cpu.stat; each version counts throttled time in its own unit."""
    return {
        "periods": cpu_stat.get("nr_periods", 0),
        "throttledPeriods": cpu_stat.get("nr_throttled", 0),
        "throttledTime": throttled_ns,
    }
