"""The build context: the tar a client sends with a build, kept as it came and indexed, never unpacked whole.

Vocabulary: a context *path* is `/`-separated and relative to the context root, without `./`
or a trailing `/` (the root itself is ""). Directories that the tar names only through their
files are *implicit* and still count as directories.

Contract:
- `receive` spools the (plain, gzip, bzip2, xz or zstd) tar uncompressed to an unnamed file in
  `spool_dir` and reads its headers only; content is read from the spool when a step needs
  it. A cached rebuild therefore writes no context file anywhere: it only hashes what its
  COPY and ADD steps name.
- `checksum(path)` is the cache's view of a path: for a file, its type, mode, owner, size,
  link target and content (not its mtime, as Docker's cache); for a directory, the sorted
  checksums of everything below it. Results are remembered for the build. `path_checksum`
  computes it for the context and for the trees of `COPY --from` (copy.ImageTree) alike.
- Paths that leave the context (`../x`) are refused with Docker's "forbidden path outside the
  build context"; a source that matches nothing is NotFound, as Docker words it.
"""

import bisect
import hashlib
import os
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from typing import IO, Protocol

from hull.build.dockerignore import compile_pattern
from hull.errors import InvalidArgument, NotFound
from hull.storage.compression import READ_SIZE, Readable, open_decompressed

GLOB_CHARS = "*?["


def clean(path: str) -> str:
    """A context path: `/`-separated, relative, cleaned ("" for the root)."""
    cleaned = posixpath.normpath("/" + path.replace("\\", "/")).lstrip("/") if path else ""
    return "" if cleaned == "." else cleaned


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


class BuildContext:
    """One received context; `close` drops its spool."""

    def __init__(self, spool: IO[bytes]) -> None:
        self._spool = spool
        self._fd = spool.fileno()
        self.entries: dict[str, tarfile.TarInfo] = {"": _dir_info("")}
        with tarfile.open(fileobj=spool, mode="r:") as tar:
            for info in tar:
                path = clean(info.name)
                self.entries[path] = info
                parent = posixpath.dirname(path)
                while parent and parent not in self.entries:
                    self.entries[parent] = _dir_info(parent)
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
    """A tree whose paths can be summed: the context, or an image's files (copy.ImageTree)."""

    def get(self, path: str) -> tarfile.TarInfo | None: ...
    def below(self, path: str) -> list[str]: ...
    def content(self, info: tarfile.TarInfo) -> Iterator[memoryview]: ...


def path_checksum(tree: Indexed, path: str, memo: dict[str, str]) -> str:
    """The cache's view of `path` in `tree` (see the module docstring); `memo` keeps results for the build."""
    path = clean(path)
    cached = memo.get(path)
    if cached is not None:
        return cached
    info = tree.get(path)
    if info is None:
        raise NotFound(f"stat {path}: file does not exist")
    if info.isdir():
        h = hashlib.sha256()
        for sub in tree.below(path):
            entry = _entry_checksum(tree, sub, memo)
            h.update(f"{sub[len(path) :]}\0{entry}\n".encode(errors="surrogateescape"))
        value = "dir:" + h.hexdigest()
    else:
        value = "file:" + _entry_checksum(tree, path, memo)
    memo[path] = value
    return value


def _entry_checksum(tree: Indexed, path: str, memo: dict[str, str]) -> str:
    """One entry's sum, without what is below it: its header fields but the mtime, and its content."""
    key = "\0" + path  # apart from the `file:`/`dir:` values of the same path
    cached = memo.get(key)
    if cached is not None:
        return cached
    info = tree.get(path)
    assert info is not None  # `below` lists only entries that exist
    header = f"{info.type!r}|{info.mode:o}|{info.uid}|{info.gid}|{info.size}|{info.linkname}|"
    h = hashlib.sha256(header.encode(errors="surrogateescape"))
    if info.isreg():
        for chunk in tree.content(info):
            h.update(chunk)
    memo[key] = h.hexdigest()
    return memo[key]
