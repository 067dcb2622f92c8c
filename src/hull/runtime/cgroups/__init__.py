"""Container cgroups: where they go, what limits they carry, and their lifetime.

`new_manager(cgroups_path, container_id)` picks the manager for this host: cgroup v2 when
/sys/fs/cgroup itself is a cgroup2 mount (a unified host), else cgroup v1 over every mounted
hierarchy (legacy or hybrid). `manager_from_json` rebuilds one from the state a runtime
stored with `to_json()`. The CgroupManager interface (manager.py) is all callers need; the
spec's `linux.resources` parse into resources.LinuxResources. No systemd driver: a
systemd-style `slice:prefix:name` path is placed by the cgroupfs rules (hierarchy.py).
"""

from typing import Any

from hull.errors import HullError
from hull.runtime.cgroups.hierarchy import (
    CGROUP_ROOT,
    UNIFIED,
    mounted_hierarchies,
    normalize_cgroups_path,
    own_cgroups,
)
from hull.runtime.cgroups.manager import CgroupManager
from hull.runtime.cgroups.v1 import V1Manager
from hull.runtime.cgroups.v2 import V2Manager

__all__ = ["CgroupManager", "V1Manager", "V2Manager", "manager_from_json", "new_manager"]


def new_manager(cgroups_path: str, container_id: str, *, cgroup2_root: str | None = None) -> CgroupManager:
    """The manager for a container's cgroup (nothing is created until `create()`).

    `cgroup2_root` forces a cgroup v2 manager on the cgroup2 filesystem mounted there (a
    hybrid host's /sys/fs/cgroup/unified, say) instead of choosing by the host's layout.
    """
    path = normalize_cgroups_path(cgroups_path, container_id)
    own = own_cgroups()
    hierarchies = mounted_hierarchies(own)
    if cgroup2_root is None and any(h.name == UNIFIED and h.mount_point == CGROUP_ROOT for h in hierarchies):
        cgroup2_root = CGROUP_ROOT
    if cgroup2_root is not None:
        unified = next((h for h in hierarchies if h.name == UNIFIED and h.mount_point == cgroup2_root), None)
        if unified is None:
            raise HullError(f"no cgroup2 filesystem is mounted at {cgroup2_root}")
        return V2Manager(unified.mount_point, unified.directory(own.get(UNIFIED, "/"), path))
    if not hierarchies:
        raise HullError("no cgroup filesystem is mounted (see /proc/self/mountinfo)")
    return V1Manager({h.name: h.directory(own[h.name], path) for h in hierarchies})


def manager_from_json(d: Any) -> CgroupManager:
    """Rebuild the manager that `to_json()` described."""
    version = d.get("version") if isinstance(d, dict) else None
    if version == 1:
        return V1Manager.from_json(d)
    if version == 2:
        return V2Manager.from_json(d)
    raise HullError(f"cgroup state: unknown cgroup version in {d!r}")
