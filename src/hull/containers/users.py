"""Docker's `User` field resolved against the container's own /etc/passwd and /etc/group.

Vocabulary: the *user spec* is what `docker run -u` takes: "", "name", "uid", "name:group",
"uid:gid" (and the mixed forms). `resolve_user` answers the uid, the primary gid, the
*additional gids* the process gets (the primary one first, then the groups /etc/group lists
the user as a member of, then HostConfig.GroupAdd) and the home directory, with runc's
rules (libcontainer's GetExecUser, which Docker calls):
- a numeric user is a uid even when passwd has no entry for it; a name must be found;
- with an explicit group, that group is the primary gid and /etc/group memberships are not
  added; without one, the primary gid is passwd's and memberships are added;
- ids must be within 0-2147483647; the first matching line wins.
Errors are InvalidArgument worded as Docker's ("unable to find user nosuch: no matching
entries in passwd file").

Safety: the files belong to the image, so whoever built it chose them. They are opened by
resolving each path component inside the rootfs (`hull.runtime.securejoin`), without
following a final symlink, and the opened descriptor is checked to lie inside the rootfs,
is a regular file, and is read up to MAX_FILE_BYTES; a FIFO cannot block the open.
"""

import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hull.errors import InvalidArgument
from hull.runtime.securejoin import resolve_in_root

PASSWD_PATH = "/etc/passwd"
GROUP_PATH = "/etc/group"
MAX_ID = 2**31 - 1  # runc refuses ids above a signed 32-bit int
MAX_FILE_BYTES = 16 * 1024 * 1024  # far beyond any real passwd file; a bound against a huge image file
DEFAULT_HOME = "/"  # runc's HOME when passwd has no entry for the uid
NO_PASSWD_ENTRIES = "no matching entries in passwd file"
NO_GROUP_ENTRIES = "no matching entries in group file"
ID_RANGE_ERROR = f"uids and gids must be in range 0-{MAX_ID}"
_NUMERIC = re.compile(r"^[+-]?[0-9]+$")  # what Go's strconv.Atoi accepts


@dataclass
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass
class GroupEntry:
    name: str
    gid: int
    members: list[str] = field(default_factory=list)


@dataclass
class ExecUser:
    """Who the container's process runs as."""

    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    home: str = DEFAULT_HOME


def _int_or_zero(text: str) -> int:
    # libcontainer reads a malformed number as 0 rather than rejecting the line.
    return int(text) if _NUMERIC.match(text) else 0


def _records(text: str) -> Iterable[list[str]]:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line.split(":")


def parse_passwd(text: str) -> list[PasswdEntry]:
    """The entries of a passwd file (name:password:uid:gid:gecos:home:shell); missing fields are empty."""
    entries = []
    for f in _records(text):
        f += [""] * (7 - len(f))
        entries.append(PasswdEntry(name=f[0], uid=_int_or_zero(f[2]), gid=_int_or_zero(f[3]), home=f[5]))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """The entries of a group file (name:password:gid:member,member...)."""
    entries = []
    for f in _records(text):
        f += [""] * (4 - len(f))
        members = [m for m in f[3].split(",") if m]
        entries.append(GroupEntry(name=f[0], gid=_int_or_zero(f[2]), members=members))
    return entries


def read_file_in_root(rootfs: str, path: str) -> str | None:
    """The text of `path` as the container would see it, or None if there is no such file.

    Never leaves the rootfs (see the module docstring); a path that resolves to something
    other than a regular file counts as missing, as an unreadable passwd does for runc.
    """
    root = os.path.realpath(rootfs)
    try:
        host_path = resolve_in_root(root, path)
        fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:  # a symlink loop, a final symlink (ELOOP from O_NOFOLLOW), EACCES...
        raise InvalidArgument(f"cannot read {path} in the container's root filesystem: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        # A component swapped for a symlink after resolve_in_root looked would show here.
        where = os.readlink(f"/proc/self/fd/{fd}")
        if not where.startswith(root.rstrip("/") + "/"):
            return None
        data = os.read(fd, MAX_FILE_BYTES)
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def _check_range(value: int) -> int:
    if not 0 <= value <= MAX_ID:
        raise InvalidArgument(ID_RANGE_ERROR)
    return value


def _find_user(user_arg: str, passwd: list[PasswdEntry] | None) -> PasswdEntry | None:
    if passwd is None:
        return None
    if user_arg == "":
        return next((u for u in passwd if u.uid == 0), None)
    if _NUMERIC.match(user_arg):
        return next((u for u in passwd if u.uid == int(user_arg)), None)
    return next((u for u in passwd if u.name == user_arg), None)


def _find_group(group_arg: str, groups: list[GroupEntry]) -> GroupEntry | None:
    if _NUMERIC.match(group_arg):
        return next((g for g in groups if g.gid == int(group_arg)), None)
    return next((g for g in groups if g.name == group_arg), None)


def resolve_user(rootfs: str, user_spec: str, group_add: Sequence[str] = ()) -> ExecUser:
    """Resolve Docker's User field (and HostConfig.GroupAdd) inside `rootfs`, as the module docstring says."""
    user_arg, _, rest = user_spec.partition(":")
    group_arg = rest.split(":", 1)[0]
    passwd_text = read_file_in_root(rootfs, PASSWD_PATH)
    group_text = read_file_in_root(rootfs, GROUP_PATH)
    passwd = parse_passwd(passwd_text) if passwd_text is not None else None
    groups = parse_group(group_text) if group_text is not None else []

    result = ExecUser()
    entry = _find_user(user_arg, passwd)
    if entry is not None:
        result.uid, result.gid, result.home = entry.uid, entry.gid, entry.home
    elif user_arg:
        if not _NUMERIC.match(user_arg):
            raise InvalidArgument(f"unable to find user {user_arg}: {NO_PASSWD_ENTRIES}")
        result.uid = _check_range(int(user_arg))

    memberships: list[int] = []
    if group_arg:
        group = _find_group(group_arg, groups)
        if group is not None:
            result.gid = group.gid
        elif not _NUMERIC.match(group_arg):
            raise InvalidArgument(f"unable to find group {group_arg}: {NO_GROUP_ENTRIES}")
        else:
            result.gid = _check_range(int(group_arg))
    elif entry is not None:
        # Supplementary groups only in the implicit form, as runc: an explicit group replaces them.
        memberships = [g.gid for g in groups if entry.name in g.members]

    added = []
    for name in group_add:
        group = _find_group(name, groups)
        if group is not None:
            added.append(group.gid)
        elif _NUMERIC.match(name):
            added.append(_check_range(int(name)))
        else:
            raise InvalidArgument(f"unable to find group {name}: {NO_GROUP_ENTRIES}")

    # The primary gid leads the list as Docker writes it; repeats add nothing to setgroups.
    result.additional_gids = list(dict.fromkeys([result.gid, *memberships, *added]))
    return result
