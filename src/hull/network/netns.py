"""Named network namespaces: created from a thread of the daemon, kept alive by a bind mount.

A namespace is made without forking (unsafe in the threaded daemon): one dedicated thread
unshares its own network namespace (CLONE_NEWNET is per task), bind-mounts
/proc/thread-self/ns/net onto a file, and joins the host's namespace again. The file is the
container's SandboxKey; the runtime joins it by path. Netlink sockets bind to the namespace of
the thread that opens them, so work run `inside` a namespace configures it.

`NetnsThread.run(fn)` runs fn on that thread; `create` and `inside` must only be called from
such an fn (they move the calling thread between namespaces and always bring it back).
"""

import asyncio
import concurrent.futures
import os
from collections.abc import Callable
from typing import TypeVar

from hull.runtime.syscalls import CLONE_NEWNET, MNT_DETACH, MS_BIND, MS_PRIVATE, mount, setns, umount2, unshare

T = TypeVar("T")

THREAD_NS = "/proc/thread-self/ns/net"


def make_private_mount_dir(path: str) -> None:
    """`path` as a private mount of itself, so the namespace bind mounts in it do not propagate
    into the mount namespaces of containers (which would pin the namespaces)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    if not is_mount_point(path):
        mount(path, path, None, MS_BIND)
    mount(None, path, None, MS_PRIVATE)


def is_mount_point(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def unmount_dir(path: str) -> None:
    """Undo make_private_mount_dir (the namespaces in it must be removed first)."""
    if is_mount_point(path):
        umount2(path, MNT_DETACH)
    try:
        os.rmdir(path)
    except OSError:
        pass  # not empty: a namespace file still pinned by a running container


class NetnsThread:
    """The one thread that changes network namespaces."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="netns")
        self._host_fd = self._pool.submit(os.open, THREAD_NS, os.O_RDONLY | os.O_CLOEXEC).result()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    def create(self, path: str) -> None:
        """A new namespace pinned at `path` (a file that must not exist yet)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.close(fd)
        try:
            unshare(CLONE_NEWNET)
            try:
                mount(THREAD_NS, path, None, MS_BIND)
            finally:
                setns(self._host_fd, CLONE_NEWNET)
        except BaseException:
            os.unlink(path)
            raise

    def inside(self, path: str, fn: Callable[[], T]) -> T:
        """fn() with this thread in the namespace at `path`."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd, CLONE_NEWNET)
        finally:
            os.close(fd)
        try:
            return fn()
        finally:
            setns(self._host_fd, CLONE_NEWNET)

    def close(self) -> None:
        self._pool.submit(os.close, self._host_fd).result()
        self._pool.shutdown()


def remove(path: str) -> None:
    """Unpin and delete a namespace file; the namespace ends with its last user. Absent is fine."""
    try:
        umount2(path, MNT_DETACH)
    except OSError:
        pass  # not mounted: a create that crashed between touch and mount
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
