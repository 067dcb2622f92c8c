"""Request and response bodies for blocking work in worker threads: the bridge between aiohttp and file objects.

The image store (and container export) read and write ordinary blocking file objects and run
in worker threads; aiohttp's bodies are asynchronous and belong to the event loop. This
module joins the two without ever holding a whole body in memory:

- `RequestBody(request)`: the request body as a blocking, read-only binary file. Each `read`
  runs one `request.content.read(n)` on the event loop and waits for it (`n` bytes at most;
  fewer when fewer have arrived; b"" at the end). Flow control stays aiohttp's: while no
  worker reads, aiohttp stops reading the socket once its buffer is full.
- `ResponseWriter(request, response)`: a blocking, write-only binary file whose bytes become
  the body of a streamed response. Writes are gathered into chunks of `chunk_size` bytes; each
  chunk is written on the event loop and the worker waits until aiohttp has taken it
  (`response.write` drains), so a slow client slows the worker down instead of filling memory.
  The response is *prepared lazily*, at the first chunk: until then nothing has been sent, and
  a failure can still become an ordinary HTTP error (`started` tells which case holds, as
  Docker's WriteFlusher.Flushed does). After the worker is done, the handler calls
  `await finish()` on the event loop: the last chunk, then the end of the body.

Both are created on the event loop (they remember it) and used from exactly one worker
thread; neither may be used on the event loop itself (it would wait for itself). A client
that goes away makes `read` raise InvalidArgument and `write` raise ConnectionResetError.
"""

import asyncio
import io
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from hull.errors import InvalidArgument

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

T = TypeVar("T")

# Big enough that the event-loop round trip per chunk costs nothing next to the bytes.
CHUNK_SIZE = 256 * 1024


def _wait(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on `loop` from a worker thread and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def _check_thread(loop: asyncio.AbstractEventLoop) -> None:
    if _running_loop() is loop:
        raise RuntimeError("a blocking body was used on its own event loop: use it from a worker thread")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class RequestBody(io.RawIOBase):
    """The body of `request` as a blocking binary file for one worker thread (see the module docstring)."""

    def __init__(self, request: web.Request) -> None:
        super().__init__()
        self._content = request.content
        self._loop = asyncio.get_running_loop()
        self._eof = False
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if size == 0 or self._eof:
            return b""
        _check_thread(self._loop)
        try:
            data = _wait(self._loop, self._content.read(size))
        except Exception as e:  # the connection went away mid-body (or the loop is shutting down)
            raise InvalidArgument(f"the request body ended early: {str(e) or type(e).__name__}") from None
        if not data:
            self._eof = True
        self.bytes_read += len(data)
        return data

    def readall(self) -> bytes:
        """The rest of the body. Only for callers that know it is small: it is held whole."""
        parts = []
        while chunk := self.read(CHUNK_SIZE):
            parts.append(chunk)
        return b"".join(parts)

    def readinto(self, buffer: "WriteableBuffer") -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class ResponseWriter(io.RawIOBase):
    """A blocking binary file that streams into `response` (prepared at its first chunk; see the module docstring)."""

    def __init__(self, request: web.Request, response: web.StreamResponse, chunk_size: int = CHUNK_SIZE) -> None:
        super().__init__()
        self._request = request
        self._response = response
        self._loop = asyncio.get_running_loop()
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self.bytes_written = 0

    @property
    def response(self) -> web.StreamResponse:
        return self._response

    @property
    def started(self) -> bool:
        """Whether the status line and headers went out: from then on errors can only go into the body."""
        return self._response.prepared

    def writable(self) -> bool:
        return True

    def write(self, data: "ReadableBuffer", /) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        self._buffer += view  # copied: the caller may reuse its buffer as soon as we return
        self.bytes_written += n
        if len(self._buffer) >= self._chunk_size:
            self._send_buffer()
        return n

    def flush(self) -> None:
        """Send what is gathered (blocking). On the event loop (a close by the garbage collector,
        say) it does nothing: it cannot wait there, and `finish` sends the rest."""
        if self._buffer and not self.closed and _running_loop() is not self._loop:
            self._send_buffer()

    def _send_buffer(self) -> None:
        _check_thread(self._loop)
        chunk = bytes(self._buffer)
        self._buffer.clear()
        _wait(self._loop, self._send(chunk))

    async def _send(self, chunk: bytes) -> None:
        if not self._response.prepared:
            await self._response.prepare(self._request)
        if chunk:
            await self._response.write(chunk)

    async def finish(self) -> web.StreamResponse:
        """On the event loop, once the worker is done: the last chunk and the end of the body."""
        chunk = bytes(self._buffer)
        self._buffer.clear()
        await self._send(chunk)
        await self._response.write_eof()
        return self._response
