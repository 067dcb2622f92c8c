"""The vfs graph driver: every layer a full copy of its parent, under `<data root>/vfs/dir/<id>`.

Docker's fallback where no union filesystem mounts (a data root nested in another overlay,
say). A layer's directory is at once its root (`get`) and where its archive is applied
(`diff_path`): creating a child copies the parent's whole tree, and a whiteout in a layer
archive is applied by deleting the file from the copy (`whiteouts == "delete"`). Nothing is
mounted, so `get`/`put` only check that the layer exists.

The copy (`copy_tree`) keeps everything a layer archive can hold: owner, mode (setuid &
co.), mtime and atime, xattrs (security.capability, ACLs), hard links, symlinks, devices,
fifos and sockets, and holes in sparse files. Data is cloned with FICLONE where the
filesystem can share extents (btrfs, xfs), else copied in the kernel with copy_file_range,
else with sendfile: it never passes through Python.

Crash safety: a layer is copied under a scratch name (`<id>.creating-*`) and renamed into
place, and removed by renaming to `<id>.removing` first; `cleanup_incomplete` deletes such
scratch. The vfs layout has no room for a `committed` marker (the directory is the root
filesystem itself), so `mark_committed` only checks the layer exists: whether an applied
archive is complete is the layer store's to record.
"""

import errno
import fcntl
import os
import shutil
import stat
from dataclasses import dataclass, field
from typing import ClassVar

from hull.errors import Conflict, HullError, InvalidArgument, NotFound
from hull.layout import DataRoot
from hull.storage.driver import GraphDriver, IdLocks, WhiteoutFormat, check_id, unmount_below

LAYERS_DIR = "dir"
CREATING_MARK = ".creating-"
REMOVING_SUFFIX = ".removing"

FICLONE = 0x40049409  # _IOW(0x94, 9, int)

# Errors that mean "this way of copying does not work here", not "this file cannot be copied".
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM)


@dataclass
class _CopyState:
    """What one copy learned on the way: which data paths work, which inodes were copied already."""

    reflink: bool = True
    copy_file_range: bool = True
    hardlinks: dict[tuple[int, int], str] = field(default_factory=dict)


def copy_tree(src: str, dst: str) -> None:
    """Copy the directory tree `src` to `dst` (which must not exist), keeping all metadata.

    Directories get their owner, mode, xattrs and times last (deepest first), once nothing
    more is written into them.
    """
    top = os.lstat(src)
    if not stat.S_ISDIR(top.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", src)
    state = _CopyState()
    os.mkdir(dst, 0o700)
    dirs: list[tuple[str, str, os.stat_result]] = [(src, dst, top)]
    pending = [(src, dst)]
    while pending:
        src_dir, dst_dir = pending.pop()
        with os.scandir(src_dir) as entries:
            for entry in entries:
                s, d = entry.path, os.path.join(dst_dir, entry.name)
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.mkdir(d, 0o700)
                    dirs.append((s, d, st))
                    pending.append((s, d))
                    continue
                if st.st_nlink > 1:
                    first = state.hardlinks.get((st.st_dev, st.st_ino))
                    if first is not None:
                        os.link(first, d, follow_symlinks=False)
                        continue
                    state.hardlinks[(st.st_dev, st.st_ino)] = d
                _copy_entry(s, d, st, state)
    for s, d, st in reversed(dirs):
        _copy_metadata(s, d, st)


def _copy_entry(src: str, dst: str, st: os.stat_result, state: _CopyState) -> None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        _copy_file(src, dst, st, state)
        return
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
    else:
        raise OSError(errno.EINVAL, f"unknown file type {stat.S_IFMT(mode):o}", src)
    _copy_metadata(src, dst, st)


def _copy_file(src: str, dst: str, st: os.stat_result, state: _CopyState) -> None:
    sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _copy_data(sfd, dfd, st.st_size, state)
            # Owner first (chown clears setuid bits and security.capability), then mode, xattrs, times.
            os.chown(dfd, st.st_uid, st.st_gid)
            os.chmod(dfd, stat.S_IMODE(st.st_mode))
            for name in os.listxattr(sfd):
                os.setxattr(dfd, name, os.getxattr(sfd, name))
            os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    """Owner, mode, xattrs and times of `src` onto `dst` (not following a symlink)."""
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):  # a symlink's mode is always 0777 on Linux
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    for name in os.listxattr(src, follow_symlinks=False):
        os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def ficlone(dst_fd: int, src_fd: int) -> None:
    """ioctl(FICLONE): make `dst_fd` share all of `src_fd`'s extents (reflink)."""
    fcntl.ioctl(dst_fd, FICLONE, src_fd)


def _copy_data(sfd: int, dfd: int, size: int, state: _CopyState) -> None:
    if size == 0:
        return
    if state.reflink:
        try:
            ficlone(dfd, sfd)
            return
        except OSError as e:
            if e.errno not in _UNSUPPORTED:
                raise
            state.reflink = False
    # Copy the data segments only (SEEK_DATA/SEEK_HOLE), so a sparse file stays sparse.
    offset = 0
    while offset < size:
        try:
            start = os.lseek(sfd, offset, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # nothing but a hole up to the end
                break
            raise
        end = os.lseek(sfd, start, os.SEEK_HOLE)
        _copy_range(sfd, dfd, start, end - start, state)
        offset = end
    os.ftruncate(dfd, size)


def _copy_range(sfd: int, dfd: int, offset: int, count: int, state: _CopyState) -> None:
    while count > 0:
        if state.copy_file_range:
            try:
                n = os.copy_file_range(sfd, dfd, count, offset, offset)
            except OSError as e:
                if e.errno not in _UNSUPPORTED:
                    raise
                state.copy_file_range = False
                continue
        else:
            os.lseek(dfd, offset, os.SEEK_SET)
            n = os.sendfile(dfd, sfd, offset, count)
        if n == 0:  # the source ended early
            return
        offset += n
        count -= n


class VfsDriver(GraphDriver):
    """Layers as plain directories, each a full copy of its parent (Docker's vfs driver)."""

    name = "vfs"
    whiteouts: ClassVar[WhiteoutFormat] = "delete"

    def __init__(self, root: DataRoot) -> None:
        super().__init__(root)
        self._layers = os.path.join(self.home, LAYERS_DIR)
        os.makedirs(self._layers, mode=0o700, exist_ok=True)
        self._locks = IdLocks()

    def _dir(self, id: str) -> str:
        return os.path.join(self._layers, check_id(id))

    def _existing(self, id: str) -> str:
        path = self._dir(id)
        if not os.path.isdir(path):
            raise NotFound(f"layer {id} does not exist in {self._layers}")
        return path

    def create(self, id: str, parent: str | None = None) -> None:
        self._create(id, parent)

    def create_readwrite(self, id: str, parent: str | None = None) -> None:
        self._create(id, parent)

    def _create(self, id: str, parent: str | None) -> None:
        path = self._dir(id)
        if parent == id:
            raise InvalidArgument(f"layer {id} cannot be its own parent")
        with self._locks(id):
            if os.path.lexists(path):
                raise Conflict(f"layer {id} already exists in {self._layers}")
            parent_path = None
            if parent is not None and parent != "":
                try:
                    parent_path = self._existing(parent)
                except NotFound:
                    raise NotFound(f"cannot create layer {id}: parent layer {parent} does not exist") from None
            scratch = f"{path}{CREATING_MARK}{os.urandom(4).hex()}"
            try:
                if parent_path is None:
                    os.mkdir(scratch, 0o755)
                    os.chmod(scratch, 0o755)  # the root directory of the layer, whatever the umask
                else:
                    copy_tree(parent_path, scratch)
                os.rename(scratch, path)
            except OSError as e:
                shutil.rmtree(scratch, ignore_errors=True)
                raise HullError(f"cannot create layer {id}" + (f" from {parent}" if parent else "") + f": {e}") from e
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise

    def remove(self, id: str) -> None:
        """Delete layer `id`; removing a missing layer does nothing."""
        path = self._dir(id)
        with self._locks(id):
            doomed = path + REMOVING_SUFFIX
            if os.path.lexists(doomed):  # scratch of an earlier removal of the same id that crashed
                unmount_below(doomed)
                shutil.rmtree(doomed)
            try:
                os.rename(path, doomed)
            except FileNotFoundError:
                return
            unmount_below(doomed)  # a bind mount into a container's root must not be deleted through
            shutil.rmtree(doomed)

    def get(self, id: str) -> str:
        return self._existing(id)

    def put(self, id: str) -> None:
        self._existing(id)

    def diff_path(self, id: str) -> str:
        return self._existing(id)

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._dir(id))

    def metadata(self, id: str) -> dict[str, str]:
        self._existing(id)
        return {}

    def mark_committed(self, id: str) -> None:
        self._existing(id)

    def cleanup(self) -> None:
        pass  # nothing is ever mounted

    def layer_ids(self) -> list[str]:
        return sorted(
            name
            for name in os.listdir(self._layers)
            if CREATING_MARK not in name and not name.endswith(REMOVING_SUFFIX)
        )

    def cleanup_incomplete(self) -> list[str]:
        removed = []
        for name in sorted(os.listdir(self._layers)):
            if CREATING_MARK in name or name.endswith(REMOVING_SUFFIX):
                unmount_below(os.path.join(self._layers, name))
                shutil.rmtree(os.path.join(self._layers, name), ignore_errors=True)
                removed.append(name)
        return removed
