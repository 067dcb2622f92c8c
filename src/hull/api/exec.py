"""Exec endpoints: create, start (hijacked like attach, or detached), inspect, resize."""

import asyncio

from aiohttp import web

from hull import detachkeys, multiplex
from hull.api import params, routing, streams
from hull.containers.execs import ExecManager, ExecRecord
from hull.errors import HullError, InvalidArgument

# How long a finished stream waits for the exit code, which the client asks for right after.
EXIT_WAIT = 10.0


def _execs(request: web.Request) -> ExecManager:
    return routing.daemon(request).containers.execs


def _exec(request: web.Request) -> ExecRecord:
    return _execs(request).get(request.match_info["id"])


async def create(request: web.Request) -> web.StreamResponse:
    c = routing.daemon(request).containers.get(request.match_info["id"])
    body = await params.json_body(request, allow_empty=False)
    rec = _execs(request).create(c, body)
    return web.json_response({"Id": rec.id}, status=201)


async def start(request: web.Request) -> web.StreamResponse:
    rec = _exec(request)
    body = await params.json_body(request)
    execs = _execs(request)
    if body.get("Detach"):
        await execs.start(rec, body.get("ConsoleSize"), attach=False)
        return web.Response(status=200)
    execs.check_startable(rec)
    client = await streams.Hijacked.accept(request, rec.tty)
    try:
        stream = await execs.start(rec, body.get("ConsoleSize"), attach=True)
    except HullError as e:
        # The status line is gone: Docker writes the error into the stream, on stdout.
        message = e.message if e.message.startswith("exec failed") else f"exec failed: {e.message}"  # runc's has it
        text = f"OCI runtime exec failed: {message}: unknown\r\n".encode()
        await client.write(text if rec.tty else multiplex.frame(multiplex.STDOUT, text))
        client.close()
        return client.response
    assert stream is not None
    # As attach: the detach keys are looked for only with a TTY; detaching leaves the process running.
    keys = _detach_keys(rec) if rec.tty else b""
    try:
        if not await streams.relay(client, stream, rec.tty, rec.open_stdin, keys, stdin_end_ends=False):
            # The client reads ExitCode once the stream closes: let the exit be recorded first.
            await asyncio.wait_for(rec.exited.wait(), EXIT_WAIT)
    except TimeoutError:
        pass  # the process closed its output but lives on: the client reads Running
    finally:
        client.close()
    return client.response


def _detach_keys(rec: ExecRecord) -> bytes:
    try:
        return detachkeys.parse(rec.detach_keys or detachkeys.DEFAULT)
    except ValueError:  # checked at create
        return detachkeys.parse(detachkeys.DEFAULT)


async def inspect(request: web.Request) -> web.StreamResponse:
    return web.json_response(_exec(request).to_json())


async def resize(request: web.Request) -> web.StreamResponse:
    rec = _exec(request)
    sizes = []
    for name in ("h", "w"):
        value = params.query_int(request, name)
        if value is None or not 0 <= value <= 65535:
            raise InvalidArgument(f"invalid value for {name}: {params.query_str(request, name)!r}")
        sizes.append(value)
    await _execs(request).resize(rec, sizes[0], sizes[1])
    return web.Response(status=200)


def add_routes(router: web.UrlDispatcher) -> None:
    routing.add(router, "POST", "/containers/{id}/exec", create)
    routing.add(router, "POST", "/exec/{id}/start", start)
    routing.add(router, "GET", "/exec/{id}/json", inspect)
    routing.add(router, "POST", "/exec/{id}/resize", resize)
