"""Docker's container configuration (`container.Config`) as image configs and the Engine API hold it.

Vocabulary: a *container config* is the JSON object Docker keeps in an image config's `config`
(the defaults of containers made from the image) and that `POST /commit` and `docker inspect`
carry: `{"Hostname": "", ..., "Cmd": ["sh"], ...}`, with Docker's field names. Here it is a
plain `dict[str, Any]` whose keys are those names: the one place they are spelled is the
constants below.

Contract:
- `normalize` gives the object exactly as Docker's Go structs print it: every field in the
  struct's order, Go's zero values for missing ones (`""`, `false`, `null`), the `omitempty`
  fields left out when empty, unknown fields dropped (as Go's decoder drops them). A field
  of the wrong type is an InvalidArgument naming it; nothing else is checked here.
- `merge` is Docker's rule for `commit` (daemon/commit.go): the user's config wins, the other
  config fills what the user left unset (environment by key, labels, exposed ports and
  volumes by union; Cmd only when neither Cmd nor Entrypoint is set).
- `go_json` serializes as Go's encoding/json does (compact; `<`, `>`, `&`, U+2028 and U+2029
  escaped), so the bytes hashed into an image id look like Docker's.
"""

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from hull.errors import InvalidArgument

HOSTNAME = "Hostname"
DOMAINNAME = "Domainname"
USER = "User"
ATTACH_STDIN = "AttachStdin"
ATTACH_STDOUT = "AttachStdout"
ATTACH_STDERR = "AttachStderr"
EXPOSED_PORTS = "ExposedPorts"
TTY = "Tty"
OPEN_STDIN = "OpenStdin"
STDIN_ONCE = "StdinOnce"
ENV = "Env"
CMD = "Cmd"
HEALTHCHECK = "Healthcheck"
ARGS_ESCAPED = "ArgsEscaped"
IMAGE = "Image"
VOLUMES = "Volumes"
WORKING_DIR = "WorkingDir"
ENTRYPOINT = "Entrypoint"
NETWORK_DISABLED = "NetworkDisabled"
MAC_ADDRESS = "MacAddress"
ON_BUILD = "OnBuild"
LABELS = "Labels"
STOP_SIGNAL = "StopSignal"
STOP_TIMEOUT = "StopTimeout"
SHELL = "Shell"

# HealthConfig's fields; all are omitempty in Docker's struct.
HEALTH_TEST = "Test"
HEALTH_INTERVAL = "Interval"
HEALTH_TIMEOUT = "Timeout"
HEALTH_START_PERIOD = "StartPeriod"
HEALTH_START_INTERVAL = "StartInterval"
HEALTH_RETRIES = "Retries"
_HEALTH_DURATIONS = (HEALTH_INTERVAL, HEALTH_TIMEOUT, HEALTH_START_PERIOD, HEALTH_START_INTERVAL)

# Field kinds: how a value is checked and what its Go zero value prints as.
_STR, _BOOL, _LIST, _SET, _MAP, _HEALTH, _INT = "str", "bool", "list", "set", "map", "health", "int"

# container.Config in Go's declaration order: (field, kind, omitempty). Cmd, Entrypoint and
# Shell are strslice.StrSlice: a lone string is read as a one-element list.
_FIELDS: tuple[tuple[str, str, bool], ...] = (
    (HOSTNAME, _STR, False),
    (DOMAINNAME, _STR, False),
    (USER, _STR, False),
    (ATTACH_STDIN, _BOOL, False),
    (ATTACH_STDOUT, _BOOL, False),
    (ATTACH_STDERR, _BOOL, False),
    (EXPOSED_PORTS, _SET, True),
    (TTY, _BOOL, False),
    (OPEN_STDIN, _BOOL, False),
    (STDIN_ONCE, _BOOL, False),
    (ENV, _LIST, False),
    (CMD, _LIST, False),
    (HEALTHCHECK, _HEALTH, True),
    (ARGS_ESCAPED, _BOOL, True),
    (IMAGE, _STR, False),
    (VOLUMES, _SET, False),
    (WORKING_DIR, _STR, False),
    (ENTRYPOINT, _LIST, False),
    (NETWORK_DISABLED, _BOOL, True),
    (MAC_ADDRESS, _STR, True),
    (ON_BUILD, _LIST, False),
    (LABELS, _MAP, False),
    (STOP_SIGNAL, _STR, True),
    (STOP_TIMEOUT, _INT, True),
    (SHELL, _LIST, True),
)
_STRSLICE = frozenset({CMD, ENTRYPOINT, SHELL})
_ZERO: dict[str, Any] = {_STR: "", _BOOL: False, _LIST: None, _SET: None, _MAP: None, _HEALTH: None, _INT: None}


def _fail(where: str, field: str, expected: str) -> InvalidArgument:
    return InvalidArgument(f"invalid {where}: {field} must be {expected}")


def _check(where: str, field: str, kind: str, value: Any) -> Any:
    """`value` checked against the field's kind (None is always allowed: Go's null)."""
    if value is None:
        return _ZERO[kind]
    if kind == _STR and not isinstance(value, str):
        raise _fail(where, field, "a string")
    if kind == _BOOL and not isinstance(value, bool):
        raise _fail(where, field, "true or false")
    if kind == _INT and (isinstance(value, bool) or not isinstance(value, int)):
        raise _fail(where, field, "an integer")
    if kind == _LIST:
        if field in _STRSLICE and isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise _fail(where, field, "a list of strings")
        return list(value)
    if kind == _SET:
        if not isinstance(value, dict):
            raise _fail(where, field, 'an object like {"key": {}}')
        return {k: {} for k in value}
    if kind == _MAP:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _fail(where, field, "an object of strings")
        return dict(value)
    if kind == _HEALTH:
        return _health(where, value)
    return value


def _health(where: str, value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        raise _fail(where, HEALTHCHECK, "an object")
    out: dict[str, Any] = {}
    test = value.get(HEALTH_TEST)
    if test is not None:
        if not isinstance(test, list) or not all(isinstance(s, str) for s in test):
            raise _fail(where, f"{HEALTHCHECK}.{HEALTH_TEST}", "a list of strings")
        if test:
            out[HEALTH_TEST] = list(test)
    for key in (*_HEALTH_DURATIONS, HEALTH_RETRIES):
        v = value.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise _fail(where, f"{HEALTHCHECK}.{key}", "an integer")
        if v:
            out[key] = v
    return out


def normalize(config: Mapping[str, Any] | None, where: str = "container config") -> dict[str, Any]:
    """The config as Docker prints it: all fields in Go's order, zero values filled, omitempty ones dropped."""
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise InvalidArgument(f"invalid {where}: must be a JSON object")
    out: dict[str, Any] = {}
    for field, kind, omitempty in _FIELDS:
        value = _check(where, field, kind, config.get(field))
        if omitempty and (value is None or value == "" or value is False or value == {} or value == []):
            continue
        out[field] = value
    return out


def empty() -> dict[str, Any]:
    """A config with nothing set (Docker's `container.Config{}`)."""
    return normalize({})


def merge(user: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Docker's commit merge: `user` completed from `defaults` (both normalized configs)."""
    out = copy.deepcopy(dict(user))
    base = defaults
    if not out.get(USER):
        out[USER] = base.get(USER, "")
    base_ports = base.get(EXPOSED_PORTS) or {}
    if not out.get(EXPOSED_PORTS):
        if base_ports:
            out[EXPOSED_PORTS] = dict(base_ports)
    else:
        for port in base_ports:
            out[EXPOSED_PORTS].setdefault(port, {})
    if not out.get(ENV):
        out[ENV] = copy.copy(base.get(ENV))
    else:
        keys = {e.partition("=")[0] for e in out[ENV]}
        out[ENV] += [e for e in base.get(ENV) or () if e.partition("=")[0] not in keys]
    labels = out.get(LABELS) or {}
    for key, value in (base.get(LABELS) or {}).items():
        labels.setdefault(key, value)
    out[LABELS] = labels  # Docker makes the map even when both are empty: {} rather than null
    if not out.get(ENTRYPOINT):
        if not out.get(CMD):
            out[CMD] = copy.copy(base.get(CMD))
            if base.get(ARGS_ESCAPED):
                out[ARGS_ESCAPED] = True
            else:
                out.pop(ARGS_ESCAPED, None)
        if out.get(ENTRYPOINT) is None:
            out[ENTRYPOINT] = copy.copy(base.get(ENTRYPOINT))
    base_health = base.get(HEALTHCHECK)
    if base_health:
        health = out.get(HEALTHCHECK)
        if not health:
            out[HEALTHCHECK] = dict(base_health)
        else:
            # Docker fills each unset field but StartInterval, which its merge predates.
            for key in (HEALTH_TEST, HEALTH_INTERVAL, HEALTH_TIMEOUT, HEALTH_START_PERIOD, HEALTH_RETRIES):
                if not health.get(key) and base_health.get(key):
                    health[key] = copy.copy(base_health[key])
    if not out.get(WORKING_DIR):
        out[WORKING_DIR] = base.get(WORKING_DIR, "")
    if not out.get(VOLUMES):
        out[VOLUMES] = copy.copy(base.get(VOLUMES))
    else:
        out[VOLUMES].update({k: {} for k in base.get(VOLUMES) or ()})
    if not out.get(STOP_SIGNAL) and base.get(STOP_SIGNAL):
        out[STOP_SIGNAL] = base[STOP_SIGNAL]
    return normalize(out)


# Go's encoding/json escapes these inside strings so that JSON can be embedded in HTML.
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)
_SURROGATE = re.compile("[\ud800-\udfff]")


def env_map(config: Mapping[str, Any]) -> dict[str, str]:
    """The config's Env list ("K=V" entries) as a mapping; a later entry wins, as in the process."""
    out: dict[str, str] = {}
    for entry in config.get(ENV) or ():
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def go_json(value: Any) -> bytes:
    """`value` as Go's json.Marshal writes it: compact, UTF-8, keys in the dicts' own order.

    The replaced characters never occur outside strings in JSON text, so translating the whole
    text escapes exactly what Go escapes.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # Lone surrogates (bytes a filesystem name could not decode) become U+FFFD, as Go writes invalid UTF-8.
    return _SURROGATE.sub("\ufffd", text.translate(_GO_ESCAPE_TABLE)).encode("utf-8")
