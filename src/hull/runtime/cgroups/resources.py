"""The OCI runtime spec's `linux.resources` (v1.0-1.2) as typed, validated records.

Vocabulary: a field left out of config.json (or null) is *unset* and stays None here; so is
a 0 where runc reads 0 as "not given" (memory limits, cpu shares, quota, periods, blkio
weights), so configs written for runc mean the same. The managers write only what is set,
and an unset field keeps whatever the kernel has. Values
keep the spec's units and meanings (bytes, microseconds, cgroup v1 weights); converting
them to a cgroup version's files is the managers' job, not this module's.

Contract: `LinuxResources.from_json` is the only way in. A wrong type or a value the spec
rules out raises InvalidArgument naming the field's path
(`linux.resources.memory.limit: expected an integer, got 'abc'`); unknown keys are ignored
for forward compatibility. Nothing here touches the kernel, so these checks run before any
cgroup exists. What only the kernel can judge (a CPU the host lacks, a device with no
block queue) is left to the write, whose error names the file.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hull.errors import InvalidArgument
from hull.runtime import fields as F
from hull.runtime.devices import DeviceRule

# The kernel's list format for cpuset.cpus/mems: "0-3,6,8-9".
_CPU_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
# hugetlb page sizes as the kernel names them in file names: "2MB", "1GB", "64KB".
_PAGE_SIZE = re.compile(r"^\d+[KMG]B$")
# A cgroup v2 interface file name ("memory.high", "hugetlb.2MB.max"); this also keeps a
# `unified` key from naming anything outside the container's cgroup directory.
_UNIFIED_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[A-Za-z0-9_-]+)+$")


def _int(
    obj: Mapping[str, Any], key: str, where: str, *, minimum: int | None = None, zero_is_unset: bool = False
) -> int | None:
    """An optional integer field; `zero_is_unset` for the fields runc reads 0 of as "not given"."""
    value: int | None = F.field(obj, key, int, where, None)
    if value is not None and minimum is not None and value < minimum:
        raise InvalidArgument(f"{where}.{key}: must be at least {minimum}, got {value}")
    return None if zero_is_unset and value == 0 else value


def _in_range(value: int | None, low: int, high: int, where: str) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidArgument(f"{where}: must be between {low} and {high}, got {value}")


def _cpu_list(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value: str | None = F.field(obj, key, str, where, None)
    if value and not _CPU_LIST.match(value.strip()):
        raise InvalidArgument(f'{where}.{key}: expected a list like "0-3,6", got {value!r}')
    return value.strip() if value else None


@dataclass
class LinuxMemory:
    """Bytes; -1 means unlimited. `swap` is the v1 memory+swap total, as the spec defines it."""

    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = None
    swappiness: int | None = None
    disable_oom_killer: bool | None = None
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], where: str) -> "LinuxMemory":
        mem = cls(
            limit=_int(obj, "limit", where, minimum=-1, zero_is_unset=True),
            reservation=_int(obj, "reservation", where, minimum=-1, zero_is_unset=True),
            swap=_int(obj, "swap", where, minimum=-1, zero_is_unset=True),
            kernel=_int(obj, "kernel", where, minimum=-1, zero_is_unset=True),
            kernel_tcp=_int(obj, "kernelTCP", where, minimum=-1, zero_is_unset=True),
            swappiness=_int(obj, "swappiness", where, minimum=0),
            disable_oom_killer=F.field(obj, "disableOOMKiller", bool, where, None),
            use_hierarchy=F.field(obj, "useHierarchy", bool, where, None),
            check_before_update=F.field(obj, "checkBeforeUpdate", bool, where, None),
        )
        _in_range(mem.swappiness, 0, 100, f"{where}.swappiness")
        # memory+swap can never be below memory alone; with an unlimited memory a finite
        # memory+swap is as contradictory.
        if mem.limit is not None and mem.swap is not None and mem.swap > 0 and not 0 <= mem.limit <= mem.swap:
            raise InvalidArgument(
                f"{where}.swap: memory+swap limit ({mem.swap}) must be at least the memory limit ({mem.limit})"
            )
        return mem


@dataclass
class LinuxCPU:
    """v1 units: shares are relative weights, quota/period/burst/realtime* microseconds."""

    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], where: str) -> "LinuxCPU":
        cpu = cls(
            shares=_int(obj, "shares", where, minimum=0, zero_is_unset=True),
            quota=_int(obj, "quota", where, minimum=-1, zero_is_unset=True),
            burst=_int(obj, "burst", where, minimum=0),
            period=_int(obj, "period", where, minimum=0, zero_is_unset=True),
            realtime_runtime=_int(obj, "realtimeRuntime", where, minimum=-1),
            realtime_period=_int(obj, "realtimePeriod", where, minimum=0, zero_is_unset=True),
            cpus=_cpu_list(obj, "cpus", where),
            mems=_cpu_list(obj, "mems", where),
            idle=_int(obj, "idle", where),
        )
        _in_range(cpu.idle, 0, 1, f"{where}.idle")
        return cpu

    def has_scheduler_settings(self) -> bool:
        """Whether anything here is for the cpu controller (cpus/mems belong to cpuset)."""
        settings = (
            self.shares,
            self.quota,
            self.burst,
            self.period,
            self.realtime_runtime,
            self.realtime_period,
            self.idle,
        )
        return any(v is not None for v in settings)


@dataclass
class LinuxPids:
    """Zero or a negative limit means no limit."""

    limit: int

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], where: str) -> "LinuxPids":
        return cls(limit=F.field(obj, "limit", int, where))


@dataclass
class LinuxWeightDevice:
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


@dataclass
class LinuxThrottleDevice:
    """A per-device rate: bytes or I/O operations per second."""

    major: int
    minor: int
    rate: int


def _device_numbers(obj: Mapping[str, Any], where: str) -> tuple[int, int]:
    major = _int(obj, "major", where, minimum=0)
    minor = _int(obj, "minor", where, minimum=0)
    if major is None or minor is None:
        raise InvalidArgument(f"{where}: major and minor are required")
    return major, minor


def _blkio_weight(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    value = _int(obj, key, where, zero_is_unset=True)
    _in_range(value, 10, 1000, f"{where}.{key}")
    return value


@dataclass
class LinuxBlockIO:
    """cgroup v1 blkio weights (10-1000) and throttles."""

    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: tuple[LinuxWeightDevice, ...] = ()
    throttle_read_bps_device: tuple[LinuxThrottleDevice, ...] = ()
    throttle_write_bps_device: tuple[LinuxThrottleDevice, ...] = ()
    throttle_read_iops_device: tuple[LinuxThrottleDevice, ...] = ()
    throttle_write_iops_device: tuple[LinuxThrottleDevice, ...] = ()

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], where: str) -> "LinuxBlockIO":
        def throttles(key: str) -> tuple[LinuxThrottleDevice, ...]:
            out = []
            for w, d in F.obj_list(obj, key, where):
                rate = _int(d, "rate", w, minimum=0)
                if rate is None:
                    raise InvalidArgument(f"{w}.rate: required field is missing")
                out.append(LinuxThrottleDevice(*_device_numbers(d, w), rate))
            return tuple(out)

        return cls(
            weight=_blkio_weight(obj, "weight", where),
            leaf_weight=_blkio_weight(obj, "leafWeight", where),
            weight_device=tuple(
                LinuxWeightDevice(
                    *_device_numbers(d, w),
                    weight=_blkio_weight(d, "weight", w),
                    leaf_weight=_blkio_weight(d, "leafWeight", w),
                )
                for w, d in F.obj_list(obj, "weightDevice", where)
            ),
            throttle_read_bps_device=throttles("throttleReadBpsDevice"),
            throttle_write_bps_device=throttles("throttleWriteBpsDevice"),
            throttle_read_iops_device=throttles("throttleReadIOPSDevice"),
            throttle_write_iops_device=throttles("throttleWriteIOPSDevice"),
        )


@dataclass
class LinuxHugepageLimit:
    page_size: str  # "2MB", "1GB"
    limit: int  # bytes


@dataclass
class LinuxInterfacePriority:
    name: str
    priority: int


@dataclass
class LinuxNetwork:
    """cgroup v1 net_cls class id and net_prio per-interface priorities."""

    class_id: int | None = None
    priorities: tuple[LinuxInterfacePriority, ...] = ()

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], where: str) -> "LinuxNetwork":
        return cls(
            class_id=_int(obj, "classID", where, minimum=0),
            priorities=tuple(
                LinuxInterfacePriority(F.field(p, "name", str, w), F.field(p, "priority", int, w))
                for w, p in F.obj_list(obj, "priorities", where)
            ),
        )


def _device_rule(obj: Mapping[str, Any], where: str) -> DeviceRule:
    dtype = F.field(obj, "type", str, where, "a")
    if dtype not in ("a", "b", "c"):
        raise InvalidArgument(f'{where}.type: expected "a", "b" or "c", got {dtype!r}')
    access = F.field(obj, "access", str, where, "rwm")
    if not access or set(access) - set("rwm"):
        raise InvalidArgument(f'{where}.access: expected letters from "rwm", got {access!r}')
    major = _int(obj, "major", where, minimum=-1)
    minor = _int(obj, "minor", where, minimum=-1)
    return DeviceRule(
        allow=F.field(obj, "allow", bool, where),
        type=dtype,
        major=-1 if major is None else major,  # unset means any, as the spec says
        minor=-1 if minor is None else minor,
        access=access,
    )


@dataclass
class LinuxResources:
    memory: LinuxMemory | None = None
    cpu: LinuxCPU | None = None
    pids: LinuxPids | None = None
    block_io: LinuxBlockIO | None = None
    devices: tuple[DeviceRule, ...] = ()  # the spec's rules, in order; the defaults are the managers' job
    hugepage_limits: tuple[LinuxHugepageLimit, ...] = ()
    network: LinuxNetwork | None = None
    unified: Mapping[str, str] = field(default_factory=dict)  # cgroup v2 file name -> value, verbatim

    @classmethod
    def from_json(cls, obj: Any, where: str = "linux.resources") -> "LinuxResources":
        F.expect(obj, dict, where)

        def section(key: str) -> dict[str, Any] | None:
            value: dict[str, Any] | None = F.field(obj, key, dict, where, None)
            return value

        memory, cpu, pids = section("memory"), section("cpu"), section("pids")
        block_io, network = section("blockIO"), section("network")
        hugepages = []
        for w, h in F.obj_list(obj, "hugepageLimits", where):
            page_size = F.field(h, "pageSize", str, w)
            if not _PAGE_SIZE.match(page_size):
                raise InvalidArgument(f'{w}.pageSize: expected a size like "2MB" or "1GB", got {page_size!r}')
            limit = _int(h, "limit", w, minimum=0)
            if limit is None:
                raise InvalidArgument(f"{w}.limit: required field is missing")
            hugepages.append(LinuxHugepageLimit(page_size, limit))
        unified = F.field(obj, "unified", dict, where, {})
        for key, value in unified.items():
            if not _UNIFIED_KEY.match(key):
                raise InvalidArgument(f"{where}.unified: {key!r} is not a cgroup v2 interface file name")
            F.expect(value, str, f"{where}.unified.{key}")
        return cls(
            memory=LinuxMemory.from_json(memory, f"{where}.memory") if memory is not None else None,
            cpu=LinuxCPU.from_json(cpu, f"{where}.cpu") if cpu is not None else None,
            pids=LinuxPids.from_json(pids, f"{where}.pids") if pids is not None else None,
            block_io=LinuxBlockIO.from_json(block_io, f"{where}.blockIO") if block_io is not None else None,
            devices=tuple(_device_rule(d, w) for w, d in F.obj_list(obj, "devices", where)),
            hugepage_limits=tuple(hugepages),
            network=LinuxNetwork.from_json(network, f"{where}.network") if network is not None else None,
            unified=dict(unified),
        )
