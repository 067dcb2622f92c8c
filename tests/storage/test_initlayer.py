"""The init layer: Docker's placeholders, made without ever writing through an image's symlinks."""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.layout import DataRoot
from hull.runtime import syscalls
from hull.storage.initlayer import INIT_LAYER_ENTRIES, init_layer_id, populate_init_layer
from hull.storage.overlay2 import Overlay2Driver
from hull.testing import mounts_under

pytestmark = pytest.mark.container

EXPECTED = {
    ".dockerenv": "file",
    "dev": "dir",
    "dev/console": "file",
    "dev/pts": "dir",
    "dev/shm": "dir",
    "etc": "dir",
    "etc/hostname": "file",
    "etc/hosts": "file",
    "etc/mtab": "symlink",
    "etc/resolv.conf": "file",
    "proc": "dir",
    "sys": "dir",
}


def listing(top: str) -> dict[str, str]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            kind = "dir" if stat.S_ISDIR(mode) else "symlink" if stat.S_ISLNK(mode) else "file"
            if stat.S_ISCHR(mode):
                kind = "char"
            found[os.path.relpath(path, top)] = kind
    return found


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Overlay2Driver]:
    d = Overlay2Driver(DataRoot(str(tmp_path / "root")))
    yield d
    d.cleanup()
    for point in reversed(mounts_under(tmp_path)):
        syscalls.umount2(point, syscalls.MNT_DETACH)


def test_ids_and_entries() -> None:
    assert init_layer_id("0123abcd") == "0123abcd-init"
    assert {e.path.lstrip("/") for e in INIT_LAYER_ENTRIES} == {k for k in EXPECTED if k not in ("dev", "etc")}


def test_populate_an_empty_layer(tmp_path: Path) -> None:
    populate_init_layer(str(tmp_path))
    assert listing(str(tmp_path)) == EXPECTED
    for rel, kind in EXPECTED.items():
        st = os.lstat(tmp_path / rel)
        assert (st.st_uid, st.st_gid) == (0, 0)
        if kind != "symlink":
            assert stat.S_IMODE(st.st_mode) == 0o755, rel
        if kind == "file":
            assert st.st_size == 0
    assert os.readlink(tmp_path / "etc/mtab") == "/proc/mounts"
    populate_init_layer(str(tmp_path))  # twice is fine
    assert listing(str(tmp_path)) == EXPECTED


def test_owner_of_a_remapped_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    populate_init_layer(str(tmp_path), uid=100000, gid=100000)
    assert os.lstat(tmp_path / "etc/hosts").st_uid == 100000
    assert os.lstat(tmp_path / "dev").st_gid == 100000
    assert os.lstat(tmp_path / "etc/mtab").st_uid == 100000
    assert os.lstat(tmp_path / "etc").st_uid == 0  # existing directories keep their owner


def test_symlinks_are_replaced_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    layer = tmp_path / "layer"
    layer.mkdir()
    os.symlink(str(outside), layer / "etc")  # absolute: on the host it leads out of the layer
    os.symlink("../outside", layer / "dev")
    (layer / "proc").write_text("a file where a directory belongs")
    (layer / "sys").mkdir()
    (layer / "sys" / "kept").write_text("k")
    populate_init_layer(str(layer))
    assert os.listdir(outside) == []
    assert listing(str(layer)) == EXPECTED | {"sys/kept": "file"}


def test_existing_entries(tmp_path: Path) -> None:
    (tmp_path / "etc" / "hosts").mkdir(parents=True)  # a directory: kept as it is, as Docker does
    (tmp_path / "etc" / "hosts" / "inside").write_text("i")
    (tmp_path / "etc" / "hostname").write_text("from the image")  # a file: replaced by an empty one
    os.chmod(tmp_path / "etc" / "hostname", 0o600)
    populate_init_layer(str(tmp_path))
    assert os.listdir(tmp_path / "etc" / "hosts") == ["inside"]
    assert (tmp_path / "etc" / "hostname").read_text() == ""
    assert stat.S_IMODE(os.stat(tmp_path / "etc" / "hostname").st_mode) == 0o755


def test_init_layer_over_an_image_on_overlay2(driver: Overlay2Driver) -> None:
    driver.create("image")
    image = driver.diff_path("image")
    os.makedirs(f"{image}/etc")
    os.symlink("/run/hosts", f"{image}/etc/hosts")
    with open(f"{image}/etc/hostname", "w") as f:
        f.write("image")
    os.symlink("/", f"{image}/dev")
    driver.mark_committed("image")

    mount_id = "c0ffee"
    driver.create_readwrite(init_layer_id(mount_id), "image")
    root = driver.get(init_layer_id(mount_id))
    try:
        populate_init_layer(root)
    finally:
        driver.put(init_layer_id(mount_id))

    init = driver.diff_path(init_layer_id(mount_id))
    assert os.path.isfile(f"{init}/etc/hosts") and not os.path.islink(f"{init}/etc/hosts")
    assert os.path.getsize(f"{init}/etc/hostname") == 0
    assert os.path.isdir(f"{init}/dev") and not os.path.islink(f"{init}/dev")
    assert sorted(os.listdir(f"{init}/dev")) == ["console", "pts", "shm"]
    # The image layer is untouched.
    assert os.readlink(f"{image}/etc/hosts") == "/run/hosts"
    assert Path(image, "etc/hostname").read_text() == "image"

    driver.create_readwrite(mount_id, init_layer_id(mount_id))
    merged = driver.get(mount_id)
    try:
        assert listing(merged) == EXPECTED
        assert Path(merged, "etc/hostname").read_text() == ""
    finally:
        driver.put(mount_id)
