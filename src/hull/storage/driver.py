"""The graph driver contract, and the choice of driver for a data root.

Vocabulary (Docker's graphdriver words; the seeds' names):
- a *layer* is one directory tree the driver keeps under an id: the *cache id* of an image
  layer (64 hex digits, `layerdb/sha256/<chain id>/cache-id`), a container's *mount id*, or
  its *init layer* `<mount id>-init`. Ids name directories, so they are checked
  (`check_id`): letters, digits, `_` and `-`, nothing else.
- an *image layer* is made by `create` and is read-only once complete. It is filled through
  `diff_path` (tar apply writes there) and then `mark_committed`: a layer without its
  `committed` marker is a half-made leftover that `cleanup_incomplete` may remove.
- a *read-write layer* (`create_readwrite`) is a container's: the init layer and the layer
  the container writes to. It never needs `committed` to survive a restart; creating a
  child on one freezes it (Docker writes `committed` into the parent, e.g. the init layer).
- `get(id)` returns the layer's *root*: the union of it and all its parents (an overlay
  mount on `merged/` for overlay2, the directory itself for vfs). Every `get` is paired with
  a `put`; users of the same layer share one mount, unmounted when the last one puts it.
- `diff_path(id)` is where the layer's *own* files are (`diff/` for overlay2): a layer
  archive is applied there and read back from there when a container is committed.
- `whiteouts` says how a deletion in a layer archive must be written into `diff_path`:
  "overlay" (a 0/0 character device, and `trusted.overlay.opaque=y` for an opaque
  directory) or "delete" (remove the file from the copy, as the vfs driver needs).
- `metadata(id)` is Docker's `GraphDriver.Data` (LowerDir, UpperDir, MergedDir, WorkDir).

`open_driver` picks overlay2 unless overlayfs cannot be mounted on the data root (nested in
another overlay, say): then vfs. The probe mounts a tiny overlay once per data root.
"""

import abc
import dataclasses
import errno
import os
import re
import threading
from typing import ClassVar, Literal

from hull.errors import HullError, InvalidArgument
from hull.layout import DataRoot
from hull.runtime import syscalls

WhiteoutFormat = Literal["overlay", "delete"]

DRIVER_NAMES = ("overlay2", "vfs")

# A layer id names a directory: no "/", no "..", no dot at all (names with a dot are the
# drivers' own scratch names, so they can never clash with a layer), not too long for a
# file name. 64 hex digits plus "-init" is the usual shape.
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


class DriverUnavailable(HullError):
    """The requested graph driver cannot work on this data root."""


def check_id(id: str, what: str = "layer id") -> str:
    """Return `id` if it can name a layer directory, else raise InvalidArgument."""
    if not isinstance(id, str) or not _ID_RE.fullmatch(id):
        raise InvalidArgument(
            f"invalid {what} {id!r}: expected 1-128 letters, digits, '_' or '-' (starting with a letter or digit)"
        )
    return id


class IdLocks:
    """A lock per layer id, from a fixed pool: operations on one layer are serialized, others run on."""

    def __init__(self, stripes: int = 64) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]

    def __call__(self, id: str) -> threading.Lock:
        return self._locks[hash(id) % len(self._locks)]


class GraphDriver(abc.ABC):
    """What the layer store needs from a graph driver (see the module docstring for the words)."""

    name: ClassVar[str]
    whiteouts: ClassVar[WhiteoutFormat]

    def __init__(self, root: DataRoot) -> None:
        # The data root as seen with this driver: root.driver_dir is the driver's home and
        # image/<name>/ its image store, like /var/lib/docker/{overlay2,image/overlay2}.
        self.root = dataclasses.replace(root, driver=self.name)

    @property
    def home(self) -> str:
        return self.root.driver_dir

    @abc.abstractmethod
    def create(self, id: str, parent: str | None = None) -> None:
        """Make an empty image layer `id` on top of `parent` (complete it with mark_committed)."""

    @abc.abstractmethod
    def create_readwrite(self, id: str, parent: str | None = None) -> None:
        """Make a container layer (the init layer or the container's own) on top of `parent`."""

    @abc.abstractmethod
    def remove(self, id: str) -> None:
        """Delete layer `id` completely: unmount it, delete its files and its short link."""

    @abc.abstractmethod
    def get(self, id: str) -> str:
        """Return the path of the layer's root (parents included), mounting it if needed."""

    @abc.abstractmethod
    def put(self, id: str) -> None:
        """Release one `get`; the last release unmounts."""

    @abc.abstractmethod
    def diff_path(self, id: str) -> str:
        """Where the layer's own files live: apply writes here, commit reads here."""

    @abc.abstractmethod
    def exists(self, id: str) -> bool:
        """Whether layer `id` is there (complete or not)."""

    @abc.abstractmethod
    def metadata(self, id: str) -> dict[str, str]:
        """Docker's GraphDriver.Data for `id`."""

    @abc.abstractmethod
    def mark_committed(self, id: str) -> None:
        """Record that image layer `id` is complete (after its archive was applied)."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Unmount everything this driver instance mounted (daemon shutdown)."""

    @abc.abstractmethod
    def layer_ids(self) -> list[str]:
        """Every layer the driver holds (complete or not): the layer store frees those nothing names."""

    @abc.abstractmethod
    def cleanup_incomplete(self) -> list[str]:
        """Remove half-made layers and scratch left by a crash; return what was removed. Startup only."""


# --- the mount table, as both drivers need it (overlay2 for its counts, both before deleting a tree)


def read_mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Every mount point in /proc/self/mountinfo (field 5, octal escapes undone), in mount order."""
    points = []
    with open(mountinfo) as f:
        for line in f:
            field = line.split(" ", 5)[4]
            parts = field.split("\\")
            points.append(parts[0] + "".join(chr(int(p[:3], 8)) + p[3:] for p in parts[1:]))
    return points


def unmount(target: str) -> None:
    """Unmount `target` if it is a mount point; a busy mount is detached (it goes when its last user does)."""
    try:
        syscalls.umount2(target)
    except OSError as e:
        if e.errno == errno.EBUSY:
            syscalls.umount2(target, syscalls.MNT_DETACH)
        elif e.errno not in (errno.EINVAL, errno.ENOENT):  # not mounted, not there
            raise


def unmount_below(path: str) -> None:
    """Unmount whatever is mounted at or below `path`, last mounted first: before deleting the tree,
    so that rmtree never walks into a mount (it would delete what is mounted there)."""
    prefix = path.rstrip("/") + "/"
    for point in reversed(read_mount_points()):
        if point == path or point.startswith(prefix):
            unmount(point)


# Probe results by data root (realpath): overlayfs support does not change while we run,
# and the probe costs a mount and an unmount.
_probed: dict[str, str | None] = {}
_probe_lock = threading.Lock()


def overlay_unsupported_reason(path: str) -> str | None:
    """Why overlayfs cannot be used for layers under `path` (None when it can); probed once per path."""
    from hull.storage.overlay2 import probe_overlay

    os.makedirs(path, mode=0o711, exist_ok=True)
    key = os.path.realpath(path)
    with _probe_lock:
        if key not in _probed:
            try:
                probe_overlay(key)
                _probed[key] = None
            except OSError as e:
                _probed[key] = e.strerror or str(e)
        return _probed[key]


def _prior_driver(root: DataRoot) -> str | None:
    """The driver a data root already holds layers of, if exactly one (Docker's "prior driver")."""
    found = []
    for name in DRIVER_NAMES:
        home = dataclasses.replace(root, driver=name).driver_dir
        try:
            if any(e != "l" for e in os.listdir(home if name == "overlay2" else os.path.join(home, "dir"))):
                found.append(name)
        except FileNotFoundError:
            continue
    return found[0] if len(found) == 1 else None


def open_driver(root: DataRoot, name: str | None = None) -> GraphDriver:
    """The graph driver for `root`: `name` if given (or refused), else overlay2 where it works, else vfs.

    With no name, a data root that already holds layers of exactly one driver keeps it, so a
    restart never hides existing images behind a different driver.
    """
    from hull.storage.overlay2 import Overlay2Driver
    from hull.storage.vfs import VfsDriver

    if name is not None and name not in DRIVER_NAMES:
        raise InvalidArgument(f"unknown storage driver {name!r}: choose one of {', '.join(DRIVER_NAMES)}")
    chosen = name or _prior_driver(root)
    if chosen == "vfs":
        return VfsDriver(root)
    reason = overlay_unsupported_reason(root.path)
    if reason is None:
        return Overlay2Driver(root)
    if chosen == "overlay2":
        raise DriverUnavailable(
            f"storage driver overlay2 cannot be used on {root.path}: overlayfs does not mount there ({reason}); "
            "use the vfs driver"
        )
    return VfsDriver(root)
