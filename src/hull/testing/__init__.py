"""Helpers for hull's own tests, benchmarks and demo: test root filesystems built offline from the host."""

import os
import re
import shutil
from pathlib import Path

from hull.errors import HullError


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, as /proc/self/mountinfo lists them."""
    root = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # Field 5 is the mount point, with space, tab, newline and backslash written as \ooo.
            target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])
            if target == root or target.startswith(root.rstrip("/") + "/"):
                found.append(target)
    return found


def remove_tree(path: Path) -> None:
    """`rm -rf path`, refused while anything is mounted below it (rmtree would descend into the mount)."""
    mounted = mounts_under(path)
    if mounted:
        raise HullError(f"refusing to remove {path}: still mounted below it: {', '.join(mounted)}")
    if os.path.lexists(path):
        shutil.rmtree(path)
