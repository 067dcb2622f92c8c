"""imagedb: config bytes stored by image id and verified on read, metadata, prefix search, typed view."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from hull.errors import HullError, InvalidArgument, NotFound
from hull.images.imagedb import ImageDB, parse_config, rfc3339_nano
from hull.layout import DataRoot

pytestmark = pytest.mark.unit

DIFF1 = "sha256:50644c29ef5a27c9a40c393a73ece2479de78325cae7d762ef3cdc19bf42dd0a"
DIFF2 = "sha256:9c572ba82b91e3ac35c7351bdacc6876c67f5d9bc69c5e51e8b2deeafae95e4f"


def config(**overrides: object) -> bytes:
    """A config shaped like seed 004's (Docker writes it compact)."""
    doc: dict[str, object] = {
        "architecture": "amd64",
        "config": {
            "Hostname": "",
            "User": "nobody",
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/usr/local/openresty/bin/openresty", "-g", "daemon off;"],
            "ArgsEscaped": True,
            "Volumes": None,
            "WorkingDir": "/srv",
            "Entrypoint": None,
            "OnBuild": None,
            "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
            "Labels": {"maintainer": "Evan Wies <evan@neomantra.net>"},
            "StopSignal": "SIGQUIT",
        },
        "created": "2020-09-18T16:25:11.080239395Z",
        "docker_version": "18.06.0-ce",
        "history": [
            {"created": "2020-05-29T21:19:46.192045972Z", "created_by": "/bin/sh -c #(nop) ADD file:c92c in / "},
            {
                "created": "2020-05-29T21:19:46.363518345Z",
                "created_by": '/bin/sh -c #(nop)  CMD ["/bin/sh"]',
                "empty_layer": True,
            },
            {"created": "2020-09-18T16:25:10.806730628Z", "created_by": "/bin/sh -c #(nop) COPY file:871e in /x "},
        ],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [DIFF1, DIFF2]},
    }
    doc.update(overrides)
    return json.dumps(doc, separators=(",", ":")).encode()


@pytest.fixture
def root(tmp_path: Path) -> DataRoot:
    return DataRoot(str(tmp_path / "data"))


@pytest.fixture
def db(root: DataRoot) -> ImageDB:
    return ImageDB(root)


def test_put_get_byte_for_byte(db: ImageDB, root: DataRoot) -> None:
    raw = config()
    image_id = db.put(raw)
    assert image_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert Path(root.imagedb_content, image_id[7:]).read_bytes() == raw
    assert db.get(image_id) == raw
    assert db.get(image_id[7:]) == raw
    assert db.put(raw) == image_id  # idempotent
    assert db.list() == [image_id]
    assert db.exists(image_id)
    # The bytes are never re-serialized: key order and spacing survive.
    odd = b'{ "rootfs" : {"diff_ids":[], "type":"layers"}, "os":"linux" }\n'
    odd_id = db.put(odd)
    assert db.get(odd_id) == odd


def test_typed_view(db: ImageDB) -> None:
    cfg = db.get_config(db.put(config()))
    assert (cfg.architecture, cfg.os, cfg.author) == ("amd64", "linux", "")
    assert cfg.created == "2020-09-18T16:25:11.080239395Z"
    assert cfg.diff_ids == (DIFF1, DIFF2)
    c = cfg.config
    assert c.cmd == ("/usr/local/openresty/bin/openresty", "-g", "daemon off;")
    assert c.entrypoint is None
    assert c.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    assert (c.user, c.working_dir, c.stop_signal) == ("nobody", "/srv", "SIGQUIT")
    assert c.exposed_ports == ("443/tcp", "80/tcp")
    assert c.volumes == ()
    assert dict(c.labels) == {"maintainer": "Evan Wies <evan@neomantra.net>"}
    assert c.args_escaped is True
    assert [h.empty_layer for h in cfg.history] == [False, True, False]
    assert cfg.layers_in_history == len(cfg.diff_ids)
    # Go's StrSlice also takes a single string; a healthcheck is typed.
    cfg2 = parse_config(
        config(
            config={
                "Cmd": "sh",
                "Entrypoint": [],
                "Volumes": {"/data": {}},
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30000000000, "Retries": 3},
            }
        )
    )
    assert cfg2.config.cmd == ("sh",)
    assert cfg2.config.entrypoint == ()
    assert cfg2.config.volumes == ("/data",)
    assert cfg2.config.healthcheck is not None
    assert cfg2.config.healthcheck.test == ("CMD", "true")
    assert cfg2.config.healthcheck.interval == 30_000_000_000
    # A minimal scratch-like config: only rootfs.
    bare = parse_config(b'{"rootfs":{"type":"layers","diff_ids":null}}')
    assert bare.diff_ids == () and bare.config.cmd is None and bare.os == ""


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not JSON"),
        (b"\xff", "not JSON"),
        (b"[1,2]", "must be a JSON object"),
        (b'{"os":"linux"}', "invalid image JSON, no RootFS key"),
        (b'{"rootfs":{"type":"squash","diff_ids":[]}}', 'rootfs.type must be "layers"'),
        (b'{"rootfs":{"type":"layers","diff_ids":"x"}}', "rootfs.diff_ids must be a list of strings"),
        (b'{"rootfs":{"type":"layers","diff_ids":["sha256:xyz"]}}', "rootfs.diff_ids: invalid diff id"),
        (b'{"rootfs":{"type":"layers"},"os":3}', "os must be a string"),
        (b'{"rootfs":{"type":"layers"},"config":{"Env":"A=1"}}', "config.Env must be a list of strings"),
        (b'{"rootfs":{"type":"layers"},"config":{"Labels":{"a":1}}}', "config.Labels must be an object of strings"),
        (b'{"rootfs":{"type":"layers"},"config":{"ExposedPorts":["80"]}}', "config.ExposedPorts must be a JSON object"),
        (b'{"rootfs":{"type":"layers"},"config":{"StopTimeout":true}}', "config.StopTimeout must be an integer"),
        (b'{"rootfs":{"type":"layers"},"config":[]}', "config must be a JSON object"),
        (b'{"rootfs":{"type":"layers"},"history":{}}', "history must be a list"),
        (b'{"rootfs":{"type":"layers"},"history":[{"empty_layer":"yes"}]}', "history[0].empty_layer must be true"),
        (b'{"rootfs":{"type":"layers"},"config":{"Healthcheck":{"Retries":"3"}}}', "config.Healthcheck.Retries"),
    ],
)
def test_malformed_configs_are_refused_before_writing(db: ImageDB, root: DataRoot, raw: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        db.put(raw)
    assert message in e.value.message
    assert "invalid image config" in e.value.message
    assert db.list() == []
    assert not os.path.exists(root.imagedb_content) or os.listdir(root.imagedb_content) == []


def test_corrupt_content_is_detected_never_returned(db: ImageDB, root: DataRoot) -> None:
    image_id = db.put(config())
    path = Path(root.imagedb_content, image_id[7:])
    path.write_bytes(config(os="windows"))
    with pytest.raises(InvalidArgument, match=f"image {image_id} in imagedb is corrupt: failed to verify"):
        db.get(image_id)
    assert db.recover().corrupt == [image_id]
    assert db.put(config()) == image_id  # putting the right bytes again repairs it
    assert db.get(image_id) == config()


def test_not_found_and_bad_ids(db: ImageDB) -> None:
    missing = "sha256:" + "0" * 64
    with pytest.raises(NotFound, match=f"No such image: {missing}"):
        db.get(missing)
    with pytest.raises(NotFound):
        db.delete(missing)
    for bad in ["", "busybox", "sha256:abc", "../../etc/passwd", "sha256:" + "A" * 64]:
        with pytest.raises(InvalidArgument):
            db.get(bad)


def test_search_by_prefix(db: ImageDB) -> None:
    made = sorted(db.put(config(created=f"2020-01-0{i}T00:00:00Z")) for i in range(1, 10))
    for image_id in made:
        assert db.search(image_id) == image_id
        assert db.search(image_id[7:]) == image_id
        assert db.search(image_id[7:19]) == image_id
    # Nine ids share some one-digit prefix (pigeonhole over 16 digits is not guaranteed): build one that does.
    by_first: dict[str, list[str]] = {}
    for image_id in made:
        by_first.setdefault(image_id[7], []).append(image_id)
    shared = [k for k, v in by_first.items() if len(v) > 1]
    extra = 10
    while not shared:
        new = db.put(config(created=f"2021-01-{extra:02d}T00:00:00Z"))
        extra += 1
        by_first.setdefault(new[7], []).append(new)
        shared = [k for k, v in by_first.items() if len(v) > 1]
    with pytest.raises(InvalidArgument, match=f"multiple IDs found with provided prefix: {shared[0]}"):
        db.search(shared[0])
    unused = next(c for c in "0123456789abcdef" if c not in by_first)
    with pytest.raises(NotFound, match=f"No such image: {unused}"):
        db.search(unused)
    with pytest.raises(NotFound, match="No such image: busybox"):
        db.search("busybox")


def test_metadata_parent_children_last_updated(db: ImageDB, root: DataRoot) -> None:
    base = db.put(config(created="2020-01-01T00:00:00Z"))
    child1 = db.put(config(created="2020-01-02T00:00:00Z"))
    child2 = db.put(config(created="2020-01-03T00:00:00Z"))
    assert db.get_parent(child1) is None
    db.set_parent(child1, base)
    db.set_parent(child2, base[7:])
    assert Path(root.imagedb_metadata, child1[7:], "parent").read_bytes() == base.encode()
    assert db.get_parent(child1) == base
    assert db.children(base) == sorted([child1, child2])
    assert db.children(child1) == []
    with pytest.raises(NotFound):
        db.set_parent(child1, "sha256:" + "f" * 64)
    stamp = db.set_last_updated(base, 1_605_072_912_051_705_855)
    assert stamp == "2020-11-11T05:35:12.051705855Z"
    assert Path(root.imagedb_metadata, base[7:], "lastUpdated").read_bytes() == stamp.encode()
    assert db.get_last_updated(base) == stamp
    assert rfc3339_nano(1_600_000_000_000_000_000) == "2020-09-13T12:26:40Z"
    assert rfc3339_nano(1_600_000_000_100_000_000) == "2020-09-13T12:26:40.1Z"
    # A corrupt parent file is a clear error, and names no child.
    Path(root.imagedb_metadata, child2[7:], "parent").write_text("garbage")
    with pytest.raises(HullError, match="corrupt parent"):
        db.get_parent(child2)
    assert db.children(base) == [child1]
    db.delete(base)
    assert not db.exists(base)
    assert not os.path.exists(os.path.join(root.imagedb_metadata, base[7:]))
    assert db.list() == sorted([child1, child2])


def test_recover_removes_temp_files_and_orphan_metadata(db: ImageDB, root: DataRoot) -> None:
    image_id = db.put(config())
    db.set_last_updated(image_id)
    Path(root.imagedb_content, image_id[7:] + ".tmp-4242").write_bytes(b"half")
    Path(root.imagedb_metadata, image_id[7:], "parent.tmp-4242").write_bytes(b"half")
    orphan = "e" * 64
    os.makedirs(os.path.join(root.imagedb_metadata, orphan))
    report = db.recover()
    assert len(report.removed_temp_files) == 2
    assert report.removed_orphan_metadata == [orphan]
    assert report.corrupt == []
    assert db.list() == [image_id]
    assert db.get(image_id) == config()
    again = db.recover()
    assert again.removed_temp_files == [] and again.removed_orphan_metadata == []
