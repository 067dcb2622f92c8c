"""The Engine API application: routes of every resource, version negotiation, errors, headers.

Errors follow Docker: the body is {"message": ...}; NotFound 404, Conflict 409, InvalidArgument
400, NotModified 304 (no body), anything else 500. Every response carries `Server`,
`Api-Version` and `Ostype`. Once a streaming response has started, an error can no longer
change the status: the handler writes it into the stream instead.
"""

import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from hull.api import routing, version
from hull.errors import Conflict, Forbidden, HullError, InvalidArgument, NotFound, NotModified

if TYPE_CHECKING:
    from hull.daemon.daemon import Daemon

log = logging.getLogger("hulld.api")

_STATUS: list[tuple[type[HullError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (InvalidArgument, 400),
    (NotModified, 304),
    (Forbidden, 403),
]


def status_of(error: HullError) -> int:
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


def error_response(status: int, message: str) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    # Exactly "application/json", no charset: the docker CLI decodes an error body only with that type
    # (it printed the raw JSON with json_response's "; charset=utf-8").
    return web.Response(body=json.dumps({"message": message}).encode() + b"\n", status=status,
                        content_type="application/json")  # fmt: skip


@web.middleware
async def errors_middleware(request: web.Request, handler: routing.Handler) -> web.StreamResponse:
    try:
        v = request.match_info.get(routing.VERSION_SEGMENT, "")
        if v:
            version.check(v[1:-1])
        return await handler(request)
    except HullError as e:
        if request.get("response_started"):
            raise
        status = status_of(e)
        if status == 500:
            log.error("%s %s: %s", request.method, request.path, e.message)
        return error_response(status, e.message)
    except web.HTTPNotFound:
        return error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        return error_response(405, "page not found")


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    request["response_started"] = True
    response.headers["Server"] = f"{version.SERVER_NAME}/{version.ENGINE_VERSION} (linux)"
    response.headers["Api-Version"] = version.API_VERSION
    response.headers["Ostype"] = "linux"
    response.headers.setdefault("Docker-Experimental", "false")


def make_app(daemon: "Daemon") -> web.Application:
    from hull.api import archive, auth, build, containers, exec, images, networks, stats, system, volumes

    app = web.Application(middlewares=[errors_middleware], client_max_size=0)
    app[routing.DAEMON] = daemon
    app.on_response_prepare.append(_add_headers)
    for module in (system, auth, containers, archive, images, build, stats, exec, volumes, networks):
        module.add_routes(app.router)
    return app
