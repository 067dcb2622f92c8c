"""Mount options: the words of a spec's `mounts[].options` and what mount(2) makes of them.

Vocabulary:
- *flags* are mount(2)'s MS_* bits. The per-mount ones (PER_MOUNT_FLAGS: ro, nosuid, nodev,
  noexec, the atime mode, nosymfollow) belong to one mount point; the rest act on the
  filesystem or on the call itself.
- *data* is the filesystem's own option string (`mode=755,size=65536k`): every word that is
  not a flag, propagation or bind word, in the order given. Only that filesystem knows it.
- *propagation* (private, shared, slave, unbindable; with an `r` prefix for the whole
  subtree) is not set while mounting: each is a separate mount(2) call on the mount point.
- a *bind* (`bind`, `rbind` for the submounts too) shows an existing tree elsewhere. The
  kernel ignores every per-mount flag on the bind call itself, so ro & co. take a second
  call, a *bind remount*, which sets the per-mount flags to exactly what it is given.

`parse_mount_options` turns the words into MountOptions without touching the kernel: flag
words set or clear a flag and the last word wins, as with mount(8). Words hull knows but
does not implement yet (tmpcopyup, idmap, recursive attributes such as rro) are refused
with InvalidArgument. `statvfs_flags` reads the per-mount flags a mount has now and
`remount_flags` computes what a bind remount must pass: in a user namespace the kernel
locks the flags a mount came with from a more privileged namespace, and a remount that
would clear one fails with EPERM.
"""

import os
from dataclasses import dataclass

from hull.errors import InvalidArgument
from hull.runtime.syscalls import (
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)

# Flag words: word -> (flag, whether the word sets it (True) or clears it (False)).
FLAG_WORDS: dict[str, tuple[int, bool]] = {
    "defaults": (0, True),
    "ro": (MS_RDONLY, True),
    "rw": (MS_RDONLY, False),
    "nosuid": (MS_NOSUID, True),
    "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True),
    "dev": (MS_NODEV, False),
    "noexec": (MS_NOEXEC, True),
    "exec": (MS_NOEXEC, False),
    "sync": (MS_SYNCHRONOUS, True),
    "async": (MS_SYNCHRONOUS, False),
    "dirsync": (MS_DIRSYNC, True),
    "remount": (MS_REMOUNT, True),
    "mand": (MS_MANDLOCK, True),
    "nomand": (MS_MANDLOCK, False),
    "noatime": (MS_NOATIME, True),
    "atime": (MS_NOATIME, False),
    "nodiratime": (MS_NODIRATIME, True),
    "diratime": (MS_NODIRATIME, False),
    "relatime": (MS_RELATIME, True),
    "norelatime": (MS_RELATIME, False),
    "strictatime": (MS_STRICTATIME, True),
    "nostrictatime": (MS_STRICTATIME, False),
    "lazytime": (MS_LAZYTIME, True),
    "nolazytime": (MS_LAZYTIME, False),
    "nosymfollow": (MS_NOSYMFOLLOW, True),
    "symfollow": (MS_NOSYMFOLLOW, False),
}

# Propagation words, also the values of the spec's `linux.rootfsPropagation`.
PROPAGATION_WORDS: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

BIND_WORDS = {"bind": False, "rbind": True}  # word -> recursive

# Words of the OCI spec (or of runc) that hull refuses rather than pass on as data.
UNSUPPORTED_WORDS = {
    "tmpcopyup": "copying the image's files up into a tmpfs (tmpcopyup) is not supported",
    "idmap": "id-mapped mounts (idmap) are not supported",
    "ridmap": "id-mapped mounts (ridmap) are not supported",
}

# The atime modes exclude each other: the kernel keeps one (relatime when none is given).
ATIME_MODES = MS_NOATIME | MS_RELATIME | MS_STRICTATIME
# What a bind remount sets on one mount point without touching the filesystem.
PER_MOUNT_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NODIRATIME | MS_NOSYMFOLLOW | ATIME_MODES

# statvfs(3)'s f_flag bits -> the MS_* flag each reports. ST_NOSYMFOLLOW (Linux 5.10) is not in os.
ST_NOSYMFOLLOW = 0x2000
_STATVFS_FLAGS = (
    (os.ST_RDONLY, MS_RDONLY),
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
    (ST_NOSYMFOLLOW, MS_NOSYMFOLLOW),
)


@dataclass
class MountOptions:
    """What a list of option words asks of mount(2)."""

    flags: int = 0  # MS_* to set; MS_BIND for bind and rbind
    clear: int = 0  # MS_* the words turn off explicitly (rw, suid, dev, exec, atime, ...)
    propagation: tuple[int, ...] = ()  # one mount(2) call each, in the order given
    recursive_bind: bool = False  # rbind: MS_REC on the bind call
    data: str = ""  # the filesystem's own options, comma-joined

    @property
    def bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def parse_mount_options(options: list[str]) -> MountOptions:
    """The MountOptions of `options`; InvalidArgument for a word hull refuses."""
    flags = clear = 0
    propagation: list[int] = []
    recursive = False
    data: list[str] = []
    for word in options:
        if word in FLAG_WORDS:
            flag, sets = FLAG_WORDS[word]
            if sets:
                if flag & ATIME_MODES:
                    flags &= ~ATIME_MODES
                flags, clear = flags | flag, clear & ~flag
            else:
                flags, clear = flags & ~flag, clear | flag
        elif word in PROPAGATION_WORDS:
            propagation.append(PROPAGATION_WORDS[word])
        elif word in BIND_WORDS:
            flags |= MS_BIND
            recursive = BIND_WORDS[word]
        elif word in UNSUPPORTED_WORDS:
            raise InvalidArgument(f"mount option {word!r}: {UNSUPPORTED_WORDS[word]}")
        elif word.startswith("r") and word[1:] in FLAG_WORDS:
            raise InvalidArgument(f"mount option {word!r}: recursive mount attributes are not supported")
        elif word:
            data.append(word)
    return MountOptions(flags, clear, tuple(propagation), recursive, ",".join(data))


def statvfs_flags(path: str | int) -> int:
    """The per-mount MS_* flags of the mount holding `path` (or an open descriptor), from statvfs.

    The atime mode is always named: MS_STRICTATIME when neither noatime nor relatime is
    reported, since a remount without an atime flag would turn strictatime into relatime.
    """
    reported = os.statvfs(path).f_flag
    flags = 0
    for st_flag, ms_flag in _STATVFS_FLAGS:
        if reported & st_flag:
            flags |= ms_flag
    if not flags & (MS_NOATIME | MS_RELATIME):
        flags |= MS_STRICTATIME
    return flags


def remount_flags(current: int, options: MountOptions, *, keep_current: bool = False) -> int:
    """The per-mount flags a bind remount passes to give a mount `options` on top of `current`.

    A flag the mount has stays unless the options clear it; an atime word replaces the atime
    mode. With `keep_current` (the retry in a user namespace) nothing the mount has is
    dropped and its atime mode stays, since the kernel locks both there.
    """
    wanted = options.flags & PER_MOUNT_FLAGS
    if keep_current:
        return current | (wanted & ~(ATIME_MODES | MS_NODIRATIME))
    flags = (current & ~options.clear) | wanted
    if wanted & ATIME_MODES:
        flags = (flags & ~ATIME_MODES) | (wanted & ATIME_MODES)
    return flags
