"""Filesystem helpers that every store in hull shares.

`atomic_write` is the one way metadata reaches disk: a temp file beside the target, fsync,
rename, so a crash leaves either the old or the new content, never a torn file.
"""

import os


def atomic_write(path: str, data: bytes, mode: int = 0o644, fsync: bool = True) -> None:
    """Replace `path` with `data` atomically (temp file in the same directory, then rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
