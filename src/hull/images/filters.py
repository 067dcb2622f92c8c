"""Docker's filter arguments and time values, as `docker images --filter` and `docker image prune` use them.

Vocabulary:
- *filters* map a filter name to its values: `{"label": ["a=1"], "dangling": ["true"]}`. The
  Engine API also sends the older form `{"dangling": {"true": true}}`; `normalize` accepts both.
- a *time stamp* of an image is its config's `created` (RFC 3339, nanoseconds); filter values
  like `until=` are Docker's timestamps: a Go duration back from now (`10m`, `1h30m`), unix
  seconds (`1700000000.5`), or an RFC 3339 date or time (without a zone: local time).

Contract: every error is an InvalidArgument with Docker's wording ("invalid filter 'x'",
"failed to parse value as time or duration: ..."). All times are integer nanoseconds since the
epoch, so nothing here loses Docker's precision.
"""

import calendar
import re
import time
from collections.abc import Collection, Iterable, Mapping
from typing import TypeAlias

from hull.errors import InvalidArgument
from hull.images.reference import Reference

FilterValues: TypeAlias = Iterable[str] | Mapping[str, bool]
Filters: TypeAlias = Mapping[str, FilterValues]
Normalized: TypeAlias = dict[str, list[str]]

NS = 1_000_000_000

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9})\d*)?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
# Docker's filter timestamps: a date, optionally a time (hours, minutes, seconds, fraction), optionally a zone.
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)
_UNIX = re.compile(r"(\d+)(?:\.(\d{1,9}))?")
_DURATION = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS}


def normalize(filters: Filters | None) -> Normalized:
    """Filters as {name: [values]} (values in the order given), from either wire form."""
    out: Normalized = {}
    for name, values in (filters or {}).items():
        if not isinstance(name, str):
            raise InvalidArgument(f"invalid filter {name!r}")
        if isinstance(values, str):
            out[name] = [values]
        elif isinstance(values, Mapping):
            out[name] = [v for v, on in values.items() if on]
        else:
            out[name] = list(values)
        if not all(isinstance(v, str) for v in out[name]):
            raise InvalidArgument(f"invalid filter '{name}': values must be strings")
    return out


def _invalid(name: str, values: list[str] | None = None) -> InvalidArgument:
    shown = name if values is None else f"{name}={','.join(values)}"
    return InvalidArgument(f"invalid filter '{shown}'")


def validate(filters: Normalized, accepted: Collection[str]) -> None:
    for name in filters:
        if name not in accepted:
            raise _invalid(name)


def get_bool(filters: Normalized, name: str, default: bool) -> bool:
    """A true/false filter (`1`, `true`, `0`, `false`); several conflicting values are refused."""
    if name not in filters:
        return default
    values = filters[name]
    is_true = any(v in ("1", "true") for v in values)
    is_false = any(v in ("0", "false") for v in values)
    if is_true == is_false:
        raise _invalid(name, values)
    return is_true


def match_kv(filters: Normalized, name: str, labels: Mapping[str, str] | None) -> bool:
    """Docker's MatchKVList: every `key` or `key=value` of the filter holds for `labels` (True without the filter)."""
    values = filters.get(name)
    if not values:
        return True
    if not labels:
        return False
    for v in values:
        key, eq, want = v.partition("=")
        if key not in labels or (eq and labels[key] != want):
            return False
    return True


# --- reference patterns --------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's path.Match pattern as a regular expression: `*` and `?` never match `/`."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i >= len(pattern):
                raise InvalidArgument(f"syntax error in pattern: {pattern!r}")
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            cls, i = _glob_class(pattern, i)
            out.append(cls)
        else:
            out.append(re.escape(ch))
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:  # a range whose ends are reversed ([z-a]): Go reports the pattern as bad too
        raise InvalidArgument(f"syntax error in pattern: {pattern!r}") from None


def _glob_class(pattern: str, i: int) -> tuple[str, int]:
    """The character class starting after the `[` at `i - 1`: (regex class, index after its `]`)."""

    def char(j: int) -> tuple[str, int]:
        if j >= len(pattern) or pattern[j] in "-]":
            raise InvalidArgument(f"syntax error in pattern: {pattern!r}")
        if pattern[j] == "\\":
            if j + 1 >= len(pattern):
                raise InvalidArgument(f"syntax error in pattern: {pattern!r}")
            return pattern[j + 1], j + 2
        return pattern[j], j + 1

    negate = i < len(pattern) and pattern[i] == "^"
    i += negate
    ranges: list[str] = []
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            break
        lo, i = char(i)
        if i < len(pattern) and pattern[i] == "-":
            hi, i = char(i + 1)
            ranges.append(f"{re.escape(lo)}-{re.escape(hi)}")
        else:
            ranges.append(re.escape(lo))
    return f"[{'^' if negate else ''}{''.join(ranges)}]", i + 1


def familiar_match(pattern: str, ref: Reference) -> bool:
    """Docker's reference filter: the pattern matches the familiar `name:tag` (or `name@digest`), or the name alone."""
    regex = _glob_regex(pattern)
    return regex.fullmatch(ref.familiar()) is not None or regex.fullmatch(ref.familiar_name) is not None


# --- times -----------------------------------------------------------------------------------------------


def _fraction_ns(digits: str | None) -> int:
    return int((digits or "").ljust(9, "0")[:9] or 0)


def parse_rfc3339(stamp: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time stamp (an image's `created`), None if it is not one."""
    m = _RFC3339.fullmatch(stamp or "")
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    try:
        seconds = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if not z:
        offset = (int(oh) * 60 + int(om)) * 60
        seconds -= offset if sign == "+" else -offset
    return seconds * NS + _fraction_ns(frac)


def unix_seconds(stamp: str) -> int:
    """Go's time.Unix() of a created stamp (whole seconds, rounded down); 0 when there is none."""
    ns = parse_rfc3339(stamp)
    return 0 if ns is None else ns // NS


def _duration_ns(value: str) -> int | None:
    if not _DURATION.fullmatch(value):
        return None
    total = sum(float(n) * _UNIT_NS[unit] for n, unit in _DURATION_PART.findall(value))
    return -int(total) if value.startswith("-") else int(total)


def parse_timestamp(value: str, now_ns: int | None = None) -> int:
    """A filter time value (see the module docstring) as nanoseconds since the epoch."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    if value != "0":
        d = _duration_ns(value)
        if d is not None:
            return now_ns - d
    m = _TIMESTAMP.fullmatch(value)
    if m is not None:
        y, mo, d_, h, mi, s, frac, z, sign, oh, om = m.groups()
        fields = (int(y), int(mo), int(d_), int(h or 0), int(mi or 0), int(s or 0))
        try:
            if z or sign:
                seconds = calendar.timegm((*fields, 0, 0, 0))
                if sign:
                    offset = (int(oh) * 60 + int(om)) * 60
                    seconds -= offset if sign == "+" else -offset
            else:
                seconds = int(time.mktime((*fields, 0, 0, -1)))  # no zone: the daemon's local time
        except (ValueError, OverflowError):
            raise InvalidArgument(f"failed to parse value as time or duration: {value!r}") from None
        return seconds * NS + _fraction_ns(frac)
    m = _UNIX.fullmatch(value)
    if m is not None and "-" not in value:
        return int(m.group(1)) * NS + _fraction_ns(m.group(2))
    raise InvalidArgument(f'failed to parse value as time or duration: "{value}"')
