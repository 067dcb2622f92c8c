"""Linux capabilities of the container's process, and the identity switch they must survive.

Vocabulary (capabilities(7)): a thread has five capability *sets* — *bounding* (the most it
can ever gain across execve), *effective* (what the kernel checks now), *permitted* (what it
may make effective), *inheritable* and *ambient* (what survives an execve of a file that has
no file capabilities, which is every program in an ordinary image). A *mask* is a set as an
integer, bit N standing for capability number N, the way /proc/<pid>/status prints it.

Contract: `LinuxCapabilities.from_json` reads the spec's `process.capabilities`; an unknown
name is an InvalidArgument naming it, while a name this kernel does not know yet (above
/proc/sys/kernel/cap_last_cap) is dropped silently, since no kernel can grant what it lacks.

Sequence. The runtime's init and exec paths call `finalize_process_identity` once, as root
with every capability, just before execve. It does what runc does, in this order, because
each step needs privileges that the next one takes away:

1. `drop_bounding_set` — PR_CAPBSET_DROP needs CAP_SETPCAP, which step 5 may remove;
2. PR_SET_KEEPCAPS 1 — otherwise switching every uid from 0 to non-zero clears the
   permitted set, and step 5 could not regain anything;
3. setgroups, setresgid, setresuid — they need CAP_SETGID and CAP_SETUID, still effective;
4. PR_SET_KEEPCAPS 0 — so that the user's process does not inherit the flag;
5. `apply_capabilities` — capset of effective, permitted and inheritable from what step 2
   kept, then the ambient set, which the uid change cleared.
"""

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hull.errors import HullError, InvalidArgument
from hull.runtime import fields as F
from hull.runtime import syscalls

# Index = capability number (linux/capability.h); the one place these names are spelled.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
CAP_NUMBERS = {name: number for number, name in enumerate(CAPABILITIES)}

CAP_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"
SETGROUPS_FILE = "/proc/self/setgroups"  # "deny" in a user namespace whose gid map was written unprivileged
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


@functools.cache
def last_cap() -> int:
    """The highest capability number this kernel knows.

    Read once per process (the first call is normally on the host, before any pivot_root).
    Where /proc is not mounted, asks the kernel directly: PR_CAPBSET_READ fails with EINVAL
    for a number it does not know.
    """
    try:
        with open(CAP_LAST_CAP_FILE) as f:
            return int(f.read())
    except OSError:
        number = 0
        while True:
            try:
                syscalls.prctl(syscalls.PR_CAPBSET_READ, number + 1)
            except OSError:
                return number
            number += 1


def cap_mask(names: Iterable[str]) -> int:
    """The mask of known capability names (as in /proc/<pid>/status)."""
    mask = 0
    for name in names:
        mask |= 1 << CAP_NUMBERS[name]
    return mask


@dataclass
class LinuxCapabilities:
    """The spec's process.capabilities: each set as a list of names like "CAP_CHOWN"."""

    bounding: list[str] = field(default_factory=list)
    effective: list[str] = field(default_factory=list)
    permitted: list[str] = field(default_factory=list)
    inheritable: list[str] = field(default_factory=list)
    ambient: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "process.capabilities") -> "LinuxCapabilities":
        F.expect(obj, dict, where)
        top = last_cap()
        sets: dict[str, list[str]] = {}
        for set_name in SETS:
            names: list[str] = []
            for i, name in enumerate(F.str_list(obj, set_name, where)):
                number = CAP_NUMBERS.get(name)
                if number is None:
                    raise InvalidArgument(f'{where}.{set_name}[{i}]: unknown capability "{name}"')
                if number <= top and name not in names:
                    names.append(name)
            sets[set_name] = names
        return cls(**sets)


def drop_bounding_set(caps: LinuxCapabilities) -> None:
    """Drop every capability not in caps.bounding from this thread's bounding set (needs CAP_SETPCAP)."""
    keep = cap_mask(caps.bounding)
    for number in range(last_cap() + 1):
        if not keep & (1 << number):
            try:
                syscalls.prctl(syscalls.PR_CAPBSET_DROP, number)
            except OSError as e:
                raise HullError(f"drop {CAPABILITIES[number]} from the bounding set: {e.strerror}") from None


def apply_capabilities(caps: LinuxCapabilities) -> None:
    """Set the effective, permitted and inheritable sets, then the ambient set.

    The kernel raises an ambient capability only if it is both permitted and inheritable;
    one that is not is left out rather than failing the container, as runc does (its own
    default spec lists ambient capabilities without inheritable ones).
    """
    try:
        syscalls.capset(cap_mask(caps.effective), cap_mask(caps.permitted), cap_mask(caps.inheritable))
    except OSError as e:
        raise HullError(f"set capabilities: {e.strerror}") from None
    raisable = cap_mask(caps.permitted) & cap_mask(caps.inheritable)
    syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    for name in caps.ambient:
        number = CAP_NUMBERS[name]
        if raisable & (1 << number):
            syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, number)


def _setgroups_allowed() -> bool:
    try:
        with open(SETGROUPS_FILE) as f:
            return f.read().strip() != "deny"
    except OSError:  # no /proc in the container: setgroups itself will tell
        return True


def finalize_process_identity(caps: LinuxCapabilities | None, uid: int, gid: int, additional_gids: list[int]) -> None:
    """Become uid/gid with additional_gids and exactly `caps` (None: leave capabilities to the kernel).

    Runs the whole sequence of the module docstring. With caps None, the uid change has its
    ordinary effect: a switch away from uid 0 clears every capability but the bounding set.
    """
    if caps is not None:
        drop_bounding_set(caps)
        syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
    if _setgroups_allowed():
        try:
            os.setgroups(additional_gids)
        except OSError as e:
            raise HullError(f"setgroups {additional_gids}: {e.strerror}") from None
    elif additional_gids:
        raise HullError(f"cannot set additional gids {additional_gids}: setgroups is denied in this user namespace")
    try:
        os.setresgid(gid, gid, gid)
    except OSError as e:
        raise HullError(f"setresgid {gid}: {e.strerror}") from None
    try:
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise HullError(f"setresuid {uid}: {e.strerror}") from None
    if caps is not None:
        syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0)
        apply_capabilities(caps)
