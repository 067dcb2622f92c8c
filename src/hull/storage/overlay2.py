"""The overlay2 graph driver: Docker's on-disk layout under `<data root>/overlay2/`, overlayfs mounts.

Layout (the seeds' /var/lib/docker/overlay2, file for file):

    <id>/diff/       the layer's own files (the overlay upper dir of a read-write layer)
    <id>/link        the layer's *short link*: 26 random characters of [A-Z2-7]
    <id>/lower       the parents' short links, nearest parent first: `l/A:l/B` (absent for a base layer)
    <id>/work/       overlayfs's work dir (layers with parents, and read-write layers)
    <id>/merged/     the mount point of the union (same layers)
    <id>/committed   empty marker: the layer is complete and read-only from now on
    l/<short link>   -> ../<id>/diff

Whiteouts are written the overlay way: a deleted file is a 0/0 character device, an opaque
directory carries `trusted.overlay.opaque=y`.

Mounting (`get`): a layer without `lower` is its `diff/`, no mount. Otherwise an overlay with
lowerdir = the short links, upperdir = diff, workdir = work on merged; a committed layer
(one with children, or an image layer) is mounted read-only: lowerdir = its own diff then the
parents, no upper dir, as Docker does. Users share one mount through a reference count;
after a restart the count is rebuilt from /proc/self/mountinfo: a mount found there counts
as one reference.

Long option strings: mount(2) copies at most one page (4096 bytes) of options, and absolute
short links (`/var/lib/hull/overlay2/l/XXXX...`) overflow that at about 60 layers. See
`mount_overlay` for how hull gets around it without a chdir of the (threaded) daemon.

Crash safety: a layer counts once it has `committed` (image layers) or the read-write mark
(container layers, set last in `create_readwrite`); `cleanup_incomplete` removes every
other layer directory, the scratch of interrupted removals, and dangling short links.
"""

import base64
import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from hull.errors import Conflict, HullError, InvalidArgument, NotFound
from hull.fsutil import atomic_write
from hull.layout import DataRoot
from hull.runtime import syscalls
from hull.storage.driver import (
    GraphDriver,
    IdLocks,
    WhiteoutFormat,
    check_id,
    read_mount_points,
    unmount,
    unmount_below,
)

LINK_DIR = "l"
DIFF_DIR = "diff"
WORK_DIR = "work"
MERGED_DIR = "merged"
LINK_FILE = "link"
LOWER_FILE = "lower"
COMMITTED_FILE = "committed"

SHORT_LINK_LENGTH = 26
# overlayfs stacks at most 500 lower layers (OVL_MAX_STACK); Docker stops at 128 because its
# relative option string must fit in a page. hull mounts deeper chains (see mount_overlay).
MAX_LOWER_LAYERS = 500

# The read-write mark of container layers. Docker's layout has no file for it, so it is an
# xattr of <id>/ (invisible in the layout). overlay2 needs trusted.* xattrs on this
# filesystem anyway (opaque dirs, whiteouts of copied trees), so it is as durable as the layers.
RW_MARK_XATTR = "trusted.hull.rw"
# Where a layer goes while it is being deleted: a name no layer id can have (ids have no dot).
REMOVING_SUFFIX = ".removing"

# Characters that would need escaping in a mount(2) option string (',' ends an option, ':' a
# lower dir): with one in the driver dir's path, only relative paths are safe.
_OPTION_SPECIALS = (",", ":", "\\", " ", "\t", "\n")


# --- mounting an overlay -------------------------------------------------------------------------


def _read_param(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# fsconfig(2) copies at most 256 bytes of a string value (strndup_user(value, 256)).
_FSCONFIG_MAX_VALUE = 255
# "index=off" as Docker passes it where the kernel knows the option: an inode index would tie the
# upper dir to this one overlay and refuse a later mount while any old copy lingers (EBUSY).
_INDEX_OFF = os.path.exists("/sys/module/overlay/parameters/index")
# A diff dir must stay a plain layer that tar can carry: no redirect or metacopy xattrs. Both are
# off unless the kernel was built or booted with them on; then say "off" explicitly.
_FORCE_OFF = tuple(
    name for name in ("redirect_dir", "metacopy") if _read_param(f"/sys/module/overlay/parameters/{name}") == "Y"
)
# None until a long mount tried the new mount API: then whether "lowerdir+" works (Linux >= 6.8).
_lowerdir_plus_works: bool | None = None


@dataclass(frozen=True)
class OverlayMount:
    """One overlay mount: paths relative to `home` (the driver dir), top lower layer first.

    No upper dir makes a read-only overlay (then `work` is None too).
    """

    home: str
    target: str
    lowers: tuple[str, ...]
    upper: str | None = None
    work: str | None = None

    def data(self, absolute: bool) -> str:
        """The mount(2) option string, with paths absolute or relative to `home`."""

        def p(rel: str) -> str:
            return os.path.join(self.home, rel) if absolute else rel

        opts = ["index=off"] if _INDEX_OFF else []
        opts += [f"{name}=off" for name in _FORCE_OFF]
        opts.append("lowerdir=" + ":".join(p(lower) for lower in self.lowers))
        if self.upper is not None and self.work is not None:
            opts += [f"upperdir={p(self.upper)}", f"workdir={p(self.work)}"]
        return ",".join(opts)


def _fits(data: str) -> bool:
    return len(data.encode()) <= _PAGE_SIZE - 1  # the page holds the terminating NUL too


def mount_overlay(m: OverlayMount) -> str:
    """Mount `m`; return how: "absolute", "lowerdir+" or "relative".

    1. "absolute": mount(2) with absolute paths whenever they fit in a page (mountinfo then
       shows full paths, as Docker's does for short chains).
    2. "lowerdir+": otherwise the new mount API: syscalls.fsopen("overlay") and one fsconfig
       "lowerdir+" per layer. Each layer is its own string, so there is no total limit (up to
       overlayfs's 500 layers), no cwd is involved and nothing is forked: the daemon is a
       threaded asyncio process, where a chdir would move every thread and a fork is unsafe.
    3. "relative": kernels before 6.8 lack "lowerdir+": Docker's relative options (`l/XXX`,
       29 bytes a layer, so about 135 layers fit) given to mount(2) from a short-lived thread
       that unshared its fs context (unshare(CLONE_FS)): it alone has the driver dir as cwd.
       Rejected: a child process with that cwd (a fork of a threaded process, or a fresh
       interpreter per mount) and paths through an O_PATH fd of the driver dir
       (/proc/self/fd/N/l/XXX is ~47 bytes a layer: fewer layers fit than with `l/XXX`).
    """
    global _lowerdir_plus_works
    absolute_ok = not any(c in m.home for c in _OPTION_SPECIALS)
    if absolute_ok and _fits(m.data(absolute=True)):
        syscalls.mount("overlay", m.target, "overlay", 0, m.data(absolute=True))
        return "absolute"
    longest = max(len(os.fsencode(os.path.join(m.home, p))) for p in (*m.lowers, m.upper or "", m.work or ""))
    if _lowerdir_plus_works is not False and longest <= _FSCONFIG_MAX_VALUE:
        try:
            _mount_lowerdir_plus(m)
            _lowerdir_plus_works = True
            return "lowerdir+"
        except _NoLowerdirPlus:
            _lowerdir_plus_works = False
    data = m.data(absolute=False)
    if not _fits(data):
        raise OSError(errno.E2BIG, f"{len(m.lowers)} lower layers do not fit in one page of mount options")
    _mount_relative(m, data)
    return "relative"


class _NoLowerdirPlus(Exception):
    """This kernel has no new mount API or no overlayfs "lowerdir+"."""


def _mount_lowerdir_plus(m: OverlayMount) -> None:
    try:
        fd = syscalls.fsopen("overlay")
    except OSError as e:
        if e.errno in (errno.ENOSYS, errno.EPERM):  # EPERM: seccomp profiles that deny it
            raise _NoLowerdirPlus() from None
        raise
    try:
        syscalls.fsconfig_set_string(fd, "source", "overlay")
        if _INDEX_OFF:
            syscalls.fsconfig_set_string(fd, "index", "off")
        for name in _FORCE_OFF:
            syscalls.fsconfig_set_string(fd, name, "off")
        for i, lower in enumerate(m.lowers):
            try:
                syscalls.fsconfig_set_string(fd, "lowerdir+", os.path.join(m.home, lower))
            except OSError as e:
                if i == 0 and e.errno == errno.EINVAL:  # the key itself is unknown
                    raise _NoLowerdirPlus() from None
                raise
        if m.upper is not None and m.work is not None:
            syscalls.fsconfig_set_string(fd, "upperdir", os.path.join(m.home, m.upper))
            syscalls.fsconfig_set_string(fd, "workdir", os.path.join(m.home, m.work))
        syscalls.fsconfig_create(fd)
        mfd = syscalls.fsmount(fd)
        try:
            syscalls.move_mount(mfd, m.target)
        finally:
            os.close(mfd)
    finally:
        os.close(fd)


def _in_private_cwd(cwd: str, call: Callable[[], None]) -> None:
    """Run `call` in a new thread whose working directory is `cwd` and no other thread's."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            # The thread's own fs context (cwd, root, umask); it dies with the thread.
            syscalls.unshare(syscalls.CLONE_FS)
            os.chdir(cwd)
            call()
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=run, name="hull-overlay-mount", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _mount_relative(m: OverlayMount, data: str) -> None:
    _in_private_cwd(m.home, lambda: syscalls.mount("overlay", m.target, "overlay", 0, data))


def probe_overlay(path: str) -> None:
    """Mount and unmount a two-layer overlay with an upper dir in a scratch dir under `path`; OSError if it fails."""
    scratch = tempfile.mkdtemp(prefix=".hull-overlay-probe-", dir=path)
    try:
        for name in ("lower1", "lower2", "upper", "work", "merged"):
            os.mkdir(os.path.join(scratch, name))
        merged = os.path.join(scratch, "merged")
        mount_overlay(OverlayMount(scratch, merged, ("lower2", "lower1"), "upper", "work"))
        unmount(merged)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- the driver ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerDir:
    """The paths of one overlay2 layer directory `<home>/<id>`; nothing here touches the disk."""

    home: str
    id: str

    @property
    def path(self) -> str:
        return os.path.join(self.home, self.id)

    @property
    def diff(self) -> str:
        return os.path.join(self.path, DIFF_DIR)

    @property
    def work(self) -> str:
        return os.path.join(self.path, WORK_DIR)

    @property
    def merged(self) -> str:
        return os.path.join(self.path, MERGED_DIR)

    @property
    def link_file(self) -> str:
        return os.path.join(self.path, LINK_FILE)

    @property
    def lower_file(self) -> str:
        return os.path.join(self.path, LOWER_FILE)

    @property
    def committed_file(self) -> str:
        return os.path.join(self.path, COMMITTED_FILE)


def new_short_link_id() -> str:
    """26 random characters of [A-Z2-7], as Docker's (base32 of 128 random bits)."""
    return base64.b32encode(os.urandom(16)).decode()[:SHORT_LINK_LENGTH]


class Overlay2Driver(GraphDriver):
    """Layers as overlayfs directories, laid out exactly as Docker's overlay2 driver lays them out."""

    name = "overlay2"
    whiteouts: ClassVar[WhiteoutFormat] = "overlay"

    def __init__(self, root: DataRoot) -> None:
        super().__init__(root)
        os.makedirs(self.home, mode=0o710, exist_ok=True)
        os.makedirs(os.path.join(self.home, LINK_DIR), mode=0o700, exist_ok=True)
        # mountinfo shows real paths; so must every mount target we compare with it.
        self._home = os.path.realpath(self.home)
        self._locks = IdLocks()
        self._counts: dict[str, int] = {}  # references to a layer's merged mount, by id
        self._checked: set[str] = set()  # ids whose mount state was read from mountinfo
        self._mounted_here: set[str] = set()  # ids this instance mounted (for cleanup)

    # --- paths and on-disk records

    def _layer(self, id: str) -> LayerDir:
        check_id(id)
        if id == LINK_DIR:
            raise InvalidArgument(f"invalid layer id {id!r}: {LINK_DIR!r} is the short link directory")
        return LayerDir(self._home, id)

    def _existing(self, id: str) -> LayerDir:
        layer = self._layer(id)
        if not os.path.isdir(layer.path):
            raise NotFound(f"layer {id} does not exist in {self.home}")
        return layer

    def _lowers(self, layer: LayerDir) -> list[str]:
        """The `lower` file's short links (`l/XXX`, nearest parent first); [] for a base layer."""
        try:
            with open(layer.lower_file) as f:
                text = f.read().strip()
        except FileNotFoundError:
            return []
        return text.split(":") if text else []

    def _short_link(self, layer: LayerDir) -> str:
        with open(layer.link_file) as f:
            link = f.read().strip()
        if len(link) != SHORT_LINK_LENGTH or not link.isalnum():
            raise HullError(f"layer {layer.id} has a corrupt link file {layer.link_file}: {link!r}")
        return link

    def _is_committed(self, layer: LayerDir) -> bool:
        return os.path.exists(layer.committed_file)

    def _is_readwrite(self, layer: LayerDir) -> bool:
        try:
            os.getxattr(layer.path, RW_MARK_XATTR, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENODATA, errno.ENOENT, errno.ENOTSUP):
                return False
            raise
        return True

    # --- create and remove

    def create(self, id: str, parent: str | None = None) -> None:
        self._create(id, parent, readwrite=False)

    def create_readwrite(self, id: str, parent: str | None = None) -> None:
        self._create(id, parent, readwrite=True)

    def _create(self, id: str, parent: str | None, readwrite: bool) -> None:
        layer = self._layer(id)
        if parent == id:
            raise InvalidArgument(f"layer {id} cannot be its own parent")
        with self._locks(id):
            if os.path.lexists(layer.path):
                raise Conflict(f"layer {id} already exists in {self.home}")
            lowers: list[str] = []
            parent_layer = None
            if parent is not None and parent != "":
                try:
                    parent_layer = self._existing(parent)
                except NotFound:
                    raise NotFound(f"cannot create layer {id}: parent layer {parent} does not exist") from None
                if not self._is_committed(parent_layer) and not self._is_readwrite(parent_layer):
                    raise Conflict(f"cannot create layer {id}: parent layer {parent} is incomplete (not committed)")
                lowers = [f"{LINK_DIR}/{self._short_link(parent_layer)}", *self._lowers(parent_layer)]
                if len(lowers) > MAX_LOWER_LAYERS:
                    raise InvalidArgument(
                        f"cannot create layer {id}: {len(lowers)} parent layers, overlayfs stacks at most "
                        f"{MAX_LOWER_LAYERS}"
                    )
            os.mkdir(layer.path, 0o710)
            try:
                self._populate(layer, lowers, readwrite)
                if parent_layer is not None and not self._is_committed(parent_layer):
                    # Docker's rule: a layer with children is frozen (mounted read-only from now on).
                    atomic_write(parent_layer.committed_file, b"", mode=0o600)
                if readwrite:
                    # Last: until the mark is set a crash leaves garbage that cleanup_incomplete removes.
                    os.setxattr(layer.path, RW_MARK_XATTR, b"1", follow_symlinks=False)
            except BaseException:
                self._delete(layer)
                raise

    def _populate(self, layer: LayerDir, lowers: list[str], readwrite: bool) -> None:
        os.mkdir(layer.diff, 0o755)
        os.chmod(layer.diff, 0o755)  # whatever the umask: this is the root directory of the layer
        while True:
            link = new_short_link_id()
            try:
                os.symlink(os.path.join("..", layer.id, DIFF_DIR), os.path.join(self._home, LINK_DIR, link))
                break
            except FileExistsError:
                continue  # 128 random bits colliding: try again
        atomic_write(layer.link_file, link.encode(), mode=0o644)
        if lowers:
            atomic_write(layer.lower_file, ":".join(lowers).encode(), mode=0o644)
        if lowers or readwrite:
            os.mkdir(layer.work, 0o700)
            os.mkdir(layer.merged, 0o700)

    def remove(self, id: str) -> None:
        """Delete layer `id` (unmounting it whoever holds it); removing a missing layer does nothing."""
        layer = self._layer(id)
        with self._locks(id):
            if not os.path.lexists(layer.path):
                return
            self._unmount_all(layer)
            self._counts.pop(id, None)
            self._checked.discard(id)
            self._mounted_here.discard(id)
            self._delete(layer)

    def _delete(self, layer: LayerDir) -> None:
        """Remove the short link, then the directory (renamed first, so a crash half-way leaves only scratch)."""
        try:
            link = self._short_link(layer)
        except (OSError, HullError):
            link = None
        if link is not None:
            path = os.path.join(self._home, LINK_DIR, link)
            try:
                if os.readlink(path) == os.path.join("..", layer.id, DIFF_DIR):
                    os.unlink(path)
            except FileNotFoundError:
                pass
        doomed = layer.path + REMOVING_SUFFIX
        if os.path.lexists(doomed):  # scratch of an earlier removal of the same id that crashed
            unmount_below(doomed)
            _remove_tree(doomed)
        try:
            os.rename(layer.path, doomed)
        except FileNotFoundError:
            return
        unmount_below(doomed)  # never let rmtree walk into a mount (it would delete the layers below)
        _remove_tree(doomed)

    # --- mounts

    def _refs(self, layer: LayerDir, delta: int) -> int:
        """Change the reference count of the layer's mount by `delta`; return the new count.

        The first time this instance sees a layer, a mount already in mountinfo (made before a
        restart) counts as one reference, as in Docker.
        """
        if layer.id not in self._checked:
            self._checked.add(layer.id)
            if layer.merged in read_mount_points():
                self._counts[layer.id] = self._counts.get(layer.id, 0) + 1
        count = max(0, self._counts.get(layer.id, 0) + delta)
        if count:
            self._counts[layer.id] = count
        else:
            self._counts.pop(layer.id, None)
        return count

    def get(self, id: str) -> str:
        layer = self._existing(id)
        with self._locks(id):
            lowers = self._lowers(layer)
            if not lowers:
                return layer.diff  # a base layer is its diff dir: nothing to unite
            if self._refs(layer, +1) > 1:
                return layer.merged
            try:
                os.makedirs(layer.merged, mode=0o700, exist_ok=True)
                if self._is_committed(layer):
                    mount = OverlayMount(self._home, layer.merged, (f"{id}/{DIFF_DIR}", *lowers))
                else:
                    os.makedirs(layer.work, mode=0o700, exist_ok=True)
                    upper, work = f"{id}/{DIFF_DIR}", f"{id}/{WORK_DIR}"
                    mount = OverlayMount(self._home, layer.merged, tuple(lowers), upper, work)
                mount_overlay(mount)
            except OSError as e:
                self._refs(layer, -1)
                raise HullError(f"cannot mount layer {id} ({len(lowers)} lower layers) on {layer.merged}: {e}") from e
            except BaseException:
                self._refs(layer, -1)
                raise
            self._mounted_here.add(id)
            return layer.merged

    def put(self, id: str) -> None:
        layer = self._existing(id)
        with self._locks(id):
            if not self._lowers(layer):
                return
            if self._refs(layer, -1) > 0:
                return
            self._unmount(layer)
            self._mounted_here.discard(id)

    def _unmount(self, layer: LayerDir) -> None:
        try:
            unmount(layer.merged)
        except OSError as e:
            raise HullError(f"cannot unmount layer {layer.id} from {layer.merged}: {e}") from e
        # Docker's trick: removing the mount point also drops copies of this mount that other
        # mount namespaces (containers created meanwhile) inherited; then make it anew.
        try:
            os.rmdir(layer.merged)
            os.mkdir(layer.merged, 0o700)
        except OSError:
            pass

    def _unmount_all(self, layer: LayerDir) -> None:
        """Unmount merged/ however often it is mounted (another instance may have stacked a mount)."""
        for _ in range(16):
            if layer.merged not in read_mount_points():
                return
            self._unmount(layer)
        raise HullError(f"cannot unmount layer {layer.id}: {layer.merged} stays mounted")

    def is_mounted(self, id: str) -> bool:
        """Whether the layer's merged/ is a mount point now (per /proc/self/mountinfo)."""
        return self._layer(id).merged in read_mount_points()

    # --- the rest of the contract

    def diff_path(self, id: str) -> str:
        return self._existing(id).diff

    def exists(self, id: str) -> bool:
        return os.path.isdir(self._layer(id).path)

    def metadata(self, id: str) -> dict[str, str]:
        layer = self._existing(id)
        data = {"WorkDir": layer.work, "MergedDir": layer.merged, "UpperDir": layer.diff}
        lower_dirs = []
        for short in self._lowers(layer):
            target = os.readlink(os.path.join(self._home, short))
            lower_dirs.append(os.path.normpath(os.path.join(self._home, LINK_DIR, target)))
        if lower_dirs:
            data["LowerDir"] = ":".join(lower_dirs)
        return data

    def mark_committed(self, id: str) -> None:
        layer = self._existing(id)
        with self._locks(id):
            if self._is_committed(layer):
                return
            # The layer's files must be on disk before the marker that vouches for them is.
            fd = os.open(layer.diff, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                syscalls.syncfs(fd)
            finally:
                os.close(fd)
            atomic_write(layer.committed_file, b"", mode=0o600)

    def cleanup(self) -> None:
        for id in sorted(self._mounted_here):
            layer = LayerDir(self._home, id)
            with self._locks(id):
                self._unmount_all(layer)
                self._counts.pop(id, None)
                self._checked.discard(id)
                self._mounted_here.discard(id)

    def layer_ids(self) -> list[str]:
        return sorted(
            name for name in os.listdir(self._home)
            if name != LINK_DIR and not name.endswith(REMOVING_SUFFIX) and os.path.isdir(os.path.join(self._home, name))
        )  # fmt: skip

    def cleanup_incomplete(self) -> list[str]:
        removed = []
        for name in sorted(os.listdir(self._home)):
            path = os.path.join(self._home, name)
            if name.endswith(REMOVING_SUFFIX):
                unmount_below(path)
                _remove_tree(path)
                removed.append(name)
                continue
            if name == LINK_DIR or not os.path.isdir(path):
                continue
            try:
                layer = self._layer(name)
            except InvalidArgument:
                continue  # not ours (lost+found, say): leave it
            if self._is_committed(layer) or self._is_readwrite(layer):
                _remove_atomic_write_scratch(layer.path)
                continue
            self.remove(name)
            removed.append(name)
        links = os.path.join(self._home, LINK_DIR)
        for name in sorted(os.listdir(links)):
            if not os.path.exists(os.path.join(links, name)):  # dangling: its layer is gone
                os.unlink(os.path.join(links, name))
                removed.append(f"{LINK_DIR}/{name}")
        return removed


def _remove_tree(path: str) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass


def _remove_atomic_write_scratch(layer_path: str) -> None:
    """Remove temp files of an atomic_write that a crash interrupted (`<name>.tmp-<pid>`)."""
    for name in os.listdir(layer_path):
        if ".tmp-" in name and name.split(".tmp-")[0] in (LINK_FILE, LOWER_FILE, COMMITTED_FILE):
            try:
                os.unlink(os.path.join(layer_path, name))
            except FileNotFoundError:
                pass
