"""The little HTTP/1.1 that `hull` speaks to the daemon: one request per connection.

Why not http.client: importing it pulls in `email` and `ssl` (~18 ms, a third of a `hull`
command's start on these machines), and the Engine API needs only this much: a request line
and headers, a body that is bytes, a file or an iterable (sent chunked when its length is not
known), and a response read by Content-Length, chunked encoding, or until the daemon closes.
A 101 (connection hijack) hands the socket itself to the caller.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import IO

CHUNK = 65536
MAX_HEAD = 1 << 20


class ProtocolError(OSError):
    """The daemon's answer is not the HTTP we understand."""


class Response:
    """Status, headers (lower-cased names) and a body read on demand from the socket."""

    def __init__(self, sock: socket.socket, status: int, reason: str, headers: dict[str, str], rest: bytes,
                 no_body: bool) -> None:  # fmt: skip
        self.sock = sock
        self.status = status
        self.reason = reason
        self.headers = headers
        self._buf = rest
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._left: int | None = 0 if no_body else (int(length) if length is not None and not self._chunked else None)
        self._chunk_left = 0  # bytes still to come of the current chunk
        self._eof = no_body or self._left == 0

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def _recv(self) -> bytes:
        data = self._buf or self.sock.recv(CHUNK)
        self._buf = b""
        return data

    def _raw(self, n: int) -> bytes:
        """Up to n raw bytes (n > 0); b"" only when the daemon closed."""
        data = self._recv()
        if len(data) > n:
            self._buf = data[n:]
            data = data[:n]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            data = self.sock.recv(CHUNK)
            if not data:
                raise ProtocolError("connection closed inside a chunk header")
            self._buf += data
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def read1(self, n: int = CHUNK) -> bytes:
        """Whatever arrives next, at most n bytes; b"" at the end of the body."""
        if self._eof:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                size = int(self._line().split(b";")[0] or b"0", 16)
                if size == 0:
                    while self._line():  # trailers, then the empty line
                        pass
                    self._eof = True
                    return b""
                self._chunk_left = size
            data = self._raw(min(n, self._chunk_left))
            if not data:
                raise ProtocolError("connection closed inside a chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                self._line()  # the CRLF after the chunk's data
            return data
        if self._left is None:  # no length: the body ends when the daemon closes
            data = self._raw(n)
            self._eof = not data
            return data
        data = self._raw(min(n, self._left))
        if not data:
            raise ProtocolError(f"connection closed with {self._left} bytes of the body missing")
        self._left -= len(data)
        self._eof = self._left == 0
        return data

    def read(self, n: int = -1) -> bytes:
        """n bytes (fewer only at the end), or the whole rest of the body when n < 0."""
        parts: list[bytes] = []
        got = 0
        while n < 0 or got < n:
            data = self.read1(CHUNK if n < 0 else n - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def detach(self) -> tuple[socket.socket, bytes]:
        """After a 101: the socket, and what already arrived of the raw stream after the head."""
        rest, self._buf = self._buf, b""
        return self.sock, rest

    def close(self) -> None:
        self.sock.close()


def _send_body(sock: socket.socket, body: bytes | IO[bytes] | Iterable[bytes] | None, chunked: bool) -> None:
    if body is None:
        return
    if isinstance(body, bytes | bytearray):
        sock.sendall(body)
        return
    read = getattr(body, "read", None)
    pieces: Iterable[bytes] = iter(lambda: read(CHUNK), b"") if read is not None else body
    for piece in pieces:
        if piece:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
    if chunked:
        sock.sendall(b"0\r\n\r\n")


def request(sock: socket.socket, method: str, target: str, headers: dict[str, str],
            body: bytes | IO[bytes] | Iterable[bytes] | None = None) -> Response:  # fmt: skip
    """Send one request on a connected socket and read the response's head."""
    hdrs = {"Host": "docker", **headers, "Connection": headers.get("Connection", "close")}
    chunked = False
    if isinstance(body, bytes | bytearray):
        hdrs["Content-Length"] = str(len(body))
    elif body is not None and "Content-Length" not in hdrs:
        hdrs["Transfer-Encoding"] = "chunked"
        chunked = True
    elif body is None and method in ("POST", "PUT"):
        hdrs["Content-Length"] = "0"
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    sock.sendall(head.encode("latin-1"))
    _send_body(sock, body, chunked)
    return read_response(sock, method)


def read_response(sock: socket.socket, method: str = "GET") -> Response:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(CHUNK)
        if not data:
            raise ProtocolError("connection closed before the response")
        buf += data
        if len(buf) > MAX_HEAD:
            raise ProtocolError("response head too large")
    head, rest = buf.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProtocolError(f"malformed status line {status_line!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(parts[1])
    no_body = method == "HEAD" or status in (101, 204, 304) or 100 <= status < 200
    return Response(sock, status, parts[2] if len(parts) > 2 else "", headers, rest, no_body)
