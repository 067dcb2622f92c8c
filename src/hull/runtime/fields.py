"""Typed reads of JSON fields with errors that name the field's path.

Every JSON document hull accepts from outside (config.json, process.json, API bodies) is
checked field by field on the way in, so a wrong type becomes
`process.args: expected a list of strings, got 3` instead of a traceback later.
"""

from collections.abc import Mapping
from typing import Any, TypeVar

from hull.errors import InvalidArgument

T = TypeVar("T")
_MISSING: Any = object()


def _kind(t: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object", list: "a list"}
    if isinstance(t, tuple):
        return " or ".join(names.get(x, x.__name__) for x in t)
    return names.get(t, t.__name__)


def expect(value: Any, t: type | tuple[type, ...], where: str) -> Any:
    """Return `value` if it is of type `t` (a bool never passes for an int), else raise."""
    ok = isinstance(value, t) and not (isinstance(value, bool) and t in (int, (int,)))
    if not ok:
        raise InvalidArgument(f"{where}: expected {_kind(t)}, got {value!r}")
    return value


def field(obj: Mapping[str, Any], key: str, t: type | tuple[type, ...], where: str, default: Any = _MISSING) -> Any:
    """obj[key] checked against `t`; a missing or null key gives `default`, or an error if none."""
    value = obj.get(key)
    if value is None:
        if default is _MISSING:
            raise InvalidArgument(f"{where}.{key}: required field is missing")
        return default
    return expect(value, t, f"{where}.{key}")


def str_list(obj: Mapping[str, Any], key: str, where: str) -> list[str]:
    """obj[key] as a list of strings; missing means empty."""
    values = field(obj, key, list, where, [])
    for i, v in enumerate(values):
        expect(v, str, f"{where}.{key}[{i}]")
    return list(values)


def obj_list(obj: Mapping[str, Any], key: str, where: str) -> list[tuple[str, dict[str, Any]]]:
    """obj[key] as a list of objects, each paired with its path for error messages."""
    values = field(obj, key, list, where, [])
    return [(f"{where}.{key}[{i}]", expect(v, dict, f"{where}.{key}[{i}]")) for i, v in enumerate(values)]
