"""The Linux system calls that Python 3.11's os module lacks, one small function per call.

Each function has the syscall's name and arguments and raises OSError (with errno) on
failure, exactly as the os module does; nothing here decides policy. libc is reached through
ctypes with use_errno so that errno survives the call.
"""

import ctypes
import os
import signal

# The interpreter is linked against libc: its own handle reaches every libc symbol, with no
# find_library (which runs ldconfig, a process per start).
_libc = ctypes.CDLL(None, use_errno=True)
# The same, but called holding the GIL (as os.fork calls fork(2)): for clone3, whose child must
# not run Python code before PyOS_AfterFork_Child.
_libc_gil = ctypes.PyDLL(None, use_errno=True)

# Namespace flags for clone(2), unshare(2) and setns(2); CLONE_FS unshares only the cwd and root.
CLONE_FS = 0x00000200
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# mount(2) flags.
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

# umount2(2) flags.
MNT_FORCE = 0x1
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# capget(2)/capset(2): version 3 takes two 32-bit data words per set.
LINUX_CAPABILITY_VERSION_3 = 0x20080522

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}
_SYS_CAPGET = {"x86_64": 125, "aarch64": 90, "ppc64le": 183, "s390x": 184, "riscv64": 90}
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "ppc64le": 184, "s390x": 185, "riscv64": 91}
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "s390x": 348, "riscv64": 277}
_ARCH = os.uname().machine


def _check(ret: int, what: str, path: str | None = None) -> int:
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret


def _b(s: str | bytes | None) -> bytes | None:
    if s is None:
        return None
    return s if isinstance(s, bytes) else os.fsencode(s)


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    ret = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(ret, f"mount {source or fstype or ''} on {target}", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}", target)


def pivot_root(new_root: str, put_old: str) -> None:
    ret = _libc.syscall(ctypes.c_long(_SYS_PIVOT_ROOT[_ARCH]), _b(new_root), _b(put_old))
    _check(ret, "pivot_root", new_root)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    args = (ctypes.c_ulong(a) for a in (arg2, arg3, arg4, arg5))
    return _check(_libc.prctl(ctypes.c_int(option), *args), f"prctl({option})")


class CapUserHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapUserData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """Return the (effective, permitted, inheritable) sets of `pid` as 64-bit masks."""
    header = CapUserHeader(LINUX_CAPABILITY_VERSION_3, pid)
    data = (CapUserData * 2)()
    _check(_libc.syscall(ctypes.c_long(_SYS_CAPGET[_ARCH]), ctypes.byref(header), data), "capget")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets from 64-bit masks."""
    header = CapUserHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (CapUserData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(ctypes.c_long(_SYS_CAPSET[_ARCH]), ctypes.byref(header), data), "capset")


SECCOMP_SET_MODE_FILTER = 1
BPF_INSTRUCTION_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_mode_filter(program: bytes, flags: int = 0) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): `program` is struct sock_filter[]; returns
    what the call does (the listener's fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0)."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // BPF_INSTRUCTION_SIZE, ctypes.cast(buf, ctypes.c_void_p))
    ret = _libc.syscall(
        ctypes.c_long(_SYS_SECCOMP[_ARCH]), ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags),
        ctypes.byref(prog),
    )  # fmt: skip
    _check(ret, "seccomp")
    return int(ret)


# The new mount API (Linux 5.2+): its syscall numbers are the same on every architecture.
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100


def fsopen(fstype: str) -> int:
    ret = _libc.syscall(ctypes.c_long(_SYS_FSOPEN), fstype.encode(), ctypes.c_uint(FSOPEN_CLOEXEC))
    return _check(ret, "fsopen")


def fsconfig_set_string(fd: int, key: str, value: str) -> None:
    ret = _libc.syscall(
        ctypes.c_long(_SYS_FSCONFIG), ctypes.c_int(fd), ctypes.c_uint(FSCONFIG_SET_STRING),
        key.encode(), os.fsencode(value), ctypes.c_int(0),
    )  # fmt: skip
    _check(ret, f"fsconfig {key}={value}")


def fsconfig_create(fd: int) -> None:
    ret = _libc.syscall(
        ctypes.c_long(_SYS_FSCONFIG), ctypes.c_int(fd), ctypes.c_uint(FSCONFIG_CMD_CREATE), None, None, ctypes.c_int(0)
    )
    _check(ret, "fsconfig create")


def fsmount(fd: int) -> int:
    ret = _libc.syscall(ctypes.c_long(_SYS_FSMOUNT), ctypes.c_int(fd), ctypes.c_uint(FSMOUNT_CLOEXEC), ctypes.c_uint(0))
    return _check(ret, "fsmount")


def move_mount(fd: int, target: str) -> None:
    ret = _libc.syscall(
        ctypes.c_long(_SYS_MOVE_MOUNT), ctypes.c_int(fd), b"", ctypes.c_int(AT_FDCWD), os.fsencode(target),
        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
    )  # fmt: skip
    _check(ret, f"move_mount to {target}", target)


def syncfs(fd: int) -> None:
    _check(_libc.syncfs(ctypes.c_int(fd)), "syncfs")


# clone3(2) (Linux 5.3+; CLONE_INTO_CGROUP 5.7+): the same number on every architecture.
_SYS_CLONE3 = 435
CLONE_INTO_CGROUP = 0x200000000


class _CloneArgs(ctypes.Structure):
    """struct clone_args, up to its `cgroup` field (CLONE_ARGS_SIZE_VER2, 88 bytes)."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls",
            "set_tid", "set_tid_size", "cgroup",
        )
    ]  # fmt: skip


def clone3_into_cgroup(cgroup_fd: int) -> int:
    """fork(2) as clone3(2) with CLONE_INTO_CGROUP: the child is born in the cgroup2 directory
    `cgroup_fd`. Returns as os.fork does, and keeps the interpreter's fork bookkeeping (locks,
    at-fork callbacks) as os.fork does. libc's own fork handlers do not run: call it only
    from a single-threaded process, where no other thread can hold a libc lock."""
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=signal.SIGCHLD, cgroup=cgroup_fd)
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = _libc_gil.syscall(ctypes.c_long(_SYS_CLONE3), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        return 0
    ctypes.pythonapi.PyOS_AfterFork_Parent()
    return _check(pid, "clone3")
