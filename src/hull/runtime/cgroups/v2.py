"""The cgroup v2 manager: one directory in the unified hierarchy.

The spec's resources are written in cgroup v1 terms; `resource_writes` turns them into v2
files the way runc does (shares -> cpu.weight, memory+swap -> memory.swap.max, blkio weight
-> io.weight), purely, so the conversions are testable without the kernel. A controller's
files exist in a cgroup only when every ancestor has it in cgroup.subtree_control, so
`apply` enables the controllers it needs from the mount root down, and says plainly when
the host doesn't offer one. File names are the kernel's (Documentation/admin-guide/cgroup-v2.rst).

Not enforced on v2 (a warning, logged and returned by apply): device rules, which need an
eBPF program attached to the cgroup; kernel memory, swappiness, disableOOMKiller and blkio
leaf weights, which v2 has no files for. Realtime CPU and net_cls/net_prio are errors.
"""

import os
import signal
from collections.abc import Sequence
from typing import Any

from hull.errors import HullError, InvalidArgument
from hull.runtime import log
from hull.runtime.cgroups.files import (
    has_cgroup_file,
    parse_limit,
    read_cgroup_file,
    read_keyed,
    write_cgroup_file,
    write_cgroup_files,
)
from hull.runtime.cgroups.manager import CgroupManager
from hull.runtime.cgroups.resources import LinuxBlockIO, LinuxCPU, LinuxMemory, LinuxResources
from hull.runtime.cgroups.shared import (
    PIDS_CURRENT,
    Write,
    check_memory_usage,
    cpuset_writes,
    pids_stats,
    pids_writes,
    throttling_stats,
)

CGROUP_CONTROLLERS = "cgroup.controllers"
CGROUP_SUBTREE_CONTROL = "cgroup.subtree_control"
CGROUP_FREEZE = "cgroup.freeze"
CGROUP_EVENTS = "cgroup.events"
CGROUP_KILL = "cgroup.kill"
CPU_WEIGHT = "cpu.weight"
CPU_MAX = "cpu.max"
CPU_MAX_BURST = "cpu.max.burst"
CPU_IDLE = "cpu.idle"
CPU_STAT = "cpu.stat"
MEMORY_MAX = "memory.max"
MEMORY_LOW = "memory.low"
MEMORY_SWAP_MAX = "memory.swap.max"
MEMORY_CURRENT = "memory.current"
MEMORY_PEAK = "memory.peak"
MEMORY_SWAP_CURRENT = "memory.swap.current"
MEMORY_EVENTS = "memory.events"
MEMORY_STAT = "memory.stat"
IO_WEIGHT = "io.weight"
IO_MAX = "io.max"
IO_STAT = "io.stat"
HUGETLB_MAX = "hugetlb.{}.max"
HUGETLB_CURRENT = "hugetlb.{}.current"
HUGETLB_EVENTS = "hugetlb.{}.events"

# What runc reports for an unlimited memory counter.
UNLIMITED = 2**64 - 1


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2-262144) onto cpu.weight (1-10000), linearly, as runc maps them."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10-1000) onto io.weight (1-10000), linearly, as runc maps them."""
    return 1 + ((weight - 10) * 9999) // 990


def _limit(value: int) -> int | str:
    return "max" if value < 0 else value


def _cpu_writes(cpu: LinuxCPU) -> list[Write]:
    if cpu.realtime_runtime is not None or cpu.realtime_period is not None:
        raise InvalidArgument("linux.resources.cpu.realtimeRuntime: realtime CPU limits need cgroup v1")
    writes: list[Write] = []
    if cpu.shares is not None:
        writes.append((CPU_WEIGHT, shares_to_weight(cpu.shares)))
    if cpu.quota is not None or cpu.period is not None:
        # cpu.max is "QUOTA PERIOD" in one file, so an unset quota here means no quota.
        quota = "max" if cpu.quota is None or cpu.quota < 0 else str(cpu.quota)
        writes.append((CPU_MAX, quota if cpu.period is None else f"{quota} {cpu.period}"))
    if cpu.burst is not None:
        writes.append((CPU_MAX_BURST, cpu.burst))
    if cpu.idle is not None:
        writes.append((CPU_IDLE, cpu.idle))
    return writes


def _memory_writes(mem: LinuxMemory) -> tuple[list[Write], list[str]]:
    writes: list[Write] = []
    if mem.swap is not None:
        if mem.swap == -1:
            writes.append((MEMORY_SWAP_MAX, "max"))
        elif mem.limit is None or mem.limit < 0:
            raise InvalidArgument(
                "linux.resources.memory.swap: on cgroup v2 the swap limit is memory+swap minus the memory "
                "limit, so a memory limit is needed too"
            )
        else:
            writes.append((MEMORY_SWAP_MAX, mem.swap - mem.limit))
    if mem.limit is not None:
        writes.append((MEMORY_MAX, _limit(mem.limit)))
    if mem.reservation is not None:
        writes.append((MEMORY_LOW, _limit(mem.reservation)))
    unsupported = {
        "kernel": mem.kernel is not None,
        "kernelTCP": mem.kernel_tcp is not None,
        "swappiness": mem.swappiness is not None,
        "disableOOMKiller": bool(mem.disable_oom_killer),
        "useHierarchy": mem.use_hierarchy is False,  # v2 is always hierarchical
    }
    warnings = [
        f"linux.resources.memory.{k} is ignored: cgroup v2 has no such setting" for k, v in unsupported.items() if v
    ]
    return writes, warnings


def _io_writes(bio: LinuxBlockIO) -> tuple[list[Write], list[str]]:
    writes: list[Write] = []
    if bio.weight is not None:
        writes.append((IO_WEIGHT, blkio_weight_to_io_weight(bio.weight)))
    for wd in bio.weight_device:
        if wd.weight is not None:
            writes.append((IO_WEIGHT, f"{wd.major}:{wd.minor} {blkio_weight_to_io_weight(wd.weight)}"))
    for key, devices in (
        ("rbps", bio.throttle_read_bps_device),
        ("wbps", bio.throttle_write_bps_device),
        ("riops", bio.throttle_read_iops_device),
        ("wiops", bio.throttle_write_iops_device),
    ):
        writes += [(IO_MAX, f"{t.major}:{t.minor} {key}={t.rate}") for t in devices]
    leaf = bio.leaf_weight is not None or any(wd.leaf_weight is not None for wd in bio.weight_device)
    warnings = ["linux.resources.blockIO leaf weights are ignored: cgroup v2 has none"] if leaf else []
    return writes, warnings


def resource_writes(r: LinuxResources) -> tuple[list[Write], list[str]]:
    """The (file, value) writes that carry out `r` on cgroup v2, in order, and the warnings
    for what v2 can't enforce. `unified` comes last, so its explicit values win."""
    if r.network is not None:
        raise InvalidArgument("linux.resources.network: net_cls/net_prio need cgroup v1")
    writes: list[Write] = []
    warnings: list[str] = []
    if r.cpu is not None:
        writes += _cpu_writes(r.cpu) + cpuset_writes(r.cpu)
    if r.memory is not None:
        mem_writes, mem_warnings = _memory_writes(r.memory)
        writes += mem_writes
        warnings += mem_warnings
    if r.pids is not None:
        writes += pids_writes(r.pids)
    if r.block_io is not None:
        io_writes, io_warnings = _io_writes(r.block_io)
        writes += io_writes
        warnings += io_warnings
    writes += [(HUGETLB_MAX.format(h.page_size), h.limit) for h in r.hugepage_limits]
    if r.devices:
        warnings.append(
            f"linux.resources.devices: {len(r.devices)} device rule(s) not enforced: "
            "cgroup v2 device control needs an eBPF program, which hull does not load"
        )
    writes += list(r.unified.items())
    return writes, warnings


def controllers_for(writes: list[Write]) -> set[str]:
    """The controllers whose files the writes touch (`cgroup.*` files are the core's)."""
    return {name.split(".", 1)[0] for name, _ in writes} - {"cgroup"}


class V2Manager(CgroupManager):
    version = 2

    def __init__(self, root: str, directory: str, created: Sequence[str] = ()) -> None:
        """`root` is the cgroup2 mount point, `directory` the container's cgroup below it."""
        if os.path.commonpath([root, directory]) != root or root == directory:
            raise HullError(f"cgroup {directory} is not below the cgroup2 mount {root}")
        super().__init__({"": directory}, created)
        self._root = root
        self._dir = directory

    @classmethod
    def from_json(cls, d: Any) -> "V2Manager":
        paths, created = cls._fields_from_json(d)
        root = d.get("root")
        if not isinstance(root, str) or not os.path.isabs(root) or set(paths) != {""}:
            raise HullError(f"cgroup state: a cgroup v2 manager needs its mount root and one path, got {d!r}")
        return cls(root, paths[""], created)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "root": self._root}

    def apply(self, resources: LinuxResources) -> list[str]:
        writes, warnings = resource_writes(resources)
        self._enable_controllers(controllers_for(writes))
        if resources.memory is not None and resources.memory.check_before_update:
            check_memory_usage(self._dir, MEMORY_CURRENT, resources.memory.limit)
        write_cgroup_files(self._dir, writes)
        for w in warnings:
            log.warning(w)
        return warnings

    def _enable_controllers(self, controllers: set[str]) -> None:
        """Enable `controllers` in cgroup.subtree_control of every ancestor, from the root down."""
        if not controllers:
            return
        level = self._root
        for part in os.path.relpath(self._dir, self._root).split("/"):
            missing = sorted(controllers - set(read_cgroup_file(level, CGROUP_CONTROLLERS).split()))
            if missing:
                names = ", ".join(f'"{c}"' for c in missing)
                verb = "controller {} is" if len(missing) == 1 else "controllers {} are"
                raise HullError(f"cgroup v2 {verb.format(names)} not available in {level}")
            to_enable = sorted(controllers - set(read_cgroup_file(level, CGROUP_SUBTREE_CONTROL).split()))
            if to_enable:
                write_cgroup_file(level, CGROUP_SUBTREE_CONTROL, " ".join(f"+{c}" for c in to_enable))
            level = os.path.join(level, part)

    # --- freezer, signals, events, stats --------------------------------------------------

    def _membership_dir(self) -> str:
        return self._dir

    def _can_freeze(self) -> bool:
        return has_cgroup_file(self._dir, CGROUP_FREEZE)

    def _request_frozen(self, frozen: bool) -> None:
        write_cgroup_file(self._dir, CGROUP_FREEZE, int(frozen))

    def frozen(self) -> bool:
        if not has_cgroup_file(self._dir, CGROUP_EVENTS):
            return False
        return read_keyed(self._dir, CGROUP_EVENTS).get("frozen") == 1

    def kill_all(self, sig: int) -> None:
        # cgroup.kill (5.14+) kills the whole subtree at once, racing no fork.
        if sig == signal.SIGKILL and has_cgroup_file(self._dir, CGROUP_KILL):
            write_cgroup_file(self._dir, CGROUP_KILL, 1)
        else:
            super().kill_all(sig)

    def oom_kill_count(self) -> int:
        if not has_cgroup_file(self._dir, MEMORY_EVENTS):
            return 0
        return read_keyed(self._dir, MEMORY_EVENTS).get("oom_kill", 0)

    def stats(self) -> dict[str, Any]:
        d = self._dir
        cpu = read_keyed(d, CPU_STAT)  # a core file: there with or without the cpu controller
        out: dict[str, Any] = {
            "cpu": {
                "usage": {
                    "total": cpu.get("usage_usec", 0) * 1000,
                    "kernel": cpu.get("system_usec", 0) * 1000,
                    "user": cpu.get("user_usec", 0) * 1000,
                },
                "throttling": throttling_stats(cpu, cpu.get("throttled_usec", 0) * 1000),
            }
        }
        if has_cgroup_file(d, MEMORY_CURRENT):
            out["memory"] = _memory_stats(d)
        if has_cgroup_file(d, PIDS_CURRENT):
            out["pids"] = pids_stats(d)
        if has_cgroup_file(d, IO_STAT):
            out["blkio"] = _io_stats(d)
        sizes = sorted(n.split(".")[1] for n in os.listdir(d) if n.startswith("hugetlb.") and n.endswith(".max"))
        if sizes:
            out["hugetlb"] = {
                size: {
                    "usage": int(read_cgroup_file(d, HUGETLB_CURRENT.format(size))),
                    "failcnt": read_keyed(d, HUGETLB_EVENTS.format(size)).get("max", 0),
                }
                for size in sizes
            }
        return out


def _memory_stats(d: str) -> dict[str, Any]:
    usage = int(read_cgroup_file(d, MEMORY_CURRENT))
    limit = parse_limit(read_cgroup_file(d, MEMORY_MAX), UNLIMITED)
    out: dict[str, Any] = {
        "usage": {
            "usage": usage,
            "limit": limit,
            "failcnt": read_keyed(d, MEMORY_EVENTS).get("max", 0),
        }
    }
    if has_cgroup_file(d, MEMORY_PEAK):
        out["usage"]["max"] = int(read_cgroup_file(d, MEMORY_PEAK))
    if has_cgroup_file(d, MEMORY_SWAP_CURRENT):
        # Reported as memory+swap, the v1 meaning of `swap` that runc's consumers expect.
        swap_limit = parse_limit(read_cgroup_file(d, MEMORY_SWAP_MAX), UNLIMITED)
        out["swap"] = {
            "usage": usage + int(read_cgroup_file(d, MEMORY_SWAP_CURRENT)),
            "limit": UNLIMITED if UNLIMITED in (limit, swap_limit) else limit + swap_limit,
        }
    raw = read_keyed(d, MEMORY_STAT)
    out["cache"] = raw.get("file", 0)
    out["raw"] = raw
    return out


def _io_stats(d: str) -> dict[str, Any]:
    """io.stat lines `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=..` in runc's blkio shape."""
    service_bytes, serviced = [], []
    for line in read_cgroup_file(d, IO_STAT).splitlines():
        device, *pairs = line.split()
        major, _, minor = device.partition(":")
        values = dict(p.split("=", 1) for p in pairs)
        for op, nbytes, nios in (("Read", "rbytes", "rios"), ("Write", "wbytes", "wios")):
            base = {"major": int(major), "minor": int(minor), "op": op}
            service_bytes.append({**base, "value": int(values.get(nbytes, 0))})
            serviced.append({**base, "value": int(values.get(nios, 0))})
    return {"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced}
