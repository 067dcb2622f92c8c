"""`POST /containers/{id}/update`: checking an update's resources and folding it into a HostConfig.

An update body is a HostConfig fragment: the Resources fields below and RestartPolicy. A
zero (or empty) field means "leave as it is", so a limit can be changed but not removed,
except PidsLimit, where 0 or a negative value asks for no limit. The checks are dockerd's
(verifyContainerResources with update=true), with its wording, and come in two kinds: the
request alone is wrong (400), or it contradicts what the container has (409, "Cannot update
container <id>: ..."). Nothing is written until every check has passed; `plan` returns
the new HostConfig and the spec's `linux.resources` to write into a running container.
"""

import copy
import os
from dataclasses import dataclass
from typing import Any

from hull.containers import ocispec
from hull.errors import Conflict, InvalidArgument
from hull.runtime.cgroups.hierarchy import CGROUP_ROOT
from hull.runtime.cgroups.v1 import BLKIO_BFQ_WEIGHT, BLKIO_WEIGHT

# What `update` may change; anything else in the body is ignored, as dockerd ignores it.
INT_FIELDS = (
    "BlkioWeight",
    "CpuShares",
    "NanoCpus",
    "CpuPeriod",
    "CpuQuota",
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "KernelMemory",
    "PidsLimit",
)
# HostConfig field -> (dockerd's word for it, the kernel file listing what the host has online).
CPUSET_FIELDS = {
    "CpusetCpus": ("cpus", "/sys/devices/system/cpu/online"),
    "CpusetMems": ("mems", "/sys/devices/system/node/online"),
}
RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")
CFS_PERIOD_RANGE = (1000, 1_000_000)  # microseconds: the kernel's 1 ms .. 1 s
MIN_CFS_QUOTA = 1000
# Where dockerd looks for the blkio weight files: the v1 blkio hierarchy's root.
BLKIO_ROOT = os.path.join(CGROUP_ROOT, "blkio")


@dataclass
class UpdatePlan:
    host_config: dict[str, Any]
    resources: dict[str, Any]  # the OCI spec's linux.resources, for the running container's cgroup
    warnings: list[str]


def parse_cpu_list(text: str, what: str) -> set[int]:
    """ "0-2,5" -> {0, 1, 2, 5}; dockerd's error for anything else."""
    out: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()) or (dash and int(high) < int(low)):
            raise InvalidArgument(f"Invalid value {text} for cpuset {what}: invalid format: {text}")
        out.update(range(int(low), int(high if dash else low) + 1))
    return out


def _read_online(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _check_cpuset(key: str, value: str) -> None:
    what, online_file = CPUSET_FIELDS[key]
    available = _read_online(online_file)
    if not parse_cpu_list(value, what) <= parse_cpu_list(available, what):
        noun = "CPUs" if what == "cpus" else "memory nodes"
        raise InvalidArgument(f"Requested {noun} are not available - requested {value}, available: {available}")


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    """The update's fields that are given, type-checked."""
    out: dict[str, Any] = {}
    for key in INT_FIELDS:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgument(f"invalid {key}: expected an integer, got {value!r}")
        out[key] = value
    for key in CPUSET_FIELDS:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidArgument(f"invalid {key}: expected a string, got {value!r}")
        out[key] = value
    policy = body.get("RestartPolicy")
    if policy is not None:
        if not isinstance(policy, dict) or not isinstance(policy.get("Name", ""), str):
            raise InvalidArgument(f"invalid RestartPolicy: {policy!r}")
        out["RestartPolicy"] = policy
    return out


def _check_request(u: dict[str, Any]) -> list[str]:
    """dockerd's checks of the update on its own: 400s."""
    memory, swap, reservation = u.get("Memory", 0), u.get("MemorySwap", 0), u.get("MemoryReservation", 0)
    if memory and memory < ocispec.MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if reservation and reservation < ocispec.MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
    nano, period, quota = u.get("NanoCpus", 0), u.get("CpuPeriod", 0), u.get("CpuQuota", 0)
    if nano > 0 and period > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    cpus = os.cpu_count() or 1
    if nano and not ocispec.MIN_NANO_CPUS <= nano <= cpus * ocispec.NANO_CPUS_PER_CPU:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available")
    if period and not CFS_PERIOD_RANGE[0] <= period <= CFS_PERIOD_RANGE[1]:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < quota < MIN_CFS_QUOTA:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if u.get("CpuShares", 0) < 0:
        raise InvalidArgument("invalid CPU shares: must not be negative")
    for key in CPUSET_FIELDS:
        if u.get(key):
            _check_cpuset(key, u[key])
    warnings = []
    weight = u.get("BlkioWeight", 0)
    if weight > 0 and not any(os.path.exists(os.path.join(BLKIO_ROOT, f)) for f in (BLKIO_WEIGHT, BLKIO_BFQ_WEIGHT)):
        # As dockerd: a kernel without a weight file (no CFQ, no BFQ) can't weigh; that's no error.
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
        u["BlkioWeight"] = 0
    elif weight and not ocispec.BLKIO_WEIGHT_RANGE[0] <= weight <= ocispec.BLKIO_WEIGHT_RANGE[1]:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    policy = u.get("RestartPolicy")
    if policy is not None and policy.get("Name", "") not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy '{policy['Name']}'")
    if u.get("KernelMemory"):
        warnings.append("Specifying a kernel memory limit is deprecated and will be removed in a future release.")
    return warnings


def _merge(cid: str, current: dict[str, Any], u: dict[str, Any]) -> dict[str, Any]:
    """The container's new HostConfig (dockerd's UpdateContainer): 409s for what contradicts it."""

    def conflict(message: str) -> Conflict:
        return Conflict(f"Cannot update container {cid}: {message}")

    # NanoCpus is a period and quota of its own: one way of limiting CPU can't replace the other.
    for new, old, message in (
        ("NanoCpus", "CpuPeriod", "Nano CPUs cannot be updated as CPU Period has already been set"),
        ("NanoCpus", "CpuQuota", "Nano CPUs cannot be updated as CPU Quota has already been set"),
        ("CpuPeriod", "NanoCpus", "CPU Period cannot be updated as NanoCPUs has already been set"),
        ("CpuQuota", "NanoCpus", "CPU Quota cannot be updated as NanoCPUs has already been set"),
    ):
        if u.get(new, 0) > 0 and (current.get(old) or 0) > 0:
            raise conflict(f"Conflicting options: {message}")
    current_swap = current.get("MemorySwap") or 0
    if u.get("Memory") and current_swap > 0 and u["Memory"] > current_swap and not u.get("MemorySwap"):
        raise conflict(
            "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
        )
    policy = u.get("RestartPolicy")
    if policy is not None and policy.get("Name") not in ("", "no") and current.get("AutoRemove"):
        raise conflict("Restart policy cannot be updated because AutoRemove is enabled for the container")
    merged = copy.deepcopy(current)
    for key, value in u.items():
        if key == "PidsLimit":
            merged[key] = max(value, 0)  # 0 and negative both mean unlimited; dockerd stores 0
        elif key == "RestartPolicy":
            if value.get("Name"):
                merged[key] = {"Name": value["Name"], "MaximumRetryCount": int(value.get("MaximumRetryCount") or 0)}
        elif value:
            merged[key] = value
    return merged


def plan(cid: str, current: dict[str, Any], body: dict[str, Any]) -> UpdatePlan:
    u = _fields(body)
    warnings = _check_request(u)
    merged = _merge(cid, current, u)
    try:
        resources = ocispec.resources(merged, bool(merged.get("Privileged")))
    except InvalidArgument as e:
        raise Conflict(f"Cannot update container {cid}: {e.message}") from None
    # Device rules are not the update's business: rewriting them would briefly deny the
    # running container every device (the rules start with "deny all").
    resources.pop("devices", None)
    if "PidsLimit" in u and merged["PidsLimit"] == 0:
        resources["pids"] = {"limit": -1}  # the cgroup's "max": a limit set before is lifted
    return UpdatePlan(merged, resources, warnings)
