"""Engine API: /networks — list, inspect, create, remove, connect, disconnect, prune."""

from typing import Any

from aiohttp import web

from hull.api import params, routing
from hull.errors import InvalidArgument
from hull.network.manager import NetworkManager
from hull.network.store import NetworkRecord

NO_CONTENT = 204
_LIST_FILTERS = ("name", "id", "driver", "label", "type", "scope", "dangling")


def _manager(request: web.Request) -> NetworkManager:
    return routing.daemon(request).networks


def _label_ok(labels: dict[str, str], want: str) -> bool:
    key, sep, value = want.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _matches(m: NetworkManager, n: NetworkRecord, filters: dict[str, list[str]]) -> bool:
    checks = {
        "name": lambda v: v in n.name,
        "id": lambda v: n.id.startswith(v),
        "driver": lambda v: v == n.driver,
        "label": lambda v: _label_ok(n.labels, v),
        "type": lambda v: v == ("custom" if n.user_defined else "builtin"),
        "scope": lambda v: v == "local",
        "dangling": lambda v: (v in ("1", "true")) == (n.user_defined and not m.endpoints_on(n.id)),
    }
    return all(any(checks[key](v) for v in values) for key, values in filters.items())


async def list_networks(request: web.Request) -> web.StreamResponse:
    filters = params.query_filters(request)
    for key in filters:
        if key not in _LIST_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    m = _manager(request)
    return web.json_response([m.inspect_json(n) for n in m.all() if _matches(m, n, filters)])


async def inspect(request: web.Request) -> web.StreamResponse:
    m = _manager(request)
    return web.json_response(m.inspect_json(m.get(request.match_info["id"])))


async def create(request: web.Request) -> web.StreamResponse:
    body = await params.json_body(request, allow_empty=False)
    n = await _manager(request).create(body)
    return web.json_response({"Id": n.id, "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.StreamResponse:
    await _manager(request).remove(request.match_info["id"])
    return web.Response(status=NO_CONTENT)


async def _container_of(request: web.Request) -> tuple[Any, dict[str, Any]]:
    body = await params.json_body(request, allow_empty=False)
    return routing.daemon(request).containers.get(str(body.get("Container") or "")), body


async def connect(request: web.Request) -> web.StreamResponse:
    c, body = await _container_of(request)
    await _manager(request).connect(request.match_info["id"], c, body.get("EndpointConfig") or {})
    await routing.daemon(request).blocking(c.save)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.StreamResponse:
    c, body = await _container_of(request)
    await _manager(request).disconnect(request.match_info["id"], c, bool(body.get("Force")))
    await routing.daemon(request).blocking(c.save)
    return web.Response(status=200)


async def prune(request: web.Request) -> web.StreamResponse:
    filters = params.query_filters(request)
    for key in filters:
        if key != "label":
            raise InvalidArgument(f"invalid filter '{key}'")
    labels = filters.get("label", [])
    deleted = await _manager(request).prune(lambda n: not all(_label_ok(n.labels, v) for v in labels))
    return web.json_response({"NetworksDeleted": deleted or None})


def add_routes(router: web.UrlDispatcher) -> None:
    add = routing.add
    add(router, "GET", "/networks", list_networks)
    add(router, "POST", "/networks/create", create)
    add(router, "POST", "/networks/prune", prune)
    add(router, "GET", "/networks/{id}", inspect)
    add(router, "DELETE", "/networks/{id}", remove)
    add(router, "POST", "/networks/{id}/connect", connect)
    add(router, "POST", "/networks/{id}/disconnect", disconnect)
