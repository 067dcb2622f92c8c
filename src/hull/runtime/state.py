"""A container's record in the runtime's state directory, and its status.

Layout: `<root>/<id>/state.json` (this record) and `<root>/<id>/exec.fifo`, the fifo that the
container's init blocks on between `create` and `start`. The status is never stored: it is
read off the kernel each time (is the init alive and the same process? is the fifo still
there? is the cgroup frozen?), so a crash of any caller can't leave it stale.
"""

import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from hull.errors import Conflict, InvalidArgument, NotFound
from hull.fsutil import atomic_write

DEFAULT_ROOT = "/run/hull-runtime"
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
# Compiled seccomp programs (seccomp.compile_filter), shared by the containers of one root.
# Not a container: it has no state.json, so list_ids passes it by.
SECCOMP_CACHE_DIR = ".seccomp-bpf"
_ID_RE = re.compile(r"^[\w+\-.]+$")

# Status words of the OCI runtime spec.
CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"


@dataclass
class Options:
    """Per-invocation settings shared by every command."""

    root: str = DEFAULT_ROOT


@dataclass
class ContainerState:
    """What `create` records; `config` is the bundle's config.json as it was at create time."""

    id: str
    bundle: str
    rootfs: str
    created: str
    init_pid: int = 0
    init_start_time: int = 0
    owner: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    cgroup: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def oci_state(self, status: str) -> dict[str, Any]:
        """The state JSON of the OCI runtime spec (what `state` prints and hooks read)."""
        out: dict[str, Any] = {
            "ociVersion": self.config.get("ociVersion", ""),
            "id": self.id,
            "pid": 0 if status == STOPPED else self.init_pid,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            out["annotations"] = self.annotations
        return out


def now_rfc3339() -> str:
    """UTC with nanoseconds, as runc writes it (time.strftime: datetime costs a ms to import)."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def check_id(container_id: str) -> None:
    if not container_id:
        raise InvalidArgument("container id cannot be empty")
    if not _ID_RE.match(container_id) or container_id in (".", ".."):
        raise InvalidArgument(f"invalid container id format: {container_id}")


def seccomp_cache_dir(root: str) -> str:
    return os.path.join(root, SECCOMP_CACHE_DIR)


def container_dir(root: str, container_id: str) -> str:
    check_id(container_id)
    return os.path.join(root, container_id)


def make_container_dir(root: str, container_id: str) -> str:
    """Claim the id: mkdir is atomic, so two concurrent creates can't both win."""
    path = container_dir(root, container_id)
    os.makedirs(root, mode=0o700, exist_ok=True)
    try:
        os.mkdir(path, 0o700)  # the init reaches exec.fifo through a descriptor, not this path
    except FileExistsError:
        raise Conflict("container with given ID already exists") from None
    return path


def remove_container_dir(root: str, container_id: str) -> None:
    """Remove the container's directory and the files in it (state.json, exec.fifo): it has no subdirectories."""
    path = container_dir(root, container_id)
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
    os.rmdir(path)


def save(root: str, state: ContainerState) -> None:
    # vars(), not asdict(): the fields are plain JSON values already, and asdict would deep-copy the config.
    data = json.dumps(vars(state), separators=(",", ":")).encode()
    atomic_write(os.path.join(container_dir(root, state.id), STATE_FILE), data, 0o600, fsync=False)


def load(root: str, container_id: str) -> ContainerState:
    path = os.path.join(container_dir(root, container_id), STATE_FILE)
    try:
        with open(path, "rb") as f:
            obj = json.loads(f.read())
    except FileNotFoundError:
        raise NotFound("container does not exist") from None
    return ContainerState(**obj)


def list_ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.exists(os.path.join(root, n, STATE_FILE))]


def proc_start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat: tells a live init from a recycled pid. 0 if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # comm (field 2) may hold spaces and parentheses: split after its last ')'.
    rest = stat[stat.rindex(b")") + 2 :].split()
    if rest[0] == b"Z":
        return 0
    return int(rest[19])


def init_alive(state: ContainerState) -> bool:
    return state.init_pid > 0 and proc_start_time(state.init_pid) == state.init_start_time


def status(root: str, state: ContainerState, frozen: bool) -> str:
    """Derive the OCI status; `frozen` is what the cgroup freezer reports."""
    if not init_alive(state):
        return STOPPED
    if os.path.exists(os.path.join(root, state.id, EXEC_FIFO)):
        return CREATED
    return PAUSED if frozen else RUNNING
