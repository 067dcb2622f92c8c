"""COPY and ADD: which files go where, their cache checksum, and writing them into a step's layer.

Vocabulary: a *tree* is where sources come from: the build context (context.BuildContext) or
the mounted filesystem of a stage or image (`--from`, ImageTree). Both index their entries as
tar headers by context-style path and read content on demand.

Contract (Docker's legacy builder, facts not code):
- Relative destinations are under WORKDIR. With several sources (after globbing), or a
  destination ending in `/`, the destination is a directory; a directory source copies its
  *contents*; a single file source to a destination that is an existing directory goes inside it.
- Files get owner 0:0 unless `--chown` (names resolved in the destination image's /etc/passwd
  and /etc/group; `--chown=N` means N:N); `--chmod` (octal) sets the permission bits. Content,
  mode, symlink targets and mtimes are kept. Missing parent directories of the destination are
  made (0755, with the --chown owner; for a directory source only the destination directory
  gets it, the parents made for it stay root's, as the legacy builder does).
- ADD: a local source that is a tar archive (plain, gzip, bzip2, xz or zstd) is unpacked into the
  destination, entries keeping their owners unless --chown; a URL was downloaded by the caller
  into a one-file tree (mode 0600) and is never unpacked, as Docker's.
- The history line (and so the cache) names the sources by Docker's hash: `file:<sum>`,
  `dir:<sum>` (context.path_checksum), or `multi:` and the sha256 of several such, in order,
  joined by commas; --chown (and hull's --chmod) come first, glued to it as Docker writes them.
"""

import hashlib
import io
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from hull.build.context import GLOB_CHARS, clean, follow, path_checksum
from hull.build.dockerignore import compile_pattern
from hull.containers.users import resolve_user
from hull.errors import InvalidArgument, NotFound
from hull.runtime.securejoin import resolve_in_root
from hull.storage.archive import Extractor
from hull.storage.compression import READ_SIZE, Compression, detect, open_decompressed


class Tree(Protocol):
    entries: dict[str, tarfile.TarInfo]
    headers_from_disk: bool

    def get(self, path: str) -> tarfile.TarInfo | None: ...

    def sources(self, source: str, instruction: str) -> list[str]: ...
    def below(self, path: str) -> list[str]: ...
    def content(self, info: tarfile.TarInfo) -> Iterator[memoryview]: ...
    def checksum(self, path: str) -> str: ...


@dataclass(frozen=True)
class CopyRequest:
    keyword: str  # COPY or ADD
    sources: list[str]
    dest: str  # as written (expanded): the history line shows it
    workdir: str
    chown: str = ""
    chmod: int | None = None


def parse_chmod(text: str) -> int | None:
    if not text:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        raise InvalidArgument(f"invalid chmod parameter {text!r}: must be an octal number like 755") from None
    if not 0 <= mode <= 0o7777:
        raise InvalidArgument(f"invalid chmod parameter {text!r}")
    return mode


def checksum(trees: list[tuple[Tree, list[str]]]) -> str:
    """The sources' `file:`, `dir:` or `multi:` hash (see the module docstring)."""
    sums = [tree.checksum(p) for tree, paths in trees for p in paths]
    if len(sums) == 1:
        return sums[0]
    return "multi:" + hashlib.sha256(",".join(sums).encode()).hexdigest()


def history_source(req: CopyRequest, trees: list[tuple[Tree, list[str]]]) -> str:
    """What the history line says of the sources: the flags glued to the hash, as Docker writes
    it (`--chown=1:2file:…`)."""
    flags = (f"--chown={req.chown}" if req.chown else "") + (f"--chmod={req.chmod:o}" if req.chmod is not None else "")
    return flags + checksum(trees)


def is_archive(tree: Tree, info: tarfile.TarInfo) -> bool:
    """Whether ADD unpacks this file: it reads as a tar (after any compression)."""
    if not info.isreg() or (info.size < 512 and detect(_head(tree, info)) is Compression.NONE):
        return False
    try:
        with tarfile.open(fileobj=_Reader(tree, info), mode="r|*") as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return False


def _head(tree: Tree, info: tarfile.TarInfo) -> bytes:
    for chunk in tree.content(info):
        return bytes(chunk[:8])
    return b""


class _Reader(io.RawIOBase):
    """A tree member's content as a file object (for tarfile and the decompressors)."""

    def __init__(self, tree: Tree, info: tarfile.TarInfo) -> None:
        self._chunks = tree.content(info)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: "bytearray | memoryview") -> int:  # type: ignore[override]
        if not self._buf:
            self._buf = bytes(next(self._chunks, b""))
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _Contents:
    """Content for Extractor.apply: each destination name maps to the source member it copies."""

    def __init__(self) -> None:
        self.by_name: dict[str, tuple[Tree, tarfile.TarInfo]] = {}
        self.stream: IO[bytes] | None = None  # ADD of an archive: the current member's data

    def content(self, name: str) -> Iterator[memoryview]:
        if name in self.by_name:
            tree, info = self.by_name[name]
            yield from tree.content(info)
            return
        assert self.stream is not None
        while chunk := self.stream.read(READ_SIZE):
            yield memoryview(chunk)


def _owner(root: str, chown: str) -> tuple[int, int] | None:
    if not chown:
        return None
    user, sep, group = chown.partition(":")
    if not sep:
        group = user
    try:
        found = resolve_user(root, f"{user}:{group}")
    except Exception as e:  # any lookup failure is the user's flag
        raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: {chown}: {e}") from None
    return found.uid, found.gid


def _resolved_is_dir(root: str, rel: str) -> bool:
    try:
        return os.path.isdir(resolve_in_root(root, "/" + rel))
    except (OSError, Exception):  # a path we cannot resolve is no directory
        return False


def write(root: str, trees: list[tuple[Tree, list[str]]], req: CopyRequest, unpack_from: Tree | None) -> None:
    """Copy the sources of each tree into `root` (a mounted layer) as `req` says; archives of
    `unpack_from` (ADD's build context: never a download) are unpacked."""
    owner = _owner(root, req.chown)
    dest = posixpath.join(req.workdir or "/", req.dest)
    count = sum(len(paths) for _, paths in trees)
    into_dir = req.dest.endswith("/") or count > 1 or req.dest in (".", "./")
    base = clean(dest)
    extractor = Extractor(root, "delete")
    contents = _Contents()
    made: set[str] = set()

    def ensure_dirs(rel: str, made_owner: tuple[int, int] | None = owner) -> None:
        parts = rel.split("/") if rel else []
        for k in range(1, len(parts) + 1):
            sub = "/".join(parts[:k])
            if sub in made or _resolved_is_dir(root, sub):
                continue
            info = tarfile.TarInfo(sub)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            info.uid, info.gid = made_owner or (0, 0)
            extractor.apply(info, contents)
            made.add(sub)

    def put(info: tarfile.TarInfo, target: str, tree: Tree | None, keep_owner: bool = False) -> None:
        out = tarfile.TarInfo(target)
        out.type, out.size, out.mtime, out.linkname = info.type, info.size, info.mtime, info.linkname
        out.mode = info.mode & 0o7777
        if req.chmod is not None and not info.issym():
            out.mode = req.chmod
        out.uid, out.gid = owner or ((info.uid, info.gid) if keep_owner else (0, 0))
        out.pax_headers = {}
        if info.islnk() and tree is not None:
            # A hardlink copies its target's content: the target may not be copied too.
            original = tree.entries.get(clean(info.linkname))
            if original is None or not original.isreg():
                return
            out.type, out.size, out.linkname = tarfile.REGTYPE, original.size, ""
            info = original
        if tree is not None and out.isreg():
            contents.by_name[target] = (tree, info)
        ensure_dirs(posixpath.dirname(target))
        if out.isdir():
            if target in made or (target and _resolved_is_dir(root, target)):
                return
            made.add(target)
        extractor.apply(out, contents)

    try:
        for tree, paths in trees:
            for path in paths:
                # A source that is a symlink copies what it points to, under its own name (as
                # Docker); the symlinks below a directory source stay symlinks.
                followed = follow(tree, path)
                info = tree.get(followed) or tree.entries[path]
                if info.isdir():
                    ensure_dirs(posixpath.dirname(base), None)  # only the destination itself is chowned
                    ensure_dirs(base)
                    for sub in tree.below(followed):
                        rel = sub[len(followed) :].lstrip("/") if followed else sub
                        put(tree.entries[sub], posixpath.join(base, rel) if base else rel, tree)
                    continue
                if tree is unpack_from and is_archive(tree, info):
                    ensure_dirs(base)
                    _unpack(tree, info, base, put, contents)
                    continue
                name = posixpath.basename(path)
                if into_dir or _resolved_is_dir(root, base):
                    target = posixpath.join(base, name) if base else name
                else:
                    target = base
                if not target:
                    raise InvalidArgument(f"{req.keyword} failed: cannot replace the root directory with a file")
                put(info, target, tree)
        extractor.finish()
    finally:
        extractor.close()


def _unpack(tree: Tree, info: tarfile.TarInfo, base: str, put: "PutFn", contents: _Contents) -> None:
    with tarfile.open(fileobj=open_decompressed(_Reader(tree, info)), mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            rel = clean(member.name)
            if not rel:
                continue
            contents.stream = tar.extractfile(member) if member.isreg() else None
            if member.islnk():
                member.linkname = posixpath.join(base, clean(member.linkname))
            put(member, posixpath.join(base, rel) if base else rel, None, keep_owner=True)


class PutFn(Protocol):
    def __call__(self, info: tarfile.TarInfo, target: str, tree: Tree | None, keep_owner: bool = False) -> None: ...


# --- --from: a stage's or image's mounted filesystem as a tree -----------------------------------------


class ImageTree:
    """The files of a mounted image root, indexed on demand below the paths a COPY names."""

    headers_from_disk = True

    def __init__(self, root: str) -> None:
        self.root = root
        self.entries: dict[str, tarfile.TarInfo] = {}
        self._sums: dict[str, str] = {}

    def get(self, path: str) -> tarfile.TarInfo | None:
        if path in self.entries:
            return self.entries[path]
        try:
            # The last component is not followed: a symlink is an entry of its own (follow() reads it).
            parent, name = posixpath.split(path)
            host = os.path.join(resolve_in_root(self.root, "/" + parent), name) if path else self.root
            st = os.lstat(host)
        except OSError:
            return None
        info = tarfile.TarInfo(path)
        info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(host)
        elif stat.S_ISREG(st.st_mode):
            info.type, info.size = tarfile.REGTYPE, st.st_size
        else:
            return None
        self.entries[path] = info
        return info

    def sources(self, source: str, instruction: str) -> list[str]:
        path = clean(source)
        if any(c in path for c in GLOB_CHARS):
            fixed = path.split("/")
            first_glob = next(i for i, p in enumerate(fixed) if any(c in p for c in GLOB_CHARS))
            prefix = "/".join(fixed[:first_glob])
            regex = compile_pattern(path)
            found = [p for p in ([prefix] if prefix else []) + self.below(prefix) if regex.fullmatch(p)]
            if found:
                return found
        elif self.get(path) is not None:
            return [path]
        raise NotFound(f"{instruction} failed: stat {source}: file does not exist")

    def below(self, path: str) -> list[str]:
        out: list[str] = []
        info = self.get(path)
        if info is None or not info.isdir():
            return out
        host = resolve_in_root(self.root, "/" + path) if path else self.root
        for name in sorted(os.listdir(host)):
            sub = f"{path}/{name}" if path else name
            child = self.get(sub)
            if child is None:
                continue
            out.append(sub)
            if child.isdir():
                out.extend(self.below(sub))
        return out

    def content(self, info: tarfile.TarInfo) -> Iterator[memoryview]:
        host = resolve_in_root(self.root, "/" + clean(info.name))
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            while chunk := os.read(fd, READ_SIZE):
                yield memoryview(chunk)
        finally:
            os.close(fd)

    def checksum(self, path: str) -> str:
        return path_checksum(self, path, self._sums)
