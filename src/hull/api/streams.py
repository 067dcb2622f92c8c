"""Streams on the wire: multiplexed output, JSON-line progress, and connection hijack.

Without a TTY, output is multiplexed (hull.multiplex: 8-byte frame headers); with a TTY it
is raw. From API 1.42 the Content-Type says which.

Hijack (attach, exec start): the client sends `Connection: Upgrade`, `Upgrade: tcp` and
requires `101 UPGRADED`; the socket then carries raw stdin in and output out, and the
client half-closes its side at the end of stdin. aiohttp upgrades only websockets, so after
the 101 we put our own protocol on the transport: it feeds what arrives into a StreamReader
(stdin) and hands flow control back to aiohttp's handler, whose writer we keep using.
"""

import asyncio
import json
from typing import Any

from aiohttp import web

from hull import detachkeys
from hull.api import routing
from hull.api.version import at_least

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
JSON_STREAM = "application/json"


def output_content_type(request: web.Request, tty: bool) -> str:
    if tty or not at_least(routing.api_version(request), "1.42"):
        return RAW
    return MULTIPLEXED


class _StdinProtocol(asyncio.Protocol):
    """Takes the socket's incoming bytes after a hijack; flow control stays with aiohttp."""

    def __init__(self, reader: asyncio.StreamReader, previous: asyncio.BaseProtocol) -> None:
        self.reader = reader
        self.previous = previous

    def data_received(self, data: bytes) -> None:
        self.reader.feed_data(data)

    def eof_received(self) -> bool:
        self.reader.feed_eof()
        return True  # half-close: keep our side open for output

    def connection_lost(self, exc: Exception | None) -> None:
        self.reader.feed_eof()
        self.previous.connection_lost(exc)

    def pause_writing(self) -> None:
        self.previous.pause_writing()

    def resume_writing(self) -> None:
        self.previous.resume_writing()


class Hijacked:
    """An attached client: `write` sends output, `stdin` yields what it types (EOF at half-close)."""

    def __init__(self, response: web.StreamResponse, stdin: asyncio.StreamReader, transport: asyncio.Transport) -> None:
        self.response = response
        self.stdin = stdin
        self._transport = transport

    @classmethod
    async def accept(cls, request: web.Request, tty: bool) -> "Hijacked":
        upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
        headers = {"Content-Type": output_content_type(request, tty)}
        if upgrade:
            headers.update({"Connection": "Upgrade", "Upgrade": "tcp"})
            response = web.StreamResponse(status=101, reason="UPGRADED", headers=headers)
        else:
            response = web.StreamResponse(status=200, headers=headers)
        response.force_close()
        await response.prepare(request)
        transport = request.transport
        assert transport is not None
        stdin = asyncio.StreamReader()
        if upgrade:
            transport.set_protocol(_StdinProtocol(stdin, transport.get_protocol()))
        else:
            stdin.feed_eof()
        return cls(response, stdin, transport)

    async def write(self, data: bytes) -> None:
        await self.response.write(data)

    def close(self) -> None:
        self._transport.close()


async def copy_output(reader: asyncio.StreamReader, client: Hijacked, tty: bool) -> None:
    """A shim's framed output to the client; a TTY client wants the bare bytes."""
    while True:
        try:
            header = await reader.readexactly(8)
        except asyncio.IncompleteReadError:
            return
        size = int.from_bytes(header[4:], "big")
        payload = await reader.readexactly(size)
        await client.write(payload if tty else header + payload)


async def relay(
    client: Hijacked,
    shim: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    tty: bool,
    stdin: bool,
    keys: bytes,
    stdin_end_ends: bool,
) -> bool:
    """Carry an attach or exec session between the client and a shim until the output ends or
    stdin ends it; closes the shim's side (the caller closes the client's). `keys` are the
    detach keys (Docker scans for them only with a TTY: pass b"" otherwise). Returns whether
    stdin ended the session: the client detached, or its stdin ended and `stdin_end_ends`
    (attach with a TTY)."""
    reader, writer = shim
    output = asyncio.create_task(copy_output(reader, client, tty))
    feed = asyncio.create_task(detachkeys.copy_stdin(client.stdin, writer, keys)) if stdin else None
    try:
        if feed is not None:
            await asyncio.wait((output, feed), return_when=asyncio.FIRST_COMPLETED)
            if feed.done() and (stdin_end_ends or feed.result()):
                return True
        await output
        return False
    finally:
        for task in (output, feed):
            if task is not None:
                task.cancel()
        writer.close()


async def json_lines(request: web.Request, status: int = 200) -> web.StreamResponse:
    """A prepared streaming response for JSON-line progress (pull, load, build, events)."""
    response = web.StreamResponse(status=status, headers={"Content-Type": JSON_STREAM})
    await response.prepare(request)
    return response


async def write_json_line(response: web.StreamResponse, obj: Any) -> None:
    await response.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
