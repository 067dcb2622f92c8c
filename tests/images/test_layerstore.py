"""The layer store on real graph drivers: layers applied and shared by chain id, rebuilt byte for
byte, containers' init and read-write layers, recovery after SIGKILL in the middle of a register."""

import hashlib
import io
import os
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.images import ids
from hull.images.layerstore import LayerStore
from hull.layout import DataRoot
from hull.storage.driver import open_driver
from hull.testing import mounts_under
from hull.testing.layers import make_layer_tar

pytestmark = pytest.mark.container




BASE = make_layer_tar(
    [("etc/", None), ("etc/os", b"hull\n"), ("bin/", None), ("bin/tool", b"#!/bin/sh\n"), ("old", b"x")]
)
MIDDLE = make_layer_tar([("etc/", None), ("etc/os", b"hull 2\n"), ("etc/new", b"new\n")])
TOP = make_layer_tar([(".wh.old", b""), ("bin/", None), ("bin/.wh..wh..opq", b""), ("bin/other", b"o")])


@pytest.fixture(params=["overlay2", "vfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LayerStore]:
    root = DataRoot(str(tmp_path / "data"))
    s = LayerStore(open_driver(root, request.param))
    yield s
    s.driver.cleanup()
    assert not mounts_under(tmp_path)


def register_all(store: LayerStore, tars: list[bytes]) -> list[str]:
    parent = None
    for t in tars:
        parent = store.register(io.BytesIO(t), parent).chain_id
    assert parent is not None
    return [layer.chain_id for layer in store.chain(parent)]


def test_chain_ids_and_layerdb_files_are_dockers(store: LayerStore) -> None:
    chains = register_all(store, [BASE, MIDDLE, TOP])
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in (BASE, MIDDLE, TOP)]
    assert chains == ids.chain_ids(diff_ids)
    top = Path(store.root.layerdb) / ids.hex_of(chains[2])
    assert (top / "diff").read_text() == diff_ids[2]
    assert (top / "parent").read_text() == chains[1]
    assert not (Path(store.root.layerdb) / ids.hex_of(chains[0]) / "parent").exists()
    assert int((Path(store.root.layerdb) / ids.hex_of(chains[0]) / "size").read_text()) == len(b"hull\n#!/bin/sh\nx")
    if store.driver.name == "overlay2":
        layer = Path(store.driver.home) / store.get(chains[2]).cache_id
        assert {"diff", "link", "lower", "work", "committed"} <= set(os.listdir(layer))
        link = (layer / "link").read_text()
        assert os.readlink(Path(store.driver.home) / "l" / link) == f"../{layer.name}/diff"


def test_layers_are_rebuilt_byte_for_byte(store: LayerStore) -> None:
    for chain, original in zip(register_all(store, [BASE, MIDDLE, TOP]), (BASE, MIDDLE, TOP), strict=True):
        out = io.BytesIO()
        store.tar_stream(chain, out)
        assert out.getvalue() == original


def test_the_same_layer_is_stored_once(store: LayerStore) -> None:
    first = store.register(io.BytesIO(BASE), None)
    again = store.register(io.BytesIO(BASE), None)
    assert again == first
    assert store.driver.layer_ids() == [first.cache_id]


def test_a_container_sees_the_union_and_its_changes_become_a_layer(store: LayerStore) -> None:
    top = register_all(store, [BASE, MIDDLE, TOP])[-1]
    m = store.create_rw("c" * 64, top)
    assert m.init_id == m.mount_id + "-init"
    merged = Path(store.mount("c" * 64))
    try:
        assert (merged / "etc/os").read_text() == "hull 2\n"
        assert (merged / "etc/new").exists() and not (merged / "old").exists()
        assert sorted(os.listdir(merged / "bin")) == ["other"]  # the opaque directory hid bin/tool
        assert (merged / ".dockerenv").exists() and (merged / "etc/hosts").exists()  # the init layer
        (merged / "created").write_text("by the container")
        os.unlink(merged / "etc/new")
    finally:
        store.unmount("c" * 64)
    changes = {str(c) for c in store.changes_rw("c" * 64)}
    assert {"A /created", "D /etc/new", "C /etc"} <= changes
    out = io.BytesIO()
    diff_id = store.diff_rw("c" * 64, out)
    assert diff_id == "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
    assert "created" in names and "etc/.wh.new" in names
    assert not any("hosts" in n or "dockerenv" in n for n in names)  # init layer files stay out of commits
    committed = store.register(io.BytesIO(out.getvalue()), top)
    assert committed.parent == top
    store.delete_rw("c" * 64)
    assert sorted(store.driver.layer_ids()) == sorted(store.get(c).cache_id for c in store.db.list())


def test_delete_removes_the_files(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    store.delete(base.chain_id)
    assert store.driver.layer_ids() == [] and store.db.list() == []


def test_sigkill_in_the_middle_of_register_then_recover(store: LayerStore, tmp_path: Path) -> None:
    base = store.register(io.BytesIO(BASE), None)
    big = make_layer_tar([(f"f{i:05d}", os.urandom(2048)) for i in range(3000)])
    for delay in (0.005, 0.02, 0.05, 0.1):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child is killed
            try:
                store.register(io.BytesIO(big), base.chain_id)
            finally:
                os._exit(0)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        report = LayerStore(open_driver(store.root, store.driver.name)).recover()
        assert report is not None
        # Consistent: every driver layer is named by a complete record, and the base still works.
        assert sorted(store.driver.layer_ids()) == sorted(store.get(c).cache_id for c in store.db.list())
        out = io.BytesIO()
        store.tar_stream(base.chain_id, out)
        assert out.getvalue() == BASE
    finished = store.register(io.BytesIO(big), base.chain_id)  # and the same register can complete now
    assert finished.parent == base.chain_id
