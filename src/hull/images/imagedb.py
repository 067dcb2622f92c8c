"""imagedb: image configs stored by image id, and the typed view of them that hull uses.

On disk (layout.DataRoot):

    imagedb/content/sha256/<image id hex>     the config JSON, byte for byte as pulled or built
    imagedb/metadata/sha256/<image id hex>/   lastUpdated  (RFC 3339 time, nanoseconds, no newline)
                                              parent       ("sha256:<image id>" of the parent image)

Vocabulary: the image id is `sha256:` + the sha256 of the config bytes (ids.image_id); the
config's `rootfs.diff_ids` lists the image's layers bottom-up; a parent is the image a build
step started from (set by the builder, absent for pulled images); children are the images
whose parent is a given image.

Contract: the raw bytes are authoritative: they are never re-serialized, and reading them
verifies their digest (a mismatch is an InvalidArgument naming the image, never returned
data). ImageConfig is a read-only typed view of the fields hull uses, checked on parse so a
malformed config gets a clear InvalidArgument before anything is written. Every file is
written with atomic_write. Ids are accepted as `sha256:<hex>` or bare hex, returned as
`sha256:<hex>`.
"""

import builtins
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hull.errors import InvalidArgument, NotFound
from hull.fsutil import atomic_write
from hull.images import ids
from hull.layout import DataRoot

LAST_UPDATED = "lastUpdated"
PARENT = "parent"


# -- the typed view of an image config -----------------------------------------------------------


@dataclass(frozen=True)
class HealthConfig:
    """config.Healthcheck; durations in nanoseconds as in the JSON (0: inherit the default)."""

    test: tuple[str, ...] = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class ContainerConfig:
    """The image's `config`: defaults for containers made from it. None: not set (JSON null)."""

    user: str = ""
    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = ""
    exposed_ports: tuple[str, ...] = ()  # "80/tcp", sorted
    volumes: tuple[str, ...] = ()  # container paths, sorted
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    stop_timeout: int | None = None
    healthcheck: HealthConfig | None = None
    on_build: tuple[str, ...] = ()
    shell: tuple[str, ...] | None = None
    args_escaped: bool = False
    hostname: str = ""
    domainname: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    """One step of `history`; `empty_layer` steps (ENV, CMD...) added no layer."""

    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False


@dataclass(frozen=True)
class ImageConfig:
    """What hull reads from an image config; `raw` (the stored bytes) stays authoritative."""

    raw: bytes
    id: str
    architecture: str
    os: str
    variant: str
    os_version: str
    created: str
    author: str
    config: ContainerConfig
    diff_ids: tuple[str, ...]
    history: tuple[HistoryEntry, ...]
    docker_version: str = ""
    comment: str = ""

    @property
    def layers_in_history(self) -> int:
        """How many history steps made a layer (should equal len(diff_ids) when history is given)."""
        return sum(1 for h in self.history if not h.empty_layer)


class _Fields:
    """Typed access to one JSON object; every error names the field's path in the config."""

    def __init__(self, obj: Any, where: str, fail: "_Fail") -> None:
        if not isinstance(obj, dict):
            raise fail(f"{where or 'the config'} must be a JSON object")
        self.obj: dict[str, Any] = obj
        self.where = where
        self.fail = fail

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str) -> Any:
        return self.obj.get(key)  # null and missing mean the same: Go's zero value

    def text(self, key: str) -> str:
        v = self._get(key)
        if v is None:
            return ""
        if not isinstance(v, str):
            raise self.fail(f"{self._path(key)} must be a string")
        return v

    def flag(self, key: str) -> bool:
        v = self._get(key)
        if v is None:
            return False
        if not isinstance(v, bool):
            raise self.fail(f"{self._path(key)} must be true or false")
        return v

    def integer(self, key: str) -> int | None:
        v = self._get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(f"{self._path(key)} must be an integer")
        return v

    def strings(self, key: str, allow_string: bool = False) -> tuple[str, ...] | None:
        """A list of strings; with allow_string a single string too (Go's strslice.StrSlice)."""
        v = self._get(key)
        if v is None:
            return None
        if allow_string and isinstance(v, str):
            return (v,)
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise self.fail(f"{self._path(key)} must be a list of strings")
        return tuple(v)

    def keys(self, key: str) -> tuple[str, ...]:
        """The keys of a set-like object ({"80/tcp": {}}), sorted."""
        v = self._get(key)
        if v is None:
            return ()
        if not isinstance(v, dict):
            raise self.fail(f"{self._path(key)} must be a JSON object")
        return tuple(sorted(v))

    def string_map(self, key: str) -> dict[str, str]:
        v = self._get(key)
        if v is None:
            return {}
        if not isinstance(v, dict) or not all(isinstance(s, str) for s in v.values()):
            raise self.fail(f"{self._path(key)} must be an object of strings")
        return dict(v)

    def sub(self, key: str) -> "_Fields | None":
        v = self._get(key)
        return None if v is None else _Fields(v, self._path(key), self.fail)


class _Fail:
    def __init__(self, image_id: str) -> None:
        self.image_id = image_id

    def __call__(self, detail: str) -> InvalidArgument:
        return InvalidArgument(f"invalid image config {ids.short_id(self.image_id)}: {detail}")


def _container_config(f: _Fields | None) -> ContainerConfig:
    if f is None:
        return ContainerConfig()
    health = None
    if (h := f.sub("Healthcheck")) is not None:
        health = HealthConfig(
            test=h.strings("Test") or (),
            interval=h.integer("Interval") or 0,
            timeout=h.integer("Timeout") or 0,
            start_period=h.integer("StartPeriod") or 0,
            start_interval=h.integer("StartInterval") or 0,
            retries=h.integer("Retries") or 0,
        )
    return ContainerConfig(
        user=f.text("User"),
        env=f.strings("Env") or (),
        cmd=f.strings("Cmd", allow_string=True),
        entrypoint=f.strings("Entrypoint", allow_string=True),
        working_dir=f.text("WorkingDir"),
        exposed_ports=f.keys("ExposedPorts"),
        volumes=f.keys("Volumes"),
        labels=f.string_map("Labels"),
        stop_signal=f.text("StopSignal"),
        stop_timeout=f.integer("StopTimeout"),
        healthcheck=health,
        on_build=f.strings("OnBuild") or (),
        shell=f.strings("Shell"),
        args_escaped=f.flag("ArgsEscaped"),
        hostname=f.text("Hostname"),
        domainname=f.text("Domainname"),
    )


def parse_config(raw: bytes) -> ImageConfig:
    """Parse and check an image config; InvalidArgument (naming the field) when it is malformed."""
    if not isinstance(raw, bytes | bytearray):
        raise InvalidArgument("an image config must be bytes")
    raw = bytes(raw)
    image_id = ids.image_id(raw)
    fail = _Fail(image_id)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise fail(f"not JSON ({e})") from None
    top = _Fields(doc, "", fail)
    rootfs = top.sub("rootfs")
    if rootfs is None:
        raise fail("invalid image JSON, no RootFS key")
    if rootfs.text("type") != "layers":
        raise fail(f'rootfs.type must be "layers", not {rootfs.obj.get("type")!r}')
    diff_ids = rootfs.strings("diff_ids") or ()
    for d in diff_ids:
        try:
            ids.check_sha256(d, "diff id")
        except InvalidArgument as e:
            raise fail(f"rootfs.diff_ids: {e.message}") from None
    history: list[HistoryEntry] = []
    raw_history = doc.get("history")
    if raw_history is not None:
        if not isinstance(raw_history, list):
            raise fail("history must be a list")
        for i, item in enumerate(raw_history):
            h = _Fields(item, f"history[{i}]", fail)
            history.append(
                HistoryEntry(
                    created=h.text("created"),
                    created_by=h.text("created_by"),
                    author=h.text("author"),
                    comment=h.text("comment"),
                    empty_layer=h.flag("empty_layer"),
                )
            )
    return ImageConfig(
        raw=raw,
        id=image_id,
        architecture=top.text("architecture"),
        os=top.text("os"),
        variant=top.text("variant"),
        os_version=top.text("os.version"),
        created=top.text("created"),
        author=top.text("author"),
        config=_container_config(top.sub("config")),
        diff_ids=diff_ids,
        history=tuple(history),
        docker_version=top.text("docker_version"),
        comment=top.text("comment"),
    )


def rfc3339_nano(ns: int | None = None) -> str:
    """A UTC time as Go's time.RFC3339Nano prints it: nanoseconds, trailing zeros dropped, `Z`."""
    if ns is None:
        ns = time.time_ns()
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{frac:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


# -- the store ----------------------------------------------------------------------------------


@dataclass
class ImageDBRecovery:
    """What ImageDB.recover found and did."""

    removed_temp_files: list[str] = field(default_factory=list)
    removed_orphan_metadata: list[str] = field(default_factory=list)  # image ids without content
    corrupt: list[str] = field(default_factory=list)  # image ids whose content fails to verify (kept)


class ImageDB:
    """imagedb/content and imagedb/metadata of one data root."""

    def __init__(self, root: DataRoot) -> None:
        self.content_dir = root.imagedb_content
        self.metadata_dir = root.imagedb_metadata

    def _content(self, image_id: str) -> str:
        return os.path.join(self.content_dir, ids.hex_of(image_id))

    def _metadata(self, image_id: str) -> str:
        return os.path.join(self.metadata_dir, ids.hex_of(image_id))

    # -- content ----------------------------------------------------------------------------

    def put(self, config: bytes) -> str:
        """Store config bytes (checked first) and return their image id; storing twice is a no-op."""
        parsed = parse_config(config)
        path = self._content(parsed.id)
        try:
            with open(path, "rb") as f:
                if ids.image_id(f.read()) == parsed.id:
                    return parsed.id
        except FileNotFoundError:
            pass
        os.makedirs(self.content_dir, exist_ok=True)
        # Written whole or not at all; an existing file that failed to verify is replaced.
        atomic_write(path, parsed.raw)
        return parsed.id

    def get(self, image_id: str) -> bytes:
        """The config bytes of an image, verified against its id."""
        image_id = ids.with_algorithm(image_id)
        try:
            with open(self._content(image_id), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None
        actual = ids.image_id(raw)
        if actual != image_id:
            raise InvalidArgument(f"image {image_id} in imagedb is corrupt: failed to verify, content is {actual}")
        return raw

    def get_config(self, image_id: str) -> ImageConfig:
        """The typed view of an image's config."""
        return parse_config(self.get(image_id))

    def exists(self, image_id: str) -> bool:
        return os.path.isfile(self._content(image_id))

    def list(self) -> list[str]:
        """Every stored image id, sorted."""
        try:
            names = os.listdir(self.content_dir)
        except FileNotFoundError:
            return []
        return sorted(f"{ids.SHA256}:{n}" for n in names if ids.is_hex_id(n))

    def search(self, prefix: str) -> str:
        """The one image whose id starts with `prefix` (hex, optionally `sha256:`).

        NotFound if none does; InvalidArgument if several do (Docker's ambiguity error).
        """
        try:
            bare = ids.normalize_prefix(prefix)
        except InvalidArgument:
            raise NotFound(f"No such image: {prefix}") from None
        matches = ids.match_prefix(bare, (i[7:] for i in self.list()))
        if not matches:
            raise NotFound(f"No such image: {prefix}")
        if len(matches) > 1:
            raise InvalidArgument(f"ambiguous digest string: multiple IDs found with provided prefix: {prefix}")
        return f"{ids.SHA256}:{matches[0]}"

    def delete(self, image_id: str) -> None:
        """Remove an image's config and metadata. Metadata goes first: a crash between the two
        leaves an image without metadata, never metadata without an image."""
        image_id = ids.with_algorithm(image_id)
        if not self.exists(image_id):
            raise NotFound(f"No such image: {image_id}")
        shutil.rmtree(self._metadata(image_id), ignore_errors=True)
        try:
            os.unlink(self._content(image_id))
        except FileNotFoundError:
            pass

    # -- metadata ---------------------------------------------------------------------------

    def _set_metadata(self, image_id: str, key: str, value: bytes) -> None:
        if not self.exists(image_id):
            raise NotFound(f"No such image: {image_id}")
        d = self._metadata(image_id)
        os.makedirs(d, exist_ok=True)
        atomic_write(os.path.join(d, key), value)

    def _get_metadata(self, image_id: str, key: str) -> str | None:
        try:
            with open(os.path.join(self._metadata(image_id), key), "rb") as f:
                return f.read().decode("utf-8", "replace").strip()
        except FileNotFoundError:
            return None

    def set_parent(self, image_id: str, parent_id: str) -> None:
        """Record that `image_id` was built on `parent_id` (both must exist)."""
        image_id, parent_id = ids.with_algorithm(image_id), ids.with_algorithm(parent_id)
        if not self.exists(parent_id):
            raise NotFound(f"No such image: {parent_id}")
        self._set_metadata(image_id, PARENT, parent_id.encode())

    def get_parent(self, image_id: str) -> str | None:
        """The parent image id, or None; a malformed parent file is an InvalidArgument."""
        value = self._get_metadata(ids.with_algorithm(image_id), PARENT)
        if value is None or value == "":
            return None
        try:
            return ids.check_sha256(value, "parent image id")
        except InvalidArgument as e:
            raise InvalidArgument(f"image {image_id}: corrupt parent in imagedb metadata: {e.message}") from None

    def delete_parent(self, image_id: str) -> None:
        try:
            os.unlink(os.path.join(self._metadata(image_id), PARENT))
        except FileNotFoundError:
            pass

    def set_last_updated(self, image_id: str, when_ns: int | None = None) -> str:
        """Record when the image was last tagged (Docker's LastTagTime); returns the stamp."""
        image_id = ids.with_algorithm(image_id)
        stamp = rfc3339_nano(when_ns)
        self._set_metadata(image_id, LAST_UPDATED, stamp.encode())
        return stamp

    def get_last_updated(self, image_id: str) -> str | None:
        return self._get_metadata(ids.with_algorithm(image_id), LAST_UPDATED) or None

    def children(self, image_id: str) -> builtins.list[str]:
        """The images whose parent is `image_id`, sorted."""
        image_id = ids.with_algorithm(image_id)
        out = []
        for child in self.list():
            try:
                if self.get_parent(child) == image_id:
                    out.append(child)
            except InvalidArgument:
                continue  # a corrupt parent file names no image
        return out

    # -- startup ----------------------------------------------------------------------------

    def recover(self) -> ImageDBRecovery:
        """At startup: remove temp files of interrupted writes and metadata of absent images;
        report (and keep) content that fails to verify."""
        report = ImageDBRecovery()
        try:
            names = os.listdir(self.content_dir)
        except FileNotFoundError:
            names = []
        for name in names:
            path = os.path.join(self.content_dir, name)
            if ".tmp-" in name:
                os.unlink(path)
                report.removed_temp_files.append(path)
            elif ids.is_hex_id(name):
                try:
                    self.get(name)
                except InvalidArgument:
                    report.corrupt.append(f"{ids.SHA256}:{name}")
        try:
            meta_names = os.listdir(self.metadata_dir)
        except FileNotFoundError:
            meta_names = []
        for name in meta_names:
            path = os.path.join(self.metadata_dir, name)
            if not ids.is_hex_id(name) or not os.path.isfile(os.path.join(self.content_dir, name)):
                shutil.rmtree(path, ignore_errors=True)
                if os.path.lexists(path):
                    os.unlink(path)
                report.removed_orphan_metadata.append(name)
                continue
            for entry in os.listdir(path):
                if ".tmp-" in entry:
                    os.unlink(os.path.join(path, entry))
                    report.removed_temp_files.append(os.path.join(path, entry))
        report.corrupt.sort()
        report.removed_orphan_metadata.sort()
        return report
