"""resolve_user: Docker's User field against an image's /etc/passwd and /etc/group, read safely."""

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hull.containers.users import MAX_ID, parse_group, parse_passwd, read_file_in_root, resolve_user
from hull.errors import InvalidArgument

pytestmark = pytest.mark.unit

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
# a comment
dup:x:1000:7::/dup:/bin/sh
"""
GROUP = """\
root:x:0:
wheel:x:10:user,nobody
staff:x:50:user
users:x:100:
user:x:1000:
nogroup:x:65534:
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


@pytest.mark.parametrize(
    ("spec", "uid", "gid", "gids", "home"),
    [
        ("", 0, 0, [0], "/root"),
        ("root", 0, 0, [0], "/root"),
        ("user", 1000, 1000, [1000, 10, 50], "/home/user"),  # memberships, primary gid first (Docker's order)
        ("1000", 1000, 1000, [1000, 10, 50], "/home/user"),  # the first line with the uid wins
        ("nobody", 65534, 65534, [65534, 10], "/nonexistent"),
        ("user:staff", 1000, 50, [50], "/home/user"),  # an explicit group replaces the memberships
        ("nobody:root", 65534, 0, [0], "/nonexistent"),
        ("1000:1000", 1000, 1000, [1000], "/home/user"),
        ("4242", 4242, 0, [0], "/"),  # numeric with no entry: taken as it is
        ("4242:4343", 4242, 4343, [4343], "/"),
        ("user:4343", 1000, 4343, [4343], "/home/user"),
    ],
)
def test_user_forms(rootfs: Path, spec: str, uid: int, gid: int, gids: list[int], home: str) -> None:
    u = resolve_user(str(rootfs), spec)
    assert (u.uid, u.gid, u.additional_gids, u.home) == (uid, gid, gids, home)


def test_group_add_by_name_and_number(rootfs: Path) -> None:
    # What Docker 20.10 wrote for -u user --group-add users --group-add 777 (its config.json).
    u = resolve_user(str(rootfs), "user", ["users", "777"])
    assert u.additional_gids == [1000, 10, 50, 100, 777]


@pytest.mark.parametrize(
    ("spec", "group_add", "message"),
    [
        ("nosuch", [], "unable to find user nosuch: no matching entries in passwd file"),
        ("user:nosuch", [], "unable to find group nosuch: no matching entries in group file"),
        ("1000:nosuch", [], "unable to find group nosuch: no matching entries in group file"),
        ("user", ["nosuch"], "unable to find group nosuch: no matching entries in group file"),
        ("4294967296", [], f"uids and gids must be in range 0-{MAX_ID}"),
        ("-1", [], f"uids and gids must be in range 0-{MAX_ID}"),
        ("user:-5", [], f"uids and gids must be in range 0-{MAX_ID}"),
    ],
)
def test_errors_are_dockers(rootfs: Path, spec: str, group_add: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        resolve_user(str(rootfs), spec, group_add)
    assert e.value.message == message


def test_no_passwd_file(tmp_path: Path) -> None:
    assert resolve_user(str(tmp_path), "123:456").additional_gids == [456]
    assert resolve_user(str(tmp_path), "").uid == 0
    with pytest.raises(InvalidArgument, match="unable to find user root"):
        resolve_user(str(tmp_path), "root")


def test_symlinks_never_leave_the_rootfs(tmp_path: Path) -> None:
    outside = tmp_path / "host-etc"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:0:0::/evil:/bin/sh\n")
    root = tmp_path / "rootfs"
    root.mkdir()
    os.symlink(str(outside), root / "etc")  # absolute: resolved against the rootfs, where it names nothing
    assert read_file_in_root(str(root), "/etc/passwd") is None
    with pytest.raises(InvalidArgument, match="unable to find user evil"):
        resolve_user(str(root), "evil")
    os.unlink(root / "etc")
    (root / "etc").mkdir()
    os.symlink("../../host-etc/passwd", root / "etc" / "passwd")  # `..` stops at the rootfs
    assert read_file_in_root(str(root), "/etc/passwd") is None


def test_a_symlink_loop_is_an_error(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").unlink()
    os.symlink("/etc/passwd", rootfs / "etc" / "passwd")
    with pytest.raises(InvalidArgument, match=r"^cannot read /etc/passwd in the container's root filesystem"):
        resolve_user(str(rootfs), "user")


def test_symlink_inside_the_rootfs_is_followed(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").rename(rootfs / "passwd.real")
    os.symlink("/passwd.real", rootfs / "etc" / "passwd")
    assert resolve_user(str(rootfs), "user").uid == 1000


def test_a_fifo_does_not_block(rootfs: Path) -> None:
    (rootfs / "etc" / "group").unlink()
    os.mkfifo(rootfs / "etc" / "group")
    assert resolve_user(str(rootfs), "user").additional_gids == [1000]


def test_malformed_lines_are_read_as_runc_does() -> None:
    assert [(e.name, e.uid, e.gid, e.home) for e in parse_passwd("a:x:notanumber\n\nb\n")] == [
        ("a", 0, 0, ""),
        ("b", 0, 0, ""),
    ]
    assert [(g.name, g.gid, g.members) for g in parse_group("g:x:5:a,,b\n")] == [("g", 5, ["a", "b"])]


ids = st.integers(min_value=0, max_value=MAX_ID)


@given(uid=ids, gid=ids)
def test_numeric_specs_resolve_to_themselves(uid: int, gid: int) -> None:
    root = Path("/nonexistent-rootfs")  # no passwd at all: numeric ids need none
    u = resolve_user(str(root), f"{uid}:{gid}")
    assert (u.uid, u.gid, u.additional_gids) == (uid, gid, [gid])


@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=20))
def test_unknown_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"^unable to find user {name}: no matching entries in passwd file$"):
        resolve_user("/nonexistent-rootfs", name)
