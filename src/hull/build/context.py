"""The build context: the tar a client sends with a build, kept as it came and indexed, never unpacked whole.

Vocabulary: a context *path* is `/`-separated and relative to the context root, without `./`
or a trailing `/` (the root itself is ""). Directories that the tar names only through their
files are *implicit* and still count as directories.

Contract:
- `receive` spools the (plain, gzip, bzip2, xz or zstd) tar uncompressed to an unnamed file in
  `spool_dir` and reads its headers only; content is read from the spool when a step needs
  it. A cached rebuild therefore writes no context file anywhere: it only hashes what its
  COPY and ADD steps name.
- `checksum(path)` is the source hash that Docker's legacy builder writes in COPY and ADD
  history lines (and that the cache therefore compares): for a file, `file:` and the tarsum
  (version 1) of its header and content, the mtime left out; for a directory, `dir:` and the
  sha256 of the sorted sums of it and everything below it, joined by commas; symlinks count
  as their targets. Results are remembered for the build. `path_checksum` computes it for the
  context and for the trees of `COPY --from` (copy.ImageTree) alike.
- Paths that leave the context (`../x`) are refused with Docker's "forbidden path outside the
  build context"; a source that matches nothing is NotFound, as Docker words it.
"""

import bisect
import functools
import grp
import hashlib
import os
import posixpath
import pwd
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from typing import IO, Protocol

from hull.build.dockerignore import compile_pattern
from hull.errors import InvalidArgument, NotFound
from hull.storage.compression import READ_SIZE, Readable, open_decompressed

GLOB_CHARS = "*?["
MAX_SYMLINKS = 40  # as the kernel's limit on a path's links


def clean(path: str) -> str:
    """A context path: `/`-separated, relative, cleaned ("" for the root)."""
    cleaned = posixpath.normpath("/" + path.replace("\\", "/")).lstrip("/") if path else ""
    return "" if cleaned == "." else cleaned


class ImplicitDir(tarfile.TarInfo):
    """A directory the tar names only through its files (or the root): no header of its own."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.type = tarfile.DIRTYPE
        self.mode = 0o755


class BuildContext:
    """One received context; `close` drops its spool."""

    headers_from_disk = False

    def __init__(self, spool: IO[bytes]) -> None:
        self._spool = spool
        self._fd = spool.fileno()
        self.entries: dict[str, tarfile.TarInfo] = {"": ImplicitDir("")}
        with tarfile.open(fileobj=spool, mode="r:") as tar:
            for info in tar:
                path = clean(info.name)
                self.entries[path] = info
                parent = posixpath.dirname(path)
                while parent and parent not in self.entries:
                    self.entries[parent] = ImplicitDir(parent)
                    parent = posixpath.dirname(parent)
        self.paths = sorted(self.entries)
        self._sums: dict[str, str] = {}

    @classmethod
    def receive(cls, body: Readable, spool_dir: str) -> "BuildContext":
        os.makedirs(spool_dir, mode=0o700, exist_ok=True)
        spool = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115  # owned by the context, closed by close()
        try:
            shutil.copyfileobj(open_decompressed(body), spool, READ_SIZE)
            spool.seek(0)
            if spool.read(1) == b"":
                spool.write(b"\0" * 1024)  # an empty body is an empty context
            spool.seek(0)
            return cls(spool)
        except tarfile.TarError as e:
            spool.close()
            raise InvalidArgument(f"the build context is not a tar archive: {e}") from None
        except BaseException:
            spool.close()
            raise

    def close(self) -> None:
        self._spool.close()

    # --- lookups ---------------------------------------------------------------------------------

    def get(self, path: str) -> tarfile.TarInfo | None:
        return self.entries.get(clean(path))

    def read_file(self, path: str) -> bytes | None:
        info = self.get(path)
        if info is None or not info.isreg():
            return None
        return b"".join(self.content(info))

    def content(self, info: tarfile.TarInfo) -> Iterator[memoryview]:
        """The member's bytes, read from the spool in chunks."""
        offset, left = info.offset_data, info.size
        while left > 0:
            chunk = os.pread(self._fd, min(left, READ_SIZE), offset)
            if not chunk:
                raise InvalidArgument(f"the build context ends inside {info.name}")
            offset += len(chunk)
            left -= len(chunk)
            yield memoryview(chunk)

    def below(self, path: str) -> list[str]:
        """Every path strictly below directory `path`, sorted (parents before children)."""
        if not path:
            return self.paths[1:]
        prefix = path + "/"
        start = bisect.bisect_left(self.paths, prefix)
        end = bisect.bisect_left(self.paths, path + "0")  # "0" sorts right after "/"
        return self.paths[start:end]

    def sources(self, source: str, instruction: str) -> list[str]:
        """The context paths a COPY/ADD source names: itself, or what its glob matches."""
        raw = source.replace("\\", "/")
        joined = posixpath.normpath(raw.lstrip("/")) if raw.strip("/") else "."
        if joined == ".." or joined.startswith("../"):
            raise InvalidArgument(f"{instruction} failed: forbidden path outside the build context: {source}")
        path = clean(source)
        if any(c in path for c in GLOB_CHARS):
            regex = compile_pattern(path)
            found = [p for p in self.paths if p and regex.fullmatch(p)]
            if not found:
                raise NotFound(f"{instruction} failed: no source files were specified (no match for {source})")
            return found
        if path not in self.entries:
            raise NotFound(
                f"{instruction} failed: file not found in build context or excluded by .dockerignore: "
                f"stat {source}: file does not exist"
            )
        return [path]

    def checksum(self, path: str) -> str:
        return path_checksum(self, path, self._sums)


# --- checksums (of the context and of --from trees alike) -------------------------------------------


class Indexed(Protocol):
    """A tree whose paths can be summed: the context, or an image's files (copy.ImageTree).

    `headers_from_disk`: Docker sums the context by the headers of the client's tar as they came,
    and the files of an image (`COPY --from`) by headers it makes from them, which carry the file
    type in the mode and the host's user and group names.
    """

    headers_from_disk: bool

    def get(self, path: str) -> tarfile.TarInfo | None: ...
    def below(self, path: str) -> list[str]: ...
    def content(self, info: tarfile.TarInfo) -> Iterator[memoryview]: ...


def path_checksum(tree: Indexed, path: str, memo: dict[str, str]) -> str:
    """Docker's legacy builder's hash of a COPY/ADD source (see the module docstring): `file:<sum>`
    or `dir:<sum>`; `memo` keeps results for the build."""
    path = clean(path)
    cached = memo.get(path)
    if cached is not None:
        return cached
    if tree.get(path) is None:
        raise NotFound(f"stat {path}: file does not exist")
    target = follow(tree, path)
    info = tree.get(target)
    if info is not None and info.isdir():
        # The root of the tree is not a file of the walk: only what is below it counts.
        sums = sorted(_entry_sum(tree, p, memo) for p in [target, *tree.below(target)] if p)
        value = "dir:" + hashlib.sha256(",".join(sums).encode(errors="surrogateescape")).hexdigest()
    else:
        value = "file:" + _entry_sum(tree, path, memo)
    memo[path] = value
    return value


def _entry_sum(tree: Indexed, path: str, memo: dict[str, str]) -> str:
    """tarsum v1 of one entry, as Docker keeps it per context file: sha256 of its header fields
    (not the mtime) as name/value pairs, then its content. A symlink counts as what it points
    to; a path with no header of its own (the root, a directory implied by its files, a
    dangling link) counts as its own name, as Docker falls back to."""
    key = "\0" + path  # apart from the `file:`/`dir:` values of the same path
    cached = memo.get(key)
    if cached is not None:
        return cached
    target = follow(tree, path)
    info = tree.get(target)
    if info is None or isinstance(info, ImplicitDir):
        memo[key] = target or "."
        return memo[key]
    typeflag = "0" if info.type == tarfile.AREGTYPE else info.type.decode()
    mode, uname, gname = info.mode & 0o7777, info.uname, info.gname
    if tree.headers_from_disk:  # the header Docker makes from the file: type bits, the host's names
        mode |= _FILE_TYPE_BITS.get(info.type, 0)
        uname, gname = _user_name(info.uid), _group_name(info.gid)
    fields = (
        ("name", target + "/" if info.isdir() else target), ("mode", str(mode)),
        ("uid", str(info.uid)), ("gid", str(info.gid)), ("size", str(info.size if info.isreg() else 0)),
        ("typeflag", typeflag), ("linkname", info.linkname), ("uname", uname), ("gname", gname),
        ("devmajor", str(info.devmajor)), ("devminor", str(info.devminor)),
    )  # fmt: skip
    h = hashlib.sha256("".join(k + v for k, v in fields).encode(errors="surrogateescape"))
    if info.isreg():
        for chunk in tree.content(info):
            h.update(chunk)
    memo[key] = h.hexdigest()
    return memo[key]


_FILE_TYPE_BITS = {
    tarfile.REGTYPE: stat.S_IFREG, tarfile.AREGTYPE: stat.S_IFREG, tarfile.DIRTYPE: stat.S_IFDIR,
    tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK, tarfile.FIFOTYPE: stat.S_IFIFO,
}  # fmt: skip


@functools.cache
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@functools.cache
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def follow(tree: Indexed, path: str) -> str:
    """Where `path` leads once its symlinks are followed inside the tree (itself if nowhere;
    a link's target is taken in the tree, never on the host)."""
    for _ in range(MAX_SYMLINKS):
        info = tree.get(path)
        if info is None or not info.issym():
            return path
        base = "" if info.linkname.startswith("/") else posixpath.dirname(path)
        path = clean(posixpath.join(base, info.linkname))
    return path
