"""Volume endpoints: list, create, inspect, remove, prune (Docker's /volumes routes)."""

from typing import Any

from aiohttp import web

from hull.api import params, routing
from hull.errors import InvalidArgument
from hull.images.filters import normalize as normalize_filters
from hull.volumes.manager import VolumeManager

NO_CONTENT = 204
# From this API version on, prune takes only anonymous volumes unless the `all` filter says otherwise.
PRUNE_ANONYMOUS_ONLY_SINCE = (1, 42)


def _manager(request: web.Request) -> VolumeManager:
    return routing.daemon(request).volumes


def _string_map(body: dict[str, Any], key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidArgument(f"invalid {key}: expected an object of strings")
    return dict(value)


async def list_volumes(request: web.Request) -> web.StreamResponse:
    manager = _manager(request)
    found = manager.list_volumes(normalize_filters(params.query_filters(request)))
    return web.json_response({"Volumes": [manager.inspect(v) for v in found], "Warnings": None})


async def create(request: web.Request) -> web.StreamResponse:
    body = await params.json_body(request)
    name = body.get("Name") or ""
    driver = body.get("Driver") or ""
    if not isinstance(name, str) or not isinstance(driver, str):
        raise InvalidArgument("invalid Name or Driver: expected strings")
    manager = _manager(request)
    v = await manager.create(name, driver, _string_map(body, "Labels"), _string_map(body, "DriverOpts"))
    return web.json_response(manager.inspect(v), status=201)


async def inspect(request: web.Request) -> web.StreamResponse:
    manager = _manager(request)
    return web.json_response(manager.inspect(manager.get(request.match_info["name"])))


async def remove(request: web.Request) -> web.StreamResponse:
    await _manager(request).remove(request.match_info["name"], force=params.query_bool(request, "force"))
    return web.Response(status=NO_CONTENT)


async def prune(request: web.Request) -> web.StreamResponse:
    major, minor = (int(x) for x in routing.api_version(request).split("."))
    anonymous_only = (major, minor) >= PRUNE_ANONYMOUS_ONLY_SINCE
    filters = normalize_filters(params.query_filters(request))
    deleted, reclaimed = await _manager(request).prune(filters, anonymous_only)
    return web.json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def add_routes(router: web.UrlDispatcher) -> None:
    add = routing.add
    add(router, "GET", "/volumes", list_volumes)
    add(router, "POST", "/volumes/create", create)
    add(router, "POST", "/volumes/prune", prune)
    add(router, "GET", "/volumes/{name}", inspect)
    add(router, "DELETE", "/volumes/{name}", remove)
