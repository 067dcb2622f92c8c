"""Docker's default seccomp profile as data, and the conversion of any Docker-format profile to OCI.

Vocabulary: a *Docker-format profile* is what `--security-opt seccomp=FILE` takes and what
moby ships as profiles/seccomp/default.json: the OCI fields (defaultAction,
defaultErrnoRet, architectures, flags) plus an `archMap` (native architecture -> the
sub-architectures whose calls it also filters) and `syscalls` entries that may carry
`includes`/`excludes` conditions on the container's capabilities (`caps`), the machine
(`arches`, Docker's names: amd64, x86, arm64...) and the kernel (`minKernel`, "4.8"). The
*OCI section* is the spec's linux.seccomp: the same entries with the conditions already
decided for one container, which is what the runtime loads.

Contract:
- `default_profile()` is Docker 20.10's default, written from what it allows (checked
  against the linux.seccomp of a real dockerd's config.json): every call not listed fails
  with EPERM; an allowlist; groups allowed only with a capability (CAP_SYS_ADMIN: mount,
  unshare, setns...; CAP_SYS_PTRACE: process_vm_*...); without CAP_SYS_ADMIN, clone only
  without namespace flags and clone3 failing with ENOSYS so that libcs fall back to clone;
  personality only with the harmless personas.
- `to_oci(profile, capabilities)` decides every condition for a container whose bounding
  set is `capabilities` (Docker checks the bounding set) on this machine and kernel, and
  checks the result with the runtime's own parser, so a bad profile is refused at create.
- `parse_security_opt_profile(value)` reads the value of `seccomp=`: the docker CLI sends
  the file's JSON content, hull's may send a path. Errors are InvalidArgument.
"""

import copy
import json
import os
import platform
from collections.abc import Collection
from typing import Any

from hull.errors import InvalidArgument
from hull.runtime import fields as F
from hull.runtime.seccomp import LinuxSeccomp

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"
EPERM = 1
ENOSYS = 38

# Calls every container may make, whatever its capabilities.
ALLOWED_SYSCALLS: tuple[str, ...] = (
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod",
    "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
    "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
    "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
    "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
    "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex",
    "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
    "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid",
    "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
    "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr",
    "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr",
    "lstat", "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat",
    "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr",
    "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
    "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open",
    "pidfd_send_signal", "pipe", "pipe2", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
    "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
    "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
    "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
    "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl",
    "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32",
    "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl",
    "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socket",
    "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink",
    "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
    "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime",
    "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
    "writev"
)  # fmt: skip

# Calls allowed only when the container's bounding set holds the capability, since the
# kernel would let them do what that capability guards.
CAPABILITY_SYSCALLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("CAP_DAC_READ_SEARCH", ("open_by_handle_at",)),
    ("CAP_SYS_ADMIN", (
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
        "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree", "perf_event_open", "quotactl",
        "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
    )),
    ("CAP_SYS_BOOT", ("reboot",)),
    ("CAP_SYS_CHROOT", ("chroot",)),
    ("CAP_SYS_MODULE", ("delete_module", "init_module", "finit_module")),
    ("CAP_SYS_PACCT", ("acct",)),
    ("CAP_SYS_PTRACE", (
        "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace",
    )),
    ("CAP_SYS_RAWIO", ("iopl", "ioperm")),
    ("CAP_SYS_TIME", ("settimeofday", "stime", "clock_settime")),
    ("CAP_SYS_TTY_CONFIG", ("vhangup",)),
    ("CAP_SYS_NICE", ("get_mempolicy", "mbind", "set_mempolicy")),
    ("CAP_SYSLOG", ("syslog",)),
)  # fmt: skip

# Calls that only some machines have, by Docker's architecture names.
ARCH_SYSCALLS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("ppc64le",), ("sync_file_range2",)),
    (("arm", "arm64"), (
        "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls",
    )),
    (("amd64", "x32"), ("arch_prctl",)),
    (("amd64", "x32", "x86"), ("modify_ldt",)),
    (("s390", "s390x"), ("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr")),
    (("riscv64",), ("riscv_flush_icache",)),
)  # fmt: skip

# ptrace no longer lets a tracee escape seccomp from kernel 4.8 on, so it is allowed there.
PTRACE_MIN_KERNEL = "4.8"

# personality(2) personas that change nothing dangerous: PER_LINUX, PER_LINUX32,
# UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query the current persona).
SAFE_PERSONALITIES: tuple[int, ...] = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# clone(2) flags that create namespaces (NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID,
# NEWNET): without CAP_SYS_ADMIN, clone is allowed only when none of them is set.
CLONE_NAMESPACE_FLAGS = 0x7E020000
# s390 passes clone's flags as the second argument.
CLONE_FLAGS_ARG_S390 = 1
S390_ARCHES = ("s390", "s390x")

# Native architecture (libseccomp's name) -> the others whose system calls it also runs.
ARCH_MAP: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
    ("SCMP_ARCH_MIPS64", ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32")),
    ("SCMP_ARCH_MIPS64N32", ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64")),
    ("SCMP_ARCH_MIPSEL64", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32")),
    ("SCMP_ARCH_MIPSEL64N32", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64")),
    ("SCMP_ARCH_S390X", ("SCMP_ARCH_S390",)),
    ("SCMP_ARCH_RISCV64", ()),
)

# uname's machine -> Docker's name for the architecture (profiles' `arches`) and libseccomp's.
MACHINE_ARCHES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "i386": ("x86", "SCMP_ARCH_X86"),
    "i686": ("x86", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "armv6l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
}

PROFILE_WHERE = "seccomp profile"


def _allow(names: tuple[str, ...] | list[str], **extra: Any) -> dict[str, Any]:
    return {"names": list(names), "action": ALLOW, **extra}


def default_profile() -> dict[str, Any]:
    """Docker's default profile in Docker's format (a new object on each call: callers may change it)."""
    syscalls: list[dict[str, Any]] = [
        _allow(ALLOWED_SYSCALLS),
        _allow(["ptrace"], includes={"minKernel": PTRACE_MIN_KERNEL}),
        *(_allow(["personality"], args=[{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}]) for p in SAFE_PERSONALITIES),
        *(_allow(names, includes={"arches": list(arches)}) for arches, names in ARCH_SYSCALLS),
    ]
    for cap, names in CAPABILITY_SYSCALLS:
        syscalls.append(_allow(names, includes={"caps": [cap]}))
        if cap == "CAP_SYS_ADMIN":
            syscalls += [
                _allow(
                    ["clone"],
                    args=[{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}],
                    excludes={"caps": [cap], "arches": list(S390_ARCHES)},
                ),
                _allow(
                    ["clone"],
                    args=[{"index": CLONE_FLAGS_ARG_S390, "value": CLONE_NAMESPACE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}],
                    includes={"arches": list(S390_ARCHES)},
                    excludes={"caps": [cap]},
                ),
                # ENOSYS, not EPERM: glibc then falls back to clone, whose flags can be checked.
                {"names": ["clone3"], "action": ERRNO, "errnoRet": ENOSYS, "excludes": {"caps": [cap]}},
            ]
    return copy.deepcopy(
        {
            "defaultAction": ERRNO,
            "defaultErrnoRet": EPERM,
            "archMap": [{"architecture": a, "subArchitectures": list(subs)} for a, subs in ARCH_MAP],
            "syscalls": syscalls,
        }
    )


def native_arches(machine: str | None = None) -> tuple[str, str]:
    """(Docker's name, libseccomp's name) of this machine's architecture; ("", "") if unknown."""
    return MACHINE_ARCHES.get(machine or platform.machine(), ("", ""))


def _kernel_version(release: str) -> tuple[int, int]:
    parts = release.split("-", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise InvalidArgument(f"{PROFILE_WHERE}: invalid kernel version {release!r}") from None


def _condition(obj: dict[str, Any], key: str, where: str) -> tuple[list[str], list[str], tuple[int, int] | None]:
    """An entry's includes or excludes: (caps, arches, minKernel)."""
    cond = F.field(obj, key, dict, where, {})
    w = f"{where}.{key}"
    min_kernel = F.field(cond, "minKernel", str, w, "")
    return (
        F.str_list(cond, "caps", w),
        F.str_list(cond, "arches", w),
        _kernel_version(min_kernel) if min_kernel else None,
    )


def to_oci(
    profile: dict[str, Any],
    capabilities: Collection[str],
    *,
    machine: str | None = None,
    kernel_release: str | None = None,
) -> dict[str, Any]:
    """The OCI linux.seccomp section of a Docker-format profile, for a container with `capabilities` as bounding set.

    `machine` and `kernel_release` default to this host's (uname); tests pass others.
    """
    where = PROFILE_WHERE
    F.expect(profile, dict, where)
    arch, scmp_arch = native_arches(machine)
    kernel = _kernel_version(kernel_release or os.uname().release)
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument(f"{where}: both 'architectures' and 'archMap' are specified, use either one")
    out: dict[str, Any] = {"defaultAction": F.field(profile, "defaultAction", str, where)}
    for key in ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata"):
        if profile.get(key) is not None:
            out[key] = profile[key]
    architectures = F.str_list(profile, "architectures", where)
    for w, entry in F.obj_list(profile, "archMap", where):
        if F.field(entry, "architecture", str, w) == scmp_arch:
            architectures = [scmp_arch, *F.str_list(entry, "subArchitectures", w)]
            break
    if architectures:
        out["architectures"] = architectures

    caps = set(capabilities)
    syscalls = []
    for w, entry in F.obj_list(profile, "syscalls", where):
        names = F.str_list(entry, "names", w)
        name = F.field(entry, "name", str, w, "")
        if name:
            if names:
                raise InvalidArgument(f"{w}: both 'name' and 'names' are specified, use either one")
            names = [name]
        inc_caps, inc_arches, inc_kernel = _condition(entry, "includes", w)
        exc_caps, exc_arches, exc_kernel = _condition(entry, "excludes", w)
        if arch in exc_arches or caps.intersection(exc_caps) or (exc_kernel is not None and kernel >= exc_kernel):
            continue
        if (inc_arches and arch not in inc_arches) or not caps.issuperset(inc_caps):
            continue
        if inc_kernel is not None and kernel < inc_kernel:
            continue
        call: dict[str, Any] = {"names": names, "action": F.field(entry, "action", str, w)}
        for key in ("errnoRet", "args"):
            if entry.get(key) is not None:
                call[key] = entry[key]
        syscalls.append(call)
    if syscalls:
        out["syscalls"] = syscalls
    LinuxSeccomp.from_json(out, where)  # the runtime's checks, made now rather than at start
    return out


def parse_security_opt_profile(value: str) -> dict[str, Any]:
    """The Docker-format profile named by `seccomp=<value>`: its JSON text, or a path to a file holding it."""
    text = value
    if not value.lstrip().startswith("{"):
        try:
            with open(value, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise InvalidArgument(f"opening seccomp profile ({value}) failed: {e.strerror}") from None
    try:
        profile = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"decoding seccomp profile failed: {e}") from None
    if not isinstance(profile, dict):
        raise InvalidArgument("decoding seccomp profile failed: expected a JSON object")
    return profile
