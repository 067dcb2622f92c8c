"""Reading and writing cgroup interface files; making and removing cgroup directories.

Vocabulary: a *cgroup directory* is a directory of a mounted cgroup filesystem; its
*interface files* (`cpu.shares`, `cgroup.procs`) are how the kernel is read and told. The
functions are named for what they touch and hold no policy of either cgroup version.

Contract: a kernel error becomes a HullError that names the file and, for a write, the value
(`write 10 to /sys/fs/cgroup/pids/x/pids.max: Invalid argument`), because the errno alone
never says which of a container's dozens of writes failed.
"""

import errno
import os
import time
from collections.abc import Callable, Iterable

from hull.errors import HullError

# Interface files every cgroup directory has, in both versions.
CGROUP_PROCS = "cgroup.procs"
# A cgroup v1 directory's threads (cgroup.procs lists their processes).
TASKS = "tasks"

# Cgroup directories are removed while killed tasks may still be leaving them; give them this long.
REMOVE_TIMEOUT = 3.0


def _describe(e: OSError) -> str:
    return e.strerror or errno.errorcode.get(e.errno or 0, str(e))


def write_cgroup_file(directory: str, name: str, value: str | int) -> None:
    """Write one value in one write(2): the kernel parses each write on its own."""
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise HullError(f"write {value} to {path}: {_describe(e)}") from e


def write_cgroup_files(directory: str, writes: Iterable[tuple[str, str | int]]) -> None:
    for name, value in writes:
        write_cgroup_file(directory, name, value)


def read_cgroup_file(directory: str, name: str) -> str:
    """The file's content without the trailing newline."""
    path = os.path.join(directory, name)
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        raise HullError(f"read {path}: {_describe(e)}") from e


def has_cgroup_file(directory: str, name: str) -> bool:
    return os.path.exists(os.path.join(directory, name))


def parse_limit(text: str, unlimited: int = 0) -> int:
    """An integer file that may hold "max" (v2 and pids.max) for no limit."""
    return unlimited if text == "max" else int(text)


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """A flat-keyed file (`key value` lines: memory.stat, cpu.stat, memory.events)."""
    out = {}
    for line in read_cgroup_file(directory, name).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def read_procs(directory: str) -> list[int]:
    """The pids in a cgroup and in the cgroups below it; none if it is gone."""
    pids: list[int] = []
    for top, dirs, _ in os.walk(directory):
        try:
            with open(os.path.join(top, CGROUP_PROCS)) as f:
                pids.extend(int(p) for p in f.read().split())
        except FileNotFoundError:
            dirs[:] = []  # removed under us: nothing lives there any more
    return pids


def make_cgroup_dirs(path: str) -> list[str]:
    """mkdir -p; return the directories this call created, parents first."""
    missing = []
    probe = path
    while not os.path.isdir(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    created: list[str] = []
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o755)
        except FileExistsError:
            continue  # made meanwhile by someone else: not ours to remove
        except OSError as e:
            raise HullError(f"create cgroup {d}: {_describe(e)}") from e
        created.append(d)
    return created


def wait_until(ready: Callable[[], bool], timeout: float) -> bool:
    """Poll `ready` with a growing pause until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while not ready():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


def child_cgroups(directory: str) -> list[str]:
    try:
        return [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def remove_cgroup_dir(path: str) -> None:
    """rmdir a cgroup directory and every cgroup below it; a missing one is fine.

    rmdir fails with EBUSY while tasks are attached, and a task that was just killed stays
    attached until it has finished exiting, so EBUSY is retried for REMOVE_TIMEOUT.
    """
    for child in child_cgroups(path):
        remove_cgroup_dir(child)
    last: list[OSError] = []

    def removed() -> bool:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise HullError(f"remove cgroup {path}: {_describe(e)}") from e
            last[:] = [e]
            return False
        return True

    if not wait_until(removed, REMOVE_TIMEOUT):
        raise HullError(f"remove cgroup {path}: {_describe(last[0])} (tasks still attached after {REMOVE_TIMEOUT}s)")
