"""The overlay2 graph driver on the real kernel: Docker's layout, unions, whiteouts, mounts and their counts.

Layer contents are written straight into diff dirs (no tar apply). Every test leaves no mount
behind, even when it fails: the `root` fixture unmounts whatever is left under tmp_path.
"""

import errno
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.errors import Conflict, HullError, InvalidArgument, NotFound
from hull.layout import DataRoot
from hull.runtime import syscalls
from hull.storage import overlay2
from hull.storage.driver import DriverUnavailable, open_driver, read_mount_points
from hull.storage.overlay2 import Overlay2Driver
from hull.storage.vfs import VfsDriver
from hull.testing import mounts_under

pytestmark = pytest.mark.container


def _unmount_under(path: Path) -> None:
    for point in reversed(mounts_under(path)):  # the last mounted (the deepest) first
        try:
            syscalls.umount2(point, syscalls.MNT_DETACH)
        except OSError:
            pass


@pytest.fixture
def root(tmp_path: Path) -> Iterator[DataRoot]:
    yield DataRoot(str(tmp_path / "root"))
    _unmount_under(tmp_path)


@pytest.fixture
def driver(root: DataRoot) -> Iterator[Overlay2Driver]:
    d = Overlay2Driver(root)
    yield d
    d.cleanup()


def write(driver: Overlay2Driver, id: str, rel: str, content: str = "") -> str:
    path = os.path.join(driver.diff_path(id), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(content)
    return path


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def image_layer(driver: Overlay2Driver, id: str, parent: str | None, files: dict[str, str]) -> None:
    driver.create(id, parent)
    for rel, content in files.items():
        write(driver, id, rel, content)
    driver.mark_committed(id)


def chain(driver: Overlay2Driver, n: int, prefix: str = "layer") -> str:
    """n committed image layers, each adding `f<i>` and rewriting `top`; return the top id."""
    parent = None
    for i in range(n):
        id = f"{prefix}{i}"
        image_layer(driver, id, parent, {f"f{i}": str(i), "top": str(i)})
        parent = id
    assert parent is not None
    return parent


def mount_count(path: str) -> int:
    return read_mount_points().count(path)


def mount_options(path: str) -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == path:
                return line.split(" - ")[1].split()[2]
    raise AssertionError(f"{path} is not mounted")


def test_layout_is_dockers(driver: Overlay2Driver) -> None:
    home = driver.home
    image_layer(driver, "base", None, {"etc/os-release": "base"})
    image_layer(driver, "mid", "base", {"mid": "m"})
    driver.create_readwrite("ctr", "mid")

    assert driver.whiteouts == "overlay"
    assert home == os.path.join(driver.root.path, "overlay2")
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o710
    assert stat.S_IMODE(os.stat(os.path.join(home, "l")).st_mode) == 0o700
    links = {}
    for id in ("base", "mid", "ctr"):
        d = os.path.join(home, id)
        links[id] = read(os.path.join(d, "link"))
        assert re.fullmatch(r"[A-Z0-9]{26}", links[id])
        assert os.readlink(os.path.join(home, "l", links[id])) == f"../{id}/diff"
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o710
        assert stat.S_IMODE(os.stat(os.path.join(d, "diff")).st_mode) == 0o755
    assert len(set(links.values())) == 3

    assert sorted(os.listdir(os.path.join(home, "base"))) == ["committed", "diff", "link"]
    assert sorted(os.listdir(os.path.join(home, "mid"))) == ["committed", "diff", "link", "lower", "merged", "work"]
    assert sorted(os.listdir(os.path.join(home, "ctr"))) == ["diff", "link", "lower", "merged", "work"]
    assert read(os.path.join(home, "mid", "lower")) == f"l/{links['base']}"
    assert read(os.path.join(home, "ctr", "lower")) == f"l/{links['mid']}:l/{links['base']}"
    committed = os.stat(os.path.join(home, "mid", "committed"))
    assert committed.st_size == 0 and stat.S_IMODE(committed.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(home, "ctr", "work")).st_mode) == 0o700

    assert driver.metadata("ctr") == {
        "LowerDir": f"{home}/mid/diff:{home}/base/diff",
        "UpperDir": f"{home}/ctr/diff",
        "MergedDir": f"{home}/ctr/merged",
        "WorkDir": f"{home}/ctr/work",
    }
    assert "LowerDir" not in driver.metadata("base")
    assert driver.exists("ctr") and not driver.exists("nope")


def test_creating_a_child_freezes_a_readwrite_parent(driver: Overlay2Driver) -> None:
    image_layer(driver, "img", None, {"a": "1"})
    driver.create_readwrite("c-init", "img")
    assert not os.path.exists(os.path.join(driver.home, "c-init", "committed"))
    driver.create_readwrite("c", "c-init")
    assert os.path.exists(os.path.join(driver.home, "c-init", "committed"))  # as in the seeds' tree


def test_three_layers_unite(driver: Overlay2Driver) -> None:
    image_layer(driver, "l1", None, {"a": "from l1", "dir/x": "x", "only1": "1"})
    image_layer(driver, "l2", "l1", {"a": "from l2", "dir/y": "y"})
    image_layer(driver, "l3", "l2", {"c": "from l3"})
    driver.create_readwrite("rw", "l3")
    merged = driver.get("rw")
    try:
        assert merged == os.path.join(driver.home, "rw", "merged")
        assert sorted(os.listdir(merged)) == ["a", "c", "dir", "only1"]
        assert read(f"{merged}/a") == "from l2"
        assert sorted(os.listdir(f"{merged}/dir")) == ["x", "y"]
        assert read(f"{merged}/c") == "from l3"
        assert "lowerdir=/" in mount_options(merged)  # a short chain: absolute paths, like Docker's
    finally:
        driver.put("rw")
    assert mount_count(merged) == 0


def test_whiteout_and_opaque_dir_hide_lower_files(driver: Overlay2Driver) -> None:
    image_layer(driver, "l1", None, {"gone": "g", "keep": "k", "opq/old": "o", "opq/sub/deep": "d"})
    driver.create("l2", "l1")
    diff = driver.diff_path("l2")
    os.mknod(f"{diff}/gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))  # the overlay whiteout
    os.mkdir(f"{diff}/opq")
    os.setxattr(f"{diff}/opq", "trusted.overlay.opaque", b"y")
    write(driver, "l2", "opq/new", "n")
    driver.mark_committed("l2")
    driver.create_readwrite("rw", "l2")
    merged = driver.get("rw")
    try:
        assert sorted(os.listdir(merged)) == ["keep", "opq"]
        assert not os.path.lexists(f"{merged}/gone")
        assert os.listdir(f"{merged}/opq") == ["new"]
    finally:
        driver.put("rw")


def test_writes_go_to_the_readwrite_layer(driver: Overlay2Driver) -> None:
    image_layer(driver, "l1", None, {"edit": "old", "delete-me": "d", "dir/f": "f"})
    driver.create_readwrite("rw", "l1")
    merged = driver.get("rw")
    try:
        with open(f"{merged}/new", "w") as f:
            f.write("new")
        with open(f"{merged}/edit", "w") as f:
            f.write("changed")
        os.unlink(f"{merged}/delete-me")
        os.mkdir(f"{merged}/newdir")
    finally:
        driver.put("rw")
    diff = driver.diff_path("rw")
    assert read(f"{diff}/new") == "new"
    assert read(f"{diff}/edit") == "changed"
    whiteout = os.lstat(f"{diff}/delete-me")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
    assert os.path.isdir(f"{diff}/newdir")
    lower = driver.diff_path("l1")
    assert read(f"{lower}/edit") == "old" and read(f"{lower}/delete-me") == "d"
    assert sorted(os.listdir(lower)) == ["delete-me", "dir", "edit"]


def test_committed_layer_mounts_read_only(driver: Overlay2Driver) -> None:
    image_layer(driver, "l1", None, {"a": "1"})
    image_layer(driver, "l2", "l1", {"b": "2"})
    merged = driver.get("l2")
    try:
        assert sorted(os.listdir(merged)) == ["a", "b"]
        with pytest.raises(OSError) as e:
            open(f"{merged}/c", "w").close()
        assert e.value.errno == errno.EROFS
        assert "upperdir" not in mount_options(merged)
    finally:
        driver.put("l2")


def test_base_layer_is_served_from_its_diff(driver: Overlay2Driver) -> None:
    image_layer(driver, "base", None, {"a": "1"})
    assert driver.get("base") == driver.diff_path("base")
    assert not [m for m in read_mount_points() if m.startswith(driver.home)]
    driver.put("base")


def test_130_layer_image_mounts(driver: Overlay2Driver) -> None:
    top = chain(driver, 130)
    driver.create_readwrite("ctr", top)
    merged = driver.get("ctr")
    try:
        names = set(os.listdir(merged))
        assert names == {f"f{i}" for i in range(130)} | {"top"}
        assert read(f"{merged}/top") == "129"
        assert read(f"{merged}/f0") == "0"
        assert mount_count(merged) == 1
    finally:
        driver.put("ctr")
    assert mount_count(merged) == 0


@pytest.mark.parametrize(
    "lowerdir_plus, depth, how",
    [(None, 200, "lowerdir+="), (False, 130, "lowerdir=l/")],
    ids=["new-mount-api-200", "relative-in-private-cwd-130"],
)
def test_long_chains_by_each_mount_strategy(
    driver: Overlay2Driver, monkeypatch: pytest.MonkeyPatch, lowerdir_plus: bool | None, depth: int, how: str
) -> None:
    # False pretends the kernel has no "lowerdir+" (Linux < 6.8): Docker's relative options then.
    monkeypatch.setattr(overlay2, "_lowerdir_plus_works", lowerdir_plus)
    top = chain(driver, depth)
    driver.create_readwrite("ctr", top)
    merged = driver.get("ctr")
    try:
        assert how in mount_options(merged)
        assert len(os.listdir(merged)) == depth + 1
        assert read(f"{merged}/top") == str(depth - 1)
        with open(f"{merged}/w", "w") as f:
            f.write("w")
        assert read(f"{driver.diff_path('ctr')}/w") == "w"
        assert os.getcwd() != driver.home  # nobody moved the process
    finally:
        driver.put("ctr")


def test_too_many_layers_for_relative_options_is_a_clear_error(
    driver: Overlay2Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overlay2, "_lowerdir_plus_works", False)
    driver.create_readwrite("ctr", chain(driver, 200))
    with pytest.raises(HullError, match=r"cannot mount layer ctr \(200 lower layers\).*do not fit"):
        driver.get("ctr")
    assert mount_count(os.path.join(driver.home, "ctr", "merged")) == 0
    # and the failed get holds no reference
    monkeypatch.setattr(overlay2, "_lowerdir_plus_works", None)
    driver.get("ctr")
    driver.put("ctr")
    assert not driver.is_mounted("ctr")


def test_get_get_put_put_mounts_once(driver: Overlay2Driver) -> None:
    image_layer(driver, "l1", None, {"a": "1"})
    driver.create_readwrite("rw", "l1")
    merged = driver.get("rw")
    assert driver.get("rw") == merged
    assert mount_count(merged) == 1
    driver.put("rw")
    assert mount_count(merged) == 1
    assert os.listdir(merged) == ["a"]
    driver.put("rw")
    assert mount_count(merged) == 0
    assert os.path.isdir(merged)  # the mount point stays, as the layout says
    driver.put("rw")  # one put too many does no harm
    assert mount_count(merged) == 0


def test_concurrent_gets_share_one_mount(driver: Overlay2Driver) -> None:
    image_layer(driver, "l1", None, {"a": "1"})
    driver.create_readwrite("rw", "l1")
    merged = os.path.join(driver.home, "rw", "merged")
    seen: list[int] = []

    def user() -> None:
        for _ in range(20):
            driver.get("rw")
            seen.append(mount_count(merged))
            driver.put("rw")

    driver.get("rw")  # held throughout, so every user sees the same single mount
    threads = [threading.Thread(target=user) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(seen) == {1}
    driver.put("rw")
    assert mount_count(merged) == 0


def test_new_driver_instance_sees_existing_mounts(root: DataRoot, driver: Overlay2Driver) -> None:
    image_layer(driver, "l1", None, {"a": "1"})
    driver.create_readwrite("rw", "l1")
    merged = driver.get("rw")

    restarted = Overlay2Driver(root)  # a daemon restart: counts are gone, the mount is not
    assert restarted.is_mounted("rw")
    assert restarted.get("rw") == merged
    assert mount_count(merged) == 1
    restarted.put("rw")
    assert mount_count(merged) == 1  # the mount found in mountinfo still counts once
    restarted.put("rw")
    assert mount_count(merged) == 0

    driver.get("rw")
    again = Overlay2Driver(root)
    again.put("rw")  # releasing the one reference the old instance held
    assert mount_count(merged) == 0


def test_remove_leaves_no_mount_dir_or_link(driver: Overlay2Driver) -> None:
    image_layer(driver, "l1", None, {"a": "1"})
    driver.create_readwrite("rw", "l1")
    link = read(os.path.join(driver.home, "rw", "link"))
    merged = driver.get("rw")
    driver.get("rw")
    driver.remove("rw")
    assert mount_count(merged) == 0
    assert not os.path.lexists(os.path.join(driver.home, "rw"))
    assert not os.path.lexists(os.path.join(driver.home, "l", link))
    assert not driver.exists("rw")
    base_link = read(os.path.join(driver.home, "l1", "link"))
    driver.remove("l1")
    assert sorted(os.listdir(driver.home)) == ["l"]
    assert not os.path.lexists(os.path.join(driver.home, "l", base_link))
    assert os.listdir(os.path.join(driver.home, "l")) == []
    driver.remove("l1")  # removing what is gone is not an error


def test_cleanup_unmounts_what_this_instance_mounted(driver: Overlay2Driver) -> None:
    image_layer(driver, "l1", None, {"a": "1"})
    driver.create_readwrite("a", "l1")
    driver.create_readwrite("b", "l1")
    driver.get("a")
    driver.get("b")
    driver.get("b")
    driver.cleanup()
    assert not driver.is_mounted("a") and not driver.is_mounted("b")
    driver.get("a")  # still usable afterwards, with fresh counts
    driver.put("a")
    assert not driver.is_mounted("a")


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "l", "x" * 129, "a b", "a.b", "-x"])
def test_bad_ids_are_refused(driver: Overlay2Driver, bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid layer id"):
        driver.create(bad)
    with pytest.raises(InvalidArgument):
        driver.get(bad)
    with pytest.raises(InvalidArgument):
        driver.remove(bad)
    image_layer(driver, "ok", None, {})
    if bad:  # "" as a parent means "no parent", as in Docker
        with pytest.raises(InvalidArgument, match="invalid layer id"):
            driver.create("child", bad)
    assert sorted(os.listdir(driver.home)) == ["l", "ok"]


def test_bad_parents_and_unknown_layers(driver: Overlay2Driver) -> None:
    with pytest.raises(NotFound, match="parent layer missing does not exist"):
        driver.create("child", "missing")
    image_layer(driver, "base", None, {})
    with pytest.raises(Conflict, match="layer base already exists"):
        driver.create("base")
    with pytest.raises(Conflict, match="layer base already exists"):
        driver.create_readwrite("base", None)
    with pytest.raises(InvalidArgument, match="its own parent"):
        driver.create("self", "self")
    driver.create("half", "base")  # not committed yet: nothing may build on it
    with pytest.raises(Conflict, match="parent layer half is incomplete"):
        driver.create("child", "half")
    assert sorted(os.listdir(driver.home)) == ["base", "half", "l"]
    assert len(os.listdir(os.path.join(driver.home, "l"))) == 2
    for call in (driver.get, driver.put, driver.diff_path, driver.metadata, driver.mark_committed):
        with pytest.raises(NotFound, match="layer nope does not exist"):
            call("nope")


def test_cleanup_incomplete_removes_half_made_layers(root: DataRoot, driver: Overlay2Driver) -> None:
    home = driver.home
    image_layer(driver, "done", None, {"a": "1"})
    driver.create_readwrite("ctr", "done")
    driver.create("half", "done")  # a pull that crashed before its layer was committed
    write(driver, "half", "partial", "p")
    half_link = read(os.path.join(home, "half", "link"))
    driver.create_readwrite("halfrw", "done")  # a container layer whose creation crashed before the mark
    os.removexattr(os.path.join(home, "halfrw"), overlay2.RW_MARK_XATTR)
    os.makedirs(os.path.join(home, "bare", "diff"))  # crashed right after mkdir
    os.makedirs(os.path.join(home, "gone.removing", "diff"))  # a removal that crashed
    os.symlink("../vanished/diff", os.path.join(home, "l", "DANGLINGDANGLINGDANGLING00"))
    with open(os.path.join(home, "done", "link.tmp-999"), "w"):
        pass  # an interrupted atomic_write
    merged_half = driver.get("half")  # even a mounted leftover goes

    restarted = Overlay2Driver(root)
    removed = restarted.cleanup_incomplete()

    assert set(removed) >= {"half", "halfrw", "bare", "gone.removing", "l/DANGLINGDANGLINGDANGLING00"}
    assert not os.path.lexists(os.path.join(home, "l", half_link))
    assert sorted(os.listdir(home)) == ["ctr", "done", "l"]
    assert sorted(os.listdir(os.path.join(home, "done"))) == ["committed", "diff", "link"]
    links = {os.readlink(os.path.join(home, "l", n)) for n in os.listdir(os.path.join(home, "l"))}
    assert links == {"../done/diff", "../ctr/diff"}
    assert mount_count(merged_half) == 0
    assert restarted.cleanup_incomplete() == []


def test_open_driver_prefers_overlay2(root: DataRoot) -> None:
    d = open_driver(root)
    assert isinstance(d, Overlay2Driver)
    assert d.name == "overlay2" and d.root.driver == "overlay2"
    assert d.home == os.path.join(root.path, "overlay2")
    assert isinstance(open_driver(root, "overlay2"), Overlay2Driver)
    v = open_driver(root, "vfs")
    assert isinstance(v, VfsDriver) and v.home == os.path.join(root.path, "vfs")
    with pytest.raises(InvalidArgument, match="unknown storage driver 'aufs'"):
        open_driver(root, "aufs")
    assert [n for n in os.listdir(root.path) if "probe" in n] == []  # the probe cleaned up


def test_open_driver_keeps_the_driver_a_data_root_already_uses(root: DataRoot) -> None:
    v = open_driver(root, "vfs")
    v.create("layer")
    assert isinstance(open_driver(root), VfsDriver)


@pytest.fixture
def nested_root(tmp_path: Path) -> Iterator[DataRoot]:
    """A data root inside an overlay mount, where overlayfs cannot take its upper dir."""
    for d in ("lower", "upper", "work", "mnt"):
        (tmp_path / d).mkdir()
    syscalls.mount(
        "overlay", str(tmp_path / "mnt"), "overlay", 0,
        f"lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,workdir={tmp_path}/work",
    )  # fmt: skip
    try:
        yield DataRoot(str(tmp_path / "mnt" / "root"))
    finally:
        _unmount_under(tmp_path)


def test_open_driver_falls_back_to_vfs_on_nested_overlay(nested_root: DataRoot) -> None:
    d = open_driver(nested_root)
    assert isinstance(d, VfsDriver)
    with pytest.raises(DriverUnavailable, match=r"overlay2 cannot be used on .*use the vfs driver"):
        open_driver(nested_root, "overlay2")
    assert [n for n in os.listdir(nested_root.path) if "probe" in n] == []
