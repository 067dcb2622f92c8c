"""Output shapes of docker's listings: tables (text/tabwriter with minwidth 10, padding 3),
`--format` handling (`table ...`, `json`, raw templates), human sizes and durations, ellipsis."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime

from hull.humanize import human_duration

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms of every start)
if TYPE_CHECKING:
    from typing import Any, TextIO


def since(ts: float, now: float | None = None) -> str:
    """ "2 minutes ago" for a unix time; "N/A" for none."""
    if not ts or ts <= 0:
        return "N/A"
    now = time.time() if now is None else now
    return human_duration(max(now - ts, 0)) + " ago"


def parse_time(value: Any) -> float:
    """Unix seconds from an API time: an int, or an RFC 3339 string with up to nanoseconds."""
    if isinstance(value, (int, float)):
        return float(value)
    if not value or not isinstance(value, str) or value.startswith("0001-01-01"):
        return 0.0
    text = value.replace("Z", "+00:00")
    main, frac, zone = text, "", ""
    if "." in text:
        main, rest = text.split(".", 1)
        digits = ""
        for i, ch in enumerate(rest):
            if not ch.isdigit():
                zone = rest[i:]
                break
            digits += ch
        frac = digits
        text = main + zone
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return 0.0
    return dt.timestamp() + (float("0." + frac) if frac else 0.0)


def go_time(ts: float) -> str:
    """Go's default time.Time print: "2006-01-02 15:04:05 -0700 MST"."""
    dt = datetime.fromtimestamp(ts).astimezone()
    return dt.strftime("%Y-%m-%d %H:%M:%S %z %Z")


def rfc3339(ts: float) -> str:
    dt = datetime.fromtimestamp(ts).astimezone()
    s = dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    return s[:-2] + ":" + s[-2:] if not s.endswith("+0000") else s[:-5] + "Z"


def rfc3339_nano_fixed(ns: int) -> str:
    """jsonmessage.RFC3339NanoFixed: 2006-01-02T15:04:05.000000000Z07:00, local time."""
    dt = datetime.fromtimestamp(ns // 1_000_000_000).astimezone()
    off = dt.strftime("%z")
    zone = "Z" if off in ("+0000", "-0000") else f"{off[:3]}:{off[3:]}"
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}" + zone


def ellipsis(s: str, width: int) -> str:
    if width <= 0:
        return ""
    if len(s) <= width:
        return s
    if width == 1:
        return s[0]
    return s[: width - 1] + "…"


def short_id(ident: str, trunc: bool = True) -> str:
    """An id without its "sha256:" prefix, cut to 12 characters (kept whole when not truncating)."""
    if not trunc:
        return ident
    if ":" in ident:
        ident = ident.split(":", 1)[1]
    return ident[:12]


def go_quote(s: str) -> str:
    """strconv.Quote for printable text: double quotes, backslash escapes."""
    return json.dumps(s, ensure_ascii=False)


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """text/tabwriter as docker sets it up: tab-terminated cells padded to max(width + 3, 10)."""
    lines = text.split("\n")
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for cells in rows:
        for j, cell in enumerate(cells[:-1]):
            widths[j] = max(widths.get(j, 0), len(cell) + padding, minwidth)
    out = []
    for cells in rows:
        parts = [cell.ljust(widths[j]) for j, cell in enumerate(cells[:-1])]
        parts.append(cells[-1])
        out.append("".join(parts))
    return "\n".join(out)


def normalize(fmt: str) -> str:
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def write_records(
    fmt: str | None,
    default: str,
    headers: Mapping[str, str],
    records: Iterable[Mapping[str, Any]],
    out: TextIO | None = None,
    quiet_field: str | None = None,
) -> None:
    """Print records through `fmt` (None or "" or "table" = `default`), as docker's formatter does.

    A `table` format prints a header line (the template rendered with `headers`) and aligns
    columns; `json` prints one JSON object per record; anything else renders per record.
    """
    from hull.cli.template import Template, TemplateError

    out = out or sys.stdout
    fmt = fmt or default
    if fmt == "table":
        fmt = default
    if fmt == "json":
        for r in records:
            out.write(json.dumps(plain(r), separators=(",", ":"), ensure_ascii=False) + "\n")
        return
    is_table = fmt.startswith("table")
    body = normalize(fmt[len("table") :] if is_table else fmt).strip(" ")
    try:
        tmpl = Template(body)
        rows = [tmpl.render(r) for r in records]
        header = tmpl.render(_HeaderView(headers)) if is_table else ""
    except TemplateError as e:
        from hull.cli.client import CLIError

        raise CLIError(f"template parsing error: {e}") from None
    if is_table:
        text = "\n".join([header, *rows])
        out.write(tabwrite(text) + "\n")
    else:
        for row in rows:
            out.write(row + "\n")


class _HeaderView(dict):
    """The header row: every field renders as its column title (unknown ones upper-cased)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__(headers)

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        return _Header(str(key))


class _Header(str):
    def __call__(self, *args: Any) -> str:
        return self.upper()


def plain(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record without its callable fields, for --format json."""
    return {k: v for k, v in record.items() if not callable(v)}
