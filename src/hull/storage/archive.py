"""Layer archives: a layer tar applied to a directory, and a directory's changes written as a layer tar.

Vocabulary (the seeds' words):
- a *layer tar* is one layer's changes as an uncompressed tar; a *layer blob* is that tar as a
  registry or `docker save` stores it, possibly compressed (see compression.py);
- the *diff id* is "sha256:" + the sha256 of the uncompressed layer tar;
- a *whiteout* `.wh.NAME` in a layer tar says NAME of a lower layer is deleted; the *opaque
  directory* marker `DIR/.wh..wh..opq` says that nothing of the lower layers shows through DIR.
  On disk, the overlay driver keeps them the way overlayfs reads them (a 0/0 character device
  NAME; the xattr trusted.overlay.opaque=y on DIR), while the vfs driver, whose directories are
  full copies, carries them out (removes NAME; empties DIR of what lower layers put there);
- the *tar-split* records the rest of the tar so that it can be rebuilt (see tarsplit.py).

Applying (`apply_layer`) is one streaming pass: blob -> decompress -> (sha256, tar-split
recorder, tar reader) -> files. Nothing is spooled, so a layer of any size needs memory for one
read buffer. Metadata is kept as Docker keeps it: owner (lchown), mode with setuid/setgid/sticky,
mtimes (also of symlinks; of directories after their contents), xattrs from PAX `SCHILY.xattr.*`
records (trusted.overlay.* excepted: those would let a layer forge overlayfs' own bookkeeping),
hardlinks, symlinks, devices and fifos. The result's `size` is what Docker's layerdb records:
the sum of the sizes of regular files and symlinks (a symlink's is its target's length; a
hardlink adds nothing), as Docker's directory walk counts the applied diff.

Safety contract of applying: nothing is ever created, changed or removed outside `dest`. Every
path is walked one component at a time from a descriptor of `dest` with O_NOFOLLOW, and every
change is made relative to the descriptor of its parent directory (mkdirat, openat with
O_EXCL|O_NOFOLLOW, symlinkat, linkat without following, fchownat and utimensat with
AT_SYMLINK_NOFOLLOW, rmtree by descriptor). Refused with InvalidArgument, naming the entry: an
absolute name, a `..` that climbs out, a hardlink to such a target, and a path through a
symlink whose target is absolute or climbs out of `dest` (a symlink itself may point anywhere:
only following it is refused). A symlink with a relative target that stays inside `dest` is
followed, as Docker's chrooted unpacker would. A failed apply leaves `dest` half written: the
caller throws the directory away.

Producing layer tars: `write_overlay_diff` (an overlay upper directory: whiteout devices become
`.wh.NAME`, opaque directories get a `.wh..wh..opq` entry), `write_dir_diff` (two full trees, as
the vfs driver needs: added and changed entries, deletions as whiteouts) and `write_tree` (a
whole filesystem, `docker export`). Their headers are the ones Docker's archive package writes
(Go's archive/tar with the PAX format hint): USTAR where it fits, PAX where it must, mode with
the file type bits, mtime in whole seconds, empty user and group names, hardlinks as link
entries, directories with a trailing "/", security.capability as the only xattr (a v3
capability downgraded to v2, as Docker does). Entries come in a fixed order and carry nothing
that varies between runs, so the same change always has the same diff id. `overlay_changes`
and `dir_changes` give the change list `docker diff` shows.
"""

import enum
import errno
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, Protocol, cast

from hull.errors import HullError, InvalidArgument
from hull.storage.compression import READ_SIZE, Compression, DecompressedStream, Readable, open_decompressed
from hull.storage.tarsplit import TarSplitRecorder, crc64_update, has_content

WhiteoutMode = Literal["overlay", "delete"]

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."  # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): never extracted
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
CAPABILITY_XATTR = "security.capability"
_PAX_XATTR = "SCHILY.xattr."
_FORBIDDEN_XATTR_PREFIX = "trusted.overlay."

_BLOCK = tarfile.BLOCKSIZE
_MAX_SYMLINKS = 40  # the kernel's own limit for one path walk
_DIR_CACHE_LIMIT = 512
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_REGULAR_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)


# --- applying ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppliedLayer:
    """What applying a layer blob produced, for the layer store to record."""

    diff_id: str  # "sha256:<hex>" of the uncompressed tar
    size: int  # regular files' and symlinks' sizes written (Docker's layerdb `size`)
    tar_split: bytes  # gzipped tar-split (layerdb tar-split.json.gz)
    compression: Compression  # what the blob was compressed with
    entries: int  # tar members read


class _LayerStream:
    """The uncompressed tar, read forward only, hashed once and split as tar-split sees it.

    tarfile reads headers through read/tell/seek (forward seeks only, which is all it needs when
    not asked for random access); those bytes collect in the pending *segment*. A member's
    content is taken out with `content` instead, which hands out views of the read buffer (no
    copies) and checksums them for the tar-split; `end_content` skips what the extractor did
    not want.
    """

    def __init__(self, source: DecompressedStream) -> None:
        self._source = source
        self._hash = hashlib.sha256()
        self._buf = b""
        self._off = 0
        self._pos = 0
        self._eof = False
        self._segment: list[bytes] = []
        self._content_left = 0
        self._crc = 0

    def _fill(self) -> bool:
        # Only called with the buffer used up, so no bytes are ever carried over.
        if self._eof:
            return False
        chunk = self._source.read(READ_SIZE)
        if not chunk:
            self._eof = True
            return False
        self._hash.update(chunk)
        self._buf, self._off = chunk, 0
        return True

    def at_eof(self) -> bool:
        return self._off == len(self._buf) and not self._fill()

    def read(self, size: int = -1) -> bytes:
        parts = []
        want = size if size >= 0 else 1 << 62
        while want > 0:
            avail = len(self._buf) - self._off
            if avail == 0:
                if not self._fill():
                    break
                continue
            k = min(avail, want)
            parts.append(self._buf[self._off : self._off + k])
            self._off += k
            self._pos += k
            want -= k
        data = b"".join(parts)
        self._segment.append(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET or pos < self._pos:
            raise OSError(errno.ESPIPE, "layer stream: only forward seeks")
        self.read(pos - self._pos)
        return self._pos

    def take_segment(self) -> bytes:
        data = b"".join(self._segment)
        self._segment.clear()
        return data

    def begin_content(self, size: int) -> None:
        self._content_left, self._crc = size, 0

    def content(self, name: str) -> Iterator[memoryview]:
        """The member's content (what is left of it) as views of the buffer, each valid until the next."""
        view = memoryview(self._buf)
        while self._content_left > 0:
            avail = len(self._buf) - self._off
            if avail == 0:
                if not self._fill():
                    raise InvalidArgument(f"layer tar is cut short inside {name!r}")
                view = memoryview(self._buf)
                continue
            k = min(avail, self._content_left)
            self._crc = crc64_update(self._crc, self._buf, self._off, self._off + k)
            yield view[self._off : self._off + k]
            self._off += k
            self._pos += k
            self._content_left -= k

    def end_content(self, name: str) -> int:
        """Skip the rest of the content; the CRC-64 of all of it."""
        for _ in self.content(name):
            pass
        return self._crc

    def drain(self) -> bytes:
        """Everything up to the end (the end-of-archive blocks and anything after them count for the diff id)."""
        parts = [self.take_segment(), self._buf[self._off :]]
        self._pos += len(self._buf) - self._off
        self._off = len(self._buf)
        while self._fill():
            parts.append(self._buf)
            self._pos += len(self._buf)
            self._off = len(self._buf)
        return b"".join(parts)

    def diff_id(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _ns(value: str | None) -> int | None:
    """A PAX time ("1234567890.123456789", maybe negative) as integer nanoseconds."""
    if value is None:
        return None
    try:
        sign = -1 if value.startswith("-") else 1
        whole, _, frac = value.lstrip("-").partition(".")
        return sign * (int(whole or "0") * 1_000_000_000 + int((frac + "000000000")[:9]))
    except ValueError:
        return None


def _set_owner_and_mode(fd: int, m: tarfile.TarInfo) -> None:
    """Give the open node the member's owner, then its mode, each only where it differs.

    Every change is a journaled inode update, and creation (by root, with the member's
    permission bits) already got most of them right: skipping the no-op calls halves the
    cost of applying 10,000 small files on ext4. Owner first: chown clears setuid bits.
    """
    st = os.fstat(fd)
    chowned = st.st_uid != m.uid or st.st_gid != m.gid
    if chowned:
        os.fchown(fd, m.uid, m.gid)
    if chowned or stat.S_IMODE(st.st_mode) != m.mode & 0o7777:
        os.fchmod(fd, m.mode & 0o7777)


class _ContentSource(Protocol):
    """Where `Extractor` takes a member's content from: the layer stream, or what was read already."""

    def content(self, name: str) -> Iterator[memoryview]: ...


class Extractor:
    """Writes tar members into `dest` under the safety contract of the module docstring."""

    def __init__(self, dest: str, whiteouts: WhiteoutMode) -> None:
        self.root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.whiteouts = whiteouts
        self.size = 0
        self.members = 0
        # Parent directory descriptors by entry path: tars list a directory's entries together.
        self._dirs: dict[tuple[str, ...], int] = {}
        # Set when something was removed: cached descriptors may name deleted directories. They are
        # dropped before the next member, never during one (its operation may still hold one).
        self._stale = False
        self._unpacked: set[tuple[str, ...]] = set()  # delete mode: what this layer has put in place
        self._dir_times: list[tuple[tuple[str, ...], int, int]] = []
        self._hardlinked: set[tuple[int, int]] = set()

    def close(self) -> None:
        self._drop_dirs()
        os.close(self.root_fd)

    def _drop_dirs(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()
        self._stale = False

    # -- paths --

    @staticmethod
    def _clean(name: str, entry: str) -> tuple[str, ...]:
        if "\0" in name:
            raise InvalidArgument(f"layer tar entry {entry!r}: a path with a NUL byte")
        if name.startswith("/"):
            raise InvalidArgument(f"layer tar entry {entry!r}: an absolute path, which would land outside the layer")
        parts: list[str] = []
        for part in name.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise InvalidArgument(f"layer tar entry {entry!r}: the path climbs out of the layer with '..'")
                parts.pop()
            else:
                parts.append(part)
        return tuple(parts)

    def _dir(self, parts: tuple[str, ...], entry: str, create: bool = True) -> int:
        """A descriptor of the directory `parts` inside dest (owned by the cache; do not close it)."""
        if not parts:
            return self.root_fd
        cached = self._dirs.get(parts)
        if cached is not None:
            return cached
        stack = [self.root_fd]
        where: list[str] = []
        pending = list(reversed(parts))
        links = 0
        try:
            while pending:
                part = pending.pop()
                if part in ("", "."):
                    continue
                if part == "..":
                    if len(stack) == 1:
                        raise InvalidArgument(f"layer tar entry {entry!r}: its path leaves the layer through a symlink")
                    os.close(stack.pop())
                    where.pop()
                    continue
                shown = "/".join([*where, part])
                fd = self._open_dir_at(stack[-1], part, create, entry, shown)
                if fd is None:  # a symlink: walk its target instead, from the directory it is in
                    links += 1
                    if links > _MAX_SYMLINKS:
                        raise InvalidArgument(f"layer tar entry {entry!r}: too many levels of symlinks at {shown!r}")
                    target = os.readlink(part, dir_fd=stack[-1])
                    if target.startswith("/"):
                        raise InvalidArgument(
                            f"layer tar entry {entry!r}: its path goes through the symlink {shown!r} -> {target!r},"
                            " which points outside the layer"
                        )
                    pending.extend(reversed(target.split("/")))
                    continue
                stack.append(fd)
                where.append(part)
        except BaseException:
            for fd in stack[1:]:
                os.close(fd)
            raise
        for fd in stack[1:-1]:
            os.close(fd)
        result = stack[-1]
        if result == self.root_fd:
            return result
        if len(self._dirs) >= _DIR_CACHE_LIMIT and not self._stale:
            self._stale = True
        self._dirs[parts] = result
        return result

    @staticmethod
    def _open_dir_at(dfd: int, part: str, create: bool, entry: str, shown: str) -> int | None:
        """Open directory `part` in `dfd` without following it; None if it is a symlink."""
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=dfd)
        except FileNotFoundError:
            if not create:
                raise
            # Like Docker's MkdirAll for parents the tar does not list.
            os.mkdir(part, 0o755, dir_fd=dfd)
            return os.open(part, _DIR_FLAGS, dir_fd=dfd)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
        if not stat.S_ISLNK(os.stat(part, dir_fd=dfd, follow_symlinks=False).st_mode):
            raise InvalidArgument(f"layer tar entry {entry!r}: {shown!r} is not a directory")
        return None

    def _remove(self, pfd: int, name: str) -> None:
        """Remove `name` in directory `pfd`, recursively if it is a directory (never through a symlink)."""
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
        self._stale = True

    def _replace_existing(self, pfd: int, name: str, keep_dir: bool) -> bool:
        """Make way for a new entry `name`; True if an existing directory is kept (a directory over one)."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if keep_dir and stat.S_ISDIR(st.st_mode):
            return True
        self._remove(pfd, name)
        return False

    # -- members --

    def apply(self, m: tarfile.TarInfo, stream: "_ContentSource") -> None:
        if self._stale:
            self._drop_dirs()
        self.members += 1
        name = m.name
        parts = self._clean(name, name)
        if parts and parts[0].startswith(WHITEOUT_META_PREFIX) and parts != (WHITEOUT_OPAQUE,):
            return  # AUFS metadata, as Docker skips it; tarfile skips any content
        if parts and parts[-1].startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, m)
            return
        kind = m.type
        if not parts and kind != tarfile.DIRTYPE:
            raise InvalidArgument(f"layer tar entry {name!r}: only a directory can stand for the layer root")
        if kind in _REGULAR_TYPES:
            self._file(parts, m, stream)
        elif kind == tarfile.DIRTYPE:
            self._directory(parts, m)
        elif kind == tarfile.SYMTYPE:
            self._symlink(parts, m)
        elif kind == tarfile.LNKTYPE:
            self._hardlink(parts, m)
        elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
            self._special(parts, m)
        else:
            raise InvalidArgument(f"layer tar entry {name!r}: unsupported tar entry type {kind!r}")
        if self.whiteouts == "delete":
            self._unpacked.add(parts)

    def _whiteout(self, parts: tuple[str, ...], m: tarfile.TarInfo) -> None:
        base = parts[-1]
        pfd = self._dir(parts[:-1], m.name)
        if base == WHITEOUT_OPAQUE:
            if self.whiteouts == "overlay":
                os.setxattr(pfd, OPAQUE_XATTR, b"y")
            else:
                self._remove_lower(pfd, parts[:-1])
            return
        target = base[len(WHITEOUT_PREFIX) :]
        if target in ("", ".", ".."):
            raise InvalidArgument(f"layer tar entry {m.name!r}: a whiteout that names no file")
        if self.whiteouts == "overlay":
            try:
                os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
            except FileExistsError:
                raise InvalidArgument(
                    f"layer tar entry {m.name!r}: whiteout of {target!r}, which this same layer creates"
                ) from None
            os.chown(target, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        else:
            try:
                self._remove(pfd, target)
            except FileNotFoundError:
                pass  # deleting what no lower layer has is a no-op, as in Docker

    def _remove_lower(self, dfd: int, dir_parts: tuple[str, ...]) -> None:
        """vfs opaque directory: remove what lower layers put in the directory, keep this layer's entries."""
        for name in os.listdir(dfd):
            child = (*dir_parts, name)
            if child not in self._unpacked:
                self._remove(dfd, name)
                continue
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                cfd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                try:
                    self._remove_lower(cfd, child)
                finally:
                    os.close(cfd)

    def _file(self, parts: tuple[str, ...], m: tarfile.TarInfo, stream: "_ContentSource") -> None:
        pfd = self._dir(parts[:-1], m.name)
        base = parts[-1]
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        # Created with its final permission bits (less the umask): most files need no chmod then.
        try:
            fd = os.open(base, flags, m.mode & 0o777, dir_fd=pfd)
        except FileExistsError:
            self._replace_existing(pfd, base, keep_dir=False)
            fd = os.open(base, flags, m.mode & 0o777, dir_fd=pfd)
        try:
            for view in stream.content(m.name):
                while view:
                    view = view[os.write(fd, view) :]
            # Owner and mode before xattrs (chown also drops security.capability), times last.
            _set_owner_and_mode(fd, m)
            self._xattrs(fd, m)
            mtime, atime = self._times(m)
            os.utime(fd, ns=(atime, mtime))
        finally:
            os.close(fd)
        self.size += m.size

    def _directory(self, parts: tuple[str, ...], m: tarfile.TarInfo) -> None:
        if not parts:
            fd = os.dup(self.root_fd)
        else:
            pfd = self._dir(parts[:-1], m.name)
            base = parts[-1]
            try:
                os.mkdir(base, m.mode & 0o777, dir_fd=pfd)
            except FileExistsError:
                if not self._replace_existing(pfd, base, keep_dir=True):
                    os.mkdir(base, m.mode & 0o777, dir_fd=pfd)
            fd = os.open(base, _DIR_FLAGS, dir_fd=pfd)
        try:
            _set_owner_and_mode(fd, m)
            self._xattrs(fd, m)
        except BaseException:
            os.close(fd)
            raise
        mtime, atime = self._times(m)
        self._dir_times.append((parts, atime, mtime))
        if parts and parts not in self._dirs:
            self._dirs[parts] = fd  # its entries come next
        else:
            os.close(fd)

    def _symlink(self, parts: tuple[str, ...], m: tarfile.TarInfo) -> None:
        pfd = self._dir(parts[:-1], m.name)
        base = parts[-1]
        if not m.linkname or "\0" in m.linkname:
            raise InvalidArgument(f"layer tar entry {m.name!r}: a symlink with an empty or invalid target")
        try:
            os.symlink(m.linkname, base, dir_fd=pfd)
        except FileExistsError:
            self._replace_existing(pfd, base, keep_dir=False)
            os.symlink(m.linkname, base, dir_fd=pfd)
        self._metadata_at(pfd, base, m, is_symlink=True)
        self.size += len(os.fsencode(m.linkname))  # a symlink's size is its target's length, for Docker too

    def _hardlink(self, parts: tuple[str, ...], m: tarfile.TarInfo) -> None:
        target = self._clean(m.linkname, m.name)
        if not target or target == parts:
            raise InvalidArgument(f"layer tar entry {m.name!r}: a hardlink to {m.linkname!r}, which it cannot be")
        try:
            tfd = self._dir(target[:-1], m.name, create=False)
            os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
        except FileNotFoundError:
            raise InvalidArgument(
                f"layer tar entry {m.name!r}: hardlink target {m.linkname!r} is not in the layer"
            ) from None
        pfd = self._dir(parts[:-1], m.name)
        base = parts[-1]
        try:
            os.link(target[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            self._replace_existing(pfd, base, keep_dir=False)
            os.link(target[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except PermissionError:
            raise InvalidArgument(f"layer tar entry {m.name!r}: cannot hardlink to {m.linkname!r}") from None

    def _special(self, parts: tuple[str, ...], m: tarfile.TarInfo) -> None:
        pfd = self._dir(parts[:-1], m.name)
        base = parts[-1]
        if m.type == tarfile.FIFOTYPE:
            kind, device = stat.S_IFIFO, 0
        else:
            kind = stat.S_IFCHR if m.type == tarfile.CHRTYPE else stat.S_IFBLK
            device = os.makedev(m.devmajor, m.devminor)
        try:
            os.mknod(base, kind | 0o600, device, dir_fd=pfd)
        except FileExistsError:
            self._replace_existing(pfd, base, keep_dir=False)
            os.mknod(base, kind | 0o600, device, dir_fd=pfd)
        self._metadata_at(pfd, base, m, is_symlink=False)

    def _metadata_at(self, pfd: int, base: str, m: tarfile.TarInfo, is_symlink: bool) -> None:
        """Owner, mode, xattrs and times of a node that cannot be opened (a symlink, a device, a fifo)."""
        os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        if not is_symlink:
            # fchmodat has no working NOFOLLOW; `base` was created just now as a non-symlink.
            os.chmod(base, m.mode & 0o7777, dir_fd=pfd)
        # No *xattrat call in Python: name the node through the parent's descriptor instead.
        self._xattrs(f"/proc/self/fd/{pfd}/{base}", m)
        mtime, atime = self._times(m)
        os.utime(base, ns=(atime, mtime), dir_fd=pfd, follow_symlinks=False)

    @staticmethod
    def _xattrs(target: int | str, m: tarfile.TarInfo) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith(_PAX_XATTR):
                continue
            attr = key[len(_PAX_XATTR) :]
            if attr.startswith(_FORBIDDEN_XATTR_PREFIX):
                continue
            try:
                data = value.encode("utf-8", "surrogateescape")
                # A descriptor is the node itself; a path names the node without following it.
                os.setxattr(target, attr, data, follow_symlinks=isinstance(target, int))
            except OSError as e:
                # Docker skips xattrs the filesystem does not take, rather than failing the pull.
                if e.errno not in (errno.ENOTSUP, errno.EPERM, errno.EINVAL):
                    raise

    @staticmethod
    def _times(m: tarfile.TarInfo) -> tuple[int, int]:
        mtime = _ns(m.pax_headers.get("mtime"))
        if mtime is None:
            mtime = int(m.mtime) * 1_000_000_000
        atime = _ns(m.pax_headers.get("atime"))
        # As Docker: an access time before the modification time is taken as the modification time.
        if atime is None or atime < mtime:
            atime = mtime
        return mtime, atime

    def finish(self) -> None:
        """Directory times, now that nothing more is written into them."""
        if self._stale:
            self._drop_dirs()
        for parts, atime, mtime in self._dir_times:
            try:
                fd = self._dir(parts, "/".join(parts), create=False)
            except (FileNotFoundError, InvalidArgument):
                continue  # removed again by a later entry
            os.utime(fd, ns=(atime, mtime))


def apply_layer(stream: Readable, dest: str, *, whiteouts: WhiteoutMode) -> AppliedLayer:
    """Apply the layer blob `stream` (compressed or not) to the directory `dest` in one streaming pass.

    `whiteouts` is "overlay" (dest is an overlay2 layer's diff directory) or "delete" (dest is a
    vfs copy of the parent layers). Bad archives raise InvalidArgument naming the entry;
    failures of the filesystem raise HullError. See the module docstring for the contract.
    """
    if whiteouts not in ("overlay", "delete"):
        raise InvalidArgument(f"unknown whiteout mode {whiteouts!r} (overlay or delete)")
    source = open_decompressed(stream)
    recorder = TarSplitRecorder()
    layer = _LayerStream(source)
    try:
        extractor = Extractor(dest, whiteouts)
    except OSError as e:
        raise HullError(f"applying layer: cannot open {dest}: {e.strerror or e}") from e
    current = "(header)"
    try:
        if not layer.at_eof():  # a zero-length tar is an empty layer, as for Go's reader
            try:
                # Mode "r" on our forward-only stream: tarfile's own stream mode ("r|") would add a
                # second buffer that copies its whole buffer for every 512-byte header it hands out.
                tar = tarfile.TarFile(
                    fileobj=cast(BinaryIO, layer), mode="r", encoding="utf-8", errors="surrogateescape"
                )
                while (member := tar.next()) is not None:
                    # tarfile keeps every member for random access we never use (not in typeshed).
                    tar.members.clear()  # type: ignore[attr-defined]
                    current = member.name
                    _record_member(member, layer, extractor, recorder)
                    current = "(header)"
            except tarfile.TarError as e:
                raise InvalidArgument(f"layer tar is not valid after {layer.tell()} bytes: {e}") from e
        # tarfile ends quietly at a bad or cut header too; only the end-of-archive marker (or the
        # end of the data right after a member) is a proper end, as for Go's reader.
        at = layer.tell()
        trailer = layer.drain()
        if trailer and not trailer.startswith(tarfile.NUL * _BLOCK):
            raise InvalidArgument(
                f"layer tar has an invalid or cut header at offset {at - _BLOCK if len(trailer) >= _BLOCK else at}"
            )
        recorder.add_trailer(trailer)
        tar_split = recorder.finish()
        extractor.finish()
    except HullError:
        raise
    except (UnicodeError, ValueError) as e:
        raise InvalidArgument(f"layer tar entry {current!r}: {e}") from e
    except OSError as e:
        raise HullError(f"applying layer to {dest}: entry {current!r}: {e.strerror or e}") from e
    finally:
        extractor.close()
    return AppliedLayer(
        diff_id=layer.diff_id(),
        size=extractor.size,
        tar_split=tar_split,
        compression=source.compression,
        entries=extractor.members,
    )


def _record_member(
    member: tarfile.TarInfo, layer: _LayerStream, extractor: Extractor, recorder: TarSplitRecorder
) -> None:
    """Extract one member and record it for tar-split: header segment, file entry, padding segment."""
    if member.sparse is not None:
        raise InvalidArgument(f"layer tar entry {member.name!r}: a sparse file, which layers cannot hold")
    recorder.add_segment(layer.take_segment())
    size = member.size if has_content(member.type) else 0
    layer.begin_content(size)
    extractor.apply(member, layer)
    crc = layer.end_content(member.name)
    recorder.add_file(member.name.encode("utf-8", "surrogateescape"), size, crc)
    if size % _BLOCK:
        layer.read(_BLOCK - size % _BLOCK)
        recorder.add_segment(layer.take_segment())


# --- tar headers as Docker's archive package writes them -----------------------------------------------

# Mode type bits Docker adds to tar headers (fillGo18FileTypeBits), by tar type flag.
_TYPE_BITS = {
    tarfile.REGTYPE: 0o100000,
    tarfile.DIRTYPE: 0o040000,
    tarfile.SYMTYPE: 0o120000,
    tarfile.CHRTYPE: 0o020000,
    tarfile.BLKTYPE: 0o060000,
    tarfile.FIFOTYPE: 0o010000,
}
_USTAR_MAGIC = b"ustar\x0000"


@dataclass
class TarHeader:
    """One member's header, in the fields Go's archive/tar has (names as str with surrogateescape)."""

    name: str
    typeflag: bytes
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


_MAX_OCTAL_8 = 8**7  # what width-1 octal digits hold, for 8- and 12-byte fields
_MAX_OCTAL_12 = 8**11


def _fits_octal(value: int, width: int) -> bool:
    return 0 <= value < 8 ** (width - 1)


def _octal(value: int, width: int) -> bytes:
    # Go writes width-1 zero-padded digits and a NUL; a value that does not fit (only possible in
    # the PAX main header, whose PAX record carries the real value) is written as 0.
    if not _fits_octal(value, width):
        value = 0
    return b"%0*o\0" % (width - 1, value)


def _field(data: bytes, width: int) -> bytes:
    return data[:width].ljust(width, b"\0")


def _to_ascii(data: bytes) -> bytes:
    """Go's toASCII: the name with every non-ASCII or NUL character dropped."""
    text = data.decode("utf-8", "replace")
    return "".join(c for c in text if c < "\x80" and c != "\0").encode("ascii")


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's splitUSTARPath: the longest prefix (<=155) and a name (<=100) split at a slash."""
    if len(name) <= 100 or not name.isascii():
        return None
    length = len(name)
    if length > 156:
        length = 156
    elif name[length - 1 : length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    suffix_len = len(name) - i - 1
    if i <= 0 or suffix_len > 100 or suffix_len == 0 or i > 155:
        return None
    return name[:i], name[i + 1 :]


def _block(
    *,
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes = b"",
    devices: tuple[int, int] | None = (0, 0),
    prefix: bytes = b"",
) -> bytes:
    # Built by hand, not with TarInfo.tobuf: tobuf masks the mode to 0o7777 (Docker keeps the type
    # bits), cannot put a binary value (security.capability) in a PAX record, splits long names at
    # another slash than Go and names PAX headers differently, all of which change the diff id.
    dev = b"\0" * 16 if devices is None else _octal(devices[0], 8) + _octal(devices[1], 8)
    fits = min(mode, uid, gid, size, mtime) >= 0
    fits = fits and max(mode, uid, gid) < _MAX_OCTAL_8 and max(size, mtime) < _MAX_OCTAL_12
    if fits:  # one format for all five: this runs for every file of every layer written
        numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode, uid, gid, size, mtime)
    else:
        numbers = _octal(mode, 8) + _octal(uid, 8) + _octal(gid, 8) + _octal(size, 12) + _octal(mtime, 12)
    block = b"".join(
        (
            _field(name, 100),
            numbers,
            b" " * 8,
            typeflag,
            _field(linkname, 100),
            _USTAR_MAGIC,
            b"\0" * 64,  # uname, gname: empty, as Docker writes them
            dev,
            _field(prefix, 155),
            b"\0" * 12,
        )
    )
    checksum = sum(block)  # with the checksum field counted as spaces, as it is now
    return block[:148] + b"%06o\0 " % checksum + block[156:]


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    size = len(body) + len(str(len(body)))
    if len(str(size)) + len(body) != size:
        size = len(str(size)) + len(body)
    return str(size).encode() + body


def encode_header(h: TarHeader) -> bytes:
    """The header block(s) of `h`: one USTAR block, or a PAX extended header and its main block."""
    name = h.name.encode("utf-8", "surrogateescape")
    link = h.linkname.encode("utf-8", "surrogateescape")
    pax: dict[bytes, bytes] = {}
    ustar = not h.xattrs
    prefix, short = b"", name
    if len(name) > 100 or not name.isascii():
        pax[b"path"] = name
        split = _split_ustar(name)
        if split is None:
            ustar = False
        else:
            prefix, short = split
    if len(link) > 100 or not link.isascii():
        pax[b"linkpath"] = link
        ustar = False
    for key, value, width in ((b"uid", h.uid, 8), (b"gid", h.gid, 8), (b"size", h.size, 12), (b"mtime", h.mtime, 12)):
        if not _fits_octal(value, width):
            pax[key] = str(value).encode()
            ustar = False
    for attr, data in h.xattrs.items():
        pax[_PAX_XATTR.encode() + attr.encode("utf-8", "surrogateescape")] = data
    devices = (h.devmajor, h.devminor)
    if ustar:
        return _block(
            name=short,
            prefix=prefix,
            mode=h.mode,
            uid=h.uid,
            gid=h.gid,
            size=h.size,
            mtime=h.mtime,
            typeflag=h.typeflag,
            linkname=link,
            devices=devices,
        )
    records = b"".join(_pax_record(key, pax[key]) for key in sorted(pax))
    # Go names the extended header DIR/PaxHeaders.0/BASE.
    cut = name.rfind(b"/") + 1
    pax_name = posixpath.normpath(name[:cut] + b"PaxHeaders.0" + (b"/" + name[cut:] if name[cut:] else b""))
    pax_name = _to_ascii(pax_name)[:100].rstrip(b"/")
    extended = _block(
        name=pax_name, mode=0, uid=0, gid=0, size=len(records), mtime=0, typeflag=tarfile.XHDTYPE, devices=None
    )
    main = _block(
        name=_to_ascii(name),
        mode=h.mode,
        uid=h.uid,
        gid=h.gid,
        size=h.size,
        mtime=h.mtime,
        typeflag=h.typeflag,
        linkname=_to_ascii(link),
        devices=devices,
    )
    return extended + records + b"\0" * (-len(records) % _BLOCK) + main


# --- writing layer tars --------------------------------------------------------------------------------


def _split_name(h: TarHeader) -> bytes:
    """The member's name as tar-split records it: as a tar reader gives it (no trailing "/" on a directory)."""
    name = h.name.rstrip("/") if h.typeflag == tarfile.DIRTYPE else h.name
    return name.encode("utf-8", "surrogateescape")


class TarWriter:
    """Writes a layer tar to `out`, hashing it for the diff id and feeding an optional tar-split recorder."""

    def __init__(self, out: BinaryIO, recorder: TarSplitRecorder | None) -> None:
        self._out = out
        self._recorder = recorder
        self._hash = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._seen_inodes: dict[tuple[int, int], str] = {}

    def _write(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_len += len(data)
        if self._pending_len >= READ_SIZE:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_len = 0
            self._out.write(data)
            self._hash.update(data)

    def header(self, h: TarHeader) -> None:
        """A member with no content (all but non-empty regular files)."""
        self._header_segment(h)
        if self._recorder is not None:
            self._recorder.add_file(_split_name(h), 0, None)

    def _header_segment(self, h: TarHeader) -> None:
        # What `entry` read of the member's content, for copy_overlay_diff; None when too large to keep.
        self.last_content: list[bytes] | None = []
        data = encode_header(h)
        self._write(data)
        # tar-split recorded as the tar is made (we know every boundary): no parsing it back.
        if self._recorder is not None:
            self._recorder.add_segment(data)

    def entry(self, rel: str, dfd: int, name: str, st: os.stat_result) -> TarHeader | None:
        """Write the filesystem node `name` (in directory `dfd`) as member `rel`; None for sockets."""
        h = header_from_stat(rel, st)
        if h is None:
            return None
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            first = self._seen_inodes.get((st.st_dev, st.st_ino))
            if first is not None:
                h.typeflag, h.linkname, h.size = tarfile.LNKTYPE, first, 0
                self.header(h)
                return h
            self._seen_inodes[(st.st_dev, st.st_ino)] = h.name
        if stat.S_ISLNK(st.st_mode):
            h.linkname = os.readlink(name, dir_fd=dfd)
        if not stat.S_ISREG(st.st_mode):
            self.header(h)
            return h
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                raise HullError(f"writing layer tar: {rel!r} was replaced while being read")
            capability = _capability(fd)
            if capability is not None:
                h.xattrs[CAPABILITY_XATTR] = capability
            if not h.size:
                self.header(h)
                return h
            self._header_segment(h)
            left = h.size
            kept: list[bytes] | None = [] if h.size <= _KEEP_CONTENT_MAX else None
            crc = 0
            while left:
                chunk = os.read(fd, min(left, READ_SIZE))
                if not chunk:
                    # The file shrank while being read: pad, as GNU tar does, to keep the tar valid.
                    chunk = b"\0" * min(left, READ_SIZE)
                self._write(chunk)
                crc = crc64_update(crc, chunk)
                if kept is not None:
                    kept.append(chunk)
                left -= len(chunk)
            self.last_content = kept
        finally:
            os.close(fd)
        if self._recorder is not None:
            self._recorder.add_file(_split_name(h), h.size, crc)
        if h.size % _BLOCK:
            padding = b"\0" * (_BLOCK - h.size % _BLOCK)
            self._write(padding)
            if self._recorder is not None:
                self._recorder.add_segment(padding)
        return h

    def close(self) -> str:
        """The end-of-archive marker (two zero blocks, no record padding, as Go writes); returns the diff id."""
        self._write(b"\0" * (2 * _BLOCK))
        if self._recorder is not None:
            self._recorder.add_trailer(b"\0" * (2 * _BLOCK))
        self._flush()
        return "sha256:" + self._hash.hexdigest()


def _capability(target: int | str) -> bytes | None:
    try:
        value = os.getxattr(target, CAPABILITY_XATTR, follow_symlinks=isinstance(target, int))
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise
    # VFS_CAP_REVISION_3 names a namespace root uid that means nothing outside the user namespace
    # the file came from: Docker writes it as revision 2 (the first 20 bytes).
    if len(value) >= 4 and value[3] == 3:
        value = value[:3] + b"\x02" + value[4:20]
    return value


def header_from_stat(rel: str, st: os.stat_result) -> TarHeader | None:
    """The header Docker writes for a node with this lstat, as member `rel` (None for a socket)."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        typeflag = tarfile.REGTYPE
    elif stat.S_ISDIR(mode):
        typeflag = tarfile.DIRTYPE
        rel = rel.rstrip("/") + "/"
    elif stat.S_ISLNK(mode):
        typeflag = tarfile.SYMTYPE
    elif stat.S_ISCHR(mode):
        typeflag = tarfile.CHRTYPE
    elif stat.S_ISBLK(mode):
        typeflag = tarfile.BLKTYPE
    elif stat.S_ISFIFO(mode):
        typeflag = tarfile.FIFOTYPE
    else:
        return None  # sockets have no tar form; Docker leaves them out
    h = TarHeader(
        name=rel,
        typeflag=typeflag,
        mode=(mode & 0o7777) | _TYPE_BITS[typeflag],
        uid=st.st_uid,
        gid=st.st_gid,
        size=st.st_size if typeflag == tarfile.REGTYPE else 0,
        mtime=int(st.st_mtime_ns // 1_000_000_000),
    )
    if typeflag in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        h.devmajor, h.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return h


def walk_tree(dfd: int, prefix: str) -> Iterator[tuple[str, int, str, os.stat_result]]:
    """(relative path, parent fd, name, lstat) of everything below `dfd`, parents first, names in byte order."""
    with os.scandir(dfd) as it:
        entries = sorted(it, key=lambda e: os.fsencode(e.name))
    for entry in entries:
        st = entry.stat(follow_symlinks=False)
        rel = prefix + entry.name
        yield rel, dfd, entry.name, st
        if stat.S_ISDIR(st.st_mode):
            cfd = os.open(entry.name, _DIR_FLAGS, dir_fd=dfd)
            try:
                yield from walk_tree(cfd, rel + "/")
            finally:
                os.close(cfd)


def _is_whiteout_device(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(dfd: int, name: str) -> bool:
    try:
        return os.getxattr(f"/proc/self/fd/{dfd}/{name}", OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise


def _open_root(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _overlay_entries(writer: TarWriter, root: int) -> Iterator[tuple[TarHeader, int, str]]:
    """Write every node of an overlay upper directory to `writer`; yield each header written, with
    the node's (directory fd, name). Whiteout devices become `.wh.NAME` entries; an opaque
    directory is followed by its `.wh..wh..opq` entry."""
    for rel, dfd, name, st in walk_tree(root, ""):
        if _is_whiteout_device(st):
            parent, _, base = rel.rpartition("/")
            wh = TarHeader(
                name=(parent + "/" if parent else "") + WHITEOUT_PREFIX + base,
                typeflag=tarfile.REGTYPE,
                mode=0o600,
                uid=st.st_uid,
                gid=st.st_gid,
                mtime=int(st.st_mtime_ns // 1_000_000_000),
            )
            writer.header(wh)
            yield wh, dfd, name
            continue
        h = writer.entry(rel, dfd, name, st)
        if h is None:
            continue
        yield h, dfd, name
        if stat.S_ISDIR(st.st_mode) and _is_opaque(dfd, name):
            opaque = TarHeader(
                name=h.name + WHITEOUT_OPAQUE, typeflag=tarfile.REGTYPE, mode=h.mode & 0o777, uid=h.uid, gid=h.gid
            )
            writer.header(opaque)
            yield opaque, dfd, name


def write_overlay_diff(upper_dir: str, out: BinaryIO, *, tar_split: TarSplitRecorder | None = None) -> str:
    """Write the overlay upper directory `upper_dir` as a layer tar to `out`; returns its diff id.

    Whiteout devices become `.wh.NAME` entries; an opaque directory is followed by its
    `.wh..wh..opq` entry. `tar_split`, if given, is fed the tar as it is written.
    """
    writer = TarWriter(out, tar_split)
    root = _open_root(upper_dir)
    try:
        for _ in _overlay_entries(writer, root):
            pass
    except OSError as e:
        raise HullError(f"writing layer tar of {upper_dir}: {e.strerror or e}") from e
    finally:
        os.close(root)
    return writer.close()


# copy_overlay_diff keeps a file's bytes between reading and writing them up to this size;
# a larger file is read again from its source.
_KEEP_CONTENT_MAX = 8 << 20


class _Reread:
    """A large member's content, read again from the node being copied."""

    def __init__(self, dfd: int, name: str) -> None:
        self._dfd, self._name = dfd, name

    def content(self, name: str) -> Iterator[memoryview]:
        fd = os.open(self._name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dfd)
        try:
            while chunk := os.read(fd, READ_SIZE):
                yield memoryview(chunk)
        finally:
            os.close(fd)


class _Discard:
    """A sink that keeps nothing: a copied layer's tar is only hashed and split, never stored."""

    def write(self, data: bytes) -> int:
        return len(data)


class _Kept:
    """A member's content as the tar writer read it (the extractor writes the very same bytes)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def content(self, name: str) -> Iterator[memoryview]:
        for chunk in self._chunks:
            yield memoryview(chunk)


def _member(h: TarHeader) -> tarfile.TarInfo:
    """The TarInfo that parsing `h`'s encoded header would give (what Extractor takes)."""
    m = tarfile.TarInfo(h.name.rstrip("/") if h.typeflag == tarfile.DIRTYPE else h.name)
    m.type, m.mode, m.uid, m.gid, m.size, m.mtime = h.typeflag, h.mode, h.uid, h.gid, h.size, h.mtime
    m.linkname, m.devmajor, m.devminor = h.linkname, h.devmajor, h.devminor
    m.pax_headers = {_PAX_XATTR + k: v.decode("utf-8", "surrogateescape") for k, v in h.xattrs.items()}
    return m


def copy_overlay_diff(upper_dir: str, dest: str) -> AppliedLayer:
    """What `apply_layer` of `write_overlay_diff(upper_dir)` gives in `dest` (overlay whiteouts), in one pass.

    The layer's tar is still written, but only hashed (diff id) and split (tar-split); it is never
    parsed back: each entry is applied from the header just made and the bytes just read. This
    is commit's path on overlay2, where parsing the tar again was a third of the apply's time.
    """
    recorder = TarSplitRecorder()
    writer = TarWriter(cast(BinaryIO, _Discard()), recorder)
    try:
        extractor = Extractor(dest, "overlay")
    except OSError as e:
        raise HullError(f"copying layer: cannot open {dest}: {e.strerror or e}") from e
    root = _open_root(upper_dir)
    try:
        for h, dfd, name in _overlay_entries(writer, root):
            kept = writer.last_content
            extractor.apply(_member(h), _Kept(kept) if kept is not None else _Reread(dfd, name))
        diff_id = writer.close()
        extractor.finish()
    except OSError as e:
        raise HullError(f"copying layer {upper_dir} to {dest}: {e.strerror or e}") from e
    finally:
        os.close(root)
        extractor.close()
    return AppliedLayer(
        diff_id=diff_id,
        size=extractor.size,
        tar_split=recorder.finish(),
        compression=Compression.NONE,
        entries=extractor.members,
    )


def write_tree(root_dir: str, out: BinaryIO, *, tar_split: TarSplitRecorder | None = None) -> str:
    """Write the whole filesystem below `root_dir` as a tar (`docker export`); returns its digest as a diff id."""
    writer = TarWriter(out, tar_split)
    root = _open_root(root_dir)
    try:
        for rel, dfd, name, st in walk_tree(root, ""):
            writer.entry(rel, dfd, name, st)
    except OSError as e:
        raise HullError(f"writing tar of {root_dir}: {e.strerror or e}") from e
    finally:
        os.close(root)
    return writer.close()


# --- changes (docker diff) -----------------------------------------------------------------------------


class ChangeKind(enum.IntEnum):
    """Docker's change kinds, with the numbers the Engine API uses."""

    MODIFY = 0
    ADD = 1
    DELETE = 2

    @property
    def letter(self) -> str:
        return "CAD"[self.value]


@dataclass(frozen=True)
class Change:
    """One line of `docker diff`: a path (absolute in the container) and what happened to it."""

    path: str
    kind: ChangeKind

    def __str__(self) -> str:
        return f"{self.kind.letter} {self.path}"


def _same_mtime(a: os.stat_result, b: os.stat_result) -> bool:
    # Docker's sameFsTimeSpec: equal seconds, and equal nanoseconds unless one side has none.
    sa, na = divmod(a.st_mtime_ns, 1_000_000_000)
    sb, nb = divmod(b.st_mtime_ns, 1_000_000_000)
    return sa == sb and (na == nb or na == 0 or nb == 0)


def _lstat_beneath(root: str, rel: str) -> os.stat_result | None:
    """lstat of `rel` inside `root`, following no symlink on the way (None if it is not there)."""
    parts = [p for p in rel.split("/") if p]
    try:
        fd = _open_root(root)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False) if parts else os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def overlay_changes(upper_dir: str, lower_dirs: Sequence[str] = ()) -> list[Change]:
    """The changes an overlay upper directory makes over its lower layers, as Docker's overlay2 driver reports them.

    Walk order (parents first). A whiteout device is a deletion; an opaque directory that a lower
    layer has is reported deleted (and its new entries added), as Docker does; an entry any
    lower layer has is a modification, except a directory whose size, mode and mtime are all
    unchanged (it is only there because something inside changed); anything else is an
    addition. The parent of an addition or deletion is reported modified if nothing else was.
    Without `lower_dirs`, nothing can be told modified: every entry is an addition.
    """
    changes: list[Change] = []
    changed_dirs: set[str] = set()
    root = _open_root(upper_dir)
    try:
        for rel, dfd, name, st in walk_tree(root, ""):
            path = "/" + rel
            kind = ChangeKind.ADD
            if _is_whiteout_device(st) or (
                stat.S_ISDIR(st.st_mode)
                and _is_opaque(dfd, name)
                and any(_lstat_beneath(lower, rel) for lower in lower_dirs)
            ):
                kind = ChangeKind.DELETE
            else:
                for lower in lower_dirs:
                    old = _lstat_beneath(lower, rel)
                    if old is None:
                        continue
                    if (
                        stat.S_ISDIR(old.st_mode)
                        and stat.S_ISDIR(st.st_mode)
                        and old.st_size == st.st_size
                        and old.st_mode == st.st_mode
                        and _same_mtime(old, st)
                    ):
                        kind = ChangeKind.MODIFY
                        path = ""  # unchanged directory: not reported
                    else:
                        kind = ChangeKind.MODIFY
                    break
            if not path:
                continue
            if stat.S_ISDIR(st.st_mode):
                changed_dirs.add(path)
            if kind in (ChangeKind.ADD, ChangeKind.DELETE):
                parent = posixpath.dirname(path)
                if parent != "/" and parent not in changed_dirs:
                    changes.append(Change(parent, ChangeKind.MODIFY))
                    changed_dirs.add(parent)
            changes.append(Change(path, kind))
    except OSError as e:
        raise HullError(f"listing changes of {upper_dir}: {e.strerror or e}") from e
    finally:
        os.close(root)
    return changes


@dataclass
class _Node:
    st: os.stat_result
    capability: bytes | None
    children: dict[str, "_Node"] | None  # None for non-directories


def _scan(root_dir: str) -> _Node:
    root = _open_root(root_dir)
    try:
        node = _Node(os.fstat(root), None, {})
        _scan_into(root, node)
        return node
    finally:
        os.close(root)


def _scan_into(dfd: int, node: _Node) -> None:
    assert node.children is not None
    with os.scandir(dfd) as it:
        for entry in it:
            st = entry.stat(follow_symlinks=False)
            capability = _capability(f"/proc/self/fd/{dfd}/{entry.name}") if stat.S_ISREG(st.st_mode) else None
            child = _Node(st, capability, {} if stat.S_ISDIR(st.st_mode) else None)
            node.children[entry.name] = child
            if child.children is not None:
                cfd = os.open(entry.name, _DIR_FLAGS, dir_fd=dfd)
                try:
                    _scan_into(cfd, child)
                finally:
                    os.close(cfd)


def _stat_differs(old: os.stat_result, new: os.stat_result) -> bool:
    # Docker's statDifferent: size and mtime say nothing for directories.
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (new.st_mode, new.st_uid, new.st_gid, new.st_rdev):
        return True
    if stat.S_ISDIR(old.st_mode):
        return False
    return not _same_mtime(old, new) or old.st_size != new.st_size


def _add_changes(new: _Node, old: _Node | None, path: str, changes: list[Change], added: bool) -> None:
    at_entry = len(changes)
    # Only a directory compares its entries with the old ones; under anything else all is new.
    old_children = dict(old.children) if old is not None and old.children and new.children is not None else {}
    new_children = new.children or {}
    for name in sorted(new_children, key=os.fsencode):
        child = new_children[name]
        child_path = posixpath.join(path, name)
        previous = old_children.pop(name, None)
        child_added = False
        if previous is None:
            changes.append(Change(child_path, ChangeKind.ADD))
            child_added = True
        elif _stat_differs(previous.st, child.st) or previous.capability != child.capability:
            changes.append(Change(child_path, ChangeKind.MODIFY))
            child_added = True
        _add_changes(child, previous, child_path, changes, child_added)
    for name in sorted(old_children, key=os.fsencode):
        changes.append(Change(posixpath.join(path, name), ChangeKind.DELETE))
    # A directory with changes inside is itself reported, so that its metadata travels with them.
    if len(changes) > at_entry and new.children is not None and not added and path != "/":
        changes.insert(at_entry, Change(path, ChangeKind.MODIFY))


def dir_changes(parent_dir: str, child_dir: str) -> list[Change]:
    """The changes that turn the tree `parent_dir` into `child_dir` (vfs), sorted by path as Docker exports them."""
    try:
        old, new = _scan(parent_dir), _scan(child_dir)
    except OSError as e:
        raise HullError(f"comparing {parent_dir} and {child_dir}: {e.strerror or e}") from e
    changes: list[Change] = []
    _add_changes(new, old, "/", changes, added=False)
    return sorted(changes, key=lambda c: os.fsencode(c.path))


def write_dir_diff(parent_dir: str, child_dir: str, out: BinaryIO, *, tar_split: TarSplitRecorder | None = None) -> str:
    """Write what `child_dir` changes over `parent_dir` as a layer tar to `out` (vfs); returns its diff id.

    Added and modified entries are written from `child_dir`, deletions as whiteouts (mtime 0
    where Docker puts the current time: the same change must give the same diff id).
    """
    writer = TarWriter(out, tar_split)
    root = _open_root(child_dir)
    opened: tuple[str, int] | None = None  # the last parent directory, kept for its siblings
    try:
        for change in dir_changes(parent_dir, child_dir):
            rel = change.path.lstrip("/")
            parent, _, base = rel.rpartition("/")
            if change.kind == ChangeKind.DELETE:
                writer.header(
                    TarHeader(name=(parent + "/" if parent else "") + WHITEOUT_PREFIX + base, typeflag=tarfile.REGTYPE)
                )
                continue
            if opened is None or opened[0] != parent:
                if opened is not None:
                    os.close(opened[1])
                    opened = None
                fd = os.dup(root)
                try:
                    for part in filter(None, parent.split("/")):
                        nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                        os.close(fd)
                        fd = nxt
                except BaseException:
                    os.close(fd)
                    raise
                opened = (parent, fd)
            st = os.stat(base, dir_fd=opened[1], follow_symlinks=False)
            writer.entry(rel, opened[1], base, st)
    except OSError as e:
        raise HullError(f"writing layer tar of {child_dir} over {parent_dir}: {e.strerror or e}") from e
    finally:
        if opened is not None:
            os.close(opened[1])
        os.close(root)
    return writer.close()
