"""resolve_in_root: symlinks followed inside the root, never out of it.

The property tests build random trees of directories, files and symlinks (targets such as
`../../..`, `/`, `/../../etc`) and check that every answer stays under the root and walks
through no symlink. Where the kernel can resolve the same path with openat2(RESOLVE_IN_ROOT),
which has exactly these semantics, the answers must agree.
"""

import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hull.runtime.securejoin import MAX_SYMLINKS, resolve_in_root

pytestmark = pytest.mark.unit

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_OPENAT2 = 437  # the same on every architecture (the syscall table was unified before openat2)
RESOLVE_IN_ROOT = 0x10


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def kernel_resolve_in_root(root: str, path: str) -> str | None:
    """What openat2(RESOLVE_IN_ROOT) finds for `path` under `root`, or None if it fails."""
    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        how = OpenHow(os.O_PATH | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT)
        fd = _libc.syscall(ctypes.c_long(_SYS_OPENAT2), dirfd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
        if fd < 0:
            if ctypes.get_errno() == errno.ENOSYS:
                pytest.skip("openat2 is not available on this kernel")
            return None
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    finally:
        os.close(dirfd)


def under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


# --- examples ---------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "usr/lib").mkdir(parents=True)
    return r


def test_plain_paths_join(root: Path) -> None:
    assert resolve_in_root(str(root), "/usr/lib") == f"{root}/usr/lib"
    assert resolve_in_root(str(root), "usr//./lib/") == f"{root}/usr/lib"
    assert resolve_in_root(str(root), "/") == str(root)
    assert resolve_in_root(str(root), "") == str(root)


def test_dotdot_stops_at_the_root(root: Path) -> None:
    assert resolve_in_root(str(root), "/../../../etc") == f"{root}/etc"
    assert resolve_in_root(str(root), "/usr/../../../../usr/lib/..") == f"{root}/usr"


def test_absolute_symlink_is_rooted(root: Path) -> None:
    (root / "evil").symlink_to("/../../etc")
    assert resolve_in_root(str(root), "/evil") == f"{root}/etc"
    (root / "hosts").symlink_to("/etc/hosts")
    assert resolve_in_root(str(root), "/hosts") == f"{root}/etc/hosts"  # not the host's /etc/hosts


def test_relative_symlink_cannot_climb_out(root: Path) -> None:
    (root / "usr/lib/up").symlink_to("../../../../../../etc")
    assert resolve_in_root(str(root), "/usr/lib/up/passwd") == f"{root}/etc/passwd"


def test_symlink_in_the_middle_then_dotdot(root: Path) -> None:
    (root / "l").symlink_to("usr/lib")
    assert resolve_in_root(str(root), "/l/..") == f"{root}/usr"  # `..` applies to the target, as the kernel does


def test_missing_components_are_kept(root: Path) -> None:
    assert resolve_in_root(str(root), "/new/dir/../file") == f"{root}/new/file"
    (root / "dangling").symlink_to("/nowhere/x")
    assert resolve_in_root(str(root), "/dangling") == f"{root}/nowhere/x"


def test_symlink_loop_is_eloop(root: Path) -> None:
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(OSError) as e:
        resolve_in_root(str(root), "/a/x")
    assert e.value.errno == errno.ELOOP


def test_long_chain_below_the_limit_resolves(root: Path) -> None:
    for i in range(MAX_SYMLINKS - 1):
        (root / f"l{i}").symlink_to(f"l{i + 1}")
    (root / f"l{MAX_SYMLINKS - 1}").symlink_to("etc")
    assert resolve_in_root(str(root), "/l0") == f"{root}/etc"


def test_self_referencing_loop(root: Path) -> None:
    (root / "self").symlink_to("./self")
    with pytest.raises(OSError) as e:
        resolve_in_root(str(root), "self")
    assert e.value.errno == errno.ELOOP


# --- properties -------------------------------------------------------------------------------

NAMES = ["a", "b", "c"]
TRICKY_TARGETS = ["..", "../..", "../../..", "/", "/..", "/../../etc", "a/../../..", "/a/b", ".", "b/c", "/etc"]
component = st.sampled_from([*NAMES, "..", ".", ""])
random_path = st.builds(
    lambda absolute, parts: ("/" if absolute else "") + "/".join(parts),
    st.booleans(),
    st.lists(component, min_size=1, max_size=6),
)
targets = st.one_of(st.sampled_from(TRICKY_TARGETS), random_path)
entries = st.lists(
    st.tuples(
        st.lists(st.sampled_from(NAMES), min_size=1, max_size=3),
        st.sampled_from(["dir", "file", "link"]),
        targets,
    ),
    max_size=10,
)


def build_tree(root: Path, tree: list[tuple[list[str], str, str]]) -> None:
    for parts, kind, target in tree:
        path = root.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "dir":
                path.mkdir()
            elif kind == "file":
                path.write_text("x")
            else:
                path.symlink_to(target)
        except OSError:
            pass  # a parent is a file or a symlink, or the entry exists: skip it


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=entries, path=st.one_of(random_path, st.sampled_from(TRICKY_TARGETS)))
def test_result_stays_under_root_and_holds_no_symlink(tree: list[tuple[list[str], str, str]], path: str) -> None:
    scratch = tempfile.mkdtemp(prefix="securejoin-")
    try:
        root = os.path.realpath(os.path.join(scratch, "root"))
        os.mkdir(root)
        build_tree(Path(root), tree)
        try:
            result = resolve_in_root(root, path)
        except OSError as e:
            assert e.errno == errno.ELOOP
            assert kernel_resolve_in_root(root, path) is None  # the kernel finds a loop too
            return
        assert under(result, root), (path, result)
        assert ".." not in result[len(root) :].split("/")
        # No existing component of the result is a symlink: the host's resolution agrees with it.
        assert os.path.realpath(result) == result
        if os.path.exists(result) and path:
            kernel = kernel_resolve_in_root(root, path)
            if kernel is not None:
                assert kernel == result, (path, result, kernel)
    finally:
        shutil.rmtree(scratch)
