"""layerdb: layers by chain id and container mounts, written in one step; recovery after SIGKILL; usage."""

import hashlib
import json
import os
import random
import select
import signal
import time
from pathlib import Path

import pytest

from hull.errors import Conflict, InvalidArgument, NotFound
from hull.images import ids
from hull.images.imagedb import ImageDB
from hull.images.layerdb import LayerDB
from hull.layout import DataRoot

pytestmark = pytest.mark.unit


def diff(n: int) -> str:
    return ids.diff_id(f"layer tar {n}".encode())


def cache(n: int) -> str:
    return hashlib.sha256(f"cache {n}".encode()).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> DataRoot:
    return DataRoot(str(tmp_path / "data"))


@pytest.fixture
def db(root: DataRoot) -> LayerDB:
    return LayerDB(root)


def test_register_writes_seed_004_format(db: LayerDB, root: DataRoot) -> None:
    base = db.register(diff(1), None, cache(1), 5574537, b"tar-split-1")
    assert base.chain_id == diff(1)  # ChainID(L1) = DiffID(L1)
    top = db.register(diff(2), base.chain_id, cache(2), 98318464, b"tar-split-2")
    assert top.chain_id == ids.chain_id([diff(1), diff(2)])
    d1 = Path(root.layerdb, base.chain_id[7:])
    assert sorted(os.listdir(d1)) == ["cache-id", "diff", "size", "tar-split.json.gz"]
    assert (d1 / "cache-id").read_bytes() == cache(1).encode()
    assert (d1 / "diff").read_bytes() == diff(1).encode()
    assert (d1 / "size").read_bytes() == b"5574537"  # no trailing newline, as in the seed
    d2 = Path(root.layerdb, top.chain_id[7:])
    assert sorted(os.listdir(d2)) == ["cache-id", "diff", "parent", "size", "tar-split.json.gz"]
    assert (d2 / "parent").read_bytes() == base.chain_id.encode()
    assert db.get(top.chain_id) == top
    assert db.tar_split(top.chain_id) == b"tar-split-2"
    assert db.list() == sorted([base.chain_id, top.chain_id])
    assert db.children(base.chain_id) == [top.chain_id]
    assert os.listdir(root.layerdb_tmp) == []


def test_register_refuses_bad_input_and_duplicates(db: LayerDB, root: DataRoot) -> None:
    db.register(diff(1), None, cache(1), 1, b"")
    with pytest.raises(Conflict, match="already exists"):
        db.register(diff(1), None, cache(9), 1, b"")
    with pytest.raises(NotFound, match="layer does not exist"):
        db.register(diff(2), diff(7), cache(2), 1, b"")
    for args in [
        ("sha256:abc", None, cache(2), 1, b""),
        (diff(2), None, "../../escape", 1, b""),
        (diff(2), None, cache(2), -1, b""),
        (diff(2), None, cache(2), True, b""),
        (diff(2), None, cache(2), 1, "not bytes"),
        (diff(2), "garbage", cache(2), 1, b""),
    ]:
        with pytest.raises(InvalidArgument):
            db.register(*args)  # type: ignore[arg-type]
    assert db.list() == [diff(1)]
    assert os.listdir(root.layerdb_tmp) == []
    with pytest.raises(NotFound):
        db.get(diff(5))
    with pytest.raises(InvalidArgument):
        db.get("../x")


def test_delete_only_unused_records(db: LayerDB, root: DataRoot) -> None:
    a = db.register(diff(1), None, cache(1), 1, b"a")
    b = db.register(diff(2), a.chain_id, cache(2), 2, b"b")
    container = ids.new_id()
    db.create_mount(container, cache(3), b.chain_id)
    with pytest.raises(Conflict, match=r"layer .* is on top of it"):
        db.delete(a.chain_id)
    with pytest.raises(Conflict, match="in use by container"):
        db.delete(b.chain_id)
    assert db.delete_mount(container).mount_id == cache(3)
    assert db.delete(b.chain_id) == b
    assert db.delete(a.chain_id) == a
    assert db.list() == []
    assert os.listdir(root.layerdb_tmp) == []
    with pytest.raises(NotFound):
        db.delete(a.chain_id)


def test_mounts(db: LayerDB, root: DataRoot) -> None:
    layer = db.register(diff(1), None, cache(1), 1, b"")
    container, mount = ids.new_id(), ids.new_id()
    rec = db.create_mount(container, mount, layer.chain_id)
    d = Path(root.layerdb_mounts, container)
    assert (d / "mount-id").read_bytes() == mount.encode()
    assert (d / "init-id").read_bytes() == f"{mount}-init".encode()
    assert (d / "parent").read_bytes() == layer.chain_id.encode()
    assert db.get_mount(container) == rec
    assert db.list_mounts() == [container]
    scratch = db.create_mount(ids.new_id(), ids.new_id(), None)  # an image with no layers
    assert scratch.parent is None
    with pytest.raises(Conflict):
        db.create_mount(container, ids.new_id(), None)
    with pytest.raises(NotFound):
        db.create_mount(ids.new_id(), ids.new_id(), diff(9))
    with pytest.raises(InvalidArgument):
        db.create_mount("short", ids.new_id(), None)
    with pytest.raises(InvalidArgument):
        db.create_mount(ids.new_id(), ids.new_id(), None, init_id="x-init")
    with pytest.raises(NotFound):
        db.get_mount(ids.new_id())
    (d / "init-id").write_text("junk")
    with pytest.raises(InvalidArgument, match="corrupt"):
        db.get_mount(container)


def test_recover_cleans_tmp_and_broken_records(db: LayerDB, root: DataRoot) -> None:
    a = db.register(diff(1), None, cache(1), 1, b"a")
    b = db.register(diff(2), a.chain_id, cache(2), 2, b"b")
    c = db.register(diff(3), b.chain_id, cache(3), 3, b"c")
    other = db.register(diff(4), None, cache(4), 4, b"d")
    good_mount = db.create_mount(ids.new_id(), ids.new_id(), other.chain_id)
    orphan_mount = db.create_mount(ids.new_id(), ids.new_id(), c.chain_id)
    broken_mount = db.create_mount(ids.new_id(), ids.new_id(), None)
    # Garbage of interrupted writes, and damage of every kind.
    Path(root.layerdb_tmp, "write-set-123").mkdir()
    Path(root.layerdb_tmp, "write-set-123", "size").write_text("1")
    Path(root.layerdb_tmp, "stray-file").write_text("x")
    Path(root.layerdb, b.chain_id[7:], "size").unlink()  # b incomplete, so c (on b) is orphaned
    wrong = Path(root.layerdb, "f" * 64)
    wrong.mkdir()
    for name in ["cache-id", "diff", "size", "tar-split.json.gz"]:
        (wrong / name).write_bytes(Path(root.layerdb, other.chain_id[7:], name).read_bytes())
    Path(root.layerdb, "not-a-layer").mkdir()
    Path(root.layerdb_mounts, broken_mount.container_id, "mount-id").unlink()

    report = db.recover()
    assert report.removed_tmp == ["stray-file", "write-set-123"]
    removed = {r.name: r for r in report.removed_layers}
    assert set(removed) == {b.chain_id, c.chain_id, "sha256:" + "f" * 64, "not-a-layer"}
    assert "size is missing" in removed[b.chain_id].reason
    assert removed[b.chain_id].driver_id == cache(2)
    assert "parent layer" in removed[c.chain_id].reason and removed[c.chain_id].driver_id == cache(3)
    assert "chain id does not match" in removed["sha256:" + "f" * 64].reason
    mounts = {r.name: r for r in report.removed_mounts}
    assert set(mounts) == {orphan_mount.container_id, broken_mount.container_id}
    assert mounts[orphan_mount.container_id].driver_id == orphan_mount.mount_id
    assert mounts[broken_mount.container_id].driver_id is None
    assert db.list() == sorted([a.chain_id, other.chain_id])
    assert db.list_mounts() == [good_mount.container_id]
    assert db.get(a.chain_id) == a and db.tar_split(other.chain_id) == b"d"
    assert os.listdir(root.layerdb_tmp) == []
    assert db.recover().clean


def test_recover_on_an_empty_root(db: LayerDB) -> None:
    assert db.recover().clean
    assert db.list() == [] and db.list_mounts() == []


def test_usage_counts_images_and_mounts(db: LayerDB, root: DataRoot) -> None:
    images = ImageDB(root)
    a = db.register(diff(1), None, cache(1), 1, b"")
    b = db.register(diff(2), a.chain_id, cache(2), 1, b"")
    c = db.register(diff(3), b.chain_id, cache(3), 1, b"")
    d = db.register(diff(4), a.chain_id, cache(4), 1, b"")
    lonely = db.register(diff(5), None, cache(5), 1, b"")

    def image(*diff_ids: str) -> str:
        return images.put(json.dumps({"rootfs": {"type": "layers", "diff_ids": list(diff_ids)}}).encode())

    img_ab = image(diff(1), diff(2))
    img_abc = image(diff(1), diff(2), diff(3))
    container = ids.new_id()
    db.create_mount(container, ids.new_id(), d.chain_id)

    usage = db.usage(images)
    assert usage.by_images[a.chain_id] == {img_ab, img_abc}
    assert usage.by_images[c.chain_id] == {img_abc}
    assert usage.by_mounts[d.chain_id] == {container}
    assert usage.by_mounts[a.chain_id] == {container}  # the mount needs d's ancestors too
    assert usage.unused() == [lonely.chain_id]

    images.delete(img_abc)
    db.delete_mount(container)
    unused = db.usage(images).unused()
    assert set(unused) == {c.chain_id, d.chain_id, lonely.chain_id}
    for chain in unused:  # the order is safe: children first
        db.delete(chain)
    images.delete(img_ab)
    order = db.usage(images).unused()
    assert order == [b.chain_id, a.chain_id]
    for chain in order:
        db.delete(chain)
    assert db.list() == []


# -- crash tests: SIGKILL a writer, then recover() -----------------------------------------------

TAR_SPLIT_SIZE = 1 << 20


def tar_split_for(n: int) -> bytes:
    """Deterministic, large tar-split data so that a kill often lands mid-write."""
    block = hashlib.sha256(f"tar-split {n}".encode()).digest()
    return block * (TAR_SPLIT_SIZE // len(block))


def _writer(root: DataRoot, report_fd: int, first: int, stop_in: str | None = None) -> None:
    """Child: register a stack of layers forever (layer `first` on top of layers 1..first-1),
    reporting each completed chain id on a pipe.

    With stop_in, block forever while writing that file of the third layer it writes (a
    deterministic kill in the middle of a write)."""
    db = LayerDB(root)
    if stop_in is not None:
        import hull.images.layerdb as layerdb_module

        real = layerdb_module.atomic_write
        count = {"n": 0}

        def blocking(path: str, data: bytes, mode: int = 0o644, fsync: bool = True) -> None:
            if os.path.basename(path) == stop_in:
                count["n"] += 1
                if count["n"] == 3:
                    real(path, data[: len(data) // 2], mode, fsync)  # a torn write, then hang
                    os.write(report_fd, b"BLOCKED\n")
                    while True:
                        time.sleep(1)
            real(path, data, mode, fsync)

        layerdb_module.atomic_write = blocking
    parent = ids.chain_id([diff(i) for i in range(1, first)]) if first > 1 else None
    n = first
    while True:
        rec = db.register(diff(n), parent, cache(n), n, tar_split_for(n))
        parent = rec.chain_id
        os.write(report_fd, f"{n} {rec.chain_id}\n".encode())
        n += 1


def _run_and_kill(root: DataRoot, delay: float, first: int = 1, stop_in: str | None = None) -> list[tuple[int, str]]:
    """Fork a writer, SIGKILL it after `delay` seconds (or once it blocks), return what it completed."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            os.close(r)
            _writer(root, w, first, stop_in)
        finally:
            os._exit(1)
    os.close(w)
    done: list[tuple[int, str]] = []
    buf = b""
    deadline = time.monotonic() + (30 if stop_in else delay)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(r, 65536)
            if not chunk:
                break
            buf += chunk
            if stop_in and b"BLOCKED\n" in buf:
                break
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        buf += _drain(r)
        os.close(r)
    for line in buf.decode().splitlines():
        if line != "BLOCKED":
            n, chain = line.split()
            done.append((int(n), chain))
    return done


def _drain(fd: int) -> bytes:
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0)
        if not ready:
            return out
        chunk = os.read(fd, 65536)
        if not chunk:
            return out
        out += chunk


def _check_consistent(db: LayerDB, root: DataRoot, done: list[tuple[int, str]]) -> int:
    """After recover(): tmp is empty, every listed layer is complete, every completed one is there.
    Returns the height of the stack (layers 1..height are all there)."""
    assert os.listdir(root.layerdb_tmp) == []
    listed = set(db.list())
    for n, chain in done:
        assert chain in listed, f"layer {n} completed before the kill but is gone"
    numbers = []
    for chain in listed:
        rec = db.get(chain)  # raises if anything is missing or inconsistent
        n = next(i for i in range(1, 10_000) if diff(i) == rec.diff_id)
        numbers.append(n)
        assert rec.cache_id == cache(n) and rec.size == n
        assert db.tar_split(chain) == tar_split_for(n)
        assert rec.parent is None or rec.parent in listed
    assert sorted(numbers) == list(range(1, len(numbers) + 1))
    return len(numbers)


@pytest.mark.parametrize("stop_in", ["cache-id", "size", "tar-split.json.gz"])
def test_sigkill_in_the_middle_of_a_layer_write(root: DataRoot, stop_in: str) -> None:
    done = _run_and_kill(root, 0, stop_in=stop_in)
    assert [n for n, _ in done] == [1, 2]
    db = LayerDB(root)
    assert os.listdir(root.layerdb_tmp) != []  # the torn write was left behind
    assert db.list() == sorted(chain for _, chain in done)  # ...but never in layerdb
    report = db.recover()
    assert report.removed_tmp and not report.removed_layers
    assert _check_consistent(db, root, done) == 2
    assert db.recover().clean


def test_sigkill_at_random_moments(root: DataRoot) -> None:
    """Kill a writer again and again; each time recover() leaves a complete stack that the next
    writer builds on, and every layer completed before any kill still reads back."""
    rng = random.Random(4)
    db = LayerDB(root)
    everything: list[tuple[int, str]] = []
    height = 0
    for _ in range(6):
        done = _run_and_kill(root, rng.uniform(0.05, 0.4), first=height + 1)
        db.recover()
        everything += done
        new_height = _check_consistent(db, root, everything)
        assert new_height >= height + len(done)
        height = new_height
    assert height > 0, "the writer never completed a layer"
