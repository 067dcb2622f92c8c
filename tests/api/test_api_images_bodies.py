"""bodies.py: request bodies read and responses written by worker threads, through a real aiohttp server."""

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hull.api import server
from hull.api.bodies import CHUNK_SIZE, RequestBody, ResponseWriter
from hull.errors import HullError

pytestmark = pytest.mark.unit


def serve(
    routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]],
    test: Callable[[TestClient[Any, Any]], Awaitable[None]],
) -> None:
    async def main() -> None:
        app = web.Application(middlewares=[server.errors_middleware], client_max_size=0)
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        async with TestClient(TestServer(app)) as client:
            await test(client)

    asyncio.run(main())


async def digest_body(request: web.Request) -> web.Response:
    """Hash the body in a worker thread, in reads of odd sizes; answer with the digest and the reads' count."""
    body = RequestBody(request)

    def run() -> tuple[str, int]:
        h, reads = hashlib.sha256(), 0
        while chunk := body.read(100_003):
            assert len(chunk) <= 100_003
            h.update(chunk)
            reads += 1
        assert body.read(10) == b""
        return h.hexdigest(), reads

    digest, reads = await asyncio.to_thread(run)
    return web.json_response({"digest": digest, "reads": reads, "bytes": body.bytes_read})


def test_request_body_streams_to_a_worker_thread() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    async def test(client: TestClient[Any, Any]) -> None:
        for body in (data, chunks()):  # with Content-Length, and chunked
            res = await client.post("/digest", data=body)
            got = await res.json()
            assert got["digest"] == hashlib.sha256(data).hexdigest()
            assert got["bytes"] == len(data) and got["reads"] >= len(data) // 100_003

    serve([("POST", "/digest", digest_body)], test)


def test_request_body_refuses_the_event_loop() -> None:
    async def handler(request: web.Request) -> web.Response:
        with pytest.raises(RuntimeError, match="worker thread"):
            RequestBody(request).read(10)
        return web.Response(text="ok")

    async def test(client: TestClient[Any, Any]) -> None:
        res = await client.post("/", data=b"abc")
        assert res.status == 200 and await res.text() == "ok"

    serve([("POST", "/", handler)], test)


def writer_handler(total: int, fail_after: int | None) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Writes `total` bytes in small pieces from a worker; fails after `fail_after` bytes if given."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        out = ResponseWriter(request, response)

        def run() -> None:
            block = bytes(range(256)) * 16
            written = 0
            while written < total:
                if fail_after is not None and written >= fail_after:
                    raise HullError("the producer failed")
                n = out.write(memoryview(block)[: min(len(block), total - written)])
                written += n
            out.flush()

        try:
            await asyncio.to_thread(run)
        except HullError as e:
            if not out.started:
                raise
            await response.write(f"ERROR {e.message}".encode())
            await response.write_eof()
            return response
        return await out.finish()

    return handler


def expected_bytes(n: int) -> bytes:
    block = bytes(range(256)) * 16
    return (block * (n // len(block) + 1))[:n]


def test_response_writer_streams_what_a_worker_writes() -> None:
    async def test(client: TestClient[Any, Any]) -> None:
        for size in (0, 10, CHUNK_SIZE, 5 * CHUNK_SIZE + 3):
            res = await client.get(f"/{size}")
            assert res.status == 200 and res.headers["Content-Type"] == "application/x-tar"
            assert await res.read() == expected_bytes(size)

    serve([("GET", f"/{n}", writer_handler(n, None)) for n in (0, 10, CHUNK_SIZE, 5 * CHUNK_SIZE + 3)], test)


def test_response_writer_errors_before_and_after_the_first_chunk() -> None:
    async def test(client: TestClient[Any, Any]) -> None:
        res = await client.get("/early")  # nothing sent yet: an ordinary HTTP error
        assert res.status == 500 and await res.json() == {"message": "the producer failed"}
        res = await client.get("/late")  # the status went out with the first chunk: the error goes into the body
        assert res.status == 200
        body = await res.read()
        assert body.endswith(b"ERROR the producer failed") and len(body) > 2 * CHUNK_SIZE

    routes = [("GET", "/early", writer_handler(10 * CHUNK_SIZE, 100)),
              ("GET", "/late", writer_handler(10 * CHUNK_SIZE, 2 * CHUNK_SIZE + 5))]  # fmt: skip
    serve(routes, test)


def test_response_writer_stops_the_worker_when_the_client_goes_away() -> None:
    finished = threading.Event()
    errors: list[BaseException] = []

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        out = ResponseWriter(request, response)

        def run() -> None:
            try:
                while True:
                    out.write(b"x" * 65536)
            except BaseException as e:
                errors.append(e)
                raise
            finally:
                finished.set()

        try:
            await asyncio.to_thread(run)
        except OSError:
            pass
        return response

    async def test(client: TestClient[Any, Any]) -> None:
        res = await client.get("/")
        assert len(await res.content.read(CHUNK_SIZE)) > 0
        res.close()  # drop the connection mid-body
        for _ in range(100):
            if finished.is_set():
                break
            await asyncio.sleep(0.05)
        assert finished.is_set(), "the worker kept writing to a closed connection"
        assert isinstance(errors[0], (ConnectionError, aiohttp.ClientConnectionResetError))

    serve([("GET", "/", endless)], test)
