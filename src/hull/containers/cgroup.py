"""A running container's cgroup, found through the state its OCI runtime keeps, and changed live.

The runtime that created the container recorded where its cgroup is: the built-in runtime
stores its cgroup manager's JSON (`cgroup`) in <runtime root>/<id>/state.json, runc stores
`cgroup_paths` (controller -> directory) in the same file. Reading that, rather than working
the directories out again, finds the cgroup wherever --cgroup-parent or the runtime put it.
Limits are changed by the runtime that owns the cgroup: the built-in one through the cgroup
manager here, an external one (runc) through its `update --resources -` command.
"""

import json
import os
import subprocess
from typing import Any

from hull.errors import Conflict, HullError
from hull.runtime.cgroups import CgroupManager, manager_from_json
from hull.runtime.cgroups.hierarchy import UNIFIED
from hull.runtime.cgroups.resources import LinuxResources
from hull.runtime.state import STATE_FILE, container_dir

# runc's state.json: each hierarchy's name -> the container's directory in it.
RUNC_CGROUP_PATHS = "cgroup_paths"
# The built-in runtime's state.json: CgroupManager.to_json().
BUILTIN_CGROUP = "cgroup"


def container_cgroup(runtime_root: str, container_id: str) -> CgroupManager:
    """The manager of the container's cgroup; Conflict when the runtime has no state for it (not running)."""
    path = os.path.join(container_dir(runtime_root, container_id), STATE_FILE)
    try:
        with open(path, "rb") as f:
            state = json.load(f)
    except FileNotFoundError:
        raise Conflict(f"Container {container_id} is not running") from None
    except (OSError, ValueError) as e:
        raise HullError(f"read runtime state {path}: {e}") from e
    if BUILTIN_CGROUP in state:
        return manager_from_json(state[BUILTIN_CGROUP])
    paths = state.get(RUNC_CGROUP_PATHS)
    if not isinstance(paths, dict) or not paths:
        raise HullError(f"runtime state {path}: no cgroup recorded")
    # runc lists only the unified hierarchy on a cgroup v2 host, every v1 hierarchy otherwise.
    version = 2 if set(paths) == {UNIFIED} else 1
    return manager_from_json({"version": version, "paths": paths})


def update_resources(runtime: str, runtime_root: str, container_id: str, resources: dict[str, Any]) -> list[str]:
    """Write the spec's `linux.resources` into the running container's cgroup; the warnings.

    `runtime` is the external runtime's binary, or "" for the built-in runtime.
    """
    if not runtime:
        return container_cgroup(runtime_root, container_id).apply(LinuxResources.from_json(resources))
    done = subprocess.run(
        [runtime, "--root", runtime_root, "update", "--resources", "-", container_id],
        input=json.dumps(resources).encode(), capture_output=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise HullError(f"{os.path.basename(runtime)} update: {done.stderr.decode(errors='replace').strip()}")
    return []
