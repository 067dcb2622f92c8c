"""`--mount type=bind|volume|tmpfs,source=...,target=...,...`: the docker CLI's CSV syntax to the API's Mount object.

Kept free of daemon imports: every `hull run` parses its flags with it.
"""

from __future__ import annotations

from hull.cli import units
from hull.cli.client import CLIError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

_TRUE = ("1", "t", "T", "true", "TRUE", "True")  # Go's strconv.ParseBool
_FALSE = ("0", "f", "F", "false", "FALSE", "False")
_BOOL_KEYS = ("readonly", "ro", "volume-nocopy", "bind-nonrecursive")
# Which mount type the prefixed keys belong to.
_KIND_OF_PREFIX = {"bind-": "bind", "volume-": "volume", "tmpfs-": "tmpfs"}


def _bool(value: str, field: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"invalid value for {field.partition('=')[0]}: {value}")


def _key_value(value: str, field: str) -> tuple[str, str]:
    k, sep, v = value.partition("=")
    if not sep:
        raise ValueError(f"invalid field '{field}' must be a key=value pair")
    return k, v


def parse(text: str) -> dict[str, Any]:
    """One --mount flag; CLIError in the docker CLI's wording."""
    try:
        return _parse(text)
    except ValueError as e:
        raise CLIError(f'invalid argument "{text}" for "--mount" flag: {e}') from None


def _parse(text: str) -> dict[str, Any]:
    import csv

    fields = next(csv.reader([text])) if text else []
    mount: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    used: set[str] = set()
    for field in fields:
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep:
            if key not in _BOOL_KEYS:
                raise ValueError(f"invalid field '{field}' must be a key=value pair")
            value = "true"
        for prefix in _KIND_OF_PREFIX:
            if key.startswith(prefix):
                used.add(prefix)
        if key == "type":
            mount["Type"] = value.lower()
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(value, field)
        elif key == "consistency":
            mount["Consistency"] = value.lower()
        elif key == "bind-propagation":
            bind["Propagation"] = value.lower()
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _bool(value, field)
        elif key == "volume-nocopy":
            volume["NoCopy"] = _bool(value, field)
        elif key == "volume-label":
            k, v = _key_value(value, field)
            volume.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, v = _key_value(value, field)
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = units.ram_in_bytes(value)
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    kind = mount["Type"]
    if "Target" not in mount:
        raise ValueError("target is required")
    for prefix in sorted(used):
        if _KIND_OF_PREFIX[prefix] != kind:
            raise ValueError(f"cannot mix '{prefix}*' options with mount type '{kind}'")
    for key, options in (("BindOptions", bind), ("VolumeOptions", volume), ("TmpfsOptions", tmpfs)):
        if options:
            mount[key] = options
    return mount
