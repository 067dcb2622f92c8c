"""Output streams of attach, logs and exec: the 8-byte multiplexed framing, or raw bytes with a TTY.

A frame is `[stream, 0, 0, 0, size as big-endian uint32]` then `size` bytes; stream 0 is
stdin, 1 stdout, 2 stderr. From API 1.42 the Content-Type says which kind a stream is
(`application/vnd.docker.multiplexed-stream` or `application/vnd.docker.raw-stream`);
before that the client knows from the container's `Tty`.
"""

from __future__ import annotations

from collections.abc import Iterator

from hull import multiplex

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms of every start)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

    Reader = Callable[[int], bytes]


MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def is_multiplexed(content_type: str, tty: bool, api_version: tuple[int, ...] = (1, 42)) -> bool:
    """Whether a stream is framed: from API 1.42 the Content-Type says; before, framed unless the container has a TTY.

    (Daemons before 1.42 label every attach stream `raw-stream`, framed or not.)
    """
    if api_version < (1, 42):
        return not tty
    ct = content_type.split(";")[0].strip().lower()
    if ct == MULTIPLEXED:
        return True
    if ct == RAW:
        return False
    return not tty


def frames(read: Reader) -> Iterator[tuple[int, bytes]]:
    """(stream, payload) pairs of a multiplexed stream until EOF; a truncated frame ends it."""
    buf = b""
    while True:
        while len(buf) < multiplex.HEADER.size:
            chunk = read(65536)
            if not chunk:
                return
            buf += chunk
        stream, size = multiplex.HEADER.unpack_from(buf)
        buf = buf[multiplex.HEADER.size :]
        while len(buf) < size:
            chunk = read(max(65536, size - len(buf)))
            if not chunk:
                if buf:
                    yield stream, buf
                return
            buf += chunk
        yield stream, buf[:size]
        buf = buf[size:]


def copy_stream(read: Reader, stdout: BinaryIO, stderr: BinaryIO, multiplexed: bool) -> None:
    """Copy a stream to stdout/stderr until EOF, demultiplexing when framed."""
    if not multiplexed:
        while True:
            chunk = read(65536)
            if not chunk:
                return
            stdout.write(chunk)
            stdout.flush()
    for stream, payload in frames(read):
        out = stderr if stream == 2 else stdout
        out.write(payload)
        out.flush()
