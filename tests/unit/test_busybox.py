"""The busybox test rootfs (layout, applets, a binary that runs with no host libraries) and remove_tree."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hull.errors import Conflict, HullError
from hull.testing import mounts_under, remove_tree
from hull.testing.busybox import BUSYBOX, applets, build_busybox_rootfs, elf_interpreter

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_rootfs(tmp_path_factory.mktemp("bb") / "rootfs")


def test_busybox_is_a_static_copy_of_the_hosts(rootfs: Path) -> None:
    binary = rootfs / "bin/busybox"
    assert binary.is_file() and not binary.is_symlink()
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    assert binary.read_bytes() == BUSYBOX.read_bytes()
    assert elf_interpreter(binary) is None


def test_every_applet_is_a_symlink_to_busybox(rootfs: Path) -> None:
    names = applets()
    assert {"sh", "true", "hostname", "ls", "cat", "sleep", "id", "env"} <= set(names)
    for name in names:
        if name == "busybox":
            continue
        link = rootfs / "bin" / name
        assert link.is_symlink() and os.readlink(link) == "busybox", name
    # The usual other homes of applets lead to the same place: `#!/usr/bin/env sh` works.
    for where in ("sbin/ifconfig", "usr/bin/env", "usr/sbin/chroot"):
        assert (rootfs / where).resolve() == (rootfs / "bin/busybox").resolve(), where


def test_applets_run_from_the_rootfs(rootfs: Path) -> None:
    done = subprocess.run([rootfs / "bin/sh", "-c", "echo hello; true"], capture_output=True, text=True, check=True)
    assert done.stdout == "hello\n"


def test_users_groups_and_mount_points(rootfs: Path) -> None:
    users = {line.split(":")[0]: line.split(":") for line in (rootfs / "etc/passwd").read_text().splitlines()}
    assert users["root"][2:4] == ["0", "0"] and users["root"][6] == "/bin/sh"
    assert users["user"][2:4] == ["1000", "1000"]
    assert users["nobody"][2:4] == ["65534", "65534"]
    groups = {line.split(":")[0]: line.split(":")[2] for line in (rootfs / "etc/group").read_text().splitlines()}
    assert groups["root"] == "0" and groups["user"] == "1000" and groups["tty"] == "5"
    assert (rootfs / "etc/hostname").read_text() == "hull\n"
    for d in ("proc", "sys", "dev", "tmp", "run", "root", "home/user", "var/tmp"):
        assert (rootfs / d).is_dir() and not any((rootfs / d).iterdir()), d
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777


def test_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    (tmp_path / "keep-me").write_text("x")
    with pytest.raises(Conflict, match="not empty"):
        build_busybox_rootfs(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep-me"]


def test_missing_busybox_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(HullError, match="busybox-static is not installed"):
        build_busybox_rootfs(tmp_path / "rootfs", busybox=tmp_path / "no-busybox")
    assert not (tmp_path / "rootfs").exists()


def test_dynamic_or_non_elf_busybox_is_refused(tmp_path: Path) -> None:
    dynamic = Path(os.path.realpath(sys.executable))
    assert elf_interpreter(dynamic) is not None
    with pytest.raises(HullError, match=r"dynamically linked .* busybox-static"):
        build_busybox_rootfs(tmp_path / "a", busybox=dynamic)
    script = tmp_path / "busybox"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(HullError, match="not an ELF"):
        build_busybox_rootfs(tmp_path / "b", busybox=script)


@pytest.mark.container
def test_rootfs_is_self_sufficient_under_chroot(rootfs: Path) -> None:
    """Inside the rootfs nothing of the host is reachable: this fails for a dynamic busybox (root: chroot)."""
    script = "id -un; cat /etc/hostname; /usr/bin/env true && echo env-ok"
    done = subprocess.run(["chroot", str(rootfs), "/bin/sh", "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["root", "hull", "env-ok"]


@pytest.mark.container
def test_remove_tree_refuses_while_something_is_mounted_below(tmp_path: Path) -> None:
    """The demo and bench remove old bundles; a mount left inside must stop that, not be emptied (root: mount)."""
    target = tmp_path / "bundle with space/rootfs/tmp"
    target.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(target)], check=True)
    try:
        (target / "precious").write_text("x")
        assert mounts_under(tmp_path) == [str(target)]
        with pytest.raises(HullError, match="still mounted"):
            remove_tree(tmp_path / "bundle with space")
        assert (target / "precious").exists()
    finally:
        subprocess.run(["umount", str(target)], check=True)
    remove_tree(tmp_path / "bundle with space")
    assert not (tmp_path / "bundle with space").exists()
    remove_tree(tmp_path / "absent")  # like rm -rf: nothing to remove is fine
