"""How handlers are registered and reach the daemon: paths with an optional `/v1.xx` prefix.

Docker's clients send both `/containers/json` and `/v1.43/containers/json`; every route is
registered once with an optional version segment, which the version middleware checks.
"""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from hull.daemon.daemon import Daemon

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

VERSION_SEGMENT = "version"
_PREFIX = "/{" + VERSION_SEGMENT + r":(?:v[0-9]+\.[0-9]+/)?}"

DAEMON: "web.AppKey[Daemon]" = web.AppKey("daemon")


def add(router: web.UrlDispatcher, method: str, path: str, handler: Handler) -> None:
    """Register `handler` for METHOD /path and METHOD /v1.xx/path."""
    router.add_route(method, _PREFIX + path.lstrip("/"), handler)


def daemon(request: web.Request) -> "Daemon":
    return request.app[DAEMON]


def api_version(request: web.Request) -> str:
    """The version this request speaks: its path's, else the newest we serve (as dockerd does)."""
    from hull.api.version import API_VERSION

    v = request.match_info.get(VERSION_SEGMENT, "")
    return v[1:-1] if v else API_VERSION
