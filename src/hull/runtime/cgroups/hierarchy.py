"""Where the cgroup hierarchies are mounted, where the caller sits in them, and which directory
a spec's `linux.cgroupsPath` names in each.

Vocabulary: a *hierarchy* is one cgroup tree, named as /proc/self/cgroup names it: the
comma-joined v1 controllers (`memory`, `cpu,cpuacct`), `name=systemd` for a named v1 tree
without controllers, and `""` for the cgroup2 (unified) tree. Its *mount point* is where it is
mounted; its *root* is the cgroup that mount shows (`/` unless a bind mount or a cgroup
namespace narrowed it). A *cgroup path* is a path inside a hierarchy (`/hull/abc`).

Path semantics are those of runc's cgroupfs driver: an absolute cgroupsPath lies below each
hierarchy's mount point, a relative one below the caller's own cgroup in that hierarchy, an
empty one is `/<container id>`, and a systemd-style `slice:prefix:name` becomes the directory
systemd would use, `/<slice, expanded>/<prefix>-<name>.scope`. Everything is read from
/proc/self/mountinfo and /proc/self/cgroup; no mount point is assumed.
"""

import os
import re
from dataclasses import dataclass

from hull.errors import HullError, InvalidArgument

CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = ""  # the hierarchy name of cgroup2

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass
class Hierarchy:
    name: str
    mount_point: str
    root: str

    def directory(self, own_cgroup: str, cgroup_path: str) -> str:
        """The directory of `cgroup_path` (absolute, or relative to `own_cgroup`) in this hierarchy."""
        if cgroup_path.startswith("/"):
            return self.mount_point + cgroup_path
        if self.root != "/" and not (own_cgroup + "/").startswith(self.root.rstrip("/") + "/"):
            raise HullError(
                f"cgroup {own_cgroup!r} of hierarchy {self.name or 'cgroup2'!r} is outside its mount "
                f"{self.mount_point} (which shows {self.root}): a relative cgroupsPath can't be placed"
            )
        below_root = own_cgroup[len(self.root.rstrip("/")) :]
        return os.path.normpath(os.path.join(self.mount_point + below_root, cgroup_path))


def _unescape(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def own_cgroups(proc_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
    """Hierarchy name -> the caller's cgroup path in it."""
    out = {}
    with open(proc_cgroup) as f:
        for line in f:
            _, name, path = line.rstrip("\n").split(":", 2)
            out[name] = path
    return out


def mounted_hierarchies(own: dict[str, str], mountinfo: str = "/proc/self/mountinfo") -> list[Hierarchy]:
    """Every mounted hierarchy once, in mount order.

    A v1 mount is matched to its name through `own` (from own_cgroups): its super options
    hold the hierarchy's controllers or `name=`, whatever else they say (`rw`, `xattr`).
    When a hierarchy is mounted more than once, the mount showing the most of it is kept.
    """
    found: dict[str, Hierarchy] = {}
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, super_options = fields[sep + 1], set(fields[sep + 3].split(","))
            if fstype == "cgroup2":
                name: str | None = UNIFIED
            elif fstype == "cgroup":
                name = next((n for n in own if n and set(n.split(",")) <= super_options), None)
            else:
                continue
            if name is None:
                continue
            h = Hierarchy(name, _unescape(fields[4]), _unescape(fields[3]))
            if name not in found or len(h.root) < len(found[name].root):
                found[name] = h
    return list(found.values())


def _component_check(path: str, where: str) -> list[str]:
    if "\0" in path or "\n" in path:
        # The kernel refuses a newline in a cgroup name: /proc/<pid>/cgroup is one line per hierarchy.
        raise InvalidArgument(f"{where}: must not contain a NUL byte or a newline, got {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f'{where}: ".." is not allowed in a cgroup path, got {path!r}')
    return parts


def _systemd_path(value: str, where: str) -> str:
    slice_name, prefix, name = value.split(":")
    if not name:
        raise InvalidArgument(f"{where}: the unit name is missing in {value!r} (expected slice:prefix:name)")
    slice_name = slice_name or "system.slice"
    if not slice_name.endswith(".slice"):
        raise InvalidArgument(f"{where}: {slice_name!r} is not a slice name (expected slice:prefix:name)")
    dirs: list[str] = []
    if slice_name != "-.slice":  # the root slice
        # systemd nests a dashed slice in its prefixes: a-b.slice lives in a.slice.
        words = slice_name[: -len(".slice")].split("-")
        if not all(words):
            raise InvalidArgument(f"{where}: invalid slice name {slice_name!r}")
        dirs = ["-".join(words[: i + 1]) + ".slice" for i in range(len(words))]
    unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    return "/" + "/".join([*dirs, unit])


def normalize_cgroups_path(cgroups_path: str, container_id: str, where: str = "linux.cgroupsPath") -> str:
    """The cgroup path a spec asks for: `/a/b` (absolute) or `a/b` (below the caller's cgroup).

    Raises InvalidArgument for `..`, for a path naming a hierarchy's root (the container's
    limits would land on the whole host), and for a malformed systemd-style path.
    """
    if not cgroups_path:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise InvalidArgument(f"container id {container_id!r} can't name a cgroup")
        return "/" + container_id
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        if cgroups_path.count(":") != 2:
            raise InvalidArgument(f"{where}: expected slice:prefix:name, got {cgroups_path!r}")
        cgroups_path = _systemd_path(cgroups_path, where)
    parts = _component_check(cgroups_path, where)
    if not parts:
        raise InvalidArgument(f"{where}: {cgroups_path!r} names the root cgroup; a container needs its own")
    joined = "/".join(parts)
    return "/" + joined if cgroups_path.startswith("/") else joined
