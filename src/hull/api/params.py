"""Reading query parameters and JSON bodies the way dockerd does, with its error wording."""

import json
from typing import Any

from aiohttp import web

from hull.errors import InvalidArgument

_TRUE = {"1", "true", "True", "TRUE", "yes"}
_FALSE = {"", "0", "false", "False", "FALSE", "no"}


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's boolValue: absent -> default; "", "0", "false", "no" -> False; anything else True."""
    if name not in request.query:
        return default
    v = request.query[name].strip()
    return v not in _FALSE


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    v = request.query.get(name, "")
    if v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {v!r}: not an integer") from None


def query_str(request: web.Request, name: str, default: str = "") -> str:
    return request.query.get(name, default)


def query_filters(request: web.Request) -> dict[str, list[str]]:
    """The `filters` parameter: {"key": ["v", ...]} or the old {"key": {"v": true}} form."""
    raw = request.query.get("filters", "")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid filter: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filter: not a JSON object")
    out: dict[str, list[str]] = {}
    for key, values in data.items():
        if isinstance(values, dict):
            out[key] = [v for v, on in values.items() if on]
        elif isinstance(values, list) and all(isinstance(v, str) for v in values):
            out[key] = list(values)
        else:
            raise InvalidArgument(f"invalid filter: values of {key!r} must be strings")
    return out


async def json_body(request: web.Request, *, allow_empty: bool = True) -> dict[str, Any]:
    """The request's JSON object; an empty body is {} (clients send none for optional bodies)."""
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise InvalidArgument("bad parameter: request body is required")
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgument("invalid JSON: the body must be a JSON object")
    return data
