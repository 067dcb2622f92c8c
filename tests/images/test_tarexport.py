"""docker save / docker load in hull alone: round trips, the formats on the wire, names, and every
kind of bad archive (each one a clear error that changes nothing visible)."""

import gzip
import hashlib
import io
import json
import os
import signal
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hull.errors import InvalidArgument, NotFound
from hull.images import ids, tarexport
from hull.images import mediatypes as mt
from hull.images.service import ImageService
from hull.images.tarexport import InvalidArchive
from hull.layout import DataRoot
from hull.testing import mounts_under

pytestmark = pytest.mark.container  # real graph drivers: overlay2 needs root

MTIME = 1_700_000_000

# --- building archives -------------------------------------------------------------------------------

# (name, data), (name, None) for a directory, or (name, "symlink" or "link", target).
Entry = tuple[str, bytes | None] | tuple[str, str, str]


def make_tar(entries: list[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry[0].rstrip("/"))
            info.mtime = MTIME
            if len(entry) == 3:
                info.type = tarfile.SYMTYPE if entry[1] == "symlink" else tarfile.LNKTYPE
                info.linkname = entry[2]
                tar.addfile(info)
            elif entry[1] is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = entry[1]
                assert isinstance(data, bytes)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


BASE = make_tar([("etc/", None), ("etc/os-release", b"hull\n"), ("bin/", None), ("bin/tool", b"#!/bin/sh\necho t\n")])
MIDDLE = make_tar([("etc/", None), ("etc/os-release", b"hull 2\n"), ("data/", None), ("data/x", b"x" * 5000)])
TOP = make_tar([("bin/", None), ("bin/.wh.tool", b""), ("hello", b"hello\n")])


def config_of(layers: list[bytes], cmd: str = "hello", **extra: Any) -> bytes:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-06T07:08:09.123456789Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh", "-c", cmd]},
        "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in layers]},
        "history": [{"created": "2024-05-06T07:08:09Z", "created_by": f"layer {i}"} for i in range(len(layers))],
    }
    doc.update(extra)
    return json.dumps(doc).encode()


@dataclass
class Img:
    layers: list[bytes]
    tags: list[str]
    config: bytes = b""

    def __post_init__(self) -> None:
        self.config = self.config or config_of(self.layers)

    @property
    def id(self) -> str:
        return sha(self.config)


def legacy_archive(images: list[Img], manifest: Any = None, extra: list[Entry] | None = None,
                   drop: tuple[str, ...] = ()) -> bytes:  # fmt: skip
    """A docker-archive as Docker before 25 writes it: <id>/layer.tar, <config id>.json, manifest.json.

    A layer already written for an earlier image becomes a symlink to the first copy, as Docker does.
    """
    entries: list[Entry] = []
    items = []
    written: dict[str, str] = {}
    for image in images:
        paths = []
        for i, layer in enumerate(image.layers):
            v1 = hashlib.sha256(f"{image.id}/{i}".encode()).hexdigest()
            path = f"{v1}/layer.tar"
            entries += [(f"{v1}/", None), (f"{v1}/VERSION", b"1.0"), (f"{v1}/json", b"{}")]
            if sha(layer) in written:
                entries.append((path, "symlink", f"../{written[sha(layer)]}"))
            else:
                entries.append((path, layer))
                written[sha(layer)] = path
            paths.append(path)
        entries.append((f"{image.id[7:]}.json", image.config))
        items.append({"Config": f"{image.id[7:]}.json", "RepoTags": image.tags or None, "Layers": paths})
    if manifest is None:
        manifest = items
    entries.append(("manifest.json", manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()))
    entries += extra or []
    return make_tar([e for e in entries if e[0] not in drop])


def oci_layout(manifests: list[dict[str, Any]], blobs: dict[str, bytes], extra: list[Entry] | None = None,
               layout: bytes = b'{"imageLayoutVersion": "1.0.0"}') -> bytes:  # fmt: skip
    entries: list[Entry] = [("oci-layout", layout), ("blobs/", None), ("blobs/sha256/", None)]
    entries += [(f"blobs/sha256/{d[7:]}", data) for d, data in sorted(blobs.items())]
    entries.append(("index.json", json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()))
    return make_tar(entries + (extra or []))


def descriptor(media_type: str, data: bytes, **more: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data), **more}


def oci_image(image: Img, blobs: dict[str, bytes], compress: str = "gzip") -> bytes:
    """Put an image's config, layers (compressed) and manifest into `blobs`; returns the manifest bytes."""
    layer_descs = []
    for layer in image.layers:
        if compress == "gzip":
            blob, media = gzip.compress(layer, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
        elif compress == "zstd":
            blob, media = zstandard.ZstdCompressor().compress(layer), "application/vnd.oci.image.layer.v1.tar+zstd"
        else:
            blob, media = layer, "application/vnd.oci.image.layer.v1.tar"
        blobs[sha(blob)] = blob
        layer_descs.append(descriptor(media, blob))
    blobs[image.id] = image.config
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_CONFIG, image.config), "layers": layer_descs,
    }).encode()  # fmt: skip
    blobs[sha(manifest)] = manifest
    return manifest


class Unseekable(io.RawIOBase):
    """A stream that can only be read forward, like a pipe or an HTTP body."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 4096))  # short reads, as from a socket
        buffer[: len(chunk)] = chunk
        return len(chunk)


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ImageService]:
    svc = ImageService(DataRoot(str(tmp_path / "data")))
    yield svc
    svc.close()
    assert not mounts_under(tmp_path)


@pytest.fixture
def other(tmp_path: Path) -> Iterator[ImageService]:
    """A second, empty data root: where saved archives are loaded back."""
    svc = ImageService(DataRoot(str(tmp_path / "other")))
    yield svc
    svc.close()


def load_bytes(service: ImageService, data: bytes) -> tarexport.LoadResult:
    return tarexport.load(service, io.BytesIO(data))


def save_bytes(service: ImageService, names: list[str]) -> bytes:
    out = io.BytesIO()
    tarexport.save(service, names, out)
    return out.getvalue()


def members(archive: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: m for m in tar.getmembers()}


def read_member(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def visible_state(service: ImageService) -> dict[str, Any]:
    """Everything a user (or the next start) could see of the store."""
    tmp, dist = Path(service.root.layerdb_tmp), service.root.diffid_by_digest
    return {
        "images": service.images.list(),
        "refs": [(str(r), i) for r, i in service.refs.all()],
        "layers": service.layers.db.list(),
        "driver": service.driver.layer_ids(),
        "tmp": sorted(os.listdir(tmp)) if tmp.exists() else [],
        "dist": sorted(os.listdir(dist)) if os.path.isdir(dist) else [],
    }


# --- round trips -------------------------------------------------------------------------------------

APP = Img([BASE, MIDDLE, TOP], ["app:1", "app:latest"])
TOOL = Img([BASE, MIDDLE], ["localhost:5000/team/tool:2.0"], config_of([BASE, MIDDLE], cmd="tool"))


def test_a_docker_archive_loads_with_its_ids_tags_and_layers(service: ImageService) -> None:
    result = load_bytes(service, legacy_archive([APP, TOOL]))
    assert result.format == "docker-archive"
    assert result.image_ids == (APP.id, TOOL.id)
    assert result.tags == ("app:1", "app:latest", "localhost:5000/team/tool:2.0")
    chains = ids.chain_ids([sha(t) for t in (BASE, MIDDLE, TOP)])
    assert result.new_layers == tuple(chains)  # TOOL's two layers were APP's
    assert service.lookup("app:1") == APP.id and service.lookup("localhost:5000/team/tool:2.0") == TOOL.id
    assert service.images.get(APP.id) == APP.config  # the config bytes, unchanged
    assert [layer.chain_id for layer in service.layers.chain(chains[-1])] == chains
    for chain, original in zip(chains, (BASE, MIDDLE, TOP), strict=True):
        out = io.BytesIO()
        service.layers.tar_stream(chain, out)
        assert out.getvalue() == original
    assert result.messages() == ["Loaded image: app:1", "Loaded image: app:latest",
                                 "Loaded image: localhost:5000/team/tool:2.0"]  # fmt: skip
    assert visible_state(service)["dist"] == []  # plain tars: no registry blob digest is known


def test_save_then_load_gives_the_same_images_byte_for_byte(service: ImageService, other: ImageService) -> None:
    load_bytes(service, legacy_archive([APP, TOOL]))
    archive = save_bytes(service, ["app", TOOL.id])
    result = load_bytes(other, archive)
    assert sorted(result.image_ids) == sorted([APP.id, TOOL.id])
    assert sorted(result.tags) == ["app:1", "app:latest"]  # TOOL was named by id: saved untagged
    assert "Loaded image ID: " + TOOL.id in result.messages()
    for layer in (BASE, MIDDLE, TOP):
        assert read_member(archive, f"blobs/sha256/{sha(layer)[7:]}") == layer
    assert other.images.get(APP.id) == APP.config
    assert save_bytes(other, ["app:1"]) == save_bytes(service, ["app:1"])


def test_save_writes_what_docker_25_writes(service: ImageService) -> None:
    load_bytes(service, legacy_archive([APP]))
    archive = save_bytes(service, ["app:latest", "app:1"])
    assert archive == save_bytes(service, ["app:1", "app:latest"])  # deterministic, whatever the order asked
    found = members(archive)
    layer_names = [f"blobs/sha256/{sha(t)[7:]}" for t in (BASE, MIDDLE, TOP)]
    manifest = json.loads(read_member(archive, "manifest.json"))
    assert read_member(archive, "manifest.json").endswith(b"]\n")
    assert manifest == [{"Config": f"blobs/sha256/{APP.id[7:]}", "RepoTags": ["app:1", "app:latest"],
                         "Layers": layer_names}]  # fmt: skip
    assert json.loads(read_member(archive, "repositories")) == {"app": {"1": sha(TOP)[7:], "latest": sha(TOP)[7:]}}
    assert read_member(archive, "oci-layout") == b'{"imageLayoutVersion": "1.0.0"}'
    index = json.loads(read_member(archive, "index.json"))
    assert index["schemaVersion"] == 2 and index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["annotations"] for m in index["manifests"]] == [
        {"io.containerd.image.name": "docker.io/library/app:1", "org.opencontainers.image.ref.name": "1"},
        {"io.containerd.image.name": "docker.io/library/app:latest", "org.opencontainers.image.ref.name": "latest"},
    ]
    desc = index["manifests"][0]
    assert desc["platform"] == {"architecture": "amd64", "os": "linux"}
    oci_manifest = read_member(archive, f"blobs/sha256/{desc['digest'][7:]}")
    assert sha(oci_manifest) == desc["digest"] and len(oci_manifest) == desc["size"]
    doc = json.loads(oci_manifest)
    assert doc["config"]["digest"] == APP.id and doc["config"]["size"] == len(APP.config)
    assert [(d["mediaType"], d["digest"], d["size"]) for d in doc["layers"]] == [
        ("application/vnd.oci.image.layer.v1.tar", sha(t), len(t)) for t in (BASE, MIDDLE, TOP)
    ]
    # Every blob is named by its digest; members in lexical order, as Docker's directory walk writes them.
    for name, info in found.items():
        if name.startswith("blobs/sha256/") and info.isfile():
            assert sha(read_member(archive, name)) == "sha256:" + name.rsplit("/", 1)[1]
    names = list(found)
    assert names[:2] == ["blobs", "blobs/sha256"] and names[2:] == sorted(names[2:])
    assert names[-4:] == ["index.json", "manifest.json", "oci-layout", "repositories"]
    assert found[f"blobs/sha256/{APP.id[7:]}"].mtime == 1714979289  # the image's `created`
    assert found["manifest.json"].mtime == 0 and found["index.json"].mtime == 0
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" for m in found.values())


def test_save_resolves_names_as_docker_does(service: ImageService) -> None:
    load_bytes(service, legacy_archive([APP, TOOL]))

    def saved(*names: str) -> list[Any]:
        return [(m["Config"].rsplit("/", 1)[1], m["RepoTags"]) for m in
                json.loads(read_member(save_bytes(service, list(names)), "manifest.json"))]  # fmt: skip

    assert saved("app") == [(APP.id[7:], ["app:1", "app:latest"])]  # a bare name: all its tags
    assert saved("app:1") == [(APP.id[7:], ["app:1"])]
    assert saved(APP.id) == saved(APP.id[7:]) == saved(APP.id[7:19]) == [(APP.id[7:], None)]
    assert saved("sha256:" + APP.id[7:19]) == [(APP.id[7:], None)]
    assert len(saved("app:1", "localhost:5000/team/tool")) == 2
    for missing in ("nothere", "app:2", "0" * 64):
        with pytest.raises(NotFound):
            save_bytes(service, [missing])
    with pytest.raises(InvalidArgument):
        save_bytes(service, [])


def test_an_image_without_layers_and_a_parent_link_round_trip(service: ImageService, other: ImageService) -> None:
    empty = Img([], ["scratch-ish:1"])
    load_bytes(service, legacy_archive([empty]))
    assert service.lookup("scratch-ish:1") == empty.id
    base = Img([BASE], ["fam:base"])
    history = json.loads(base.config)["history"] + [{"created": "2024-05-06T07:08:09Z", "created_by": "layer 1"}]
    child = Img([BASE, MIDDLE], ["fam:child"], config_of([BASE, MIDDLE], history=history))
    load_bytes(service, legacy_archive([base, child], manifest=None))
    service.images.set_parent(child.id, base.id)
    archive = save_bytes(service, ["fam", "scratch-ish:1"])
    items = {m["Config"].rsplit("/", 1)[1]: m for m in json.loads(read_member(archive, "manifest.json"))}
    assert items[child.id[7:]]["Parent"] == base.id and "Parent" not in items[base.id[7:]]
    assert items[empty.id[7:]]["Layers"] == []
    load_bytes(other, archive)
    assert other.images.get_parent(child.id) == base.id
    assert other.lookup("scratch-ish:1") == empty.id


def test_a_moved_tag_is_reported(service: ImageService) -> None:
    load_bytes(service, legacy_archive([APP]))
    again = Img([BASE], ["app:1"])
    result = load_bytes(service, legacy_archive([again]))
    assert result.moved_tags == (tarexport.MovedTag("app:1", APP.id, again.id),)
    assert result.messages()[0] == (
        f"The image app:1 already exists, renaming the old one with ID {APP.id} to empty string"
    )
    assert service.lookup("app:1") == again.id and service.lookup("app:latest") == APP.id
    assert result.new_layers == ()  # BASE was there already: not read again


def test_a_stream_that_cannot_seek_is_spooled_and_a_compressed_archive_decompressed(service: ImageService) -> None:
    archive = legacy_archive([APP])
    result = tarexport.load(service, io.BufferedReader(Unseekable(gzip.compress(archive))))
    assert result.image_ids == (APP.id,)
    assert visible_state(service)["tmp"] == []  # the spool file is gone


def test_layers_may_be_gzip_or_zstd_compressed(service: ImageService) -> None:
    items = [{"Config": "config.json", "RepoTags": ["zipped:1"], "Layers": ["a.tar.gz", "b.tar.zst", "c.tar"]}]
    archive = make_tar([
        ("a.tar.gz", gzip.compress(BASE)), ("b.tar.zst", zstandard.ZstdCompressor().compress(MIDDLE)),
        ("c.tar", TOP), ("config.json", APP.config), ("manifest.json", json.dumps(items).encode()),
    ])  # fmt: skip
    result = load_bytes(service, archive)
    assert result.image_ids == (APP.id,) and service.lookup("zipped:1") == APP.id
    assert visible_state(service)["dist"] == []  # compressed, but no digest names these blobs


def test_links_inside_the_archive_are_followed(service: ImageService) -> None:
    items = [{"Config": "./cfg", "RepoTags": ["linked:1"], "Layers": ["l/base", "via/middle.tar", "hard"]}]
    archive = make_tar([
        ("real/", None), ("real/base.tar", BASE), ("real/middle.tar", MIDDLE), ("real/top.tar", TOP),
        ("l/", None), ("l/base", "symlink", "../real/base.tar"),  # a file symlink, relative
        ("via", "symlink", "real"),  # a directory symlink in the middle of a path
        ("hard", "link", "real/top.tar"),  # a hardlink names its target from the archive root
        ("cfg", APP.config), ("manifest.json", json.dumps(items).encode()),
    ])  # fmt: skip
    assert load_bytes(service, archive).image_ids == (APP.id,)


def test_an_archive_from_docker_25_loads_through_manifest_json(service: ImageService, other: ImageService) -> None:
    load_bytes(service, legacy_archive([APP]))
    archive = save_bytes(service, ["app:1"])
    # Without manifest.json the same archive is an OCI image layout; it names the same image.
    as_oci = make_tar([(n, read_member(archive, n)) for n, m in members(archive).items()
                       if m.isfile() and n != "manifest.json"])  # fmt: skip
    result = load_bytes(other, as_oci)
    assert result.format == "oci-layout" and result.image_ids == (APP.id,) and result.tags == ("app:1",)


def test_an_oci_layout_loads_the_manifest_for_this_platform(service: ImageService) -> None:
    blobs: dict[str, bytes] = {}
    amd64 = oci_image(APP, blobs, compress="gzip")
    arm = Img([BASE], [], config_of([BASE], architecture="arm64"))
    arm64 = oci_image(arm, blobs)
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        descriptor(mt.OCI_MANIFEST, arm64, platform={"os": "linux", "architecture": "arm64"}),
        descriptor(mt.OCI_MANIFEST, amd64, platform={"os": "linux", "architecture": "amd64"}),
    ]}).encode()  # fmt: skip
    blobs[sha(index)] = index
    tool = oci_image(TOOL, blobs, compress="zstd")
    layout = oci_layout([
        descriptor(mt.OCI_INDEX, index, annotations={"io.containerd.image.name": "docker.io/hull/app:3"}),
        descriptor(mt.OCI_MANIFEST, tool, annotations={"org.opencontainers.image.ref.name": "tool:9"}),
        descriptor(mt.OCI_MANIFEST, tool, annotations={"org.opencontainers.image.ref.name": "9"}),
    ], blobs)  # fmt: skip
    result = load_bytes(service, layout)
    assert result.format == "oci-layout"
    assert result.images == (
        tarexport.LoadedImage(APP.id, ("hull/app:3",)),
        tarexport.LoadedImage(TOOL.id, ("tool:9",)),
    )
    assert any("'9' is only a tag" in note for note in result.notes)
    assert not service.images.exists(arm.id)
    # The gzip blobs' digests are known and verified: recorded for the puller. (TOOL's zstd blobs were not read:
    # its layers were APP's, already in the store.)
    for layer in (BASE, MIDDLE, TOP):
        assert service.dist.get_diff_id(sha(gzip.compress(layer, mtime=0))) == sha(layer)


# --- bad archives ------------------------------------------------------------------------------------

GOOD = legacy_archive([APP])
LAYER0, LAYER1, LAYER2 = (f"{hashlib.sha256(f'{APP.id}/{i}'.encode()).hexdigest()}/layer.tar" for i in range(3))


def manifest_with(**changes: Any) -> list[dict[str, Any]]:
    item = {"Config": f"{APP.id[7:]}.json", "RepoTags": ["app:1"], "Layers": [LAYER0, LAYER1, LAYER2]}
    item.update(changes)
    return [item]


def wrong_diff_id_archive() -> bytes:
    # The config claims another top layer: BASE and MIDDLE load fine before TOP fails its check.
    bad = Img([BASE, MIDDLE, TOP], ["app:1"], config_of([BASE, MIDDLE, MIDDLE]))
    entries = [(n, read_member(GOOD, n)) for n, m in members(GOOD).items() if m.isfile()]
    items = manifest_with(Config=f"{bad.id[7:]}.json")
    return make_tar([e for e in entries if e[0] != "manifest.json"]
                    + [(f"{bad.id[7:]}.json", bad.config), ("manifest.json", json.dumps(items).encode())])  # fmt: skip


def truncated_archive() -> bytes:
    """manifest.json first, then the archive cut in the middle of a layer's content."""
    archive = make_tar([("manifest.json", json.dumps(manifest_with()).encode()), *[
        (n, read_member(GOOD, n)) for n, m in members(GOOD).items() if m.isfile() and n != "manifest.json"]])
    cut = next(m for m in members(archive).values() if m.name == LAYER1)
    return archive[: cut.offset_data + cut.size // 2]


def oci_with(mutate: str) -> bytes:
    blobs: dict[str, bytes] = {}
    manifest = oci_image(APP, blobs)
    desc = descriptor(mt.OCI_MANIFEST, manifest, annotations={"org.opencontainers.image.ref.name": "a:1"})
    layout = b'{"imageLayoutVersion": "1.0.0"}'
    if mutate == "blob-digest":  # the same layer, but not the blob the digest names (another gzip header)
        blobs[sha(gzip.compress(MIDDLE, mtime=0))] = gzip.compress(MIDDLE, mtime=12345)
    elif mutate == "blob-size":
        blobs[sha(gzip.compress(MIDDLE, mtime=0))] = gzip.compress(MIDDLE + b"\0" * 512, mtime=0)
    elif mutate == "manifest-digest":
        blobs[sha(manifest)] = manifest.replace(b'"schemaVersion": 2', b'"schemaVersion" :2')
    elif mutate == "missing-blob":
        del blobs[APP.id]
    elif mutate == "layout-version":
        layout = b'{"imageLayoutVersion": "9.9.9"}'
    elif mutate == "platform":
        index = json.dumps({"schemaVersion": 2, "manifests": [descriptor(
            mt.OCI_MANIFEST, manifest, platform={"os": "linux", "architecture": "s390x"})]}).encode()
        blobs[sha(index)] = index
        desc = descriptor(mt.OCI_INDEX, index)
    elif mutate == "bad-name":
        desc["annotations"] = {"io.containerd.image.name": "no spaces allowed:1"}
    return oci_layout([desc], blobs, layout=layout)


BAD_ARCHIVES = {
    "not a tar": (b"this is not a tar archive" * 40, "not a valid tar archive"),
    "empty": (b"", "not a valid tar archive"),
    "no manifest": (make_tar([("hello", b"x")]), "neither manifest.json"),
    "manifest not JSON": (legacy_archive([APP], manifest=b"[{"), "manifest.json is not valid JSON"),
    "manifest null": (legacy_archive([APP], manifest=b"null"), "manifest cannot be null"),
    "manifest not a list": (legacy_archive([APP], manifest={"Config": "x"}), "must be a JSON list"),
    "config missing": (legacy_archive([APP], drop=(f"{APP.id[7:]}.json",)), "which is not in the archive"),
    "layer missing": (legacy_archive([APP], drop=(LAYER1,)), "which is not in the archive"),
    "path climbs out": (legacy_archive([APP], manifest=manifest_with(Config="../../etc/pw")), "escapes the archive"),
    "absolute path": (legacy_archive([APP], manifest=manifest_with(Config="/etc/passwd")), "escapes the archive"),
    "symlink climbs out": (
        legacy_archive([APP], manifest=manifest_with(Config="cfg.json"), extra=[("cfg.json", "symlink", "../../x")]),
        "leads out of the archive",
    ),
    "absolute symlink": (
        legacy_archive([APP], manifest=manifest_with(Config="cfg.json"), extra=[("cfg.json", "symlink", "/etc/pw")]),
        "outside the archive",
    ),
    "symlink loop": (
        legacy_archive([APP], manifest=manifest_with(Config="a"), extra=[("a", "symlink", "b"), ("b", "symlink", "a")]),
        "too many levels",
    ),
    "config is a directory": (
        legacy_archive([APP], manifest=manifest_with(Config="blobs"), extra=[("blobs/", None)]),
        "not a regular file",
    ),
    "diff id mismatch": (wrong_diff_id_archive(), "invalid diffID for layer 2"),
    "layer count": (legacy_archive([APP], manifest=manifest_with(Layers=[])), "length mismatch: expected 0, got 3"),
    "tag without a tag": (legacy_archive([APP], manifest=manifest_with(RepoTags=["app"])), 'invalid tag "app"'),
    "bad tag": (legacy_archive([APP], manifest=manifest_with(RepoTags=["Bad Name:1"])), "invalid tag"),
    "config not JSON": (legacy_archive([Img([BASE], ["a:1"], b"{not json")]), "not JSON"),
    "config without rootfs": (legacy_archive([Img([], ["a:1"], b'{"os": "linux"}')]), "no RootFS key"),
    "windows image": (
        legacy_archive([Img([BASE], ["a:1"], config_of([BASE], os="windows"))]),
        "cannot load windows image on linux",
    ),
    "truncated": (truncated_archive(), "truncated"),
    "corrupt gzip layer": (
        legacy_archive(
            [APP], manifest=manifest_with(Layers=[LAYER0, LAYER1, "c.gz"]),
            extra=[("c.gz", gzip.compress(TOP)[:-20] + b"garbage" * 3)],
        ),
        "not valid gzip",
    ),
    "layer tar escapes": (
        legacy_archive([Img([make_tar([("../evil", b"x")])], ["a:1"])]),
        "climbs out of the layer",
    ),
    "oci blob digest": (oci_with("blob-digest"), "does not match its digest"),
    "oci blob size": (oci_with("blob-size"), "its descriptor says"),
    "oci manifest digest": (oci_with("manifest-digest"), "does not match its digest"),
    "oci missing blob": (oci_with("missing-blob"), "which is not in the archive"),
    "oci layout version": (oci_with("layout-version"), "unsupported OCI image layout version"),
    "oci no platform": (oci_with("platform"), "has no image for linux/"),
    "oci bad name": (oci_with("bad-name"), "io.containerd.image.name"),
}


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_a_bad_archive_is_a_clear_error_that_changes_nothing(service: ImageService, case: str) -> None:
    data, message = BAD_ARCHIVES[case]
    load_bytes(service, legacy_archive([Img([BASE], ["keep:1"])]))  # something already there, to keep
    before = visible_state(service)
    with pytest.raises(InvalidArchive) as err:
        load_bytes(service, data)
    assert message in str(err.value)
    assert visible_state(service) == before
    assert service.lookup("keep:1")


def test_a_diff_id_mismatch_leaves_no_new_layer_even_on_a_fresh_store(service: ImageService) -> None:
    with pytest.raises(InvalidArchive, match="invalid diffID for layer 2"):
        load_bytes(service, wrong_diff_id_archive())
    assert visible_state(service) == {"images": [], "refs": [], "layers": [], "driver": [], "tmp": [], "dist": []}
    assert load_bytes(service, GOOD).image_ids == (APP.id,)  # and the store still works


def test_the_load_messages_are_dockers() -> None:
    result = tarexport.LoadResult(
        "docker-archive",
        (tarexport.LoadedImage("sha256:" + "a" * 64, ("x:1",)), tarexport.LoadedImage("sha256:" + "b" * 64, ())),
        (tarexport.MovedTag("x:1", "sha256:" + "c" * 64, "sha256:" + "a" * 64),),
    )
    assert result.messages() == [
        f"The image x:1 already exists, renaming the old one with ID sha256:{'c' * 64} to empty string",
        "Loaded image: x:1",
        f"Loaded image ID: sha256:{'b' * 64}",
    ]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1, max_size=4),
       keep=st.integers(0, len(GOOD)))  # fmt: skip
def test_a_damaged_archive_never_fails_any_other_way(
    service: ImageService, cuts: list[tuple[int, int]], keep: int
) -> None:
    """Bytes changed anywhere, the end cut off: the load succeeds or is an InvalidArgument, and a failed
    load leaves the store as it was."""
    data = bytearray(GOOD[:keep])
    for at, value in cuts:
        if at < len(data):
            data[at] = value
    before = visible_state(service)
    try:
        load_bytes(service, bytes(data))
    except InvalidArgument:
        assert visible_state(service) == before


@pytest.mark.container
def test_sigkill_in_the_middle_of_a_load_leaves_a_consistent_store(tmp_path: Path) -> None:
    """Kill `load` at random points, start again: no half layer or image, earlier images intact."""
    root = DataRoot(str(tmp_path / "data"))
    first = ImageService(root)
    base = Img([make_tar([("etc/", None), ("etc/motd", b"hi\n")])], tags=["base:1"])
    load_bytes(first, legacy_archive([base]))
    first.close()
    big = legacy_archive([Img([make_tar([(f"f{i:05d}", os.urandom(4096)) for i in range(6000)])], tags=["big:1"])])
    archive = tmp_path / "big.tar"
    archive.write_bytes(big)
    interrupted = 0
    for delay in (0.02, 0.05, 0.1, 0.2, 0.3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - killed
            try:
                with open(archive, "rb") as f:
                    tarexport.load(ImageService(root), f)
            finally:
                os._exit(0)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        again = ImageService(root)
        try:
            again.recover()
            layers = again.layers
            records = [layers.get(c) for c in layers.db.list()]
            assert sorted(again.driver.layer_ids()) == sorted(r.cache_id for r in records)  # nothing half-made
            assert not os.listdir(again.root.layerdb_tmp)
            image_id = again.lookup("base:1")  # the earlier image still works: saves byte for byte
            assert load_bytes(other_service(tmp_path), save_bytes(again, ["base:1"])).image_ids == (image_id,)
            try:
                big_id = again.lookup("big:1")
            except NotFound:
                interrupted += 1
                continue  # killed before the image was stored: its layers may stay, unused, for prune
            assert again.layers.exists(again.top_layer(big_id) or "")  # stored only once complete
        finally:
            again.close()
    assert interrupted >= 2, "the kills should land in the middle of most loads"


def other_service(tmp_path: Path) -> ImageService:
    """A fresh data root each call: where a saved archive is loaded back to check it."""
    return ImageService(DataRoot(tempfile.mkdtemp(dir=tmp_path)))
