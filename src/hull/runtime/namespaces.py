"""Linux namespaces: which clone flag each spec namespace type is, and joining them by path.

A namespace in the spec is either *new* (no path: unshare it) or *joined* (a path such as
/proc/<pid>/ns/net or a bind-mounted nsfs file: setns to it). The user namespace is always
handled first: joining or creating it changes which capabilities the others are checked
against.
"""

import contextlib
import os
from collections.abc import Iterator

from hull.errors import HullError
from hull.runtime import syscalls
from hull.runtime.spec import NAMESPACE_PROC_NAMES, Namespace

CLONE_FLAGS = {
    "pid": syscalls.CLONE_NEWPID,
    "network": syscalls.CLONE_NEWNET,
    "mount": syscalls.CLONE_NEWNS,
    "ipc": syscalls.CLONE_NEWIPC,
    "uts": syscalls.CLONE_NEWUTS,
    "user": syscalls.CLONE_NEWUSER,
    "cgroup": syscalls.CLONE_NEWCGROUP,
    "time": syscalls.CLONE_NEWTIME,
}

# The order to join in: user first (it grants the capabilities the rest need), mount last
# (setns into a mount namespace moves our root, so every path is opened before it).
JOIN_ORDER = ("user", "pid", "cgroup", "ipc", "uts", "network", "time", "mount")


def unshare_flags(namespaces: list[Namespace], *, user: bool) -> int:
    """The clone flags of the namespaces to create, with or without the user namespace."""
    return sum(CLONE_FLAGS[n.type] for n in namespaces if not n.path and (n.type == "user") == user)


def setns_paths(paths: dict[str, str]) -> None:
    """Join each namespace in `paths` (spec type -> path) in JOIN_ORDER.

    All files are opened before the first setns, since joining a mount namespace changes
    what the remaining paths would resolve to.
    """
    fds: list[tuple[str, str, int]] = []
    try:
        for ns_type in JOIN_ORDER:
            if ns_type in paths:
                try:
                    fds.append((ns_type, paths[ns_type], os.open(paths[ns_type], os.O_RDONLY | os.O_CLOEXEC)))
                except OSError as e:
                    raise HullError(f"open {ns_type} namespace {paths[ns_type]}: {e.strerror}") from None
        for ns_type, path, fd in fds:
            try:
                syscalls.setns(fd, CLONE_FLAGS[ns_type])
            except OSError as e:
                raise HullError(f"join {ns_type} namespace {path}: {e.strerror}") from None
    finally:
        for _, _, fd in fds:
            os.close(fd)


@contextlib.contextmanager
def pid_namespace_for_children(path: str | None) -> Iterator[None]:
    """Within, the children we fork are born in the pid namespace at `path` (None: no change).

    setns with CLONE_NEWPID moves the caller's future children, never the caller itself, and
    a process may go back to its own pid namespace: after, our children are born in ours again.
    """
    if path is None:
        yield
        return
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise HullError(f"open pid namespace {path}: {e.strerror}") from None
        try:
            syscalls.setns(target, syscalls.CLONE_NEWPID)
        except OSError as e:
            raise HullError(f"join pid namespace {path}: {e.strerror}") from None
        finally:
            os.close(target)
        try:
            yield
        finally:
            syscalls.setns(own, syscalls.CLONE_NEWPID)
    finally:
        os.close(own)


def proc_ns_path(pid: int, ns_type: str) -> str:
    return f"/proc/{pid}/ns/{NAMESPACE_PROC_NAMES[ns_type]}"


def differs_from_own(pid: int, ns_type: str) -> bool:
    """True when process `pid` is in another namespace of this type than we are."""
    name = NAMESPACE_PROC_NAMES[ns_type]
    return os.readlink(f"/proc/{pid}/ns/{name}") != os.readlink(f"/proc/self/ns/{name}")
