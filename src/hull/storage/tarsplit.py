"""tar-split: what a layer tar holds besides its files' contents, so the tar can be rebuilt byte for byte.

A registry names a layer by the digest of its blob, and the diff id is the digest of the
uncompressed tar; once the tar is unpacked into a directory, only its file contents remain.
Docker keeps the rest in the layer's `tar-split.json.gz` (github.com/vbatts/tar-split,
`tar/storage`), and so does hull, in the same format so that either can read the other's:

- a gzip stream of JSON objects, one per line, each an *entry*:
  `{"type": T, "name": ..., "name_raw": ..., "size": N, "payload": ..., "position": P}`;
- type 2, a *segment*: `payload` is base64 of raw tar bytes that are not file content
  (headers with their PAX and GNU extension blocks, the padding after a file's content, the
  end-of-archive zeros and anything after them);
- type 1, a *file entry*, one per tar member (every member, whatever its type): `name` is the
  member's path (`name_raw`, base64, when it is not valid UTF-8), `size` its content length,
  and `payload` the base64 of the content's CRC-64 (ISO polynomial, as Go's hash/crc64 with
  crc64.ISO, big-endian); `size` is left out when 0 and then `payload` is null;
- `position` counts entries from 0.

Rebuilding writes segments as they are and, for each file entry with a size, that many bytes
of the file `name` inside the unpacked layer directory. Docker's assembler (tar/asm) checks
the CRC of every file with content and fails on a mismatch; a missing payload would fail that
check, so the recorder always computes it. Sparse members cannot be rebuilt from an unpacked
file and are refused; a tar naming the same path twice is refused as well, as Docker's packer
does (ErrDuplicatePath), because the second copy would hide the first one's bytes.

The segment layout follows tar-split's disassembler: [header segment] [file entry]
[padding segment] per member, then the end-of-archive bytes in segments of at most 1 MiB.

CRC-64 runs in ISA-L: python-isal links the whole library into its extension modules and
exports its `crc64_iso_refl` (same polynomial, same pre- and post-inversion as Go) but gives
it no Python binding, so it is called through ctypes; a table-driven Python version is the
fallback (correct, ~1000x slower) should the symbol ever be missing.
"""

import base64
import binascii
import ctypes
import io
import json
import os
import posixpath
import re
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from hull.errors import HullError, InvalidArgument
from hull.storage.compression import gzip_writer, open_decompressed

FILE_TYPE = 1  # storage.FileType
SEGMENT_TYPE = 2  # storage.SegmentType

BLOCK = tarfile.BLOCKSIZE
# tar-split reads what follows the end-of-archive marker in chunks of this size (disassemble.go).
TRAILER_CHUNK = 1 << 20
COPY_CHUNK = 1 << 20
# JSON lines are gzipped in batches: one compressor call per line would dominate for small files.
_FLUSH_AT = 256 << 10

_EXTENSION_TYPES = (
    tarfile.XHDTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
_DATA_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")
# Printable ASCII but '"' and '\\': a name JSON carries as it is.
_PLAIN_JSON = re.compile(rb"[\x20\x21\x23-\x5b\x5d-\x7e]+")


# --- CRC-64/ISO (Go's crc64.Checksum(data, crc64.MakeTable(crc64.ISO))) -----------------------------

_ISO_POLY_REFLECTED = 0xD800000000000000


def _load_isal_crc64() -> Callable[[int, int, int], int] | None:
    try:
        from isal import isal_zlib

        fn = ctypes.CDLL(isal_zlib.__file__).crc64_iso_refl
    except (ImportError, OSError, AttributeError):  # pragma: no cover - depends on the isal build
        return None
    fn.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64]
    fn.restype = ctypes.c_uint64
    return fn


_isal_crc64 = _load_isal_crc64()
_table: list[int] = []


def _python_crc64(crc: int, data: bytes) -> int:
    if not _table:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ _ISO_POLY_REFLECTED if c & 1 else c >> 1
            _table.append(c)
    crc ^= 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc = _table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def crc64_update(crc: int, data: bytes, start: int = 0, end: int | None = None) -> int:
    """`crc` (0 to begin) extended by data[start:end], without copying the slice."""
    stop = len(data) if end is None else end
    if stop <= start:
        return crc
    if _isal_crc64 is None:  # pragma: no cover
        return _python_crc64(crc, data[start:stop])
    # A bytes object's buffer is immutable and outlives the call: its address is safe to hand over.
    address = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
    assert address is not None
    return _isal_crc64(crc, address + start, stop - start)


def crc64_payload(crc: int) -> bytes:
    """The checksum as tar-split stores it: Go's hash.Sum, 8 bytes big-endian."""
    return crc.to_bytes(8, "big")


# --- entries -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One line of a tar-split stream (see the module docstring)."""

    type: int
    position: int
    name: bytes = b""
    size: int = 0
    payload: bytes | None = None

    @classmethod
    def from_json(cls, obj: object) -> "Entry":
        """Parse one decoded JSON line; anything malformed is InvalidArgument."""
        if not isinstance(obj, dict):
            raise InvalidArgument(f"tar-split entry is not an object: {obj!r:.80}")
        try:
            etype, position, size = obj["type"], obj.get("position", 0), obj.get("size", 0)
            if etype not in (FILE_TYPE, SEGMENT_TYPE) or not isinstance(position, int) or not isinstance(size, int):
                raise ValueError("bad type, position or size")
            if size < 0:
                raise ValueError("negative size")
            raw_name, name_str, payload = obj.get("name_raw"), obj.get("name"), obj.get("payload")
            if raw_name:
                name = base64.b64decode(str(raw_name), validate=True)
            else:
                name = str(name_str or "").encode("utf-8")
            data = None if payload is None else base64.b64decode(str(payload), validate=True)
        except (KeyError, ValueError, binascii.Error) as e:
            raise InvalidArgument(f"malformed tar-split entry {obj!r:.120}: {e}") from e
        return cls(type=etype, position=position, name=name, size=size, payload=data)


def clean_name(name: bytes) -> bytes:
    """Go's filepath.Clean, the key under which tar-split spots a path named twice."""
    cleaned = posixpath.normpath(name) if name else b"."
    if cleaned.startswith(b"//"):
        cleaned = b"/" + cleaned.lstrip(b"/")
    return cleaned


# --- recording ---------------------------------------------------------------------------------------

_HEADER, _EXTENSION, _CONTENT, _PADDING, _TRAILER = range(5)


class TarSplitRecorder:
    """Builds a layer tar's tar-split, either from structured events or from the raw bytes.

    Structured: whoever parses the tar anyway (the layer applier, the layer writer) reports what
    it sees in order: `add_segment(raw bytes)`, `add_file(name, size, crc)` per member,
    `add_trailer(bytes after the last member)`. Raw: `feed(bytes)` in any chunking, for a tar
    nobody else parses; it is a push parser of its own: header blocks through
    tarfile.TarInfo.frombuf (which checks the header checksum and decodes the fields), PAX
    records and GNU long names itself, since tarfile parses those only while pulling from a file.
    Either way, `finish()` returns the gzipped tar-split. Bad headers, sparse members, duplicate
    paths and a tar cut short are InvalidArgument, raised by the call that finds them.
    """

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._gz = gzip_writer(self._out)
        self._lines: list[bytes] = []
        self._pending = 0
        self._position = 0
        self._seen: set[bytes] = set()
        self._finished = False
        self.members = 0
        self.content_bytes = 0
        # State of the push parser (`feed`).
        self._offset = 0  # of the next byte fed, in the tar
        self._state = _HEADER
        self._want = BLOCK
        self._unit = bytearray()  # the header block or extension data being assembled
        self._segment = bytearray()  # raw bytes not yet written out as a segment
        self._ext_type = b""
        self._ext_len = 0
        self._pax_global: dict[bytes, bytes] = {}
        self._pax_local: dict[bytes, bytes] = {}
        self._long_name: bytes | None = None
        self._name = b""
        self._size = 0
        self._crc = 0

    # -- structured events --

    def add_segment(self, data: bytes) -> None:
        """Raw tar bytes that are not file content (nothing is recorded for b"")."""
        if data:
            self._write_segment(data)

    def add_file(self, name: bytes, size: int, crc: int | None) -> None:
        """A member: its path, its content length (0 for all but regular files) and the content's CRC-64."""
        key = clean_name(name)
        if key in self._seen:
            raise InvalidArgument(f"layer tar: {name!r} appears twice (duplicate paths cannot be rebuilt by tar-split)")
        self._seen.add(key)
        self.members += 1
        self.content_bytes += size
        payload = crc64_payload(crc) if size and crc is not None else None
        line = b'{"type":1,' + _json_name(name) + (b'"size":%d,' % size if size else b"")
        if payload is None:
            line += b'"payload":null,"position":%d}\n' % self._position
        else:
            line += b'"payload":"' + base64.b64encode(payload) + b'","position":%d}\n' % self._position
        self._write_line(line)

    def add_trailer(self, data: bytes) -> None:
        """The bytes from the end-of-archive marker on, in segments of at most 1 MiB as tar-split reads them."""
        for start in range(0, len(data), TRAILER_CHUNK):
            self._write_segment(data[start : start + TRAILER_CHUNK])

    def _write_segment(self, data: bytes) -> None:
        self._write_line(b'{"type":2,"payload":"' + base64.b64encode(data) + b'","position":%d}\n' % self._position)

    def _write_line(self, line: bytes) -> None:
        # Lines are formatted by hand: json.dumps per entry was a tenth of the time to apply small files.
        self._position += 1
        self._lines.append(line)
        self._pending += len(line)
        if self._pending >= _FLUSH_AT:
            self._flush_lines()

    def _flush_lines(self) -> None:
        if self._lines:
            self._gz.write(b"".join(self._lines))
            self._lines.clear()
            self._pending = 0

    # -- the push parser: each state consumes up to self._want bytes of the current unit --

    def feed(self, data: bytes) -> None:
        """Take the next raw bytes of the tar (file content is checksummed in place, not copied)."""
        i, n = 0, len(data)
        while i < n:
            k = min(self._want, n - i)
            state = self._state
            if state == _CONTENT:
                self._crc = crc64_update(self._crc, data, i, i + k)
            elif state == _TRAILER:
                k = n - i
                self._segment += data[i:]
                if len(self._segment) >= TRAILER_CHUNK:
                    whole = len(self._segment) // TRAILER_CHUNK * TRAILER_CHUNK
                    self.add_trailer(bytes(self._segment[:whole]))
                    del self._segment[:whole]
            elif state == _PADDING:
                self._segment += data[i : i + k]
            else:
                self._unit += data[i : i + k]
            i += k
            self._offset += k
            if state == _TRAILER:
                continue
            self._want -= k
            if self._want == 0:
                self._unit_done()

    def _unit_done(self) -> None:
        state = self._state
        if state == _HEADER:
            block = bytes(self._unit)
            self._unit.clear()
            self._header(block)
        elif state == _EXTENSION:
            data = bytes(self._unit)
            self._unit.clear()
            self._segment += data
            self._extension(data[: self._ext_len])
            self._expect_header()
        elif state == _CONTENT:
            self.add_file(self._name, self._size, self._crc)
            padding = -self._size % BLOCK
            if padding:
                self._state, self._want = _PADDING, padding
            else:
                self._expect_header()
        elif state == _PADDING:
            self._flush_segment()
            self._expect_header()

    def _expect_header(self) -> None:
        self._state, self._want = _HEADER, BLOCK

    def _flush_segment(self) -> None:
        self.add_segment(bytes(self._segment))
        self._segment.clear()

    def _header(self, block: bytes) -> None:
        at = self._offset - BLOCK
        if block == tarfile.NUL * BLOCK:
            # The end-of-archive marker: it and everything after it form the trailing segments.
            self._flush_segment()
            self._segment += block
            self._state = _TRAILER
            return
        self._segment += block
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as e:
            raise InvalidArgument(f"layer tar: invalid header at offset {at}: {e}") from e
        if info.type in _EXTENSION_TYPES:
            self._ext_type, self._ext_len = info.type, info.size
            self._state, self._want = _EXTENSION, -(-info.size // BLOCK) * BLOCK
            if self._want == 0:
                self._extension(b"")
                self._expect_header()
            return
        pax = {**self._pax_global, **self._pax_local}
        name = info.name.encode("utf-8", "surrogateescape")
        if self._long_name is not None:
            name = self._long_name
        elif b"path" in pax:
            name = pax[b"path"]
        if info.type == tarfile.GNUTYPE_SPARSE or any(k.startswith(b"GNU.sparse.") for k in pax):
            raise InvalidArgument(f"layer tar: {name!r} is a sparse file, which layers cannot hold (offset {at})")
        size = info.size
        if b"size" in pax:
            try:
                size = int(pax[b"size"])
            except ValueError:
                raise InvalidArgument(f"layer tar: {name!r} has a bad PAX size {pax[b'size']!r}") from None
        self._pax_local, self._long_name = {}, None
        self._flush_segment()
        self._name, self._size = name, size if has_content(info.type) else 0
        if self._size == 0:
            self.add_file(name, 0, None)
            self._expect_header()
        else:
            self._crc = 0
            self._state, self._want = _CONTENT, self._size

    def _extension(self, data: bytes) -> None:
        if self._ext_type == tarfile.GNUTYPE_LONGNAME:
            self._long_name = data.split(b"\0", 1)[0]
        elif self._ext_type == tarfile.GNUTYPE_LONGLINK:
            pass  # the link target matters to extraction, not to rebuilding
        else:
            records = parse_pax_records(data)
            if self._ext_type == tarfile.XGLTYPE:
                self._pax_global.update(records)
            else:
                # As in tarfile and Go, the last extended header before a member is the one that counts.
                self._pax_local = records

    def finish(self) -> bytes:
        """End of the tar: check that what was fed was complete and return the gzipped tar-split."""
        if self._finished:
            return self._out.getvalue()
        if self._state == _TRAILER:
            self.add_trailer(bytes(self._segment))
            self._segment.clear()
        elif not (self._state == _HEADER and not self._unit):
            # Go's reader, and so Docker, fails on a tar cut inside a header or a file.
            raise InvalidArgument(f"layer tar ends in the middle of an entry (after {self._offset} bytes)")
        self._flush_lines()
        self._gz.close()
        self._finished = True
        return self._out.getvalue()


def has_content(typeflag: bytes) -> bool:
    """Whether content follows a member's header: as tarfile and Go's archive/tar read it, links,
    directories, devices and fifos have none whatever their size field says; regular files and
    unknown types do."""
    return typeflag in _DATA_TYPES or typeflag not in tarfile.SUPPORTED_TYPES


def _json_name(name: bytes) -> bytes:
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        return b'"name_raw":"' + base64.b64encode(name) + b'",'
    if not text:
        return b""
    if _PLAIN_JSON.fullmatch(name):
        return b'"name":"' + name + b'",'  # nothing to escape: the common case, without json.dumps
    return b'"name":' + json.dumps(text, ensure_ascii=False).encode("utf-8") + b","


def parse_pax_records(data: bytes) -> dict[bytes, bytes]:
    """The `length keyword=value\\n` records of a PAX extended header, as raw bytes."""
    records: dict[bytes, bytes] = {}
    pos = 0
    while True:
        match = _PAX_RECORD.match(data, pos)
        if not match:
            break
        length = int(match.group(1))
        end = match.start(1) + length
        if length < len(match.group(0)) + 1 or end > len(data) or data[end - 1 : end] != b"\n":
            raise InvalidArgument(f"layer tar: malformed PAX record at byte {pos} of an extended header")
        records[match.group(2)] = data[match.end(0) : end - 1]
        pos = end
    return records


# --- reading and rebuilding --------------------------------------------------------------------------


def iter_entries(tar_split: bytes) -> Iterator[Entry]:
    """The entries of a gzipped tar-split, in order; malformed input is InvalidArgument."""
    stream = open_decompressed(io.BytesIO(tar_split))
    pending = b""
    while True:
        chunk = stream.read(COPY_CHUNK)
        if not chunk:
            break
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.strip():
                yield _parse_line(line)
    if pending.strip():
        yield _parse_line(pending)


def _parse_line(line: bytes) -> Entry:
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise InvalidArgument(f"tar-split line is not JSON: {line[:80]!r}") from e
    return Entry.from_json(obj)


def _open_in_layer(root_fd: int, name: bytes) -> int:
    """Open the regular file `name` beneath `root_fd`, following no symlink anywhere in the path."""
    parts: list[bytes] = []
    for part in name.split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if not parts:
                raise InvalidArgument(f"tar-split names {name!r}, which is outside the layer")
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        raise InvalidArgument(f"tar-split names {name!r} as a file with content, but it is the layer root")
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
        # O_NONBLOCK: should the path now be a fifo, opening it must not hang the rebuild.
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise HullError(f"rebuilding layer tar: {name!r} is no longer a regular file in the layer")
    return file_fd


def tar_size(tar_split: bytes) -> int:
    """The length of the tar that `rebuild` writes, from the tar-split alone (no file is read)."""
    return sum(len(e.payload or b"") if e.type == SEGMENT_TYPE else e.size for e in iter_entries(tar_split))


def rebuild(tar_split: bytes, root_dir: str, out: BinaryIO) -> int:
    """Write the original layer tar to `out`, taking file contents from the unpacked layer `root_dir`.

    Returns the number of bytes written. A file that no longer matches its entry (other size
    or checksum) fails the rebuild with HullError, as Docker's assembler does, rather than
    produce a tar with another digest.
    """
    written = 0
    root_fd = os.open(root_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for entry in iter_entries(tar_split):
            if entry.type == SEGMENT_TYPE:
                if entry.payload:
                    out.write(entry.payload)
                    written += len(entry.payload)
                continue
            if entry.size == 0:
                continue
            written += _copy_file(root_fd, entry, out)
    finally:
        os.close(root_fd)
    return written


def _copy_file(root_fd: int, entry: Entry, out: BinaryIO) -> int:
    try:
        fd = _open_in_layer(root_fd, entry.name)
    except OSError as e:
        raise HullError(f"rebuilding layer tar: cannot open {entry.name!r} in the layer: {e.strerror}") from e
    crc, left = 0, entry.size
    try:
        while left:
            chunk = os.read(fd, min(left, COPY_CHUNK))
            if not chunk:
                raise HullError(f"rebuilding layer tar: {entry.name!r} is shorter than the {entry.size} bytes recorded")
            crc = crc64_update(crc, chunk)
            out.write(chunk)
            left -= len(chunk)
        if os.read(fd, 1):
            raise HullError(f"rebuilding layer tar: {entry.name!r} is longer than the {entry.size} bytes recorded")
    finally:
        os.close(fd)
    if entry.payload is not None and crc64_payload(crc) != entry.payload:
        raise HullError(f"rebuilding layer tar: {entry.name!r} does not match its recorded checksum")
    return entry.size
