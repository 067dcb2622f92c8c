"""Platforms in Go's names (os/architecture/variant), as images and registries spell them.

One home for the fact: import, commit, load of an OCI index and pull all resolve "this
machine" and "the platform the user asked for" here.
"""

import os
from dataclasses import dataclass

from hull.errors import InvalidArgument

# Go's names for the machine's architecture (runtime.GOARCH) and variant, by uname's machine.
_GO_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}
SUPPORTED_OS = "linux"
# GOOS values: a platform of one word is an operating system if it is one of these, else an architecture.
_GO_OS = frozenset({"aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux", "netbsd",
                    "openbsd", "plan9", "solaris", "wasip1", "windows"})  # fmt: skip


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def host_platform() -> Platform:
    """This machine's platform in Go's names (Docker's default for import)."""
    machine = os.uname().machine
    arch, variant = _GO_ARCH.get(machine, (machine, ""))
    return Platform(SUPPORTED_OS, arch, variant)


def parse_platform(text: str) -> Platform:
    """`os[/arch[/variant]]` (or an architecture alone), checked to be one hull can run."""
    parts = text.lower().split("/")
    if not text or len(parts) > 3 or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os[/arch[/variant]]")
    host = host_platform()
    if len(parts) == 1 and parts[0] not in _GO_OS:
        parts = [SUPPORTED_OS, parts[0]]
    system = parts[0]
    if system != SUPPORTED_OS:
        raise InvalidArgument(f'image operating system "{system}" cannot be used on this platform')
    if len(parts) == 1:
        return host
    arch, variant = _GO_ARCH.get(parts[1], (parts[1], ""))
    return Platform(system, arch, parts[2] if len(parts) == 3 else (variant if arch == host.architecture else ""))
