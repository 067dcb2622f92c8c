"""Docker's stream multiplexing: the one definition of its 8-byte frame header.

Without a TTY, attach, exec and logs carry stdout and stderr on one connection as frames:
[stream, 0, 0, 0, big-endian uint32 size] then `size` bytes; stream 0 is stdin, 1 stdout,
2 stderr. The shim, the daemon, the log reader and the command line all use this module.
"""

import struct

STDIN, STDOUT, STDERR = 0, 1, 2
HEADER = struct.Struct(">BxxxL")
HEADER_SIZE = HEADER.size


def frame(stream: int, payload: bytes) -> bytes:
    """One frame: the header, then the payload."""
    return HEADER.pack(stream, len(payload)) + payload


def parse_header(header: bytes) -> tuple[int, int]:
    """(stream, payload size) from an 8-byte header."""
    stream, size = HEADER.unpack(header)
    return stream, size
