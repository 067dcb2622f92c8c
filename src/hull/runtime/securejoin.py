"""Resolve a path inside a directory tree as though that directory were `/`.

Vocabulary: the *root* is a trusted host directory (a container's rootfs), absolute and used
as it is; the *unsafe path* is chosen by someone else (a spec's mount destination, reached
through an image's symlinks). `resolve_in_root` walks the unsafe path one component at a
time, the way the kernel would for a process whose root is `root`: each symlink is read and
its target walked in its place, an absolute target starts again at `root`, and `..` never
climbs above `root`. The result is a host path at or below `root` whose existing components
are none of them symlinks; components that do not exist (yet) are kept as written, since
the caller is about to create them.

Limits of the contract:
- The answer comes from lstat and readlink alone, so it is a snapshot: whoever can write the
  tree at the same moment could swap a component afterwards. Callers that hand the result to
  the kernel for something that matters (a mount) open it and check where the descriptor
  really lies before using it (rootfs.py does).
- More than MAX_SYMLINKS symlinks in one resolution fail with ELOOP; lstat errors other than
  "does not exist" (EACCES, say) propagate. Both are OSError, like the kernel's own.
"""

import errno
import os
import stat

# The kernel gives up after 40 symlinks; a tree that needs more than this is a loop.
MAX_SYMLINKS = 255


def resolve_in_root(root: str, unsafe_path: str) -> str:
    """The host path that `unsafe_path` names when `root` is taken as `/` (see the module docstring)."""
    pending = unsafe_path.split("/")
    pending.reverse()  # a stack: the next component to walk is at the end
    resolved: list[str] = []
    followed = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        path = os.path.join(root, *resolved, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            is_link = False  # not there (yet): the rest of the path is taken literally
        if not is_link:
            resolved.append(part)
            continue
        followed += 1
        if followed > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, f"{os.strerror(errno.ELOOP)} resolving {unsafe_path!r} in {root}", path)
        target = os.readlink(path)
        if target.startswith("/"):
            resolved.clear()
        pending.extend(reversed(target.split("/")))
    return os.path.join(root, *resolved)
