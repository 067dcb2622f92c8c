"""The volumes of one daemon: create, inspect, list, remove, prune, and their use by containers.

Vocabulary: a volume's *users* are the containers whose mount points name it, running or not
(Docker's reference count): a volume with users cannot be removed ("volume is in use"). Its
*holders* are the running ones, which the local driver counts to mount and unmount a volume
with options. Users are rebuilt at daemon start from the containers' records (`adopt`).

Every change to the disk runs in a worker thread under one lock; events are published from
the event loop, after the change.
"""

import logging
import os
import shutil
import threading
from typing import TYPE_CHECKING

from hull.errors import Conflict, HullError, InvalidArgument, NotFound
from hull.images import filters as F
from hull.volumes import local
from hull.volumes.mounts import VOLUME, MountPoint, copy_up, new_volume_name, prepare_sources
from hull.volumes.record import ANONYMOUS_LABEL, LOCAL_DRIVER, METADATA_FILE, Volume

if TYPE_CHECKING:
    from hull.daemon.daemon import Daemon

log = logging.getLogger("hulld.volumes")

LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!", "all")
# `volume create` (not `run -v x:/x`, oddly) wants names of two characters or more, as Docker's.
MIN_CREATE_NAME_LENGTH = 2


class VolumeManager:
    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.root = daemon.root
        self.driver = local.LocalDriver(self.root)
        self._volumes: dict[str, Volume] = {}
        self._users: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    # --- load ---------------------------------------------------------------------------------

    def load(self) -> None:
        """Read every volumes/<name>/metadata.json. A directory without one is a create that crashed:
        removed if its _data is empty, else kept as a plain local volume (the data is the user's)."""
        os.makedirs(self.root.volumes, mode=0o701, exist_ok=True)
        for name in os.listdir(self.root.volumes):
            directory = self.root.volume_dir(name)
            if not os.path.isdir(directory):
                continue
            try:
                self._volumes[name] = Volume.load(directory)
                continue
            except FileNotFoundError:
                pass
            except (OSError, ValueError, KeyError) as e:
                log.warning("volume %s: unreadable %s (%s): kept as a plain local volume", name, METADATA_FILE, e)
            data = self.root.volume_data(name)
            if not os.path.isdir(data) or not os.listdir(data):
                log.warning("removing incomplete volume %s", name)
                shutil.rmtree(directory, ignore_errors=True)
                continue
            v = Volume(name)
            v.save(directory)
            self._volumes[name] = v

    def adopt(self, points: list[MountPoint], cid: str, running: bool) -> None:
        """A container loaded from disk uses its volumes again; if it was running, it holds their
        mounts too (before any container's end is recorded, which would unmount them under it)."""
        with self._lock:
            for p in points:
                if p.type == VOLUME and p.name:
                    self._users.setdefault(p.name, set()).add(cid)
                    if running:
                        self.driver.hold(p.name, cid)

    # --- lookup -------------------------------------------------------------------------------

    def get(self, name: str) -> Volume:
        v = self._volumes.get(name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return v

    def mountpoint(self, v: Volume) -> str:
        return self.driver.path(v.name)

    def users(self, name: str) -> list[str]:
        return sorted(self._users.get(name, ()))

    def inspect(self, v: Volume) -> dict[str, object]:
        return v.to_api(self.mountpoint(v))

    def list_volumes(self, filters: F.Normalized) -> list[Volume]:
        """GET /volumes: by name, with Docker's filters (dangling, driver, label, name: a substring)."""
        try:
            F.validate(filters, LIST_FILTERS)
        except InvalidArgument as e:
            raise InvalidArgument(e.message.replace("invalid filter", "Invalid filter")) from None
        dangling = F.get_bool(filters, "dangling", False) if "dangling" in filters else None
        out = []
        for v in sorted(self._volumes.values(), key=lambda v: v.name):
            if dangling is not None and bool(self._users.get(v.name)) == dangling:
                continue
            if "driver" in filters and v.driver not in filters["driver"]:
                continue
            if "name" in filters and not any(n in v.name for n in filters["name"]):
                continue
            if not F.match_kv(filters, "label", v.labels):
                continue
            out.append(v)
        return out

    def size(self, v: Volume) -> int:
        return local.dir_size(self.mountpoint(v))

    async def disk_usage(self) -> list[dict[str, object]]:
        """`system df`'s Volumes: each volume with UsageData (bytes, number of containers using it)."""
        out = []
        for v in self.list_volumes({}):
            item = self.inspect(v)
            item["UsageData"] = {"Size": await self.daemon.blocking(self.size, v), "RefCount": len(self.users(v.name))}
            out.append(item)
        return out

    # --- create and remove --------------------------------------------------------------------

    async def create(
        self, name: str = "", driver: str = "", labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> Volume:  # fmt: skip
        """POST /volumes/create: the volume, new or (same name) the one there already, as Docker."""
        if name and len(name) < MIN_CREATE_NAME_LENGTH:
            raise InvalidArgument(
                f"create {name}: volume name is too short, names should be at least two alphanumeric characters"
            )
        v, made = await self.daemon.blocking(self._create, name or new_volume_name(), driver, labels, options)
        if made:
            self.daemon.events.publish("volume", "create", v.name, {"driver": v.driver})
        return v

    def _create(
        self, name: str, driver: str, labels: dict[str, str] | None, options: dict[str, str] | None
    ) -> tuple[Volume, bool]:
        driver = driver or LOCAL_DRIVER
        if driver != LOCAL_DRIVER:
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        with self._lock:
            existing = self._volumes.get(name)
            if existing is not None:
                return existing, False
            local.check_name(name)
            local.check_options(name, options or {})
            v = Volume(name, driver, dict(labels or {}), dict(options or {}))
            try:
                self.driver.create(name)
                v.save(self.root.volume_dir(name))
            except OSError as e:
                shutil.rmtree(self.root.volume_dir(name), ignore_errors=True)
                raise HullError(f"create {name}: {e}") from None
            self._volumes[name] = v
            return v, True

    async def remove(self, name: str, force: bool = False) -> None:
        """DELETE /volumes/{name}; with force a missing volume is no error (in use still is)."""
        try:
            await self.daemon.blocking(self._remove, name)
        except NotFound:
            if not force:
                raise
            return
        self.daemon.events.publish("volume", "destroy", name, {"driver": LOCAL_DRIVER})

    def _remove(self, name: str) -> None:
        with self._lock:
            self.get(name)
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            try:
                self.driver.remove(name)
            except OSError as e:
                raise HullError(f"remove {name}: {e}") from None
            del self._volumes[name]
            self._users.pop(name, None)

    async def prune(self, filters: F.Normalized, anonymous_only: bool) -> tuple[list[str], int]:
        """POST /volumes/prune: the unused volumes that match; only anonymous ones unless `all`
        (API 1.42+; the caller decides from the request's version)."""
        F.validate(filters, PRUNE_FILTERS)
        if F.get_bool(filters, "all", False):
            anonymous_only = False
        deleted, reclaimed = [], 0
        for v in list(self._volumes.values()):
            if self._users.get(v.name) or (anonymous_only and not v.anonymous):
                continue
            if not F.match_kv(filters, "label", v.labels):
                continue
            if "label!" in filters and F.match_kv(filters, "label!", v.labels):
                continue
            size = await self.daemon.blocking(self.size, v)
            try:
                await self.remove(v.name)
            except (Conflict, NotFound):
                continue  # taken or removed meanwhile
            deleted.append(v.name)
            reclaimed += size
        return deleted, reclaimed

    # --- use by containers --------------------------------------------------------------------

    async def attach(self, points: list[MountPoint], cid: str) -> None:
        """At a container's create: each volume mount point gets its volume (made if new: anonymous
        ones under a fresh name) and its Source; `cid` becomes a user of each. All or nothing."""
        made = await self.daemon.blocking(self._attach, points, cid)
        for v in made:
            self.daemon.events.publish("volume", "create", v.name, {"driver": v.driver})

    def _attach(self, points: list[MountPoint], cid: str) -> list[Volume]:
        made: list[Volume] = []
        done: list[MountPoint] = []
        try:
            for p in points:
                if p.type != VOLUME:
                    continue
                options = p.spec.get("VolumeOptions") or {}
                labels = dict(options.get("Labels") or {})
                if p.anonymous:
                    labels[ANONYMOUS_LABEL] = ""
                v, new = self._create(p.name or new_volume_name(), p.driver, labels,
                                      (options.get("DriverConfig") or {}).get("Options"))  # fmt: skip
                if new:
                    made.append(v)
                with self._lock:
                    if v.name not in self._volumes:
                        raise NotFound(f"get {v.name}: no such volume")  # removed since _create
                    self._users.setdefault(v.name, set()).add(cid)
                p.name, p.driver, p.source = v.name, v.driver, self.mountpoint(v)
                done.append(p)
        except BaseException:
            self._detach(done, cid, remove=[v.name for v in made])
            raise
        return made

    async def detach(self, points: list[MountPoint], cid: str, remove_anonymous: bool) -> None:
        """At a container's removal: it no longer uses its volumes; with `rm -v` (and --rm) its
        anonymous volumes go too, unless another container uses them (--volumes-from)."""
        remove = [p.name for p in points if p.anonymous and remove_anonymous]
        removed = await self.daemon.blocking(self._detach, points, cid, remove)
        for name in removed:
            self.daemon.events.publish("volume", "destroy", name, {"driver": LOCAL_DRIVER})

    def _detach(self, points: list[MountPoint], cid: str, remove: list[str]) -> list[str]:
        with self._lock:
            for p in points:
                if p.type == VOLUME:
                    self._users.get(p.name, set()).discard(cid)
        removed = []
        for name in remove:
            try:
                self._remove(name)
                removed.append(name)
            except (Conflict, NotFound):
                pass
            except HullError as e:
                log.warning("volume %s: %s", name, e.message)
        return removed

    def mount(self, points: list[MountPoint], cid: str, rootfs: str) -> None:
        """At start (blocking): volumes with options mounted, binds' missing sources made, and the
        image's content copied into new volumes (once: copy_data is cleared, the caller saves it)."""
        taken = []
        try:
            prepare_sources(points)
            for p in points:
                if p.type != VOLUME:
                    continue
                v = self.get(p.name)
                self.driver.mount(v.name, v.options, cid)
                taken.append(p)
                if p.copy_data:
                    copy_up(rootfs, p)
                    p.copy_data = False
        except OSError as e:
            self.unmount(taken, cid)
            raise HullError(f"error while mounting volumes: {e}") from None
        except BaseException:
            self.unmount(taken, cid)
            raise

    def unmount(self, points: list[MountPoint], cid: str) -> None:
        """When the container stops: the driver lets go of its volumes (blocking; never raises)."""
        for p in points:
            v = self._volumes.get(p.name) if p.type == VOLUME else None
            if v is None:
                continue
            try:
                self.driver.unmount(v.name, v.options, cid)
            except OSError as e:
                log.warning("volume %s: unmount: %s", v.name, e)
