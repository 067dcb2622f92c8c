"""A container's mounts: Binds (`-v src:dst[:mode]`), Mounts (`--mount`), VolumesFrom and the config's
Volumes, turned into mount points (config.v2.json's MountPoints) and then into OCI spec mounts.

Vocabulary: a *mount point* is one destination in the container and what is mounted there:
a host directory (bind), a volume (named, or anonymous: its name is empty until the daemon
makes one up), or a tmpfs (from --mount; HostConfig.Tmpfs stays the spec builder's). `plan`
applies Docker's precedence: the config's Volumes (anonymous volumes, e.g. an image's
VOLUME) are overridden by --volumes-from, which Binds and Mounts override; Binds, Mounts and
Tmpfs may not name the same destination twice ("Duplicate mount point"). Parsing touches no
disk; what does is named for it: `check_bind_sources` (--mount binds must exist),
`prepare_sources` (-v binds get theirs made), `copy_up` (image content into a new volume) and
`rootfs_propagation` (reads mountinfo: a shared bind needs a shared source, as Docker checks).

Errors are InvalidArgument with Docker's wording.
"""

import os
import posixpath
import secrets
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hull.containers.ocispec import mount_depth, tmpfs_options
from hull.errors import InvalidArgument
from hull.runtime.mounts import PROPAGATION_WORDS
from hull.runtime.securejoin import resolve_in_root
from hull.storage.vfs import copy_tree
from hull.volumes.record import LOCAL_DRIVER

BIND, VOLUME, TMPFS = "bind", "volume", "tmpfs"
DEFAULT_PROPAGATION = "rprivate"
# Docker's mode for a local-driver volume given without one (its SELinux relabel, harmless elsewhere).
DEFAULT_VOLUME_MODE = "z"
ACCESS_MODES = frozenset({"ro", "rw"})
LABEL_MODES = frozenset({"z", "Z"})
COPY_MODES = frozenset({"nocopy"})
CONSISTENCY_MODES = frozenset({"consistent", "cached", "delegated"})  # macOS only: accepted, meaningless here
BIND_PROPAGATIONS = frozenset(p for p in PROPAGATION_WORDS if "unbindable" not in p)
MOUNT_TYPES = (BIND, VOLUME, TMPFS)
_MODE_GROUPS = {
    word: group
    for group, words in (("access", ACCESS_MODES), ("label", LABEL_MODES), ("copy", COPY_MODES),
                         ("consistency", CONSISTENCY_MODES), ("propagation", BIND_PROPAGATIONS))
    for word in words
}  # fmt: skip
_TMPFS_SUFFIXES = (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10))
_COPY_STAGING = ".hull-copy-up"
SHARED_PROPAGATIONS = frozenset({"shared", "rshared"})
SLAVE_PROPAGATIONS = frozenset({"slave", "rslave"})
MOUNTINFO = "/proc/self/mountinfo"


@dataclass
class MountPoint:
    """One entry of config.v2.json's MountPoints, keyed there by destination (Docker's field names)."""

    type: str
    destination: str
    source: str = ""  # the host path: a bind's source, a volume's _data; "" for tmpfs
    rw: bool = True
    name: str = ""  # the volume's name ("" for an anonymous one not made yet)
    driver: str = ""
    mode: str = ""  # Docker's Relabel: the -v mode text, shown as inspect's Mode
    propagation: str = ""
    spec: dict[str, Any] = field(default_factory=dict)  # the HostConfig.Mounts entry it came from, if any
    copy_data: bool = False  # copy the image's content into the (empty) volume at the next start
    skip_source_creation: bool = False  # --mount binds: a missing source is an error, never made

    @property
    def anonymous(self) -> bool:
        """A volume the daemon names itself: from Config.Volumes, `-v /path`, or --mount without a source."""
        return self.type == VOLUME and not self.spec.get("Source")

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Source": self.source,
            "Destination": self.destination,
            "RW": self.rw,
            "Name": self.name,
            "Driver": self.driver,
            "Type": self.type,
        }
        if self.mode:
            out["Relabel"] = self.mode
        if self.propagation:
            out["Propagation"] = self.propagation
        out["Spec"] = self.spec
        out["SkipMountpointCreation"] = self.skip_source_creation
        out["CopyData"] = self.copy_data
        return out

    @classmethod
    def from_config(cls, d: Mapping[str, Any]) -> "MountPoint":
        return cls(
            type=str(d.get("Type") or VOLUME),
            destination=str(d["Destination"]),
            source=str(d.get("Source") or ""),
            rw=bool(d.get("RW")),
            name=str(d.get("Name") or ""),
            driver=str(d.get("Driver") or ""),
            mode=str(d.get("Relabel") or ""),
            propagation=str(d.get("Propagation") or ""),
            spec=dict(d.get("Spec") or {}),
            copy_data=bool(d.get("CopyData")),
            skip_source_creation=bool(d.get("SkipMountpointCreation")),
        )

    def to_api(self) -> dict[str, Any]:
        """inspect's (and ps's) Mounts entry: Name and Driver only for volumes, as Docker."""
        out: dict[str, Any] = {"Type": self.type}
        if self.type == VOLUME:
            out["Name"] = self.name
        out["Source"] = self.source
        out["Destination"] = self.destination
        if self.type == VOLUME:
            out["Driver"] = self.driver
        out.update(Mode=self.mode, RW=self.rw, Propagation=self.propagation)
        return out


def new_volume_name() -> str:
    """An anonymous volume's name: 64 hex digits, like a container id."""
    return secrets.token_hex(32)


def _mount_error(kind: str, message: str) -> InvalidArgument:
    return InvalidArgument(f'invalid mount config for type "{kind}": {message}')


def _destination(kind: str, path: str) -> str:
    if not path.startswith("/"):
        raise _mount_error(kind, f"invalid mount path: '{path}' mount path must be absolute")
    clean = posixpath.normpath(path)
    if clean == "/":
        raise _mount_error(kind, "invalid specification: destination can't be '/'")
    return clean


def _parse_mode(raw: str, kind: str) -> tuple[bool, str, bool]:
    """A -v mode ("ro", "rw,z", "nocopy", "rshared"): (read-write, propagation, copy) or `invalid mode`.
    At most one word of each group; propagation only for binds, nocopy only for volumes."""
    rw, propagation, copy = True, "", True
    seen: set[str] = set()
    for word in raw.split(","):
        group = _MODE_GROUPS.get(word)
        if group is None or group in seen:
            raise InvalidArgument(f"invalid mode: {raw}")
        if group == "propagation" and kind != BIND:
            raise _mount_error(kind, "field BindOptions must not be specified")
        if group == "copy" and kind != VOLUME:
            raise _mount_error(kind, "field VolumeOptions must not be specified")
        seen.add(group)
        if group == "access":
            rw = word == "rw"
        elif group == "propagation":
            propagation = word
        elif group == "copy":
            copy = False
    return rw, propagation, copy


def parse_bind(raw: str) -> MountPoint:
    """One HostConfig.Binds entry: `/host:/ctr[:mode]` (bind), `name:/ctr[:mode]` (volume), `/ctr` (anonymous).
    Errors about the mount config name the whole entry first, as Docker's."""
    parts = raw.split(":")
    if not raw or len(parts) > 3 or any(not p for p in parts) or (len(parts) == 2 and parts[1] in ACCESS_MODES):
        raise InvalidArgument(f"invalid volume specification: '{raw}'")
    try:
        return _parse_bind(parts)
    except InvalidArgument as e:
        if not e.message.startswith("invalid mount config"):
            raise
        raise InvalidArgument(f"invalid volume specification: '{raw}': {e.message}") from None


def _parse_bind(parts: list[str]) -> MountPoint:
    if len(parts) == 1:
        return MountPoint(VOLUME, _destination(VOLUME, parts[0]), driver=LOCAL_DRIVER, copy_data=True)
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    kind = BIND if source.startswith("/") else VOLUME
    rw, propagation, copy = _parse_mode(mode, kind) if mode else (True, "", True)
    dest = _destination(kind, target)
    spec: dict[str, Any] = {"Type": kind, "Source": posixpath.normpath(source) if kind == BIND else source,
                            "Target": dest}  # fmt: skip
    if kind == BIND:
        return MountPoint(BIND, dest, spec["Source"], rw, mode=mode, propagation=propagation or DEFAULT_PROPAGATION,
                          spec=_with_read_only(spec, rw))  # fmt: skip
    if not copy:
        spec["VolumeOptions"] = {"NoCopy": True}
    return MountPoint(VOLUME, dest, rw=rw, name=source, driver=LOCAL_DRIVER, mode=mode or DEFAULT_VOLUME_MODE,
                      spec=_with_read_only(spec, rw), copy_data=copy)  # fmt: skip


def _with_read_only(spec: dict[str, Any], rw: bool) -> dict[str, Any]:
    if not rw:
        spec["ReadOnly"] = True
    return spec


def _forbid(m: Mapping[str, Any], kind: str, *keys: str) -> None:
    for key in keys:
        if m.get(key):
            raise _mount_error(kind, f"field {key} must not be specified")


def parse_mount(m: Any) -> MountPoint:
    """One HostConfig.Mounts entry (the API's Mount object), checked as Docker checks it."""
    if not isinstance(m, dict):
        raise InvalidArgument(f"invalid mount: expected an object, got {m!r}")
    kind = str(m.get("Type") or "")
    if kind not in MOUNT_TYPES:
        raise _mount_error(kind, "mount type unknown")
    target = str(m.get("Target") or "")
    if not target:
        raise _mount_error(kind, "field Target must not be empty")
    dest = _destination(kind, target)
    source = str(m.get("Source") or "")
    rw = not m.get("ReadOnly")
    spec = dict(m)
    if kind == BIND:
        _forbid(m, kind, "VolumeOptions", "TmpfsOptions")
        if not source:
            raise _mount_error(kind, "field Source must not be empty")
        if not source.startswith("/"):
            raise _mount_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        options = m.get("BindOptions") or {}
        propagation = str(options.get("Propagation") or DEFAULT_PROPAGATION)
        if propagation not in BIND_PROPAGATIONS:
            raise _mount_error(kind, f"invalid propagation mode: {propagation}")
        return MountPoint(BIND, dest, posixpath.normpath(source), rw, propagation=propagation, spec=spec,
                          skip_source_creation=True)  # fmt: skip
    if kind == VOLUME:
        _forbid(m, kind, "BindOptions", "TmpfsOptions")
        if not source and not rw:
            raise _mount_error(kind, "must not set ReadOnly mode when using anonymous volumes")
        options = m.get("VolumeOptions") or {}
        driver = str((options.get("DriverConfig") or {}).get("Name") or LOCAL_DRIVER)
        return MountPoint(VOLUME, dest, rw=rw, name=source, driver=driver, mode=DEFAULT_VOLUME_MODE if source else "",
                          spec=spec, copy_data=not options.get("NoCopy"))  # fmt: skip
    _forbid(m, kind, "Source", "BindOptions", "VolumeOptions")
    tmpfs_data(m)  # refuse bad sizes and modes now
    return MountPoint(TMPFS, dest, rw=rw, spec=spec)


def tmpfs_data(m: Mapping[str, Any]) -> str:
    """The tmpfs options a --mount type=tmpfs asks for, as Docker writes them (size with the largest exact unit)."""
    options = m.get("TmpfsOptions") or {}
    words = []
    size = options.get("SizeBytes") or 0
    if not isinstance(size, int) or size < 0:
        raise _mount_error(TMPFS, f"invalid tmpfs size: {size!r}")
    if size:
        for suffix, unit in _TMPFS_SUFFIXES:
            if size % unit == 0:
                words.append(f"size={size // unit}{suffix}")
                break
        else:
            words.append(f"size={size}")
    mode = options.get("Mode") or 0
    if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise _mount_error(TMPFS, f"invalid tmpfs mode: {mode!r}")
    if mode:
        words.append(f"mode={mode:o}")
    if m.get("ReadOnly"):
        words.append("ro")
    return ",".join(words)


def parse_volumes_from(ref: str) -> tuple[str, str]:
    """`container[:ro|rw]` -> (container, mode)."""
    name, _, mode = ref.partition(":")
    if not name or mode not in ("", "ro", "rw"):
        raise InvalidArgument(f"invalid mode: {mode}" if name else f"invalid volumes-from: '{ref}'")
    return name, mode


def inherited(points: list[MountPoint], mode: str) -> list[MountPoint]:
    """Another container's binds and volumes for --volumes-from (tmpfs mounts are its own), `ro` forced if asked."""
    return [
        replace(p, rw=p.rw and mode != "ro", mode="", copy_data=False)
        for p in points
        if p.type in (BIND, VOLUME)
    ]


def plan(
    config: Mapping[str, Any],
    host_config: Mapping[str, Any],
    volumes_from: Callable[[str], list[MountPoint]],
) -> list[MountPoint]:
    """The container's mount points, by Docker's precedence (see the module docstring); volumes unresolved."""
    points: dict[str, MountPoint] = {}
    tmpfs = {posixpath.normpath(d) for d in (host_config.get("Tmpfs") or {})}
    for target in config.get("Volumes") or {}:
        dest = _destination(VOLUME, str(target))
        if dest not in tmpfs:
            points[dest] = MountPoint(VOLUME, dest, driver=LOCAL_DRIVER, copy_data=True)
    for ref in host_config.get("VolumesFrom") or []:
        name, mode = parse_volumes_from(str(ref))
        for p in inherited(volumes_from(name), mode):
            points[p.destination] = p
    explicit = set(tmpfs)
    given = [parse_bind(str(b)) for b in host_config.get("Binds") or []]
    given += [parse_mount(m) for m in host_config.get("Mounts") or []]
    for p in given:
        if p.destination in explicit:
            raise InvalidArgument(f"Duplicate mount point: {p.destination}")
        explicit.add(p.destination)
        points[p.destination] = p
    return list(points.values())


def check_bind_sources(points: list[MountPoint]) -> None:
    """--mount binds need their source; -v binds get one made at start, as Docker does."""
    for p in points:
        if p.type == BIND and p.skip_source_creation and not os.path.exists(p.source):
            raise _mount_error(BIND, f"bind source path does not exist: {p.source}")


def prepare_sources(points: list[MountPoint]) -> None:
    """At start: the missing source directories of -v binds (Docker makes them, root-owned, 0755)."""
    check_bind_sources(points)
    for p in points:
        if p.type == BIND and not os.path.lexists(p.source):
            os.makedirs(p.source, 0o755, exist_ok=True)


def copy_up(rootfs: str, p: MountPoint) -> None:
    """The image's content at the mount's destination, copied into the volume if the volume is empty.

    The copy goes to a staging directory inside the volume first (the same filesystem, even
    for a tmpfs volume), whose entries are then renamed into place, so a copy that fails
    halfway leaves only the staging directory, which the next attempt replaces.
    """
    src = resolve_in_root(rootfs, p.destination)
    try:
        top = os.lstat(src)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(top.st_mode):
        return
    staging = os.path.join(p.source, _COPY_STAGING)
    if any(name != _COPY_STAGING for name in os.listdir(p.source)):
        return
    if os.path.lexists(staging):
        shutil.rmtree(staging)
    copy_tree(src, staging)
    for name in os.listdir(staging):
        os.rename(os.path.join(staging, name), os.path.join(p.source, name))
    os.rmdir(staging)
    os.chown(p.source, top.st_uid, top.st_gid)
    os.chmod(p.source, stat.S_IMODE(top.st_mode))


def oci_mounts(points: list[MountPoint]) -> list[dict[str, Any]]:
    """The spec's mounts for these mount points, parents before children (Docker's sortMounts)."""
    out = []
    for p in sorted(points, key=lambda p: mount_depth(p.destination)):
        if p.type == TMPFS:
            options = tmpfs_options(tmpfs_data(p.spec))
            out.append({"destination": p.destination, "type": TMPFS, "source": TMPFS, "options": options})
            continue
        nonrecursive = bool((p.spec.get("BindOptions") or {}).get("NonRecursive"))
        options = ["bind" if nonrecursive else "rbind"]
        if not p.rw:
            options.append("ro")
        if p.propagation:
            options.append(p.propagation)
        out.append({"destination": p.destination, "type": BIND, "source": p.source, "options": options})
    return out


def _mount_of(path: str) -> tuple[str, list[str]]:
    """The mount holding `path` (its mount point, its propagation tags such as shared:5 or master:3)."""
    real = os.path.realpath(path)
    best, tags = "/", []
    with open(MOUNTINFO) as f:
        for line in f:
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, tags = point, fields[6 : fields.index("-")]
    return best, tags


def rootfs_propagation(points: list[MountPoint]) -> str:
    """linux.rootfsPropagation for the binds' propagation, as Docker: a shared bind needs the root
    rshared and a source on a shared mount; a slave one rslave and a shared or slave source."""
    wanted = ""
    for p in points:
        if p.type != BIND or p.propagation not in SHARED_PROPAGATIONS | SLAVE_PROPAGATIONS:
            continue
        point, tags = _mount_of(p.source)
        shared = any(t.startswith("shared:") for t in tags)
        if p.propagation in SHARED_PROPAGATIONS:
            if not shared:
                raise InvalidArgument(f"path {p.source} is mounted on {point} but it is not a shared mount")
            wanted = "rshared"
        else:
            if not shared and not any(t.startswith("master:") for t in tags):
                raise InvalidArgument(f"path {p.source} is mounted on {point} but it is not a shared or slave mount")
            wanted = wanted or "rslave"
    return wanted
