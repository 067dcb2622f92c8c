"""The cgroup v1 manager: one directory per mounted hierarchy (legacy or hybrid hosts).

The container gets a directory in *every* mounted hierarchy, named ones like `name=systemd`
and, on a hybrid host, the cgroup2 one included, so its processes leave the caller's cgroups
everywhere. Resources go to the hierarchy that carries their controller; asking for one
whose controller is not mounted is an error, never a silent no-op. File names are the
kernel's (Documentation/admin-guide/cgroup-v1/).
"""

import os
from typing import Any

from hull.errors import HullError, InvalidArgument
from hull.runtime import log
from hull.runtime.cgroups.files import (
    has_cgroup_file,
    read_cgroup_file,
    read_keyed,
    write_cgroup_file,
    write_cgroup_files,
)
from hull.runtime.cgroups.manager import CgroupManager
from hull.runtime.cgroups.resources import LinuxBlockIO, LinuxCPU, LinuxMemory, LinuxNetwork, LinuxResources
from hull.runtime.cgroups.shared import (
    CPUSET_CPUS,
    CPUSET_MEMS,
    check_memory_usage,
    cpuset_writes,
    pids_stats,
    pids_writes,
    throttling_stats,
)
from hull.runtime.devices import DEFAULT_ALLOWED_RULES, DeviceRule

CPU_SHARES = "cpu.shares"
CPU_CFS_QUOTA = "cpu.cfs_quota_us"
CPU_CFS_PERIOD = "cpu.cfs_period_us"
CPU_CFS_BURST = "cpu.cfs_burst_us"
CPU_RT_RUNTIME = "cpu.rt_runtime_us"
CPU_RT_PERIOD = "cpu.rt_period_us"
CPU_IDLE = "cpu.idle"
CPU_STAT = "cpu.stat"
CPUACCT_USAGE = "cpuacct.usage"
CPUACCT_USAGE_USER = "cpuacct.usage_user"
CPUACCT_USAGE_SYS = "cpuacct.usage_sys"
CPUACCT_USAGE_PERCPU = "cpuacct.usage_percpu"
CPUACCT_USAGE_PERCPU_USER = "cpuacct.usage_percpu_user"
CPUACCT_USAGE_PERCPU_SYS = "cpuacct.usage_percpu_sys"
MEMORY_LIMIT = "memory.limit_in_bytes"
MEMORY_USAGE = "memory.usage_in_bytes"
MEMORY_SOFT_LIMIT = "memory.soft_limit_in_bytes"
MEMORY_MEMSW_LIMIT = "memory.memsw.limit_in_bytes"
MEMORY_KMEM_TCP_LIMIT = "memory.kmem.tcp.limit_in_bytes"
MEMORY_SWAPPINESS = "memory.swappiness"
MEMORY_OOM_CONTROL = "memory.oom_control"
MEMORY_USE_HIERARCHY = "memory.use_hierarchy"
MEMORY_STAT = "memory.stat"
BLKIO_WEIGHT = "blkio.weight"
BLKIO_WEIGHT_DEVICE = "blkio.weight_device"
BLKIO_BFQ_WEIGHT = "blkio.bfq.weight"
BLKIO_BFQ_WEIGHT_DEVICE = "blkio.bfq.weight_device"
BLKIO_LEAF_WEIGHT = "blkio.leaf_weight"
BLKIO_LEAF_WEIGHT_DEVICE = "blkio.leaf_weight_device"
BLKIO_THROTTLE_READ_BPS = "blkio.throttle.read_bps_device"
BLKIO_THROTTLE_WRITE_BPS = "blkio.throttle.write_bps_device"
BLKIO_THROTTLE_READ_IOPS = "blkio.throttle.read_iops_device"
BLKIO_THROTTLE_WRITE_IOPS = "blkio.throttle.write_iops_device"
BLKIO_THROTTLE_SERVICE_BYTES = "blkio.throttle.io_service_bytes_recursive"
BLKIO_THROTTLE_SERVICED = "blkio.throttle.io_serviced_recursive"
DEVICES_ALLOW = "devices.allow"
DEVICES_DENY = "devices.deny"
FREEZER_STATE = "freezer.state"
NET_CLS_CLASSID = "net_cls.classid"
NET_PRIO_IFPRIOMAP = "net_prio.ifpriomap"
HUGETLB_PREFIX = "hugetlb."
HUGETLB_LIMIT = "hugetlb.{}.limit_in_bytes"

FROZEN, THAWED = "FROZEN", "THAWED"

# runc's names for memory's counter families: stats key -> file prefix.
_MEMORY_COUNTERS = {
    "usage": "memory.",
    "swap": "memory.memsw.",
    "kernel": "memory.kmem.",
    "kernelTCP": "memory.kmem.tcp.",
}


class V1Manager(CgroupManager):
    version = 1

    @classmethod
    def from_json(cls, d: Any) -> "V1Manager":
        return cls(*cls._fields_from_json(d))

    def _dir(self, controller: str) -> str | None:
        return next((d for name, d in self._paths.items() if controller in name.split(",")), None)

    def _need(self, controller: str, field: str) -> str:
        directory = self._dir(controller)
        if directory is None:
            raise HullError(f'linux.resources.{field}: the cgroup v1 controller "{controller}" is not mounted')
        return directory

    def create(self) -> None:
        super().create()
        if (cpuset := self._dir("cpuset")) is not None:
            try:
                _inherit_cpuset(cpuset)
            except BaseException:
                self.destroy()
                raise

    def apply(self, resources: LinuxResources) -> list[str]:
        r = resources
        warnings: list[str] = []
        if r.unified:
            raise InvalidArgument("linux.resources.unified: needs cgroup v2, and this host uses cgroup v1")
        if r.cpu is not None:
            if r.cpu.cpus or r.cpu.mems:
                write_cgroup_files(self._need("cpuset", "cpu.cpus"), cpuset_writes(r.cpu))
            if r.cpu.has_scheduler_settings():
                _set_cpu(self._need("cpu", "cpu"), r.cpu)
        if r.memory is not None:
            warnings += _set_memory(self._need("memory", "memory"), r.memory)
        if r.pids is not None:
            write_cgroup_files(self._need("pids", "pids"), pids_writes(r.pids))
        if r.block_io is not None:
            _set_blkio(self._need("blkio", "blockIO"), r.block_io)
        if r.devices:
            _set_devices(self._need("devices", "devices"), r.devices)
        if r.hugepage_limits:
            hugetlb = self._need("hugetlb", "hugepageLimits")
            write_cgroup_files(hugetlb, [(HUGETLB_LIMIT.format(h.page_size), h.limit) for h in r.hugepage_limits])
        if r.network is not None:
            self._set_network(r.network)
        for w in warnings:
            log.warning(w)
        return warnings

    def _set_network(self, net: LinuxNetwork) -> None:
        if net.class_id is not None:
            write_cgroup_file(self._need("net_cls", "network.classID"), NET_CLS_CLASSID, net.class_id)
        if net.priorities:
            prio = self._need("net_prio", "network.priorities")
            write_cgroup_files(prio, [(NET_PRIO_IFPRIOMAP, f"{p.name} {p.priority}") for p in net.priorities])

    # --- freezer, events, stats -----------------------------------------------------------

    def _membership_dir(self) -> str:
        # The freezer's directory if there is one: freeze and kill_all act on its members.
        return self._dir("freezer") or next(iter(self._paths.values()))

    def _can_freeze(self) -> bool:
        return self._dir("freezer") is not None

    def _request_frozen(self, frozen: bool) -> None:
        freezer = self._dir("freezer")
        if freezer is None:
            raise HullError("the cgroup v1 freezer is not mounted: containers can't be paused")
        write_cgroup_file(freezer, FREEZER_STATE, FROZEN if frozen else THAWED)

    def frozen(self) -> bool:
        freezer = self._dir("freezer")
        if freezer is None or not has_cgroup_file(freezer, FREEZER_STATE):
            return False
        return read_cgroup_file(freezer, FREEZER_STATE) == FROZEN

    def oom_kill_count(self) -> int:
        memory = self._dir("memory")
        if memory is None or not has_cgroup_file(memory, MEMORY_OOM_CONTROL):
            return 0
        return read_keyed(memory, MEMORY_OOM_CONTROL).get("oom_kill", 0)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        cpuacct, cpu = self._dir("cpuacct"), self._dir("cpu")
        if cpuacct is not None or cpu is not None:
            out["cpu"] = {
                "usage": _cpuacct_stats(cpuacct) if cpuacct else {},
                "throttling": _cfs_throttling(cpu) if cpu else {},
            }
        if (memory := self._dir("memory")) is not None:
            out["memory"] = _memory_stats(memory)
        if (pids := self._dir("pids")) is not None:
            out["pids"] = pids_stats(pids)
        if (blkio := self._dir("blkio")) is not None:
            out["blkio"] = _blkio_stats(blkio)
        if (hugetlb := self._dir("hugetlb")) is not None:
            out["hugetlb"] = _hugetlb_stats(hugetlb)
        return out


def _inherit_cpuset(directory: str) -> None:
    """Copy cpuset.cpus/mems down into a new cpuset directory and any empty parents.

    A new cpuset starts with no CPUs and no memory nodes, and the kernel refuses to admit
    tasks to it, so each level takes its parent's values, top down, before anything joins.
    """
    chain = []
    level = directory
    while not read_cgroup_file(level, CPUSET_CPUS) or not read_cgroup_file(level, CPUSET_MEMS):
        chain.append(level)
        level = os.path.dirname(level)
    for level in reversed(chain):
        parent = os.path.dirname(level)
        for name in (CPUSET_CPUS, CPUSET_MEMS):
            if not read_cgroup_file(level, name):
                write_cgroup_file(level, name, read_cgroup_file(parent, name))


def _set_cpu(directory: str, cpu: LinuxCPU) -> None:
    if cpu.realtime_period is not None:
        write_cgroup_file(directory, CPU_RT_PERIOD, cpu.realtime_period)
    if cpu.realtime_runtime is not None:
        write_cgroup_file(directory, CPU_RT_RUNTIME, cpu.realtime_runtime)
    if cpu.shares is not None:
        write_cgroup_file(directory, CPU_SHARES, cpu.shares)
    bandwidth = [(n, v) for n, v in ((CPU_CFS_PERIOD, cpu.period), (CPU_CFS_QUOTA, cpu.quota)) if v is not None]
    try:
        write_cgroup_files(directory, bandwidth)
    except HullError:
        # The kernel checks each value against the other's current one, so a new pair that
        # is valid together can fail period-first (a new period against the old quota and
        # burst); quota-first then works.
        if len(bandwidth) < 2:
            raise
        write_cgroup_files(directory, reversed(bandwidth))
    if cpu.burst is not None:
        write_cgroup_file(directory, CPU_CFS_BURST, cpu.burst)
    if cpu.idle is not None:
        write_cgroup_file(directory, CPU_IDLE, cpu.idle)


def _set_memory(directory: str, mem: LinuxMemory) -> list[str]:
    warnings = []
    if mem.check_before_update:
        check_memory_usage(directory, MEMORY_USAGE, mem.limit)
    _set_memory_and_swap(directory, mem.limit, mem.swap)
    if mem.reservation is not None:
        write_cgroup_file(directory, MEMORY_SOFT_LIMIT, mem.reservation)
    if mem.kernel is not None:
        warnings.append("linux.resources.memory.kernel is ignored: Linux no longer enforces kernel memory limits")
    if mem.kernel_tcp is not None:
        write_cgroup_file(directory, MEMORY_KMEM_TCP_LIMIT, mem.kernel_tcp)
    if mem.swappiness is not None:
        write_cgroup_file(directory, MEMORY_SWAPPINESS, mem.swappiness)
    if mem.disable_oom_killer is not None:
        write_cgroup_file(directory, MEMORY_OOM_CONTROL, int(mem.disable_oom_killer))
    if mem.use_hierarchy is not None:
        write_cgroup_file(directory, MEMORY_USE_HIERARCHY, int(mem.use_hierarchy))
    return warnings


def _set_memory_and_swap(directory: str, limit: int | None, swap: int | None) -> None:
    """memory.limit_in_bytes and memory.memsw.limit_in_bytes, in an order the kernel accepts.

    The kernel keeps memsw >= limit at every write, so going from (old limit, old memsw) to
    (limit, swap): writing swap first works when swap >= old limit (or unlimited); otherwise
    the update lowers both, and limit first works because limit <= swap < old limit <= old memsw.
    """
    has_memsw = has_cgroup_file(directory, MEMORY_MEMSW_LIMIT)
    if limit == -1 and swap is None and has_memsw:
        swap = -1  # unlimited memory with a finite memory+swap would be refused
    if swap is not None and not has_memsw:
        if swap != -1:
            raise HullError(
                f"linux.resources.memory.swap: this kernel does not account swap ({MEMORY_MEMSW_LIMIT} "
                f"is missing in {directory}; boot with swapaccount=1)"
            )
        swap = None  # unlimited is all a kernel without swap accounting offers anyway
    writes: list[tuple[str, int]] = []
    if limit is not None:
        writes.append((MEMORY_LIMIT, limit))
    if swap is not None:
        old_limit = int(read_cgroup_file(directory, MEMORY_LIMIT))
        swap_first = swap == -1 or swap >= old_limit
        writes.insert(0 if swap_first else len(writes), (MEMORY_MEMSW_LIMIT, swap))
    write_cgroup_files(directory, writes)


def _set_blkio(directory: str, bio: LinuxBlockIO) -> None:
    # Kernels without CFQ (5.0+) offer weights only through BFQ's files.
    if has_cgroup_file(directory, BLKIO_WEIGHT):
        weight_file, weight_device_file = BLKIO_WEIGHT, BLKIO_WEIGHT_DEVICE
    else:
        weight_file, weight_device_file = BLKIO_BFQ_WEIGHT, BLKIO_BFQ_WEIGHT_DEVICE
    writes: list[tuple[str, str | int]] = []
    if bio.weight is not None:
        writes.append((weight_file, bio.weight))
    if bio.leaf_weight is not None:
        writes.append((BLKIO_LEAF_WEIGHT, bio.leaf_weight))
    for wd in bio.weight_device:
        if wd.weight is not None:
            writes.append((weight_device_file, f"{wd.major}:{wd.minor} {wd.weight}"))
        if wd.leaf_weight is not None:
            writes.append((BLKIO_LEAF_WEIGHT_DEVICE, f"{wd.major}:{wd.minor} {wd.leaf_weight}"))
    for name, devices in (
        (BLKIO_THROTTLE_READ_BPS, bio.throttle_read_bps_device),
        (BLKIO_THROTTLE_WRITE_BPS, bio.throttle_write_bps_device),
        (BLKIO_THROTTLE_READ_IOPS, bio.throttle_read_iops_device),
        (BLKIO_THROTTLE_WRITE_IOPS, bio.throttle_write_iops_device),
    ):
        writes += [(name, f"{t.major}:{t.minor} {t.rate}") for t in devices]
    write_cgroup_files(directory, writes)


def _set_devices(directory: str, rules: tuple[DeviceRule, ...]) -> None:
    """The spec's rules in order, then the devices every container must keep (as runc does)."""
    for rule in (*rules, *DEFAULT_ALLOWED_RULES):
        write_cgroup_file(directory, DEVICES_ALLOW if rule.allow else DEVICES_DENY, rule.cgroup_v1_line())


def _read_ints(directory: str, name: str) -> list[int]:
    return [int(v) for v in read_cgroup_file(directory, name).split()]


def _cpuacct_stats(directory: str) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "total": int(read_cgroup_file(directory, CPUACCT_USAGE)),
        "percpu": _read_ints(directory, CPUACCT_USAGE_PERCPU),
    }
    # Kernels since 4.7 split usage into user and system time in nanoseconds.
    if has_cgroup_file(directory, CPUACCT_USAGE_USER):
        usage["kernel"] = int(read_cgroup_file(directory, CPUACCT_USAGE_SYS))
        usage["user"] = int(read_cgroup_file(directory, CPUACCT_USAGE_USER))
        usage["percpu_kernel"] = _read_ints(directory, CPUACCT_USAGE_PERCPU_SYS)
        usage["percpu_user"] = _read_ints(directory, CPUACCT_USAGE_PERCPU_USER)
    return usage


def _cfs_throttling(directory: str) -> dict[str, int]:
    stat = read_keyed(directory, CPU_STAT)
    return throttling_stats(stat, stat.get("throttled_time", 0))


def _memory_stats(directory: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, prefix in _MEMORY_COUNTERS.items():
        if has_cgroup_file(directory, prefix + "usage_in_bytes"):
            out[key] = {
                "usage": int(read_cgroup_file(directory, prefix + "usage_in_bytes")),
                "max": int(read_cgroup_file(directory, prefix + "max_usage_in_bytes")),
                "failcnt": int(read_cgroup_file(directory, prefix + "failcnt")),
                "limit": int(read_cgroup_file(directory, prefix + "limit_in_bytes")),
            }
    raw = read_keyed(directory, MEMORY_STAT)
    out["cache"] = raw.get("cache", 0)
    out["raw"] = raw
    return out


def _blkio_entries(directory: str, name: str) -> list[dict[str, Any]]:
    """`MAJ:MIN Op value` lines; the per-file `Total n` line carries no device and is left out."""
    entries = []
    for line in read_cgroup_file(directory, name).splitlines():
        fields = line.split()
        if len(fields) == 3:
            major, _, minor = fields[0].partition(":")
            entries.append({"major": int(major), "minor": int(minor), "op": fields[1], "value": int(fields[2])})
    return entries


def _blkio_stats(directory: str) -> dict[str, Any]:
    # The throttle layer sees every bio whatever the I/O scheduler, unlike CFQ's or BFQ's counters.
    return {
        "ioServiceBytesRecursive": _blkio_entries(directory, BLKIO_THROTTLE_SERVICE_BYTES),
        "ioServicedRecursive": _blkio_entries(directory, BLKIO_THROTTLE_SERVICED),
    }


def _hugetlb_stats(directory: str) -> dict[str, Any]:
    sizes = sorted(
        n[len(HUGETLB_PREFIX) : -len(".limit_in_bytes")]
        for n in os.listdir(directory)
        if n.startswith(HUGETLB_PREFIX) and n.endswith(".limit_in_bytes") and n.count(".") == 2
    )
    return {
        size: {
            "usage": int(read_cgroup_file(directory, f"hugetlb.{size}.usage_in_bytes")),
            "max": int(read_cgroup_file(directory, f"hugetlb.{size}.max_usage_in_bytes")),
            "failcnt": int(read_cgroup_file(directory, f"hugetlb.{size}.failcnt")),
        }
        for size in sizes
    }
