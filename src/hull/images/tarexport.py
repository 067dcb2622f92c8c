"""Image archives: `docker save` and `docker load`, and loading an OCI image layout.

Vocabulary:
- an *archive* is the outer tar that `save` writes and `load` reads; its *members* are named by
  their cleaned paths ("./manifest.json" is "manifest.json");
- a *docker-archive* has `manifest.json`: a JSON list of items {Config, RepoTags, Layers,
  Parent?, LayerSources?}, each naming an image's config file and its layer blobs (bottom-up)
  by path. Before Docker 25 the layers were `<v1 id>/layer.tar` (beside `json` and `VERSION`,
  which nothing reads back) and a layer saved twice was a symlink to its first copy; since
  Docker 25 the archive is also an *OCI image layout*: `oci-layout`, `index.json` and
  `blobs/sha256/<hex>`, with manifest.json pointing into blobs/. `repositories` maps
  name -> tag -> id for pre-1.10 loaders only;
- an *OCI image layout* (without manifest.json) is `oci-layout` + `index.json` + blobs:
  index -> image manifest (or image index -> the manifest for this host's platform) ->
  config + layers, every blob named by its digest. An index entry is named by its
  `io.containerd.image.name` annotation (a full reference) or else by
  `org.opencontainers.image.ref.name` (often a bare tag, which names no repository);
- a *layer blob* is a layer tar, plain or compressed (gzip, zstd, ...: told by its magic); a
  blob at a content-addressed path (`blobs/sha256/<hex>`) has a *blob digest* that is checked
  while it streams.

Contract of `load(service, stream)`:
- The stream is read once. A regular file is read in place; anything else (a pipe, a socket,
  a compressed archive) is first spooled to an unnamed temp file under layerdb/tmp (same
  filesystem as the layers; gone on close or crash). Nothing is ever extracted: members are
  read by offset, and layer blobs stream straight into the layer store.
- manifest.json wins over index.json when both exist (as in Docker's own loader).
- Everything that can be checked without reading layers is checked first (JSON, paths, configs,
  layer counts, tags, the OS); then layers are registered bottom-up on their chains (layers
  already present are not read again); then image configs are stored byte for byte (so image
  ids are the archive's), parents set and tags moved (as `docker load` does; the result says
  which tag moved from which image).
- Each layer's diff id, and a content-addressed blob's digest, are verified as its last bytes
  go by, before the layer store commits it: a mismatch ("invalid diffID for layer N") leaves
  no new layer behind, and layers this load registered before the failure are removed again.
  Any bad archive (no manifest, a missing file, bad JSON, a path that escapes the archive, a
  bad config or tag) is an `InvalidArchive` and changes nothing visible.
- Distribution metadata (diffid-by-digest) is recorded only for compressed blobs whose digest
  was verified: the only case where a registry blob digest is known.

Contract of `save(service, names, out)`:
- Each name is an image id (full, `sha256:`-prefixed, or a unique prefix), a name:tag (or
  name@digest), or a bare name meaning every tag of that repository.
- Writes what Docker 25+ writes: manifest.json, repositories, index.json, oci-layout, the
  config bytes unchanged at blobs/sha256/<image id>, each layer's original tar rebuilt from its
  tar-split at blobs/sha256/<diff id> (so blob digests equal diff ids, checked while writing),
  and one OCI image manifest per image in blobs. Docker's per-layer legacy v1 `json` blobs,
  which nothing references, are not written.
- Output is deterministic: images in id order, tags sorted, members in lexical order (as
  Docker's directory walk makes them), mtimes fixed (the image's `created` for its config and
  layers, the epoch for the rest). Layers stream from the layer store to `out`; nothing is
  staged on disk or held whole in memory.
"""

import hashlib
import json
import os
import queue
import re
import stat
import tarfile
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Literal, cast

from hull.errors import HullError, InvalidArgument, NotFound
from hull.images import ids, reference
from hull.images import mediatypes as mt
from hull.images.imagedb import ImageConfig, parse_config
from hull.images.platform import SUPPORTED_OS, host_platform
from hull.images.reference import Reference
from hull.images.service import ImageService
from hull.storage.archive import TarHeader, encode_header
from hull.storage.compression import READ_SIZE, Compression, DecompressedStream, detect, open_decompressed
from hull.storage.tarsplit import tar_size

# --- names and media types of the formats -----------------------------------------------------------

MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
INDEX_FILE = "index.json"
OCI_LAYOUT_FILE = "oci-layout"
BLOBS_DIR = "blobs"
OCI_LAYOUT_VERSION = "1.0.0"
# Docker writes it with the space (moby image/tarexport); skopeo does too.
OCI_LAYOUT_CONTENT = b'{"imageLayoutVersion": "1.0.0"}'


ANNOTATION_IMAGE_NAME = "io.containerd.image.name"  # a full reference: docker.io/library/busybox:latest
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"  # OCI: usually just the tag

# JSON documents (manifests, configs, indexes) are read whole; nothing legitimate comes close.
JSON_LIMIT = 32 << 20
# The kernel's own limit for one path walk.
MAX_LINK_HOPS = 40
# Image indexes inside image indexes: real ones nest once (index.json -> a multi-platform index).
MAX_INDEX_DEPTH = 8

_CONTENT_ADDRESSED = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_TAG_ONLY = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)


def blob_path(digest: str) -> str:
    """Where an OCI image layout keeps the blob `digest`: blobs/<algorithm>/<hex>."""
    return f"{BLOBS_DIR}/{digest.replace(':', '/', 1)}"


class InvalidArchive(InvalidArgument):
    """An image archive that cannot be loaded as it is (malformed, incomplete or inconsistent)."""


# --- records ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DockerManifestItem:
    """One item of a docker-archive's manifest.json, as written (paths relative to the archive)."""

    config: str
    repo_tags: tuple[str, ...]
    layers: tuple[str, ...]
    parent: str | None = None  # an image id, kept only if that image is in the same archive


@dataclass(frozen=True)
class ArchiveMember:
    """A member of the outer tar: where its content lies in the (spooled) archive file."""

    name: str
    kind: Literal["file", "dir", "symlink", "hardlink", "other"]
    offset: int
    size: int
    linkname: str = ""


@dataclass(frozen=True)
class LayerBlob:
    """One layer of an archived image: the member holding its blob, and its digest if the path says it."""

    path: str  # as the manifest names it
    member: ArchiveMember  # after following links
    blob_digest: str | None  # "sha256:<hex>" for a content-addressed blob (blobs/sha256/<hex>)


@dataclass(frozen=True)
class ArchivedImage:
    """An image as the archive describes it, checked and resolved, ready to load."""

    config: ImageConfig
    layers: tuple[LayerBlob, ...]
    tags: tuple[Reference, ...]
    parent: str | None = None
    history: tuple[Any, ...] = ()  # the config's raw history entries (for the parent check)


@dataclass(frozen=True)
class LoadedImage:
    id: str
    tags: tuple[str, ...]  # familiar form: busybox:latest


@dataclass(frozen=True)
class MovedTag:
    """A tag that named another image before this load (Docker renames that one to <none>)."""

    tag: str
    previous_id: str
    image_id: str


@dataclass(frozen=True)
class LoadResult:
    """What a load did: every image it stored, the tags it set and moved, the layers it added."""

    format: Literal["docker-archive", "oci-layout"]
    images: tuple[LoadedImage, ...]
    moved_tags: tuple[MovedTag, ...] = ()
    new_layers: tuple[str, ...] = ()  # chain ids registered by this load (the rest were present)
    notes: tuple[str, ...] = ()  # things the user should know that are not errors (untagged, skipped)

    @property
    def image_ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.images)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(t for i in self.images for t in i.tags)

    def messages(self) -> list[str]:
        """The lines `docker load` prints for this result."""
        moved = {m.tag: m for m in self.moved_tags}
        out: list[str] = []
        for image in self.images:
            for tag in image.tags:
                if tag in moved:
                    out.append(
                        f"The image {tag} already exists, renaming the old one with ID "
                        f"{moved[tag].previous_id} to empty string"
                    )
                out.append(f"Loaded image: {tag}")
            if not image.tags:
                out.append(f"Loaded image ID: {image.id}")
        return out


# --- the outer archive ------------------------------------------------------------------------------


def _clean(path: str, named_by: str) -> list[str]:
    """The components of an archive-relative path; `..` may not climb out, and absolute paths are refused."""
    if not isinstance(path, str) or not path:
        raise InvalidArchive(f"{named_by} names an empty path")
    if "\0" in path:
        raise InvalidArchive(f"{named_by} names a path with a NUL byte: {path!r}")
    if path.startswith("/"):
        raise InvalidArchive(f"{named_by} names {path!r}, an absolute path: it escapes the archive")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidArchive(f"{named_by} names {path!r}, a path that escapes the archive")
            parts.pop()
        else:
            parts.append(part)
    return parts


class _Section:
    """The bytes of one member, read by offset (pread where there is a descriptor, so no shared position)."""

    def __init__(self, archive: "_Archive", member: ArchiveMember) -> None:
        self._archive = archive
        self._pos = member.offset
        self._left = member.size
        self._name = member.name

    def read(self, size: int = -1, /) -> bytes:
        if self._left <= 0 or size == 0:
            return b""
        n = self._left if size < 0 else min(size, self._left)
        data = self._archive.pread(n, self._pos)
        if not data:
            raise InvalidArchive(f"the archive is truncated: {self._name} is cut short")
        self._pos += len(data)
        self._left -= len(data)
        return data


class _Archive:
    """The outer tar, indexed once: members by cleaned name (the last of a name wins, as extraction would)."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        fd: int | None
        try:
            fd = file.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        self._fd = fd
        self.members: dict[str, ArchiveMember] = {}
        start = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(start)
        try:
            tar = tarfile.TarFile(fileobj=file, mode="r", encoding="utf-8", errors="surrogateescape")
            for info in tar:
                self._add(info, end)
        except tarfile.TarError as e:
            raise InvalidArchive(f"this is not a valid tar archive: {e}") from None

    def _add(self, info: tarfile.TarInfo, end: int) -> None:
        # Docker's extraction joins every name below its directory: a leading "/" changes nothing.
        name = info.name.lstrip("/")
        parts = _clean(name, f"the archive entry {info.name!r}") if name else []
        if not parts:
            return
        kind: Literal["file", "dir", "symlink", "hardlink", "other"]
        if info.isreg():
            kind = "file"
            if info.offset_data + info.size > end:
                raise InvalidArchive(f"the archive is truncated: {info.name} is cut short")
        elif info.isdir():
            kind = "dir"
        elif info.issym():
            kind = "symlink"
        elif info.islnk():
            kind = "hardlink"
        else:
            kind = "other"
        name = "/".join(parts)
        self.members[name] = ArchiveMember(name, kind, info.offset_data, info.size if kind == "file" else 0,
                                           info.linkname)  # fmt: skip

    def pread(self, n: int, pos: int) -> bytes:
        if self._fd is not None:
            return os.pread(self._fd, n, pos)
        self._file.seek(pos)
        return self._file.read(n)

    def lookup(self, path: str, named_by: str, *, missing_ok: bool = False) -> ArchiveMember | None:
        """The regular file `path` names, following symlinks and hardlinks inside the archive only."""
        return self._lookup(path, named_by, missing_ok, [0])

    def _lookup(self, path: str, named_by: str, missing_ok: bool, hops: list[int]) -> ArchiveMember | None:
        pending = _clean(path, named_by)
        resolved: list[str] = []
        while pending:
            part = pending.pop(0)
            if part == "..":
                if not resolved:
                    raise InvalidArchive(f"{named_by} names {path!r}, which leads out of the archive through a symlink")
                resolved.pop()
                continue
            here = "/".join([*resolved, part])
            m = self.members.get(here)
            if m is not None and m.kind == "symlink":
                hops[0] += 1
                if hops[0] > MAX_LINK_HOPS:
                    raise InvalidArchive(f"{named_by} names {path!r}: too many levels of symbolic links")
                if m.linkname.startswith("/"):
                    raise InvalidArchive(
                        f"{named_by} names {path!r}, but {here} is a symlink to {m.linkname!r}, outside the archive"
                    )
                pending = [p for p in m.linkname.split("/") if p not in ("", ".")] + pending
                continue
            if m is not None and pending and m.kind != "dir":
                raise InvalidArchive(f"{named_by} names {path!r}, but {here} in the archive is not a directory")
            resolved.append(part)
        name = "/".join(resolved)
        m = self.members.get(name)
        if m is None:
            if missing_ok:
                return None
            raise InvalidArchive(f"{named_by} names {path!r}, which is not in the archive")
        if m.kind == "hardlink":
            hops[0] += 1
            if hops[0] > MAX_LINK_HOPS:
                raise InvalidArchive(f"{named_by} names {path!r}: too many levels of links")
            return self._lookup(m.linkname, f"{named_by} (through the hardlink {name})", missing_ok, hops)
        if m.kind != "file":
            raise InvalidArchive(f"{named_by} names {path!r}, which is not a regular file in the archive")
        return m

    def member(self, path: str, named_by: str) -> ArchiveMember:
        m = self.lookup(path, named_by)
        assert m is not None  # lookup raises instead of returning None unless missing_ok
        return m

    def open(self, member: ArchiveMember) -> _Section:
        return _Section(self, member)

    def read(self, member: ArchiveMember, what: str) -> bytes:
        if member.size > JSON_LIMIT:
            raise InvalidArchive(f"{what} is {member.size} bytes, more than the {JSON_LIMIT} a JSON document may have")
        section = self.open(member)
        parts = []
        while chunk := section.read(READ_SIZE):
            parts.append(chunk)
        return b"".join(parts)

    def read_json(self, member: ArchiveMember, what: str) -> Any:
        return _parse_json(self.read(member, what), what)


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidArchive(f"{what} is not valid JSON: {e}") from None


def _is_regular_file(stream: BinaryIO) -> bool:
    try:
        return stream.seekable() and stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


@contextmanager
def _open_archive(stream: BinaryIO, spool_dir: str) -> Iterator[_Archive]:
    """The archive in `stream`: read in place if it is an uncompressed regular file, else spooled first."""
    if _is_regular_file(stream):
        start = stream.tell()
        head = os.pread(stream.fileno(), 6, start)
        if detect(head) is Compression.NONE:
            yield _Archive(stream)
            return
    os.makedirs(spool_dir, exist_ok=True)
    # Unnamed (O_TMPFILE where the kernel has it): nothing to clean up after a crash.
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        source = open_decompressed(stream)
        try:
            while chunk := source.read(READ_SIZE):
                spool.write(chunk)
        except InvalidArgument as e:
            cause = e.__cause__ or e.message  # the decompressor's own words
            raise InvalidArchive(f"the archive is not valid {source.compression.value}: {cause}") from None
        spool.flush()
        spool.seek(0)
        yield _Archive(cast(BinaryIO, spool))


# --- JSON fields (Go's decoder: keys match case-insensitively, null means absent) ----------------------


def _get(obj: dict[str, Any], key: str) -> Any:
    if key in obj:
        return obj[key]
    lower = key.lower()
    for k, v in obj.items():
        if k.lower() == lower:
            return v
    return None


def _string(obj: dict[str, Any], key: str, what: str, required: bool = False) -> str:
    value = _get(obj, key)
    if value is None:
        if required:
            raise InvalidArchive(f"{what} has no {key}")
        return ""
    if not isinstance(value, str):
        raise InvalidArchive(f"{what}: {key} must be a string")
    return value


def _strings(obj: dict[str, Any], key: str, what: str) -> tuple[str, ...]:
    value = _get(obj, key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArchive(f"{what}: {key} must be a list of strings")
    return tuple(value)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArchive(f"{what} must be a JSON object")
    return value


# --- planning: what the archive holds, checked before anything is written --------------------------------


def _parse_config(raw: bytes, what: str) -> tuple[ImageConfig, tuple[Any, ...]]:
    try:
        config = parse_config(raw)
    except InvalidArgument as e:
        raise InvalidArchive(f"{what}: {e.message}") from None
    if config.os not in ("", SUPPORTED_OS):
        raise InvalidArchive(f"cannot load {config.os} image on {SUPPORTED_OS}")
    history = json.loads(raw).get("history")
    return config, tuple(history) if isinstance(history, list) else ()


def _blob_digest(member: ArchiveMember) -> str | None:
    m = _CONTENT_ADDRESSED.fullmatch(member.name)
    return f"{ids.SHA256}:{m.group(1)}" if m else None


def _read_verified(archive: _Archive, member: ArchiveMember, what: str) -> bytes:
    """A small blob; one at a content-addressed path must hash to its name."""
    data = archive.read(member, what)
    expected = _blob_digest(member)
    if expected is not None and ids.digest_bytes(data) != expected:
        raise InvalidArchive(f"{what} ({member.name}) does not match its digest: the archive is corrupt")
    return data


def _layers_of(archive: _Archive, config: ImageConfig, paths: Iterable[str], what: str) -> tuple[LayerBlob, ...]:
    paths = list(paths)
    if len(paths) != len(config.diff_ids):
        raise InvalidArchive(
            f"invalid manifest, layers length mismatch: expected {len(paths)}, got {len(config.diff_ids)}"
        )
    out = []
    for i, path in enumerate(paths):
        member = archive.member(path, f"{what} (layer {i})")
        out.append(LayerBlob(path, member, _blob_digest(member)))
    return tuple(out)


def _repo_tag(text: str, what: str) -> Reference:
    """A RepoTags entry: a name with a tag (Docker refuses a bare name or a digest here)."""
    try:
        ref = reference.parse(text)
    except InvalidArgument as e:
        raise InvalidArchive(f"{what}: invalid tag {text!r}: {e.message}") from None
    if ref.tag is None or ref.digest is not None:
        raise InvalidArchive(f'{what}: invalid tag "{text}"')
    return ref


def parse_docker_manifest(doc: Any) -> list[DockerManifestItem]:
    """The items of a manifest.json document (already decoded), checked for shape."""
    if doc is None:
        raise InvalidArchive("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(doc, list):
        raise InvalidArchive(f"{MANIFEST_FILE} must be a JSON list")
    items = []
    for i, raw in enumerate(doc):
        what = f"{MANIFEST_FILE} item {i}"
        obj = _object(raw, what)
        parent = _string(obj, "Parent", what) or None
        if parent is not None:
            try:
                ids.check_sha256(parent, "parent image id")
            except InvalidArgument as e:
                raise InvalidArchive(f"{what}: {e.message}") from None
        items.append(
            DockerManifestItem(
                config=_string(obj, "Config", what, required=True),
                repo_tags=_strings(obj, "RepoTags", what),
                layers=_strings(obj, "Layers", what),
                parent=parent,
            )
        )
    return items


def _plan_docker(archive: _Archive, manifest: ArchiveMember) -> list[ArchivedImage]:
    items = parse_docker_manifest(archive.read_json(manifest, MANIFEST_FILE))
    images = []
    for i, item in enumerate(items):
        what = f"{MANIFEST_FILE} item {i}"
        config_member = archive.member(item.config, f"{what} (Config)")
        config, history = _parse_config(_read_verified(archive, config_member, f"the config {item.config}"), what)
        tags = tuple(_repo_tag(t, what) for t in item.repo_tags)
        layers = _layers_of(archive, config, item.layers, what)
        images.append(ArchivedImage(config, layers, tags, item.parent, history))
    return images


@dataclass(frozen=True)
class _Descriptor:
    """An OCI content descriptor, as much of it as loading needs."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    os: str = ""
    architecture: str = ""


def _descriptor(raw: Any, what: str) -> _Descriptor:
    obj = _object(raw, what)
    digest = _string(obj, "digest", what, required=True)
    try:
        algorithm, _ = ids.parse_digest(digest)
    except InvalidArgument as e:
        raise InvalidArchive(f"{what}: {e.message}") from None
    if algorithm != ids.SHA256:
        raise InvalidArchive(f"{what}: unsupported digest algorithm {algorithm} (hull stores sha256 content)")
    size = obj.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidArchive(f"{what}: size must be a non-negative integer")
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise InvalidArchive(f"{what}: annotations must be an object of strings")
    plat = _object(obj.get("platform") or {}, f"{what}: platform")
    return _Descriptor(
        media_type=_string(obj, "mediaType", what),
        digest=digest,
        size=size,
        annotations=dict(annotations),
        os=_string(plat, "os", what),
        architecture=_string(plat, "architecture", what),
    )


def _check_size(member: ArchiveMember, desc: _Descriptor, what: str) -> None:
    if member.size != desc.size:
        raise InvalidArchive(f"{what}: blob {desc.digest} is {member.size} bytes, its descriptor says {desc.size}")


def _read_blob(archive: _Archive, desc: _Descriptor, what: str) -> bytes:
    member = archive.member(blob_path(desc.digest), what)
    _check_size(member, desc, what)
    return _read_verified(archive, member, what)


def _pick_platform(descs: list[_Descriptor], where: str) -> _Descriptor:
    host = host_platform()
    for d in descs:
        if d.os == host.os and d.architecture == host.architecture:
            return d
    raise InvalidArchive(f"{where} has no image for {host.os}/{host.architecture}")


def _names(desc: _Descriptor, what: str, notes: list[str]) -> list[Reference]:
    """The tag an index.json entry gives its image, from containerd's name or else the OCI ref name."""
    full = desc.annotations.get(ANNOTATION_IMAGE_NAME)
    if full:
        try:
            ref = reference.parse(full)
        except InvalidArgument as e:
            raise InvalidArchive(f"{what}: {ANNOTATION_IMAGE_NAME} {full!r}: {e.message}") from None
        if ref.digest is not None:
            notes.append(f"{what}: {full} is a digest reference, not a tag: it names no tag")
            return []
        return [ref.with_default_tag()]
    name = desc.annotations.get(ANNOTATION_REF_NAME)
    if not name:
        return []
    if _TAG_ONLY.fullmatch(name):
        notes.append(f"{what}: the reference name {name!r} is only a tag, with no repository: the image is not tagged")
        return []
    try:
        ref = reference.parse(name)
    except InvalidArgument as e:
        notes.append(f"{what}: the reference name {name!r} is not an image reference ({e.message}): not tagged")
        return []
    if ref.digest is not None:
        notes.append(f"{what}: {name} is a digest reference, not a tag: it names no tag")
        return []
    return [ref.with_default_tag()]


def _media_type(desc: _Descriptor, doc: dict[str, Any]) -> str:
    """A manifest's media type: its descriptor's, else its own field, else what its shape says."""
    if desc.media_type:
        return desc.media_type
    own = doc.get("mediaType")
    if isinstance(own, str) and own:
        return own
    return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST


def _plan_oci(archive: _Archive, index: ArchiveMember, notes: list[str]) -> list[ArchivedImage]:
    layout = archive.lookup(OCI_LAYOUT_FILE, "the OCI image layout", missing_ok=True)
    if layout is not None:
        version = _object(archive.read_json(layout, OCI_LAYOUT_FILE), OCI_LAYOUT_FILE).get("imageLayoutVersion")
        if version != OCI_LAYOUT_VERSION:
            raise InvalidArchive(f"unsupported OCI image layout version {version!r} (hull reads {OCI_LAYOUT_VERSION})")
    doc = _object(archive.read_json(index, INDEX_FILE), INDEX_FILE)
    manifests = doc.get("manifests") or []
    if not isinstance(manifests, list):
        raise InvalidArchive(f"{INDEX_FILE}: manifests must be a list")
    by_id: dict[str, ArchivedImage] = {}
    for i, raw in enumerate(manifests):
        what = f"{INDEX_FILE} manifests[{i}]"
        desc = _descriptor(raw, what)
        tags = _names(desc, what, notes)
        image = _oci_image(archive, desc, what, notes)
        if image is None:
            continue
        known = by_id.get(image.config.id)
        if known is not None:
            merged = known.tags + tuple(t for t in tags if t not in known.tags)
            by_id[image.config.id] = ArchivedImage(known.config, known.layers, merged, None, known.history)
        else:
            by_id[image.config.id] = ArchivedImage(image.config, image.layers, tuple(tags), None, image.history)
    return list(by_id.values())


def _oci_image(archive: _Archive, desc: _Descriptor, what: str, notes: list[str]) -> ArchivedImage | None:
    """The image a descriptor leads to (through nested indexes, for this host's platform); None if not an image."""
    for _ in range(MAX_INDEX_DEPTH):
        doc = _object(_parse_json(_read_blob(archive, desc, what), f"{what} ({desc.digest})"), what)
        kind = _media_type(desc, doc)
        if kind in mt.INDEXES:
            entries = doc.get("manifests") or []
            if not isinstance(entries, list):
                raise InvalidArchive(f"{what}: manifests must be a list")
            descs = [_descriptor(e, f"{what} ({desc.digest}) manifests[{j}]") for j, e in enumerate(entries)]
            desc = _pick_platform(descs, f"the image index {desc.digest}")
            what = f"{what} -> {desc.digest}"
            continue
        if kind not in mt.MANIFESTS:
            notes.append(f"{what}: skipped {desc.digest}, a {kind or 'document'} that is not an image manifest")
            return None
        config_desc = _descriptor(doc.get("config"), f"{what}: config")
        if config_desc.media_type and config_desc.media_type not in mt.CONFIGS:
            notes.append(f"{what}: skipped {desc.digest}, an artifact (config type {config_desc.media_type})")
            return None
        config, history = _parse_config(_read_blob(archive, config_desc, f"{what}: config"), what)
        layer_docs = doc.get("layers") or []
        if not isinstance(layer_docs, list):
            raise InvalidArchive(f"{what}: layers must be a list")
        layer_descs = [_descriptor(e, f"{what}: layers[{j}]") for j, e in enumerate(layer_docs)]
        layers = _layers_of(archive, config, [blob_path(d.digest) for d in layer_descs], what)
        for i, (layer, layer_desc) in enumerate(zip(layers, layer_descs, strict=True)):
            _check_size(layer.member, layer_desc, f"{what}: layers[{i}]")
        return ArchivedImage(config, layers, (), None, history)
    raise InvalidArchive(f"{what}: image indexes nested more than {MAX_INDEX_DEPTH} deep")


# --- registering layers, verified before they commit ----------------------------------------------------


class _BackgroundHash:
    """sha256 in a helper thread, fed the chunks as they go by.

    hashlib lets go of the GIL while it hashes a large chunk, so on a machine with two cores
    checking a layer costs the load almost nothing: the layer store's own hashing and writing
    go on meanwhile. Chunks are immutable bytes; the queue is bounded so that a slow hasher
    holds back the reader instead of piling up memory.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        # Started by the first chunk, so that a layer that fails before any data costs no thread.
        self._thread = threading.Thread(target=self._run, name="hull-load-hash", daemon=True)
        self._digest: str | None = None

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        if self._thread.ident is None:
            self._thread.start()
        self._queue.put(chunk)

    def digest(self) -> str:
        """`sha256:<hex>` of everything fed so far; no more may be fed after."""
        if self._digest is None:
            self.close()
            self._digest = f"{ids.SHA256}:{self._hash.hexdigest()}"
        return self._digest

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class _Hashing:
    """The raw blob, hashed as it goes by (its digest is checked once the layer behind it ends)."""

    def __init__(self, source: _Section) -> None:
        self._source = source
        self.hash = _BackgroundHash()

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        if data:
            self.hash.update(data)
        return data

    def finish(self) -> str:
        while self.read(READ_SIZE):  # bytes after the end of the compressed stream count for the digest too
            pass
        return self.hash.digest()


class _VerifiedLayer:
    """The uncompressed layer tar that the layer store reads, checked at its end.

    The layer store commits a layer only after its reader has ended, so raising from the
    last read (when the digests are known and wrong) leaves nothing behind.
    """

    def __init__(self, source: DecompressedStream, raw: _Hashing | None, blob: LayerBlob, diff_id: str, index: int):
        self._source = source
        self._raw = raw
        self._blob = blob
        self._expected = diff_id
        self._index = index
        self._hash = _BackgroundHash()
        self.checked = False

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        if data:
            self._hash.update(data)
        elif size != 0 and not self.checked:
            self._check()
        return data

    def close(self) -> None:
        self._hash.close()

    def _check(self) -> None:
        self.checked = True
        if self._raw is not None and self._blob.blob_digest is not None:
            actual_blob = self._raw.finish()
            if actual_blob != self._blob.blob_digest:
                raise InvalidArchive(
                    f"layer blob {self._blob.member.name} does not match its digest (its content is {actual_blob}): "
                    "the archive is corrupt"
                )
        actual = self._hash.digest()
        if actual != self._expected:
            raise InvalidArchive(f'invalid diffID for layer {self._index}: expected "{self._expected}", got "{actual}"')
        if self._raw is None and self._blob.blob_digest not in (None, actual):
            raise InvalidArchive(
                f"layer blob {self._blob.member.name} does not match its digest (its content is {actual}): "
                "the archive is corrupt"
            )


@dataclass
class _Registered:
    new_layers: list[str] = field(default_factory=list)
    blob_digests: dict[str, str] = field(default_factory=dict)  # compressed blob digest -> diff id


def _register_layers(service: ImageService, archive: _Archive, images: list[ArchivedImage]) -> _Registered:
    done = _Registered()
    try:
        for image in images:
            parent: str | None = None
            for i, (diff_id, blob) in enumerate(zip(image.config.diff_ids, image.layers, strict=True)):
                chain = ids.chain_id_step(parent, diff_id)
                if not service.layers.exists(chain):
                    compression = _register_one(service, archive, blob, parent, diff_id, i)
                    done.new_layers.append(chain)
                    if compression is not Compression.NONE and blob.blob_digest is not None:
                        done.blob_digests[blob.blob_digest] = diff_id
                parent = chain
    except BaseException:
        _remove_new_layers(service, done.new_layers)
        raise
    return done


def _register_one(
    service: ImageService, archive: _Archive, blob: LayerBlob, parent: str | None, diff_id: str, index: int
) -> Compression:
    section = archive.open(blob.member)
    compression = detect(archive.pread(8, blob.member.offset)[: blob.member.size])
    # The compressed bytes need their own hash only where a digest names them: for a plain tar
    # the blob digest is the diff id, which is checked anyway.
    raw = _Hashing(section) if compression is not Compression.NONE and blob.blob_digest is not None else None
    layer: _VerifiedLayer | None = None
    try:
        layer = _VerifiedLayer(open_decompressed(raw or section), raw, blob, diff_id, index)
        record = service.layers.register(cast(BinaryIO, layer), parent)
    except InvalidArchive:
        raise
    except InvalidArgument as e:  # the blob itself is bad (compression, tar, paths): say which one
        raise InvalidArchive(f"layer {index} ({blob.path}): {e.message}") from None
    finally:
        # Stop the helper threads, also when the layer failed before its end.
        if layer is not None:
            layer.close()
        if raw is not None:
            raw.hash.close()
    if not layer.checked or record.diff_id != diff_id:  # the store reads a layer to its end: never expected
        raise HullError(f"layer {index} ({blob.path}) was registered as {record.diff_id} without being checked")
    return compression


def _remove_new_layers(service: ImageService, chains: list[str]) -> None:
    """Undo a failed load: remove the layers it added, top first, unless something else uses them by now."""
    if not chains:
        return
    try:
        usage = service.layers.db.usage(service.images)
    except HullError:
        return
    for chain in reversed(chains):
        if usage.is_used(chain):
            continue
        try:
            service.layers.delete(chain)
        except (HullError, OSError):
            pass  # a layer something now builds on stays; it is a valid layer


# --- load ----------------------------------------------------------------------------------------------


def _valid_parent(child: ArchivedImage, parent: ArchivedImage) -> bool:
    """Docker's checkValidParent: the parent's history is the child's, one step shorter."""
    if not child.history and not parent.history:
        return True
    return len(child.history) - len(parent.history) == 1 and list(child.history[:-1]) == list(parent.history)


def load(service: ImageService, stream: BinaryIO) -> LoadResult:
    """Load every image of the archive in `stream` (see the module docstring for the contract)."""
    notes: list[str] = []
    with _open_archive(stream, service.root.layerdb_tmp) as archive:
        manifest = archive.lookup(MANIFEST_FILE, "the archive", missing_ok=True)
        index = archive.lookup(INDEX_FILE, "the archive", missing_ok=True) if manifest is None else None
        fmt: Literal["docker-archive", "oci-layout"]
        if manifest is not None:
            fmt, images = "docker-archive", _plan_docker(archive, manifest)
        elif index is not None:
            fmt, images = "oci-layout", _plan_oci(archive, index, notes)
        else:
            raise InvalidArchive(
                f"this is not an image archive: it has neither {MANIFEST_FILE} (docker save) "
                f"nor {INDEX_FILE} (an OCI image layout)"
            )
        registered = _register_layers(service, archive, images)

    loaded: list[LoadedImage] = []
    moved: list[MovedTag] = []
    by_id = {image.config.id: image for image in images}
    for image in images:
        image_id = service.create_image(image.config.raw)
        tags: list[str] = []
        for ref in image.tags:
            try:
                previous: str | None = service.refs.get(ref)
            except NotFound:
                previous = None
            service.tag(image_id, str(ref))
            if previous is not None and previous != image_id:
                moved.append(MovedTag(ref.familiar(), previous, image_id))
            if ref.familiar() not in tags:
                tags.append(ref.familiar())
        known = next((i for i in loaded if i.id == image_id), None)
        if known is not None:
            extra = tuple(t for t in tags if t not in known.tags)
            loaded[loaded.index(known)] = LoadedImage(image_id, known.tags + extra)
        else:
            loaded.append(LoadedImage(image_id, tuple(tags)))
    for image in images:
        parent = by_id.get(image.parent or "")
        if parent is not None and parent.config.id != image.config.id and _valid_parent(image, parent):
            service.images.set_parent(image.config.id, parent.config.id)
    for blob_digest, diff_id in sorted(registered.blob_digests.items()):
        service.dist.set_diff_id(blob_digest, diff_id)
    return LoadResult(fmt, tuple(loaded), tuple(moved), tuple(registered.new_layers), tuple(notes))


# --- save ----------------------------------------------------------------------------------------------


@dataclass
class _SavedImage:
    id: str
    config: ImageConfig
    refs: list[Reference] = field(default_factory=list)


def _select(service: ImageService, names: list[str]) -> dict[str, list[Reference]]:
    """Image id -> the tags to save it under, for what the user named (as Docker's save resolves names)."""
    chosen: dict[str, list[Reference]] = {}

    def add(image_id: str, ref: Reference | None) -> None:
        tags = chosen.setdefault(image_id, [])
        if ref is not None and ref.tag is not None and ref.digest is None and ref not in tags:
            tags.append(ref)

    for name in names:
        if not isinstance(name, str) or not name:
            raise InvalidArgument("image name cannot be empty")
        bare = name.removeprefix(f"{ids.SHA256}:")
        if ids.is_hex_id(bare):
            if not service.images.exists(f"{ids.SHA256}:{bare}"):
                raise NotFound(f"No such image: {name}")
            add(f"{ids.SHA256}:{bare}", None)
            continue
        try:
            ref = reference.parse(name)
        except InvalidArgument:
            ref = None
        if ref is None or ref.familiar_name == ids.SHA256:
            add(service.images.search(name), None)  # a short id, `sha256:` prefix or not
        elif ref.is_name_only:
            assocs = [(r, iid) for r, iid in service.refs.all() if r.name_only() == ref]
            for r, iid in assocs:
                add(iid, r)
            if not assocs:
                try:
                    add(service.images.search(name), None)
                except NotFound:
                    raise NotFound(f"No such image: {name}") from None
        else:
            add(service.refs.get(ref), ref)
    return chosen


def _unix_seconds(created: str) -> int:
    """An RFC 3339 time as whole seconds since the epoch (Docker stamps saved blobs with it); 0 if unparsable."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)", created.strip())
    if m is None:
        return 0
    zone = "+00:00" if m.group(2) == "Z" else m.group(2)
    try:
        return max(0, int(datetime.fromisoformat(m.group(1) + zone).timestamp()))
    except ValueError:
        return 0


def _go_json(value: Any, newline: bool = False) -> bytes:
    """JSON as Go's encoding/json writes it: compact, fields in the order given, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    # Go escapes these inside strings; they never occur outside one.
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return (text + ("\n" if newline else "")).encode()


def _platform(config: ImageConfig) -> dict[str, str]:
    out = {"architecture": config.architecture, "os": config.os}
    if config.os_version:
        out["os.version"] = config.os_version
    if config.variant:
        out["variant"] = config.variant
    return out


@dataclass(frozen=True)
class _OutFile:
    """One file of the archive to write: bytes in hand, or a layer rebuilt from the layer store."""

    size: int
    mtime: int
    data: bytes | None = None
    chain_id: str | None = None
    diff_id: str | None = None


class _TarOut:
    """The archive as it is written: headers, contents and padding, in large writes."""

    FLUSH_AT = 1 << 20

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._buf = bytearray()
        self._hash: Any = None
        self._count = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        if self._hash is not None:
            self._hash.update(data)
            self._count += n
        if n >= self.FLUSH_AT // 4:
            self.flush()
            self._write_all(data)
        else:
            self._buf += data
            if len(self._buf) >= self.FLUSH_AT:
                self.flush()
        return n

    def flush(self) -> None:
        if self._buf:
            self._write_all(self._buf)
            self._buf.clear()

    def _write_all(self, data: bytes | bytearray | memoryview) -> None:
        # A raw file, pipe or socket may take less than it was given.
        view = memoryview(data)
        while view:
            n = self._out.write(view)
            view = view[len(view) if n is None else n :]

    def begin_counting(self) -> None:
        self._hash, self._count = hashlib.sha256(), 0

    def end_counting(self) -> tuple[str, int]:
        digest, count = f"{ids.SHA256}:{self._hash.hexdigest()}", self._count
        self._hash = None
        return digest, count


def save(service: ImageService, names: list[str], out: BinaryIO) -> None:
    """Write the images `names` select to `out` as Docker 25+ writes them (see the module docstring)."""
    if not names:
        raise InvalidArgument("no images to save: name at least one image")
    chosen = _select(service, names)
    images = [_SavedImage(i, parse_config(service.images.get(i)), sorted(refs, key=str))
              for i, refs in sorted(chosen.items())]  # fmt: skip
    in_save = {image.id for image in images}

    files: dict[str, _OutFile] = {}
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    index: list[dict[str, Any]] = []
    for image in images:
        config, mtime = image.config, _unix_seconds(image.config.created)
        files.setdefault(blob_path(image.id), _OutFile(len(config.raw), mtime, data=config.raw))
        layer_descs = []
        for diff_id, chain_id in zip(config.diff_ids, ids.chain_ids(config.diff_ids), strict=True):
            path = blob_path(diff_id)
            if path not in files:
                size = tar_size(service.layers.db.tar_split(chain_id))
                files[path] = _OutFile(size, mtime, chain_id=chain_id, diff_id=diff_id)
            layer_descs.append({"mediaType": mt.OCI_LAYER, "digest": diff_id, "size": files[path].size})
        plat = _platform(config)
        config_desc = {"mediaType": mt.OCI_CONFIG, "digest": image.id, "size": len(config.raw), "platform": plat}
        oci_manifest = _go_json(
            {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config_desc, "layers": layer_descs}
        )
        manifest_digest = ids.digest_bytes(oci_manifest)
        files.setdefault(blob_path(manifest_digest), _OutFile(len(oci_manifest), 0, data=oci_manifest))
        descriptor = {"mediaType": mt.OCI_MANIFEST, "digest": manifest_digest, "size": len(oci_manifest)}
        for ref in image.refs:
            assert ref.tag is not None
            annotations = {ANNOTATION_IMAGE_NAME: str(ref), ANNOTATION_REF_NAME: ref.tag}
            index.append({**descriptor, "annotations": annotations, "platform": plat})
            if config.diff_ids:
                repositories.setdefault(ref.familiar_name, {})[ref.tag] = ids.hex_of(config.diff_ids[-1])
        if not image.refs:
            index.append({**descriptor, "platform": plat})
        item: dict[str, Any] = {
            "Config": blob_path(image.id),
            "RepoTags": [ref.familiar() for ref in image.refs] or None,
            "Layers": [blob_path(d) for d in config.diff_ids],
        }
        parent = service.images.get_parent(image.id)
        if parent is not None and parent in in_save and parent != image.id:
            item["Parent"] = parent
        manifest.append(item)

    documents = {
        MANIFEST_FILE: _go_json(manifest, newline=True),
        INDEX_FILE: _go_json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": index}),
        OCI_LAYOUT_FILE: OCI_LAYOUT_CONTENT,
    }
    if repositories:
        sorted_repos = {name: dict(sorted(tags.items())) for name, tags in sorted(repositories.items())}
        documents[REPOSITORIES_FILE] = _go_json(sorted_repos, newline=True)
    for name, data in documents.items():
        files[name] = _OutFile(len(data), 0, data=data)

    tar = _TarOut(out)
    for directory in (f"{BLOBS_DIR}/", f"{BLOBS_DIR}/{ids.SHA256}/"):
        tar.write(encode_header(TarHeader(name=directory, typeflag=tarfile.DIRTYPE, mode=0o40755)))
    for name in sorted(files):
        f = files[name]
        tar.write(encode_header(TarHeader(name=name, typeflag=tarfile.REGTYPE, mode=0o100644, size=f.size,
                                          mtime=f.mtime)))  # fmt: skip
        if f.data is not None:
            tar.write(f.data)
        else:
            assert f.chain_id is not None
            tar.begin_counting()
            service.layers.tar_stream(f.chain_id, cast(BinaryIO, tar))
            digest, count = tar.end_counting()
            if (digest, count) != (f.diff_id, f.size):
                raise HullError(
                    f"layer {f.chain_id} rebuilt as {count} bytes with digest {digest}, not its diff id {f.diff_id} "
                    f"({f.size} bytes): the layer store is damaged, and the archive written so far is unusable"
                )
        tar.write(b"\0" * (-f.size % tarfile.BLOCKSIZE))
    tar.write(b"\0" * (2 * tarfile.BLOCKSIZE))
    tar.flush()
