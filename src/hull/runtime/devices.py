"""The devices every container gets: the nodes made in its /dev and the cgroup rules that allow them.

One place for this fact: rootfs setup creates DEFAULT_DEVICES, and the cgroup device
controller always allows them (plus /dev/pts/* and /dev/ptmx for terminals), whatever the
spec's own `linux.resources.devices` rules say, as runc does.
"""

from dataclasses import dataclass


@dataclass
class DeviceNode:
    """A device file to create inside the container (the spec's `linux.devices` entries)."""

    path: str
    type: str  # "c", "b", "u" (unbuffered char) or "p" (fifo)
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0


@dataclass
class DeviceRule:
    """One cgroup device-controller rule; major/minor -1 stand for the wildcard `*`."""

    allow: bool
    type: str  # "a", "c" or "b"
    major: int = -1
    minor: int = -1
    access: str = "rwm"

    def cgroup_v1_line(self) -> str:
        """The text written to devices.allow or devices.deny, e.g. `c 1:3 rwm` or `a`."""
        if self.type == "a":
            return "a"

        def num(n: int) -> str:
            return "*" if n < 0 else str(n)

        return f"{self.type} {num(self.major)}:{num(self.minor)} {self.access}"


DEFAULT_DEVICES: tuple[DeviceNode, ...] = (
    DeviceNode("/dev/null", "c", 1, 3),
    DeviceNode("/dev/zero", "c", 1, 5),
    DeviceNode("/dev/full", "c", 1, 7),
    DeviceNode("/dev/random", "c", 1, 8),
    DeviceNode("/dev/urandom", "c", 1, 9),
    DeviceNode("/dev/tty", "c", 5, 0),
)

# Symlinks made in every container's /dev: target -> link path.
DEFAULT_DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
)

DEFAULT_ALLOWED_RULES: tuple[DeviceRule, ...] = (
    *(DeviceRule(True, d.type, d.major, d.minor, "rwm") for d in DEFAULT_DEVICES),
    DeviceRule(True, "c", 5, 1, "rwm"),  # /dev/console
    DeviceRule(True, "c", 5, 2, "rwm"),  # /dev/ptmx
    DeviceRule(True, "c", 136, -1, "rwm"),  # /dev/pts/*
)
