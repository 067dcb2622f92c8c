"""Units of docker's flags: memory sizes (`64m`), CPU counts (`1.5`), Go durations (`1h30m`),
timestamps for --since/--until, ulimits, restart policies, port and volume specs."""

from __future__ import annotations

import re
import time

from hull.cli.client import CLIError

# decimal and datetime are imported where used: `hull run` imports this module, and they would
# add 2 ms to every start for flags that are rarely given.

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms of every start)
if TYPE_CHECKING:
    from typing import Any

_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """docker's RAMInBytes: `64m` = 67108864; k/m/g/t/p are powers of 1024, an optional b/ib suffix."""
    from decimal import Decimal

    m = _RAM.match(text.strip())
    if m is None:
        raise CLIError(f"invalid size: '{text}'")
    return int(Decimal(m.group(1)) * _BINARY[(m.group(2) or "").lower()])


def memory_swap(text: str) -> int:
    """--memory-swap: a size, or -1 for unlimited."""
    return -1 if text.strip() == "-1" else ram_in_bytes(text)


def nano_cpus(text: str) -> int:
    """--cpus 1.5 → 1500000000 (exact decimal arithmetic, as docker's big.Rat)."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text) * 1_000_000_000
    except InvalidOperation:
        raise CLIError(
            f'invalid argument "{text}" for "--cpus" flag: failed to parse {text} as a rational number'
        ) from None
    if value != value.to_integral_value():
        raise CLIError(f"value is too precise: {text}")
    return int(value)


_DURATION_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def go_duration(text: str) -> float:
    """Seconds of a Go duration string (`1h30m`, `10s`, `-5m`, `0`); ValueError if it is not one."""
    s = text.strip()
    sign = 1.0
    if s[:1] in "+-" and s:
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(text)
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            raise ValueError(text)
        total += float(m.group(1)) * _DURATION_UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError(text)
    return sign * total


def timestamp(value: str, now: float | None = None) -> str:
    """docker's GetTimestamp: a duration back from now, an RFC 3339 date or a unix timestamp → "secs[.nanos]"."""
    now = time.time() if now is None else now
    if value != "0":
        try:
            return str(int(now - go_duration(value)))
        except ValueError:
            pass
    if re.fullmatch(r"\d+(\.\d{1,9})?", value):
        return value
    from datetime import datetime

    text = value.replace("z", "Z")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise CLIError(f'failed to parse value as time or duration: "{value}"') from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # local time, as docker parses dates without a zone
    ts = dt.timestamp()
    secs = int(ts // 1)
    return f"{secs}.{dt.microsecond * 1000:09d}"


def ulimit(text: str) -> dict[str, Any]:
    """--ulimit nofile=1024[:2048] → {"Name": "nofile", "Soft": 1024, "Hard": 2048}."""
    name, sep, limits = text.partition("=")
    if not sep or not name:
        raise CLIError(f"invalid ulimit argument: {text}")
    soft_s, _, hard_s = limits.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if hard_s else soft
    except ValueError:
        raise CLIError(f"invalid ulimit argument: {text}") from None
    if soft > hard:
        raise CLIError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def restart_policy(text: str) -> dict[str, Any]:
    """--restart no|always|unless-stopped|on-failure[:N]."""
    name, _, count = text.partition(":")
    if name not in ("", "no", "always", "unless-stopped", "on-failure"):
        raise CLIError(f"invalid restart policy format: {text}")
    if count and name != "on-failure":
        raise CLIError(f"maximum retry count cannot be used with restart policy '{name}'")
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise CLIError(f"maximum retry count must be an integer: {count}") from None
    return {"Name": name, "MaximumRetryCount": retries}


def port_spec(text: str) -> list[tuple[str, dict[str, str]]]:
    """-p [ip:][hostPort:]containerPort[/proto] → [(port/proto, {"HostIp", "HostPort"})] (ranges expanded)."""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    ip = ""
    if spec.startswith("["):  # [::1]:8080:80
        end = spec.index("]")
        ip, spec = spec[1:end], spec[end + 2 :]
    parts = spec.split(":")
    if len(parts) == 1:
        host, container = "", parts[0]
    elif len(parts) == 2:
        host, container = parts
    elif len(parts) == 3:
        ip, host, container = parts
    else:
        raise CLIError(f"invalid port format: {text}")
    if not container:
        raise CLIError(f"no port specified: {text}<empty>")
    c_ports = _port_range(container, text)
    h_ports = _port_range(host, text) if host else []
    if h_ports and len(h_ports) != len(c_ports) and len(h_ports) != 1:
        raise CLIError(f"invalid ranges specified for container and host Ports: {container} and {host}")
    out = []
    for i, cp in enumerate(c_ports):
        hp = "" if not h_ports else str(h_ports[i] if len(h_ports) == len(c_ports) else h_ports[0])
        out.append((f"{cp}/{proto}", {"HostIp": ip, "HostPort": hp}))
    return out


def _port_range(text: str, spec: str) -> list[int]:
    lo, _, hi = text.partition("-")
    try:
        a = int(lo)
        b = int(hi) if hi else a
    except ValueError:
        raise CLIError(f"invalid port format: {spec}") from None
    return list(range(a, b + 1))
