"""Capabilities and seccomp on the real kernel.

Each test changes its process for good (capabilities dropped, a filter loaded), so it does
so in a forked child; the child reports back through a pipe (JSON) or its exit status, and
the test asserts what the kernel shows: /proc/self/status, errno of a refused call, SIGSYS.
"""

import ctypes
import errno
import json
import os
import platform
import resource
import signal
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hull.errors import HullError
from hull.runtime import seccomp, syscalls
from hull.runtime.capabilities import LinuxCapabilities, cap_mask, finalize_process_identity, last_cap
from hull.runtime.seccomp import LinuxSeccomp, load_seccomp

pytestmark = pytest.mark.container

NATIVE_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(platform.machine(), "")
STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


@dataclass
class Outcome:
    status: int  # as from waitpid
    value: Any  # what the function returned, None if it did not return
    error: str  # the child's traceback if it raised

    def result(self) -> Any:
        """The value fn returned; fails the test if the child raised or did not exit 0."""
        assert not self.error, f"the child failed:\n{self.error}"
        assert os.WIFEXITED(self.status) and os.WEXITSTATUS(self.status) == 0, f"child status {self.status:#x}"
        return self.value


def in_child(fn: Callable[[], Any]) -> Outcome:
    """Run fn in a forked child; its return value (JSON) or traceback comes back through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns into pytest
        status = 0
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a test that dies of SIGSYS leaves no core
            report = {"value": fn()}
        except BaseException:
            report, status = {"error": traceback.format_exc()}, 1
        try:
            os.write(w, json.dumps(report).encode())
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    report = json.loads(data) if data else {}
    return Outcome(status, report.get("value"), report.get("error", ""))


def proc_status() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def cap_fields(text: str) -> dict[str, int]:
    status = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    return {k: int(status[k], 16) for k in STATUS_FIELDS}


# --- capabilities ---------------------------------------------------------------------------

MIXED = LinuxCapabilities(
    bounding=["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
    effective=["CAP_CHOWN", "CAP_KILL"],
    permitted=["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
    inheritable=["CAP_KILL", "CAP_NET_RAW"],
    # CAP_CHOWN is not inheritable, so the kernel cannot make it ambient: it is left out.
    ambient=["CAP_KILL", "CAP_CHOWN"],
)


def test_capability_sets_after_switching_to_uid_1000() -> None:
    def child() -> str:
        finalize_process_identity(MIXED, 1000, 1000, [5, 6])
        with open("/proc/self/status") as f:
            return f.read()

    text = in_child(child).result()
    assert cap_fields(text) == {
        "CapEff": cap_mask(["CAP_CHOWN", "CAP_KILL"]),
        "CapPrm": cap_mask(["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]),
        "CapInh": cap_mask(["CAP_KILL", "CAP_NET_RAW"]),
        "CapBnd": cap_mask(["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]),
        "CapAmb": cap_mask(["CAP_KILL"]),
    }
    status = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    assert status["Uid"].split() == ["1000"] * 4
    assert status["Gid"].split() == ["1000"] * 4
    assert status["Groups"].split() == ["5", "6"]


def test_ambient_capabilities_survive_execve_as_non_root() -> None:
    def child() -> None:
        finalize_process_identity(MIXED, 1000, 1000, [])
        os.execv("/bin/cat", ["cat", "/proc/self/status"])

    r, w = os.pipe()

    def child_to_pipe() -> None:
        os.dup2(w, 1)
        child()

    outcome = in_child(child_to_pipe)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    assert not outcome.error and os.WIFEXITED(outcome.status) and os.WEXITSTATUS(outcome.status) == 0
    # A program without file capabilities gets exactly the ambient set (capabilities(7)).
    kill = cap_mask(["CAP_KILL"])
    assert cap_fields(text) == {
        "CapEff": kill,
        "CapPrm": kill,
        "CapInh": cap_mask(["CAP_KILL", "CAP_NET_RAW"]),
        "CapBnd": cap_mask(["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]),
        "CapAmb": kill,
    }


def test_no_capabilities_given_leaves_them_to_the_uid_change() -> None:
    def child() -> dict[str, int]:
        finalize_process_identity(None, 1000, 1000, [])
        return {k: int(v, 16) for k, v in proc_status().items() if k in STATUS_FIELDS}

    full = (1 << (last_cap() + 1)) - 1
    before = int(proc_status()["CapBnd"], 16)
    masks = in_child(child).result()
    assert masks["CapEff"] == masks["CapPrm"] == masks["CapAmb"] == 0
    assert masks["CapBnd"] == before & full


def test_without_cap_chown_chown_fails(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("x")

    def chown_to(caps: list[str], uid: int) -> Callable[[], None]:
        def child() -> None:
            fd = os.open(target, os.O_RDONLY)  # opened before the switch: tmp_path is root's and private
            finalize_process_identity(LinuxCapabilities(caps, caps, caps), uid, uid, [])
            os.chown(fd, 1234, -1)

        return child

    refused = in_child(chown_to(["CAP_FOWNER", "CAP_DAC_OVERRIDE"], 0))
    assert "PermissionError" in refused.error
    assert target.stat().st_uid == 0
    in_child(chown_to(["CAP_CHOWN"], 1000)).result()
    assert target.stat().st_uid == 1234


def test_without_cap_net_raw_a_raw_socket_fails() -> None:
    def raw_socket(caps: list[str]) -> Callable[[], None]:
        def child() -> None:
            finalize_process_identity(LinuxCapabilities(caps, caps, caps), 0, 0, [])
            socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()

        return child

    assert "PermissionError" in in_child(raw_socket(["CAP_CHOWN", "CAP_KILL"])).error
    in_child(raw_socket(["CAP_NET_RAW"])).result()


def test_additional_gids_where_setgroups_is_denied() -> None:
    """In a user namespace mapped without privilege, setgroups is denied: an empty list is fine."""

    def enter_userns() -> None:
        uid, gid = os.geteuid(), os.getegid()
        syscalls.unshare(syscalls.CLONE_NEWUSER)
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)

    def child(gids: list[int]) -> Callable[[], None]:
        def run() -> None:
            enter_userns()
            finalize_process_identity(LinuxCapabilities(["CAP_KILL"], ["CAP_KILL"], ["CAP_KILL"]), 0, 0, gids)

        return run

    in_child(child([])).result()
    refused = in_child(child([5]))
    assert "cannot set additional gids [5]: setgroups is denied in this user namespace" in refused.error


def test_unmapped_uid_is_a_clear_error() -> None:
    def child() -> None:
        gid = os.getegid()
        syscalls.unshare(syscalls.CLONE_NEWUSER)
        for name, text in (("setgroups", "deny"), ("gid_map", f"0 {gid} 1")):  # and no uid map at all
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        finalize_process_identity(None, 1000, 0, [])

    error = in_child(child).error
    assert "HullError: setresuid 1000: Invalid argument" in error


# --- seccomp ----------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_personality = _libc.personality
_personality.argtypes, _personality.restype = [ctypes.c_ulong], ctypes.c_int
PERSONALITY_QUERY = 0xFFFFFFFF
PER_LINUX32 = 0x0008
ADDR_NO_RANDOMIZE = 0x0040000


def personality(persona: int) -> int:
    """personality(2): the previous persona, or -errno."""
    ret = _personality(persona)
    return -ctypes.get_errno() if ret == -1 else ret


def profile(*syscall_rules: dict[str, Any], default: str = "SCMP_ACT_ALLOW", **extra: Any) -> LinuxSeccomp:
    obj = {"defaultAction": default, "architectures": [NATIVE_ARCH], "syscalls": list(syscall_rules), **extra}
    return LinuxSeccomp.from_json(obj)


def errno_of(call: Callable[[], object]) -> int:
    try:
        call()
    except OSError as e:
        return e.errno or 0
    return 0


@pytest.fixture(autouse=True)
def _native_arch_known() -> None:
    if not NATIVE_ARCH:
        pytest.skip(f"no seccomp architecture name for {platform.machine()} in these tests")


def test_errno_rule_refuses_mkdir(tmp_path: Path) -> None:
    cfg = profile({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM})

    def child() -> dict[str, Any]:
        load_seccomp(cfg)
        status = proc_status()
        return {
            "mkdir": errno_of(lambda: os.mkdir(tmp_path / "d")),
            "seccomp": status["Seccomp"],
            "filters": status["Seccomp_filters"],
            "nnp": status["NoNewPrivs"],
        }

    got = in_child(child).result()
    assert got == {"mkdir": errno.EPERM, "seccomp": "2", "filters": "1", "nnp": "0"}
    assert not (tmp_path / "d").exists()


def test_errno_rule_with_a_custom_errno() -> None:
    cfg = profile({"names": ["getsid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})

    def child() -> list[int]:
        before = errno_of(lambda: os.getsid(0))
        load_seccomp(cfg)
        return [before, errno_of(lambda: os.getsid(0))]

    assert in_child(child).result() == [0, errno.ENOSYS]


def test_argument_condition_both_ways() -> None:
    # personality is allowed only to query (arg0 == 0xffffffff); any change is refused.
    cfg = profile(
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": PERSONALITY_QUERY, "op": "SCMP_CMP_NE"}],
        }
    )

    def child() -> list[int]:
        load_seccomp(cfg)
        return [personality(PERSONALITY_QUERY), personality(PER_LINUX32), personality(PERSONALITY_QUERY)]

    query, change, after = in_child(child).result()
    assert query >= 0 and after == query
    assert change == -errno.EPERM


def test_conditions_on_one_argument_become_separate_rules() -> None:
    # libseccomp refuses both conditions in one rule; split, either one matches.
    cfg = profile(
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EACCES,
            "args": [
                {"index": 0, "value": PER_LINUX32, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": ADDR_NO_RANDOMIZE, "op": "SCMP_CMP_EQ"},
            ],
        }
    )

    def child() -> list[int]:
        load_seccomp(cfg)
        return [personality(PER_LINUX32), personality(ADDR_NO_RANDOMIZE), personality(PERSONALITY_QUERY)]

    linux32, no_randomize, query = in_child(child).result()
    assert linux32 == no_randomize == -errno.EACCES
    assert query >= 0


def test_conditions_on_different_arguments_must_all_hold() -> None:
    missing_pid = 0x7FFFFFF0
    cfg = profile(
        {
            "names": ["getpriority"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 77,
            "args": [
                {"index": 0, "value": os.PRIO_PROCESS, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": missing_pid, "op": "SCMP_CMP_EQ"},
            ],
        }
    )

    def child() -> list[int]:
        load_seccomp(cfg)
        return [
            errno_of(lambda: os.getpriority(os.PRIO_PROCESS, missing_pid)),  # both hold: the filter's errno
            errno_of(lambda: os.getpriority(os.PRIO_PGRP, missing_pid)),  # only one: the kernel's ESRCH
            errno_of(lambda: os.getpriority(os.PRIO_PROCESS, 0)),
        ]

    assert in_child(child).result() == [77, errno.ESRCH, 0]


def test_masked_eq_condition() -> None:
    cfg = profile(
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 0xFF, "valueTwo": PER_LINUX32, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    )

    def child() -> list[int]:
        load_seccomp(cfg)
        return [personality(PER_LINUX32 | ADDR_NO_RANDOMIZE), personality(PERSONALITY_QUERY)]

    masked, query = in_child(child).result()
    assert masked == -errno.EPERM and query >= 0


def test_kill_process_ends_with_sigsys() -> None:
    cfg = profile({"names": ["getpgid"], "action": "SCMP_ACT_KILL_PROCESS"})

    def child() -> None:
        load_seccomp(cfg)
        os.getpgid(0)

    outcome = in_child(child)
    assert os.WIFSIGNALED(outcome.status) and os.WTERMSIG(outcome.status) == signal.SIGSYS
    assert outcome.value is None and not outcome.error


def test_unknown_names_and_redundant_rules_are_skipped(tmp_path: Path) -> None:
    cfg = profile(
        {"names": ["hull_no_such_syscall", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},  # the default already: libseccomp would refuse it
        architectures=[NATIVE_ARCH, "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_LOONGARCH64"],
        flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    )

    def child() -> int:
        load_seccomp(cfg)
        return errno_of(lambda: os.mkdir(tmp_path / "d"))

    assert in_child(child).result() == errno.EPERM


# What /bin/true (dynamically linked) and the last steps of Python before execve need.
EXEC_ALLOW = [
    "execve", "brk", "arch_prctl", "mmap", "munmap", "mprotect", "openat", "open", "close", "read",
    "pread64", "fstat", "newfstatat", "statx", "access", "faccessat", "faccessat2", "set_tid_address",
    "set_robust_list", "rseq", "prlimit64", "getrandom", "write", "rt_sigaction", "rt_sigprocmask",
    "futex", "exit", "exit_group",
]  # fmt: skip
EXEC_FAILED = 100


def test_default_errno_with_an_allow_list() -> None:
    def run_true(allowed: list[str]) -> Callable[[], None]:
        cfg = profile({"names": allowed, "action": "SCMP_ACT_ALLOW"}, default="SCMP_ACT_ERRNO", defaultErrnoRet=1)

        def child() -> None:
            load_seccomp(cfg)
            try:
                os.execv("/bin/true", ["true"])
            except OSError as e:
                os._exit(EXEC_FAILED + (e.errno or 0))

        return child

    ran = in_child(run_true(EXEC_ALLOW))
    assert os.WIFEXITED(ran.status) and os.WEXITSTATUS(ran.status) == 0
    refused = in_child(run_true([n for n in EXEC_ALLOW if n != "execve"]))
    assert os.WIFEXITED(refused.status) and os.WEXITSTATUS(refused.status) == EXEC_FAILED + errno.EPERM


def test_loading_without_no_new_privs_needs_cap_sys_admin() -> None:
    cfg = profile({"names": ["getsid"], "action": "SCMP_ACT_ERRNO"})

    def child(no_new_privs: bool) -> Callable[[], int]:
        def run() -> int:
            finalize_process_identity(LinuxCapabilities(), 1000, 1000, [])
            if no_new_privs:
                syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
            load_seccomp(cfg)
            return errno_of(lambda: os.getsid(0))

        return run

    error = in_child(child(False)).error
    assert "HullError: seccomp: loading the filter needs no_new_privs or CAP_SYS_ADMIN" in error
    assert in_child(child(True)).result() == errno.EPERM


def test_missing_libseccomp_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seccomp, "LIBSECCOMP_SONAME", "libseccomp-hull-test-missing.so.2")
    seccomp._library.cache_clear()
    try:
        with pytest.raises(HullError, match=r"cannot load libseccomp-hull-test-missing.so.2 .*install the libseccomp2"):
            load_seccomp(profile())
    finally:
        seccomp._library.cache_clear()
