"""`docker cp` inside a container's root filesystem: stat a path, read it as a tar, extract a tar into a directory.

Vocabulary: the *root* is the container's merged root filesystem (a host path); a *container
path* is what the client names, taken as absolute inside the container. Paths are resolved as
Docker resolves them for cp: for stat and reading, every component but the last is followed as
a symlink inside the root (`securejoin.resolve_in_root`) and the last is taken as it is (so a
symlink is reported, and copied, as a symlink), unless the path ends in "/" or "/."; for
extracting, the last component is followed too (a symlink to a directory is a fine extraction
point). The resolution is a snapshot, and a running container can change its tree meanwhile:
the directory it found is therefore opened one component at a time from a descriptor of the
root with O_NOFOLLOW, so a component swapped for a symlink fails the request instead of leading
outside the root; everything after works from that descriptor.

Tars are written by storage/archive.py's writer (Docker's headers) and extracted by its
extractor, with its safety contract: nothing is created outside the extraction point.
"""

import base64
import errno
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from hull.errors import HullError, InvalidArgument, NotFound
from hull.runtime.securejoin import resolve_in_root
from hull.storage.archive import Extractor, TarWriter, header_from_stat, walk_tree

# Go's os.FileMode type bits, which Docker's stat header carries (permissions are the low 9 bits).
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_NAMED_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHAR_DEVICE = 1 << 21
_GO_STICKY = 1 << 20

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_SIZE = 256 * 1024

STAT_HEADER = "X-Docker-Container-Path-Stat"


def go_file_mode(st_mode: int) -> int:
    """An lstat mode as Go's os.FileMode (what Docker's JSON carries: 0o755 directory is 1<<31 | 0o755)."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {
        stat.S_IFDIR: _GO_DIR,
        stat.S_IFLNK: _GO_SYMLINK,
        stat.S_IFIFO: _GO_NAMED_PIPE,
        stat.S_IFSOCK: _GO_SOCKET,
        stat.S_IFBLK: _GO_DEVICE,
        stat.S_IFCHR: _GO_DEVICE | _GO_CHAR_DEVICE,
    }.get(kind, 0)
    if st_mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


def _rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC, as encoding/json writes a time: trailing zeros of the fraction dropped."""
    secs, frac = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


@dataclass(frozen=True)
class PathStat:
    """Docker's ContainerPathStat: what HEAD and GET /containers/{id}/archive report in the stat header."""

    name: str
    size: int
    mode: int  # Go's os.FileMode
    mtime: str  # RFC 3339 with nanoseconds
    link_target: str  # for a symlink: where it leads, as an absolute container path

    def header_value(self) -> str:
        doc = {"name": self.name, "size": self.size, "mode": self.mode, "mtime": self.mtime,
               "linkTarget": self.link_target}  # fmt: skip
        return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def _go_base(path: str) -> str:
    """Go's filepath.Base: trailing slashes ignored; "/" for the root."""
    stripped = path.rstrip("/")
    return posixpath.basename(stripped) if stripped else "/"


def _absolute(path: str) -> str:
    """The container path made absolute, keeping a trailing "/" or "/." (Docker's PreserveTrailingDotOrSeparator)."""
    clean = posixpath.normpath("/" + path)
    if clean == "//":
        clean = "/"
    if path.endswith("/.") and clean != "/":
        return clean + "/."
    if path.endswith("/") and clean != "/":
        return clean + "/"
    return clean


def _open_resolved(root: str, host_path: str) -> int:
    """Open the directory `host_path` (below `root`, as resolve_in_root gave it) following no symlink."""
    rel = os.path.relpath(host_path, root)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in rel.split("/"):
            if part in ("", "."):
                continue
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


class _Target:
    """A container path found for stat or reading: its parent directory's descriptor and its entry in it.

    `base` is None when the path names the directory `dir_fd` itself (it ended in "/" or "/.").
    """

    def __init__(self, root: str, path: str, container: str) -> None:
        self.abs_path = _absolute(path)
        dir_path, base = self.abs_path.rsplit("/", 1)
        try:
            resolved = resolve_in_root(root, dir_path or "/")
            self.dir_fd = _open_resolved(root, resolved)
        except OSError as e:
            raise _not_found(e, path, container) from e
        self.base = base if base not in ("", ".") else None
        try:
            self.st = (
                os.stat(self.base, dir_fd=self.dir_fd, follow_symlinks=False) if self.base else os.fstat(self.dir_fd)
            )
        except OSError as e:
            os.close(self.dir_fd)
            raise _not_found(e, path, container) from e
        self.root, self.container = root, container

    def close(self) -> None:
        os.close(self.dir_fd)

    def stat(self) -> PathStat:
        link_target = ""
        if stat.S_ISLNK(self.st.st_mode):
            # Fully followed inside the root, then named as the container sees it.
            host = resolve_in_root(self.root, self.abs_path)
            link_target = posixpath.normpath("/" + os.path.relpath(host, self.root))
        return PathStat(
            name=_go_base(self.abs_path),
            size=self.st.st_size,
            mode=go_file_mode(self.st.st_mode),
            mtime=_rfc3339_nano(self.st.st_mtime_ns),
            link_target=link_target,
        )


def _not_found(e: OSError, path: str, container: str) -> HullError:
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFound(f"Could not find the file {path} in container {container}")
    if e.errno == errno.ELOOP:
        return InvalidArgument(f"{path}: too many levels of symbolic links, or a path component changed during copy")
    return HullError(f"copying {path} in container {container}: {e.strerror or e}")


def stat_path(root: str, path: str, container: str) -> PathStat:
    """HEAD /containers/{id}/archive: the path's stat (NotFound with Docker's wording if it is not there)."""
    target = _Target(root, path, container)
    try:
        return target.stat()
    finally:
        target.close()


def write_path(root: str, path: str, container: str, out: BinaryIO, name: str | None = None) -> None:
    """GET /containers/{id}/archive: the path as a tar on `out`, its entries named after the path's base name
    (or `name`).

    A file (or symlink) is a single entry; a directory is the directory and everything below it;
    for "dir/." the directory entry is "./" and its contents follow as "./NAME", as Docker names
    them (the client then copies the contents only).
    """
    target = _Target(root, path, container)
    try:
        name = name or _go_base(target.abs_path)
        writer = TarWriter(out, None)
        if stat.S_ISDIR(target.st.st_mode):
            top = target.dir_fd if target.base is None else os.open(target.base, _DIR_FLAGS, dir_fd=target.dir_fd)
            try:
                header = header_from_stat(name, target.st)
                assert header is not None  # a directory always has one
                writer.header(header)
                for rel, dfd, entry, st in walk_tree(top, header.name):
                    writer.entry(rel, dfd, entry, st)
            finally:
                if top != target.dir_fd:
                    os.close(top)
        else:
            assert target.base is not None  # only a directory can be named by a trailing "/"
            writer.entry(name, target.dir_fd, target.base, target.st)
        writer.close()
    except OSError as e:
        raise HullError(f"copying {path} from container {container}: {e.strerror or e}") from e
    finally:
        target.close()


class _MemberContent:
    """A member's content as the streaming tar reader gives it, for the extractor."""

    def __init__(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self._file = tar.extractfile(member) if member.isreg() else None

    def content(self, name: str) -> Iterator[memoryview]:
        if self._file is None:
            return
        while chunk := self._file.read(_READ_SIZE):
            yield memoryview(chunk)


def _check_no_overwrite(extractor: Extractor, member: tarfile.TarInfo) -> None:
    """Docker's NoOverwriteDirNonDir: a directory never replaces a non-directory, nor the other way round."""
    parts = extractor._clean(member.name, member.name)
    if not parts:
        return
    try:
        parent = extractor._dir(parts[:-1], member.name, create=False)
        existing = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return
    shown = "/" + "/".join(parts)
    if stat.S_ISDIR(existing.st_mode) and not member.isdir():
        raise InvalidArgument(f"cannot overwrite directory {shown!r} with non-directory {shown!r}")
    if not stat.S_ISDIR(existing.st_mode) and member.isdir():
        raise InvalidArgument(f"cannot overwrite non-directory {shown!r} with directory {shown!r}")


def _rebased(name: str, rebase: tuple[str, str]) -> str:
    """Docker's RebaseArchiveEntries: the first path component `old` becomes `new`."""
    old, new = rebase
    if name == old or name.startswith(old + "/"):
        return new + name[len(old) :]
    return name


def _check_link_inside(member: tarfile.TarInfo) -> None:
    """Docker's Untar on the client: a relative symlink that climbs out of the destination is refused."""
    # Below a stand-in for the destination: normpath stops at "/", so the climb must start lower.
    base = "/dest/" + posixpath.dirname(member.name.strip("/"))
    target = posixpath.normpath(posixpath.join(base, member.linkname))
    if not member.linkname.startswith("/") and not (target + "/").startswith("/dest/"):
        raise InvalidArgument(f"invalid symlink {member.name!r} -> {member.linkname!r}")


def extract(
    dest: str,
    stream: BinaryIO,
    *,
    no_overwrite_dir_non_dir: bool = False,
    owner: tuple[int, int] | None = None,
    rebase: tuple[str, str] | None = None,
    links_inside: bool = False,
) -> None:
    """Extract the tar `stream` (compressed or not) into the directory `dest`, nothing outside it.

    `owner` (uid, gid) replaces every entry's owner; `rebase` (old, new) renames the first path
    component; `links_inside` refuses relative symlinks that climb out of `dest` (the CLI's rule
    for the host side). Raises InvalidArgument for a bad archive or a refused entry.
    """
    extractor = Extractor(dest, "delete")
    current = "(header)"
    try:
        with tarfile.open(fileobj=stream, mode="r|*", encoding="utf-8", errors="surrogateescape") as tar:
            for member in tar:
                current = member.name
                if rebase is not None:
                    member.name = _rebased(member.name, rebase)
                    if member.islnk():
                        member.linkname = _rebased(member.linkname, rebase)
                if links_inside and member.issym():
                    _check_link_inside(member)
                if no_overwrite_dir_non_dir:
                    _check_no_overwrite(extractor, member)
                if owner is not None:
                    member.uid, member.gid = owner
                extractor.apply(member, _MemberContent(tar, member))
        extractor.finish()
    except tarfile.TarError as e:
        raise InvalidArgument(f"the archive to extract into {dest} is not a valid tar: {e}") from e
    except OSError as e:
        raise HullError(f"extracting into {dest}: entry {current!r}: {e.strerror or e}") from e
    finally:
        extractor.close()


def extract_to_dir(
    root: str,
    path: str,
    container: str,
    stream: BinaryIO,
    *,
    no_overwrite_dir_non_dir: bool = False,
    owner: tuple[int, int] | None = None,
) -> None:
    """PUT /containers/{id}/archive: extract the tar `stream` into the directory `path` of the container.

    The path must exist (NotFound) and be a directory (InvalidArgument "extraction point is not a
    directory"); the last component is followed if it is a symlink, inside the root. `owner`
    (uid, gid) replaces every entry's owner (copyUIDGID with a container user).
    """
    try:
        fd = _open_resolved(root, resolve_in_root(root, _absolute(path)))
    except OSError as e:
        if e.errno == errno.ENOTDIR:
            raise InvalidArgument("extraction point is not a directory") from e
        raise _not_found(e, path, container) from e
    try:
        # The descriptor's /proc name: the extractor opens exactly the directory found here.
        extract(f"/proc/self/fd/{fd}", stream, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, owner=owner)
    finally:
        os.close(fd)
