"""Compression of layer blobs: detect it, undo it as a stream, apply gzip for pushes and saves.

Vocabulary: a *layer blob* is a layer as a registry or a `docker save` archive holds it, the
layer tar possibly compressed; the *diff id* is computed over the uncompressed tar, so every
reader of a blob starts here. The compression is told by the blob's first bytes (its magic),
never by a media type or a file name, the way Docker's DecompressStream does it:

    gzip  1f 8b            (isal's igzip: 2-3x faster inflate than zlib; stdlib gzip if isal is missing)
    zstd  28 b5 2f fd      (zstandard; every frame, since a blob may hold several)
    bzip2 "BZh", xz fd "7zXZ" 00   (stdlib; Docker accepts them for `docker load` and `import`)
    none  anything else    (a plain tar; the tar reader judges it)

Contract: `open_decompressed` returns a `DecompressedStream` whose `read(n)` gives up to n
bytes and b"" only at the end; a corrupt or truncated compressed stream raises
`InvalidArgument` (the input is bad), while an OSError of the source itself (a disk or
network failure) passes through unchanged. `gzip_writer` compresses deterministically: the
gzip header carries mtime 0 and no file name, so the same tar always gives the same blob.
"""

import bz2
import enum
import gzip
import lzma
import zlib
from typing import BinaryIO, Protocol, cast

import zstandard

from hull.errors import InvalidArgument

try:
    from isal import igzip, isal_zlib
except ImportError:  # pragma: no cover - isal is a declared dependency; the fallback keeps hull usable without it
    igzip = None  # type: ignore[assignment]
    isal_zlib = None  # type: ignore[assignment]

# Large reads keep the per-call Python cost negligible next to inflating the bytes themselves.
READ_SIZE = 1 << 20

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
_MAGIC_LEN = 6


class Compression(enum.Enum):
    """How a layer blob is compressed; the value is the name Docker's logs and media types use."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"
    BZIP2 = "bzip2"
    XZ = "xz"


class Readable(Protocol):
    """The one method a source of bytes needs here."""

    def read(self, size: int = -1, /) -> bytes: ...


def detect(head: bytes) -> Compression:
    """The compression whose magic `head` (the blob's first bytes, 6 suffice) starts with."""
    if head.startswith(GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(ZSTD_MAGIC):
        return Compression.ZSTD
    if head.startswith(BZIP2_MAGIC):
        return Compression.BZIP2
    if head.startswith(XZ_MAGIC):
        return Compression.XZ
    return Compression.NONE


class _Prefixed:
    """A source with some bytes already taken from its front put back (the magic we peeked at)."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if not self._head:
            return self._rest.read(size)
        # A short read is fine for every consumer (a read returns "up to" size bytes).
        if size < 0:
            data, self._head = self._head + self._rest.read(), b""
        else:
            data, self._head = self._head[:size], self._head[size:]
        return data

    def readinto(self, buffer: bytearray | memoryview, /) -> int:
        # isal's C gzip reader fills its buffer with readinto rather than read.
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# Errors the decompressors raise for bad input (as opposed to the source failing).
_CORRUPT_ERRORS: tuple[type[Exception], ...] = (
    EOFError,  # truncated gzip/bz2/xz stream
    gzip.BadGzipFile,
    zlib.error,
    zstandard.ZstdError,
    lzma.LZMAError,
)
if isal_zlib is not None:
    # isal's stubs type `error` as an instance; at run time it is the exception class.
    _CORRUPT_ERRORS += (cast(type[Exception], isal_zlib.error),)


_ZSTD_SKIPPABLE = range(0x184D2A50, 0x184D2A60)
_ZSTD_FRAME = 0xFD2FB528


class _ZstdFrames:
    """Follows the frame structure of a zstd stream (RFC 8878) as its compressed bytes go by.

    python-zstandard's stream reader ends quietly when its input ends inside a frame, which
    would make a cut blob look like a short layer. Walking the frame and block headers (a few
    bytes per block of up to 128 KiB) tells a complete stream from a cut one; the decompressor
    itself still does all the checking of the data.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = 4  # bytes the current step waits for
        self._skip = 0  # bytes to pass over without looking (block contents, skippable frames)
        self._step = self._magic
        self._checksum = False
        self.seen_frame = False

    def feed(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if self._skip:
                k = min(self._skip, len(data) - i)
                self._skip -= k
                i += k
                continue
            k = min(self._need - len(self._buf), len(data) - i)
            self._buf += data[i : i + k]
            i += k
            if len(self._buf) == self._need:
                unit = bytes(self._buf)
                self._buf.clear()
                self._step(unit)

    def at_boundary(self) -> bool:
        return self._step == self._magic and not self._buf and not self._skip and self.seen_frame

    def _magic(self, unit: bytes) -> None:
        self.seen_frame = True
        magic = int.from_bytes(unit, "little")
        if magic in _ZSTD_SKIPPABLE:
            self._need, self._step = 4, self._skippable_size
        elif magic == _ZSTD_FRAME:
            self._need, self._step = 1, self._descriptor
        else:
            raise zstandard.ZstdError(f"no zstd frame starts here (magic {magic:#x})")

    def _skippable_size(self, unit: bytes) -> None:
        self._skip = int.from_bytes(unit, "little")
        self._need, self._step = 4, self._magic

    def _descriptor(self, unit: bytes) -> None:
        fhd = unit[0]
        single_segment = bool(fhd & 0x20)
        self._checksum = bool(fhd & 0x04)
        content_size = (1 if single_segment else 0, 2, 4, 8)[fhd >> 6]
        rest = (0 if single_segment else 1) + (0, 1, 2, 4)[fhd & 0x03] + content_size
        self._skip = rest  # window descriptor, dictionary id, content size
        self._need, self._step = 3, self._block

    def _block(self, unit: bytes) -> None:
        header = int.from_bytes(unit, "little")
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3:
            raise zstandard.ZstdError("reserved zstd block type")
        self._skip = 1 if kind == 1 else size  # an RLE block stores its byte once
        if last:
            if self._checksum:
                self._skip += 4
            self._need, self._step = 4, self._magic
        else:
            self._need = 3


class _ZstdInput:
    """The compressed side: what the zstd decompressor reads, watched by _ZstdFrames on its way."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self.frames = _ZstdFrames()

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self.frames.feed(data)
        return data


class _ZstdReader:
    """zstd through python-zstandard's stream reader (bounded output per read), with cut streams refused."""

    def __init__(self, source: Readable) -> None:
        self._input = _ZstdInput(source)
        # read_across_frames: a blob may be several concatenated frames (pzstd, zstd:chunked).
        # Any object with read() will do as the source, whatever the stubs say.
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            self._input,  # type: ignore[arg-type]
            read_size=READ_SIZE,
            read_across_frames=True,
        )

    def read(self, size: int = -1, /) -> bytes:
        data = self._reader.read(size)
        if not data and size != 0 and not self._input.frames.at_boundary():
            raise zstandard.ZstdError("the zstd stream ends inside a frame (truncated)")
        return data


class DecompressedStream:
    """The uncompressed bytes of a layer blob, read in order (see the module docstring)."""

    def __init__(self, compression: Compression, reader: Readable) -> None:
        self.compression = compression
        self._reader = reader

    def read(self, size: int = READ_SIZE, /) -> bytes:
        try:
            return self._reader.read(size)
        except _CORRUPT_ERRORS as e:
            raise InvalidArgument(f"layer data is not valid {self.compression.value}: {e}") from e
        except OSError as e:
            # bz2 reports corrupt data as a bare OSError("Invalid data stream"), as does gzip for
            # a bad header in old versions; errno-less OSErrors come from the decompressor, not the disk.
            if e.errno is None and self.compression is not Compression.NONE:
                raise InvalidArgument(f"layer data is not valid {self.compression.value}: {e}") from e
            raise


def open_decompressed(source: Readable) -> DecompressedStream:
    """A stream of the uncompressed tar inside the layer blob `source` (compression detected by magic)."""
    head = b""
    while len(head) < _MAGIC_LEN:
        more = source.read(_MAGIC_LEN - len(head))
        if not more:
            break
        head += more
    compression = detect(head)
    src = _Prefixed(head, source)
    reader: Readable
    # The readers are the caller's to use up; nothing here owns them long enough for a `with`.
    if compression is Compression.GZIP:
        if igzip is not None:
            reader = igzip.IGzipFile(fileobj=src, mode="rb")
        else:  # pragma: no cover
            reader = gzip.GzipFile(fileobj=src, mode="rb")
    elif compression is Compression.ZSTD:
        reader = _ZstdReader(src)
    elif compression is Compression.BZIP2:
        reader = bz2.BZ2File(src, mode="rb")  # type: ignore[call-overload]
    elif compression is Compression.XZ:
        reader = lzma.LZMAFile(src, mode="rb")  # type: ignore[arg-type]  # noqa: SIM115
    else:
        reader = src
    return DecompressedStream(compression, reader)


def gzip_writer(out: BinaryIO, level: int = 1) -> BinaryIO:
    """A writer that gzips into `out` (isal levels 0-3; 1 is Docker-like size at several times the speed).

    Closing the writer finishes the gzip stream but leaves `out` open. The header's mtime is 0
    and it names no file, so equal input gives equal bytes (and equal blob digests).
    """
    if igzip is not None:
        writer: gzip.GzipFile = igzip.IGzipFile(filename="", fileobj=out, mode="wb", compresslevel=level, mtime=0)
    else:  # pragma: no cover
        # zlib's levels are 1-9; 6 is its default and close to isal's 1-2 in size.
        writer = gzip.GzipFile(filename="", fileobj=out, mode="wb", compresslevel=6, mtime=0)
    return writer  # type: ignore[return-value]  # GzipFile is a BinaryIO in all but typeshed's name
