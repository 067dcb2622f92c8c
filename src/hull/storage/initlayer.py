"""The init layer: what Docker puts between an image and a container's read-write layer.

Every container gets a read-write layer `<mount id>-init` on top of its image, filled once by
`populate_init_layer` and frozen when the container's own layer is created on it. It holds
the mount points and placeholders the runtime bind-mounts over (hosts, resolv.conf and
hostname from containers/<id>/, the console, /dev/pts, /dev/shm, /proc, /sys), so that those
paths exist in any image and `docker commit` of the container's layer never captures them.

The entries are Docker's (daemon/initlayer): directories 0755, empty files 0755, and
/etc/mtab a symlink to /proc/mounts; missing parent directories (/dev, /etc) are made 0755.
All are owned by the container's root (0:0 unless user namespaces remap it).

`populate_init_layer(path)` works on the init layer's root as `get(<mount id>-init)` returns
it: the union with the image below. Like Docker it first removes (unlinks) every
non-directory on each entry's path, so an image whose /etc/hosts is a symlink, or whose /dev
is one, gets a real file or directory in the init layer (on overlay2 the image's entry is
whited out), and nothing is ever written through a symlink out of the layer. An entry that
exists as a directory is left as it is.
"""

import errno
import os
from dataclasses import dataclass
from typing import Literal

INIT_LAYER_SUFFIX = "-init"

EntryKind = Literal["dir", "file", "symlink"]


@dataclass(frozen=True)
class InitEntry:
    """One placeholder of the init layer: an absolute path in the container and what it is."""

    path: str
    kind: EntryKind
    target: str = ""  # for a symlink


INIT_LAYER_ENTRIES: tuple[InitEntry, ...] = (
    InitEntry("/dev/pts", "dir"),
    InitEntry("/dev/shm", "dir"),
    InitEntry("/proc", "dir"),
    InitEntry("/sys", "dir"),
    InitEntry("/.dockerenv", "file"),
    InitEntry("/etc/resolv.conf", "file"),
    InitEntry("/etc/hosts", "file"),
    InitEntry("/etc/hostname", "file"),
    InitEntry("/dev/console", "file"),
    InitEntry("/etc/mtab", "symlink", "/proc/mounts"),
)

MODE = 0o755


def init_layer_id(mount_id: str) -> str:
    """The id of a container's init layer: its mount id with "-init"."""
    return mount_id + INIT_LAYER_SUFFIX


def populate_init_layer(path: str, uid: int = 0, gid: int = 0) -> None:
    """Create the init layer's placeholders under `path` (the layer's root as the driver's get returns it)."""
    root = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for entry in INIT_LAYER_ENTRIES:
            _make(root, entry, uid, gid)
    finally:
        os.close(root)


def _unlink_nondir(dir_fd: int, name: str) -> None:
    """unlinkat(name): remove a file, symlink or device; a directory or nothing there stays as it is."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.EISDIR, errno.EPERM):  # EPERM: what some filesystems say for a dir
            raise


def _make(root: int, entry: InitEntry, uid: int, gid: int) -> None:
    *parents, leaf = entry.path.strip("/").split("/")
    dir_fd = os.dup(root)
    try:
        for name in parents:
            _unlink_nondir(dir_fd, name)
            child = _mkdir(dir_fd, name, uid, gid)
            os.close(dir_fd)
            dir_fd = child
        _unlink_nondir(dir_fd, leaf)
        if _lexists(dir_fd, leaf):
            return  # a directory: Docker keeps it
        if entry.kind == "dir":
            os.close(_mkdir(dir_fd, leaf, uid, gid))
        elif entry.kind == "file":
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, MODE, dir_fd=dir_fd)
            try:
                os.fchown(fd, uid, gid)
                os.fchmod(fd, MODE)
            finally:
                os.close(fd)
        else:
            os.symlink(entry.target, leaf, dir_fd=dir_fd)
            os.chown(leaf, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    finally:
        os.close(dir_fd)


def _lexists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _mkdir(dir_fd: int, name: str, uid: int, gid: int) -> int:
    """Open directory `name` in `dir_fd`, making it (0755, owned by uid:gid) if missing; never follows a symlink."""
    try:
        os.mkdir(name, MODE, dir_fd=dir_fd)
        created = True
    except FileExistsError:
        created = False
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    if created:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, MODE)
    return fd
