"""The vfs graph driver on the real kernel: Docker's layout, and copies that keep everything a layer holds."""

import errno
import hashlib
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hull.errors import Conflict, InvalidArgument, NotFound
from hull.layout import DataRoot
from hull.storage.vfs import VfsDriver, copy_tree
from hull.testing import mounts_under

pytestmark = pytest.mark.container

OLD = 1_000_000_000 * 10**9  # 2001-09-09, in ns: clearly not "now"


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[VfsDriver]:
    d = VfsDriver(DataRoot(str(tmp_path / "root")))
    yield d
    d.cleanup()
    assert mounts_under(tmp_path) == []  # vfs never mounts


def capability(cap: int) -> bytes:
    """A security.capability value (VFS_CAP_REVISION_2) with `cap` permitted and effective."""
    return struct.pack("<IIIII", 0x02000000 | 1, 1 << cap, 0, 0, 0)


def build_tree(top: str) -> None:
    """Every kind of entry a layer can hold, with unusual metadata on each."""
    os.chmod(top, 0o750)
    os.chown(top, 5, 6)
    os.setxattr(top, "trusted.note", b"root dir")
    os.makedirs(f"{top}/bin")
    with open(f"{top}/bin/tool", "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024 + 17))  # more than one copy chunk, odd size
    os.chown(f"{top}/bin/tool", 1000, 1001)
    os.chmod(f"{top}/bin/tool", 0o4755)  # setuid: must survive the chown
    os.setxattr(f"{top}/bin/tool", "security.capability", capability(10))  # cap_net_bind_service
    os.setxattr(f"{top}/bin/tool", "user.origin", b"test")
    os.link(f"{top}/bin/tool", f"{top}/bin/tool-hardlink")
    os.symlink("tool", f"{top}/bin/relative-link")
    os.symlink("/nonexistent/target", f"{top}/dangling-absolute")
    os.lchown(f"{top}/dangling-absolute", 7, 8)
    os.makedirs(f"{top}/dev")
    os.mknod(f"{top}/dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(f"{top}/dev/loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
    os.mkfifo(f"{top}/dev/fifo", 0o620)
    os.mknod(f"{top}/dev/sock", stat.S_IFSOCK | 0o755)
    os.makedirs(f"{top}/tmp")
    os.chmod(f"{top}/tmp", 0o1777)
    os.makedirs(f"{top}/empty/nested/deeper")
    os.setxattr(f"{top}/empty/nested", "trusted.overlay.opaque", b"y")
    with open(f"{top}/sparse", "wb") as f:
        f.seek(64 * 1024 * 1024)
        f.write(b"end")
    with open(f"{top}/empty-file", "wb"):
        pass
    with open(f"{top}/secret", "w") as f:
        f.write("s")
    os.chmod(f"{top}/secret", 0o400)
    # Times last (writing into a directory changes its mtime); every entry a different one.
    for i, (dirpath, dirnames, filenames) in enumerate(sorted(os.walk(top), reverse=True)):
        for j, name in enumerate(sorted(dirnames + filenames)):
            t = OLD + (i * 100 + j) * 10**9 + 123
            os.utime(os.path.join(dirpath, name), ns=(t + 7, t), follow_symlinks=False)
    os.utime(top, ns=(OLD + 1, OLD + 2))


def xattrs(path: str) -> dict[str, bytes]:
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in os.listxattr(path, follow_symlinks=False)}


def snapshot(top: str) -> dict[str, Any]:
    """Everything copy_tree must keep, by relative path; hard links as groups of paths."""
    result: dict[str, Any] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        entries = [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]
        for path in entries:
            rel = os.path.relpath(path, top)
            if rel in result:
                continue
            st = os.lstat(path)
            record: dict[str, Any] = {
                "type": stat.S_IFMT(st.st_mode),
                "mode": stat.S_IMODE(st.st_mode),
                "owner": (st.st_uid, st.st_gid),
                "mtime": st.st_mtime_ns,
                "xattrs": xattrs(path),
            }
            if stat.S_ISLNK(st.st_mode):
                record["target"] = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                record["rdev"] = st.st_rdev
            elif stat.S_ISREG(st.st_mode):
                record["size"] = st.st_size
                with open(path, "rb") as f:
                    record["sha256"] = hashlib.file_digest(f, "sha256").hexdigest()
            if not stat.S_ISDIR(st.st_mode):
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            result[rel] = record
    result["hardlinks"] = sorted(sorted(group) for group in inodes.values() if len(group) > 1)
    return result


def test_layout_is_dockers(driver: VfsDriver) -> None:
    driver.create("base")
    path = os.path.join(driver.root.path, "vfs", "dir", "base")
    assert driver.home == os.path.join(driver.root.path, "vfs")
    assert driver.get("base") == driver.diff_path("base") == path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755
    assert driver.metadata("base") == {}
    assert driver.whiteouts == "delete"
    assert driver.exists("base") and not driver.exists("other")
    driver.put("base")
    driver.mark_committed("base")
    assert os.listdir(path) == []  # nothing of the driver's own inside a layer


def test_child_is_an_independent_copy_of_its_parent(driver: VfsDriver) -> None:
    driver.create("base")
    with open(f"{driver.diff_path('base')}/a", "w") as f:
        f.write("base")
    driver.create("child", "base")
    driver.create_readwrite("ctr", "child")
    ctr = driver.get("ctr")
    assert Path(ctr, "a").read_text() == "base"
    with open(f"{ctr}/a", "w") as f:
        f.write("changed")
    os.unlink(f"{driver.diff_path('child')}/a")  # a "delete" whiteout applied to the child
    assert Path(driver.diff_path("base"), "a").read_text() == "base"
    assert Path(ctr, "a").read_text() == "changed"
    driver.put("ctr")


def test_copy_keeps_everything(driver: VfsDriver) -> None:
    driver.create("base")
    src = driver.diff_path("base")
    build_tree(src)
    before = snapshot(src)
    # Reading for the snapshot moved atimes; set one again, after the reads, to see it copied.
    os.utime(f"{src}/secret", ns=(OLD + 5, before["secret"]["mtime"]))
    driver.create("copy", "base")
    dst = driver.diff_path("copy")
    assert os.lstat(f"{dst}/secret").st_atime_ns == OLD + 5
    after = snapshot(dst)
    assert after == before
    assert after["hardlinks"] == [["bin/tool", "bin/tool-hardlink"]]
    assert after["bin/tool"]["mode"] == 0o4755
    assert after["bin/tool"]["xattrs"]["security.capability"] == capability(10)
    assert after["."]["owner"] == (5, 6) and after["."]["mode"] == 0o750
    # The hole is not written out: the copy takes (about) as little room as the original.
    assert os.stat(f"{dst}/sparse").st_blocks <= os.stat(f"{src}/sparse").st_blocks + 64
    assert os.stat(f"{dst}/sparse").st_size == 64 * 1024 * 1024 + 3


def test_copy_without_copy_file_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", unsupported)
    src = tmp_path / "src"
    src.mkdir()
    build_tree(str(src))
    before = snapshot(str(src))
    copy_tree(str(src), str(tmp_path / "dst"))
    assert snapshot(str(tmp_path / "dst")) == before


def test_bad_ids_and_parents(driver: VfsDriver) -> None:
    for bad in ("", "../x", "a/b", ".hidden", "a.b"):
        with pytest.raises(InvalidArgument, match="invalid layer id"):
            driver.create(bad)
        with pytest.raises(InvalidArgument):
            driver.get(bad)
    with pytest.raises(NotFound, match="parent layer missing does not exist"):
        driver.create("child", "missing")
    driver.create("base")
    with pytest.raises(Conflict, match="layer base already exists"):
        driver.create_readwrite("base")
    for call in (driver.get, driver.put, driver.diff_path, driver.metadata, driver.mark_committed):
        with pytest.raises(NotFound, match="layer nope does not exist"):
            call("nope")
    assert os.listdir(os.path.join(driver.home, "dir")) == ["base"]


def test_remove_and_cleanup_incomplete(driver: VfsDriver) -> None:
    driver.create("base")
    with open(f"{driver.diff_path('base')}/a", "w") as f:
        f.write("a")
    driver.create("child", "base")
    driver.remove("child")
    driver.remove("child")  # gone already: not an error
    layers = os.path.join(driver.home, "dir")
    assert os.listdir(layers) == ["base"]
    os.makedirs(os.path.join(layers, "half.creating-0badc0de", "etc"))  # a copy a crash interrupted
    os.makedirs(os.path.join(layers, "old.removing", "etc"))  # a removal a crash interrupted
    assert sorted(driver.cleanup_incomplete()) == ["half.creating-0badc0de", "old.removing"]
    assert os.listdir(layers) == ["base"]
