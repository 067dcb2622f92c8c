"""The spec's linux.seccomp: a system call filter, parsed here and loaded through libseccomp.

Vocabulary (seccomp(2), seccomp_rule_add(3)): a *filter* decides, for every system call the
process makes, an *action* — allow it, fail it with an errno, kill, trap, trace or log. The
*default action* applies to calls that no *rule* matches; a rule names one system call, an
action and optional *conditions*, each comparing one argument (by *index*, 0-5) with an
*op* to a value. All conditions of one rule must hold.

Contract:
- `LinuxSeccomp.from_json` checks every field and raises InvalidArgument naming it, for an
  unknown action, op, architecture or flag, a bad type or an out-of-range number. It needs
  no libseccomp, so a bad profile is refused before any container is made.
- `compile_filter` builds the filter with libseccomp (Debian's libseccomp2, loaded on first
  use, not at import) and returns it as the kernel's BPF program; `install` hands such a
  program to seccomp(2) on the calling thread, with no libseccomp at all. The runtime compiles
  in its own process while the container's init is being set up, and the init only installs.
  Given a cache directory, `compile_filter` keeps each distinct program there: building and
  exporting Docker's default profile takes libseccomp ~10 ms, every container of a daemon
  asks for the same one, and reading it back takes ~0.1 ms.
  Names a kernel or library does not know are skipped, as runc does, so one profile serves
  several kernels; so are architectures this libseccomp does not know (their calls then meet
  the bad-arch action, which kills). Neither sets no_new_privs: the runtime does that when
  the spec asks. `load_seccomp` is both at once.

Where to call it. The filter applies to every system call of the caller from then on, the
runtime's own included, and this caller is a Python process that still has to reach execve.
So load it as the last thing before execve (nothing but the exec itself should follow). One
exception, as in runc: without noNewPrivileges the kernel only accepts a filter from a
process with CAP_SYS_ADMIN, so when the spec does not ask for no_new_privs the filter has to
be loaded before capabilities are dropped (before `finalize_process_identity`), and the
profile must then allow the identity calls that follow (Docker's default profile does).
"""

import ctypes
import errno
import functools
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from hull.errors import HullError, InvalidArgument
from hull.fsutil import atomic_write
from hull.runtime import fields as F
from hull.runtime import syscalls

LIBSECCOMP_SONAME = "libseccomp.so.2"
BPF_SUFFIX = ".bpf"
BPF_INSTRUCTION_SIZE = 8  # struct sock_filter
LIBSECCOMP_PACKAGE = "libseccomp2"

# The spec's action names -> libseccomp's action values (seccomp.h, the kernel's SECCOMP_RET_*).
# ERRNO and TRACE carry a 16-bit value in the low bits.
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
ACTIONS_WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
NOTIFY = "SCMP_ACT_NOTIFY"
# What the init itself calls once the filter is in (to hand over the listener, then to exec):
# sent to the listener, they would wait for an answer that the init's own progress must give.
NOT_NOTIFIABLE = frozenset({"sendmsg", "close", "execve", "execveat", "write", "exit", "exit_group"})
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
ERRNO_RET_MAX = 0xFFFF  # the 16-bit data field of a seccomp return value

# The spec's op names -> enum scmp_compare.
OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
ARG_COUNT = 6  # a system call has at most six arguments
UINT64_MAX = 2**64 - 1

# The spec's architectures (and libseccomp 2.6's newer ones). libseccomp names each by the
# part after the prefix in lower case ("SCMP_ARCH_X86_64" -> "x86_64"), which it resolves.
ARCH_PREFIX = "SCMP_ARCH_"
ARCHITECTURES = tuple(
    ARCH_PREFIX + a
    for a in (
        "X86", "X86_64", "X32", "ARM", "AARCH64", "LOONGARCH64", "M68K",
        "MIPS", "MIPS64", "MIPS64N32", "MIPSEL", "MIPSEL64", "MIPSEL64N32",
        "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC", "PARISC64", "RISCV64", "SH", "SHEB",
    )
)  # fmt: skip

# The spec's flags -> enum scmp_filter_attr, the attribute that makes libseccomp check the
# flag against this kernel when the filter is built.
FLAG_ATTRIBUTES = {
    "SECCOMP_FILTER_FLAG_TSYNC": 4,  # SCMP_FLTATR_CTL_TSYNC
    "SECCOMP_FILTER_FLAG_LOG": 6,  # SCMP_FLTATR_CTL_LOG
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 7,  # SCMP_FLTATR_CTL_SSB
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 10,  # SCMP_FLTATR_CTL_WAITKILL (libseccomp >= 2.6)
}
# ... and -> the flag bit seccomp(2) takes (linux/seccomp.h), for installing the program ourselves.
FLAG_BITS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}
ATTR_CTL_NNP = 3  # SCMP_FLTATR_CTL_NNP: set no_new_privs on load (on by default)
ATTR_CTL_OPTIMIZE = 8  # SCMP_FLTATR_CTL_OPTIMIZE: how the program is laid out
ATTR_API_SYSRAWRC = 9  # SCMP_FLTATR_API_SYSRAWRC: report the kernel's errno, not ECANCELED
# SCMP_FLTATR_CTL_OPTIMIZE's 2: the syscalls as a binary tree, not one comparison after another.
# Longer, but the kernel's check of each call (and, at install, its pass over every syscall
# number for its action cache) runs a few of them, not hundreds: Docker's profile installs in
# a third less time.
OPTIMIZE_BINARY_TREE = 2
NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name: no such system call


@dataclass
class SeccompArg:
    """One condition: argument `index` compared by `op` with `value` (and `value_two` for MASKED_EQ)."""

    index: int
    value: int
    op: str
    value_two: int = 0


@dataclass
class SeccompSyscall:
    """One entry of linux.seccomp.syscalls: the same action and conditions for several names."""

    names: list[str]
    action: str
    errno_ret: int | None = None  # ERRNO and TRACE only; None means EPERM
    args: list[SeccompArg] = field(default_factory=list)


@dataclass
class LinuxSeccomp:
    default_action: str
    default_errno_ret: int | None = None
    architectures: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    listener_path: str = ""
    listener_metadata: str = ""
    syscalls: list[SeccompSyscall] = field(default_factory=list)

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "linux.seccomp") -> "LinuxSeccomp":
        F.expect(obj, dict, where)
        default_action = _action(obj, "defaultAction", where)
        architectures = F.str_list(obj, "architectures", where)
        for i, arch in enumerate(architectures):
            if arch not in ARCHITECTURES:
                raise InvalidArgument(f"{where}.architectures[{i}]: unknown architecture {arch!r}")
        flags = F.str_list(obj, "flags", where)
        for i, flag in enumerate(flags):
            if flag not in FLAG_ATTRIBUTES:
                raise InvalidArgument(f"{where}.flags[{i}]: unknown flag {flag!r}")
        listener_path = F.field(obj, "listenerPath", str, where, "")
        listener_metadata = F.field(obj, "listenerMetadata", str, where, "")
        if listener_metadata and not listener_path:
            raise InvalidArgument(f"{where}.listenerMetadata: must not be set without listenerPath")
        if default_action == NOTIFY:
            raise InvalidArgument(f"{where}.defaultAction: {NOTIFY} cannot be the default action")
        syscalls = []
        for w, s in F.obj_list(obj, "syscalls", where):
            names = F.str_list(s, "names", w)
            if not names:
                raise InvalidArgument(f"{w}.names: must name at least one system call")
            args = []
            for aw, a in F.obj_list(s, "args", w):
                index = F.field(a, "index", int, aw)
                if not 0 <= index < ARG_COUNT:
                    raise InvalidArgument(f"{aw}.index: must be 0 to {ARG_COUNT - 1}, got {index}")
                op = F.field(a, "op", str, aw)
                if op not in OPS:
                    raise InvalidArgument(f"{aw}.op: unknown operator {op!r}")
                args.append(SeccompArg(index, _uint64(a, "value", aw), op, _uint64(a, "valueTwo", aw, required=False)))
            action = _action(s, "action", w)
            if action == NOTIFY:
                if not listener_path:
                    raise InvalidArgument(f"{w}.action: {NOTIFY} needs {where}.listenerPath")
                if busy := sorted(set(names) & NOT_NOTIFIABLE):
                    raise InvalidArgument(f"{w}.action: {NOTIFY} cannot apply to {busy[0]}: the runtime needs it")
            syscalls.append(SeccompSyscall(names, action, _errno_ret(s, "errnoRet", action, w), args))
        return cls(
            default_action=default_action,
            default_errno_ret=_errno_ret(obj, "defaultErrnoRet", default_action, where),
            architectures=architectures,
            flags=flags,
            listener_path=listener_path,
            listener_metadata=listener_metadata,
            syscalls=syscalls,
        )


def _action(obj: dict[str, Any], key: str, where: str) -> str:
    action: str = F.field(obj, key, str, where)
    if action not in ACTIONS:
        raise InvalidArgument(f"{where}.{key}: unknown action {action!r}")
    return action


def _uint64(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> int:
    value: int = F.field(obj, key, int, where) if required else F.field(obj, key, int, where, 0)
    if not 0 <= value <= UINT64_MAX:
        raise InvalidArgument(f"{where}.{key}: must be an unsigned 64-bit integer, got {value}")
    return value


def _errno_ret(obj: dict[str, Any], key: str, action: str, where: str) -> int | None:
    value: int | None = F.field(obj, key, int, where, None)
    if value is None:
        return None
    if action not in ACTIONS_WITH_ERRNO:
        raise InvalidArgument(f"{where}.{key}: {action} takes no errno (only {' and '.join(ACTIONS_WITH_ERRNO)} do)")
    if not 0 <= value <= ERRNO_RET_MAX:
        raise InvalidArgument(f"{where}.{key}: must be 0 to {ERRNO_RET_MAX}, got {value}")
    return value


def action_value(action: str, errno_ret: int | None) -> int:
    """libseccomp's value for an action; ERRNO and TRACE carry errno_ret, EPERM when None."""
    value = ACTIONS[action]
    if action in ACTIONS_WITH_ERRNO:
        value |= errno.EPERM if errno_ret is None else errno_ret
    return value


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def preload() -> None:
    """Load libseccomp now, if it is installed: for a process whose forks compile filters (the
    forkserver), so that each of them does not load it again (half a millisecond)."""
    try:
        _library()
    except HullError:
        pass  # containers with a seccomp profile will say so


@functools.cache
def _library() -> ctypes.CDLL:
    """libseccomp with the prototypes used here; loaded on first use so that importing is cheap."""
    try:
        lib = ctypes.CDLL(LIBSECCOMP_SONAME)
    except OSError as e:
        raise HullError(
            f"seccomp: cannot load {LIBSECCOMP_SONAME} ({e}); install the {LIBSECCOMP_PACKAGE} package"
        ) from None
    ctx = ctypes.c_void_p
    lib.seccomp_init.argtypes, lib.seccomp_init.restype = [ctypes.c_uint32], ctx
    lib.seccomp_release.argtypes, lib.seccomp_release.restype = [ctx], None
    lib.seccomp_arch_resolve_name.argtypes, lib.seccomp_arch_resolve_name.restype = [ctypes.c_char_p], ctypes.c_uint32
    lib.seccomp_arch_add.argtypes, lib.seccomp_arch_add.restype = [ctx, ctypes.c_uint32], ctypes.c_int
    lib.seccomp_attr_set.argtypes, lib.seccomp_attr_set.restype = [ctx, ctypes.c_int, ctypes.c_uint32], ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctx, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes, lib.seccomp_export_bpf.restype = [ctx, ctypes.c_int], ctypes.c_int
    lib.seccomp_version.argtypes, lib.seccomp_version.restype = [], ctypes.POINTER(_Version)
    return lib


def _fail(what: str, rc: int) -> HullError:
    """libseccomp returns -errno."""
    return HullError(f"seccomp: {what}: {os.strerror(-rc)}")


def _rules(cfg: LinuxSeccomp) -> list[tuple[SeccompSyscall, list[list[SeccompArg]]]]:
    """Each entry with the condition lists of the rules it becomes.

    libseccomp refuses two conditions on the same argument in one rule. Where an entry has
    them, it becomes one rule per condition, as runc does: the call then matches if any one
    condition holds.
    """
    out = []
    for s in cfg.syscalls:
        indexes = [a.index for a in s.args]
        split = len(set(indexes)) < len(indexes)
        out.append((s, [[a] for a in s.args] if split else [s.args]))
    return out


class SeccompFilter:
    """A libseccomp filter context, built and checked; `export` turns it into a program."""

    def __init__(self, cfg: LinuxSeccomp) -> None:
        self._lib = lib = _library()
        default = action_value(cfg.default_action, cfg.default_errno_ret)
        self._ctx = lib.seccomp_init(default)
        if not self._ctx:
            raise HullError(f"seccomp: cannot create a filter with default action {cfg.default_action}")
        try:
            self._add_rules(cfg, default)
        except BaseException:
            self.release()
            raise

    def _add_rules(self, cfg: LinuxSeccomp, default: int) -> None:
        lib, ctx = self._lib, self._ctx
        # Ignoring failure: libseccomp before 2.5 lacks these attributes (errors are then ECANCELED,
        # the program a list).
        lib.seccomp_attr_set(ctx, ATTR_API_SYSRAWRC, 1)
        lib.seccomp_attr_set(ctx, ATTR_CTL_OPTIMIZE, OPTIMIZE_BINARY_TREE)
        rc = lib.seccomp_attr_set(ctx, ATTR_CTL_NNP, 0)
        if rc < 0:
            raise _fail("cannot leave no_new_privs alone", rc)
        for flag in cfg.flags:
            rc = lib.seccomp_attr_set(ctx, FLAG_ATTRIBUTES[flag], 1)
            if rc < 0:
                raise _fail(f"flag {flag} is not supported by this libseccomp or kernel", rc)
        for arch in cfg.architectures:
            token = lib.seccomp_arch_resolve_name(arch.removeprefix(ARCH_PREFIX).lower().encode())
            if token == 0:
                continue  # unknown to this libseccomp: its calls meet the bad-arch action
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -errno.EEXIST:  # EEXIST: the native one, there from the start
                raise _fail(f"cannot add architecture {arch}", rc)
        for s, condition_lists in _rules(cfg):
            action = action_value(s.action, s.errno_ret)
            if action == default:
                continue  # libseccomp refuses a rule that repeats the default; it changes nothing
            for name in s.names:
                number = lib.seccomp_syscall_resolve_name(name.encode())
                if number == NR_SCMP_ERROR:
                    continue  # a call this kernel or libseccomp does not know
                for conditions in condition_lists:
                    array = (_ArgCmp * len(conditions))(
                        *(_ArgCmp(a.index, OPS[a.op], a.value, a.value_two) for a in conditions)
                    )
                    rc = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
                    if rc < 0:
                        raise _fail(f"cannot add the rule for {name} ({s.action})", rc)

    def export(self) -> bytes:
        """The filter as the kernel's BPF program (struct sock_filter[]), then free the context.

        Generating the program is most of libseccomp's work (a few milliseconds for Docker's
        profile); it happens here, in the caller, so that installing it is one system call.
        """
        try:
            # A memfd, not a pipe: the program may be larger than a pipe's buffer.
            fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
            try:
                rc = self._lib.seccomp_export_bpf(self._ctx, fd)
                if rc < 0:
                    raise _fail("cannot generate the filter program", rc)
                size = os.lseek(fd, 0, os.SEEK_CUR)
                return os.pread(fd, size, 0)
            finally:
                os.close(fd)
        finally:
            self.release()

    def release(self) -> None:
        if self._ctx:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None


def _cache_key(cfg: LinuxSeccomp) -> str:
    """What the compiled program depends on: the filter, its layout, libseccomp's version and the
    kernel (libseccomp probes which actions and flags it supports)."""
    v = _library().seccomp_version().contents
    uname = os.uname()
    text = repr((cfg, OPTIMIZE_BINARY_TREE, (v.major, v.minor, v.micro), uname.release, uname.version, uname.machine))
    return hashlib.sha256(text.encode()).hexdigest()


# Programs compiled in this process, by the filter object they came from (a cached spec's): the
# forkserver compiles each exec'd container's once, and the shims it forks find it here.
_COMPILED: dict[int, tuple[LinuxSeccomp, bytes]] = {}
COMPILED_CACHE_SIZE = 64


def compile_filter(cfg: LinuxSeccomp, cache_dir: str | None = None) -> bytes:
    """The BPF program of the filter `cfg` describes, for `install`; kept in `cache_dir` if given,
    and in this process for this `cfg` object."""
    hit = _COMPILED.get(id(cfg))
    if hit is not None and hit[0] is cfg:
        return hit[1]
    program = _compile_filter(cfg, cache_dir)
    _COMPILED[id(cfg)] = (cfg, program)
    while len(_COMPILED) > COMPILED_CACHE_SIZE:
        del _COMPILED[next(iter(_COMPILED))]
    return program


def _compile_filter(cfg: LinuxSeccomp, cache_dir: str | None) -> bytes:
    if cache_dir is None:
        return SeccompFilter(cfg).export()
    path = os.path.join(cache_dir, _cache_key(cfg) + BPF_SUFFIX)
    try:
        with open(path, "rb") as f:
            program = f.read()
        if program and len(program) % BPF_INSTRUCTION_SIZE == 0:
            return program
    except FileNotFoundError:
        pass
    program = SeccompFilter(cfg).export()
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    # Atomic, not durable: an entry a crash lost is compiled again.
    atomic_write(path, program, mode=0o600, fsync=False)
    return program


def uses_notify(cfg: LinuxSeccomp) -> bool:
    """Whether the filter hands some calls to a listener (the spec's listenerPath) to answer."""
    return any(s.action == NOTIFY for s in cfg.syscalls)


def install(program: bytes, cfg: LinuxSeccomp) -> int | None:
    """Install `program` (from compile_filter of `cfg`) on the calling thread, with cfg's flags;
    returns the notification listener's fd when the filter has SCMP_ACT_NOTIFY rules."""
    flags = SECCOMP_FILTER_FLAG_NEW_LISTENER if uses_notify(cfg) else 0
    for flag in cfg.flags:
        flags |= FLAG_BITS[flag]
    try:
        fd = syscalls.seccomp_set_mode_filter(program, flags)
    except OSError as e:
        if e.errno == errno.EACCES:
            raise HullError(
                f"seccomp: loading the filter needs no_new_privs or CAP_SYS_ADMIN: {os.strerror(errno.EACCES)}"
            ) from None
        raise HullError(f"seccomp: cannot load the filter: {os.strerror(e.errno or 0)}") from None
    return fd if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER else None


def load_seccomp(cfg: LinuxSeccomp) -> None:
    """Build the filter `cfg` describes and install it on the calling thread (see the module docstring)."""
    fd = install(compile_filter(cfg), cfg)
    if fd is not None:  # nobody to hand it to here: calls sent to it fail with ENOSYS
        os.close(fd)
