"""layerdb: the metadata of image layers (by chain id) and of container mounts (by container id).

On disk (layout.DataRoot), each file holding its value with no trailing newline, as in seed 004:

    layerdb/sha256/<chain id hex>/cache-id            the graph driver's directory name (64 hex)
                                  diff                "sha256:<diff id>"
                                  parent              "sha256:<parent chain id>" (absent for a base layer)
                                  size                the layer's size in bytes, decimal
                                  tar-split.json.gz   what rebuilds the layer's tar byte for byte
    layerdb/mounts/<container id>/mount-id            the container's read-write layer (64 hex)
                                  init-id             "<mount id>-init", its init layer
                                  parent              "sha256:<chain id>" of the image's top layer
    layerdb/tmp/                                      sets of files being written or removed

Vocabulary: diff id, chain id and cache id as in ids.py; a layer's children are the layers whose
parent it is; a layer is used when an image's rootfs (any prefix of its chain) or a container
mount (its parent and that layer's ancestors) needs it.

Contract: a layer or mount exists in layerdb only complete. Docker's way: all files are written
(and fsynced) into a fresh directory under layerdb/tmp, which is then renamed into place in one
step; removal renames the directory into tmp before deleting it. A crash therefore leaves only
garbage in tmp, which recover() clears at startup, along with any directory that is still not a
complete, consistent record (reported, so that the graph driver can free the cache ids and
mount ids they named). Errors: NotFound for a missing layer or mount, Conflict for one that
exists or is still used, InvalidArgument for bad ids and for corrupt records.
"""

import builtins
import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hull.errors import Conflict, InvalidArgument, NotFound
from hull.fsutil import atomic_write
from hull.images import ids
from hull.images.imagedb import ImageDB
from hull.layout import DataRoot

CACHE_ID = "cache-id"
DIFF = "diff"
PARENT = "parent"
SIZE = "size"
TAR_SPLIT = "tar-split.json.gz"
LAYER_FILES = (CACHE_ID, DIFF, SIZE, TAR_SPLIT)  # required; PARENT only above a base layer

MOUNT_ID = "mount-id"
INIT_ID = "init-id"
MOUNT_FILES = (MOUNT_ID, INIT_ID)  # required; PARENT only for an image with layers
INIT_SUFFIX = "-init"


@dataclass(frozen=True)
class LayerRecord:
    """One layer of layerdb; ids in `sha256:` form except cache_id (bare hex, a directory name)."""

    chain_id: str
    diff_id: str
    parent: str | None
    cache_id: str
    size: int


@dataclass(frozen=True)
class MountRecord:
    """A container's layers: its read-write layer, its init layer and the image layer below."""

    container_id: str
    mount_id: str
    init_id: str
    parent: str | None


@dataclass(frozen=True)
class Removed:
    """One record recover() removed; driver_id is the cache id or mount id it named, if readable."""

    name: str
    reason: str
    driver_id: str | None = None


@dataclass
class LayerDBRecovery:
    """What recover() removed: leftovers in tmp, broken or orphaned layers, broken mounts."""

    removed_tmp: list[str] = field(default_factory=list)
    removed_layers: list[Removed] = field(default_factory=list)
    removed_mounts: list[Removed] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.removed_tmp or self.removed_layers or self.removed_mounts)


@dataclass(frozen=True)
class LayerUsage:
    """Who needs each layer: images (by their rootfs chain) and container mounts (by ancestry)."""

    layers: Mapping[str, LayerRecord]
    by_images: Mapping[str, frozenset[str]]  # chain id -> image ids
    by_mounts: Mapping[str, frozenset[str]]  # chain id -> container ids

    def is_used(self, chain_id: str) -> bool:
        return bool(self.by_images.get(chain_id) or self.by_mounts.get(chain_id))

    def unused(self) -> list[str]:
        """Layers nothing needs, in an order safe to delete them: every child before its parent."""

        def depth(chain_id: str) -> int:
            n, seen = 0, set()
            parent = self.layers[chain_id].parent
            while parent is not None and parent in self.layers and parent not in seen:
                seen.add(parent)
                n += 1
                parent = self.layers[parent].parent
            return n

        free = [c for c in self.layers if not self.is_used(c)]
        return sorted(free, key=lambda c: (-depth(c), c))


class _Corrupt(Exception):
    """A record on disk that is incomplete or inconsistent (internal: becomes InvalidArgument)."""


def _read_text(directory: str, name: str, required: bool = True) -> str | None:
    try:
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if required:
            raise _Corrupt(f"{name} is missing") from None
        return None
    try:
        # Docker trims whitespace on read; hull writes none.
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise _Corrupt(f"{name} is not text") from None


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_init_id(value: str) -> str:
    if not (value.endswith(INIT_SUFFIX) and ids.is_hex_id(value[: -len(INIT_SUFFIX)])):
        raise InvalidArgument(f"invalid init id: {value!r} is not <64 hex digits>-init")
    return value


class LayerDB:
    """layerdb/sha256, layerdb/mounts and layerdb/tmp of one data root."""

    def __init__(self, root: DataRoot) -> None:
        self.layers_dir = root.layerdb
        self.mounts_dir = root.layerdb_mounts
        self.tmp_dir = root.layerdb_tmp

    # -- writing and removing directories in one step -----------------------------------------

    def _new_tmp(self, prefix: str) -> str:
        os.makedirs(self.tmp_dir, exist_ok=True)
        return tempfile.mkdtemp(prefix=prefix, dir=self.tmp_dir)

    def _commit(self, tmp: str, files: Iterable[tuple[str, bytes]], final: str, what: str) -> None:
        """Write `files` into `tmp`, then rename `tmp` to `final` (which must not exist)."""
        try:
            for name, data in files:
                atomic_write(os.path.join(tmp, name), data)
            _fsync_dir(tmp)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            if os.path.lexists(final):
                raise Conflict(f"{what} already exists")
            try:
                os.rename(tmp, final)
            except OSError as e:
                # Linux renames a directory onto an empty one; a full one means another writer won.
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise Conflict(f"{what} already exists") from None
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(os.path.dirname(final))

    def _remove_dir(self, path: str) -> None:
        """Remove a record directory atomically: first out of sight into tmp, then for real."""
        os.makedirs(self.tmp_dir, exist_ok=True)
        doomed = tempfile.mkdtemp(prefix="remove-", dir=self.tmp_dir)
        target = os.path.join(doomed, "record")
        os.rename(path, target)
        _fsync_dir(os.path.dirname(path))
        shutil.rmtree(doomed, ignore_errors=True)

    # -- layers -------------------------------------------------------------------------------

    def _layer_dir(self, chain_id: str) -> str:
        return os.path.join(self.layers_dir, ids.hex_of(ids.check_sha256(chain_id, "chain id")))

    def register(self, diff_id: str, parent: str | None, cache_id: str, size: int, tar_split: bytes) -> LayerRecord:
        """Add a layer (its contents already in the graph driver under `cache_id`).

        Its chain id is computed from `parent` (a chain id in layerdb, or None for a base layer)
        and `diff_id`. Conflict if that chain id is already registered.
        """
        ids.check_sha256(diff_id, "diff id")
        ids.check_hex_id(cache_id, "cache id")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidArgument(f"invalid layer size: {size!r}")
        if not isinstance(tar_split, bytes | bytearray):
            raise InvalidArgument("tar-split data must be bytes")
        if parent is not None and not self.exists(parent):
            raise NotFound(f"layer does not exist: {parent}")
        chain = ids.chain_id_step(parent, diff_id)
        final = self._layer_dir(chain)
        if os.path.lexists(final):
            raise Conflict(f"layer {chain} already exists")
        files = [(CACHE_ID, cache_id.encode()), (DIFF, diff_id.encode()), (SIZE, str(size).encode())]
        if parent is not None:
            files.append((PARENT, parent.encode()))
        files.append((TAR_SPLIT, bytes(tar_split)))
        self._commit(self._new_tmp("write-set-"), files, final, f"layer {chain}")
        return LayerRecord(chain, diff_id, parent, cache_id, size)

    def exists(self, chain_id: str) -> bool:
        return os.path.isdir(self._layer_dir(chain_id))

    def _read_layer(self, chain_id: str) -> LayerRecord:
        """Read and check one layer directory; _Corrupt if it is incomplete or inconsistent."""
        d = self._layer_dir(chain_id)
        cache_id = _read_text(d, CACHE_ID) or ""
        diff = _read_text(d, DIFF) or ""
        size_text = _read_text(d, SIZE) or ""
        parent = _read_text(d, PARENT, required=False)
        if not os.path.isfile(os.path.join(d, TAR_SPLIT)):
            raise _Corrupt(f"{TAR_SPLIT} is missing")
        if not ids.is_hex_id(cache_id):
            raise _Corrupt(f"{CACHE_ID} {cache_id!r} is not 64 hex digits")
        if not size_text.isdigit():
            raise _Corrupt(f"{SIZE} {size_text!r} is not a number")
        try:
            ids.check_sha256(diff, "diff id")
            if parent is not None:
                ids.check_sha256(parent, "parent chain id")
        except InvalidArgument as e:
            raise _Corrupt(e.message) from None
        if ids.chain_id_step(parent, diff) != chain_id:
            raise _Corrupt("its chain id does not match its diff and parent")
        return LayerRecord(chain_id, diff, parent, cache_id, int(size_text))

    def get(self, chain_id: str) -> LayerRecord:
        """The layer named by `chain_id` (`sha256:<hex>`)."""
        if not self.exists(chain_id):
            raise NotFound(f"layer does not exist: {chain_id}")
        try:
            return self._read_layer(chain_id)
        except _Corrupt as e:
            raise InvalidArgument(f"layer {chain_id} in layerdb is corrupt: {e}") from None

    def tar_split(self, chain_id: str) -> bytes:
        """The layer's tar-split.json.gz, as stored."""
        self.get(chain_id)
        with open(os.path.join(self._layer_dir(chain_id), TAR_SPLIT), "rb") as f:
            return f.read()

    def list(self) -> builtins.list[str]:
        """Every layer's chain id, sorted."""
        try:
            names = os.listdir(self.layers_dir)
        except FileNotFoundError:
            return []
        return sorted(
            f"{ids.SHA256}:{n}" for n in names if ids.is_hex_id(n) and os.path.isdir(os.path.join(self.layers_dir, n))
        )

    def _parent_or_none(self, chain_id: str) -> str | None:
        try:
            return _read_text(self._layer_dir(chain_id), PARENT, required=False)
        except _Corrupt:
            return None

    def children(self, chain_id: str) -> builtins.list[str]:
        """The layers directly on top of `chain_id`, sorted."""
        ids.check_sha256(chain_id, "chain id")
        return [c for c in self.list() if self._parent_or_none(c) == chain_id]

    def delete(self, chain_id: str) -> LayerRecord:
        """Remove a layer's record (not its contents: free the returned cache id in the driver).

        Conflict while a layer or a container mount is on top of it; whether images still need
        it is the caller's question (see usage()).
        """
        record = self.get(chain_id)
        kids = self.children(chain_id)
        if kids:
            raise Conflict(f"layer {chain_id} is in use: layer {kids[0]} is on top of it")
        users = [m for m in self.list_mounts() if self._mount_parent_or_none(m) == chain_id]
        if users:
            raise Conflict(f"layer {chain_id} is in use by container {ids.short_id(users[0])}")
        self._remove_dir(self._layer_dir(chain_id))
        return record

    # -- mounts -------------------------------------------------------------------------------

    def _mount_dir(self, container_id: str) -> str:
        return os.path.join(self.mounts_dir, ids.check_hex_id(container_id, "container id"))

    def create_mount(
        self, container_id: str, mount_id: str, parent: str | None, init_id: str | None = None
    ) -> MountRecord:
        """Record a container's layers; init_id defaults to `<mount id>-init`. Conflict if the
        container already has one; NotFound if `parent` is not in layerdb."""
        final = self._mount_dir(container_id)
        ids.check_hex_id(mount_id, "mount id")
        init_id = _check_init_id(init_id if init_id is not None else mount_id + INIT_SUFFIX)
        if parent is not None and not self.exists(parent):
            raise NotFound(f"layer does not exist: {parent}")
        if os.path.lexists(final):
            raise Conflict(f"mount of container {container_id} already exists")
        files = [(MOUNT_ID, mount_id.encode()), (INIT_ID, init_id.encode())]
        if parent is not None:
            files.append((PARENT, parent.encode()))
        self._commit(self._new_tmp("mount-"), files, final, f"mount of container {container_id}")
        return MountRecord(container_id, mount_id, init_id, parent)

    def _read_mount(self, container_id: str) -> MountRecord:
        d = self._mount_dir(container_id)
        mount_id = _read_text(d, MOUNT_ID) or ""
        init_id = _read_text(d, INIT_ID) or ""
        parent = _read_text(d, PARENT, required=False)
        try:
            ids.check_hex_id(mount_id, "mount id")
            _check_init_id(init_id)
            if parent is not None:
                ids.check_sha256(parent, "parent chain id")
        except InvalidArgument as e:
            raise _Corrupt(e.message) from None
        return MountRecord(container_id, mount_id, init_id, parent)

    def _mount_parent_or_none(self, container_id: str) -> str | None:
        try:
            return self._read_mount(container_id).parent
        except _Corrupt:
            return None

    def get_mount(self, container_id: str) -> MountRecord:
        d = self._mount_dir(container_id)
        if not os.path.isdir(d):
            raise NotFound(f"mount does not exist for container {container_id}")
        try:
            return self._read_mount(container_id)
        except _Corrupt as e:
            raise InvalidArgument(f"mount of container {container_id} in layerdb is corrupt: {e}") from None

    def list_mounts(self) -> builtins.list[str]:
        """Every container id with a mount record, sorted."""
        try:
            names = os.listdir(self.mounts_dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if ids.is_hex_id(n) and os.path.isdir(os.path.join(self.mounts_dir, n)))

    def delete_mount(self, container_id: str) -> MountRecord:
        """Remove a container's mount record (free the returned mount id in the driver)."""
        record = self.get_mount(container_id)
        self._remove_dir(self._mount_dir(container_id))
        return record

    # -- startup ------------------------------------------------------------------------------

    def _discard(self, path: str) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            self._remove_dir(path)
        else:
            os.unlink(path)

    def recover(self) -> LayerDBRecovery:
        """Make layerdb consistent after a crash, and report everything removed.

        Removes everything under layerdb/tmp; layer directories that are incomplete, unreadable,
        inconsistent (chain id not matching diff and parent) or whose parent is gone (repeated
        until none is left); mount records that are incomplete or whose parent layer is gone.
        """
        report = LayerDBRecovery()
        try:
            for name in sorted(os.listdir(self.tmp_dir)):
                path = os.path.join(self.tmp_dir, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
                report.removed_tmp.append(name)
        except FileNotFoundError:
            pass

        good: dict[str, LayerRecord] = {}
        try:
            names = sorted(os.listdir(self.layers_dir))
        except FileNotFoundError:
            names = []
        for name in names:
            path = os.path.join(self.layers_dir, name)
            if not ids.is_hex_id(name) or not os.path.isdir(path) or os.path.islink(path):
                self._discard(path)
                report.removed_layers.append(Removed(name, "not a layer directory"))
                continue
            chain = f"{ids.SHA256}:{name}"
            try:
                good[chain] = self._read_layer(chain)
            except _Corrupt as e:
                cache_id = _try_read_id(path, CACHE_ID)
                self._remove_dir(path)
                report.removed_layers.append(Removed(chain, str(e), cache_id))
        # A layer whose parent is gone can never be mounted: remove it, then its children too.
        changed = True
        while changed:
            changed = False
            for chain, rec in sorted(good.items()):
                if rec.parent is not None and rec.parent not in good:
                    self._remove_dir(self._layer_dir(chain))
                    del good[chain]
                    report.removed_layers.append(Removed(chain, f"parent layer {rec.parent} is missing", rec.cache_id))
                    changed = True

        try:
            mount_names = sorted(os.listdir(self.mounts_dir))
        except FileNotFoundError:
            mount_names = []
        for name in mount_names:
            path = os.path.join(self.mounts_dir, name)
            if not ids.is_hex_id(name) or not os.path.isdir(path) or os.path.islink(path):
                self._discard(path)
                report.removed_mounts.append(Removed(name, "not a mount directory"))
                continue
            try:
                m = self._read_mount(name)
            except _Corrupt as e:
                mount_id = _try_read_id(path, MOUNT_ID)
                self._remove_dir(path)
                report.removed_mounts.append(Removed(name, str(e), mount_id))
                continue
            if m.parent is not None and m.parent not in good:
                self._remove_dir(path)
                report.removed_mounts.append(Removed(name, f"parent layer {m.parent} is missing", m.mount_id))
        return report

    # -- reference counts ---------------------------------------------------------------------

    def usage(self, images: ImageDB) -> LayerUsage:
        """Which images and container mounts need each layer (see LayerUsage.unused)."""
        layers: dict[str, LayerRecord] = {}
        for c in self.list():
            try:
                layers[c] = self.get(c)
            except InvalidArgument:
                continue  # corrupt: recover() deals with it; nothing can be built on it
        by_images: dict[str, set[str]] = {}
        for image_id in images.list():
            try:
                diff_ids = images.get_config(image_id).diff_ids
            except InvalidArgument:
                continue
            for c in ids.chain_ids(diff_ids):
                by_images.setdefault(c, set()).add(image_id)
        by_mounts: dict[str, set[str]] = {}
        for container_id in self.list_mounts():
            parent = self._mount_parent_or_none(container_id)
            seen: set[str] = set()
            while parent is not None and parent not in seen:
                seen.add(parent)
                by_mounts.setdefault(parent, set()).add(container_id)
                rec = layers.get(parent)
                parent = rec.parent if rec is not None else None
        return LayerUsage(
            layers=layers,
            by_images={k: frozenset(v) for k, v in by_images.items()},
            by_mounts={k: frozenset(v) for k, v in by_mounts.items()},
        )


def _try_read_id(directory: str, name: str) -> str | None:
    """A driver id from a broken record, if one can still be read (to report for cleanup)."""
    try:
        value = _read_text(directory, name, required=False)
    except _Corrupt:
        return None
    return value if value is not None and ids.is_hex_id(value) else None
