"""Docker's json-file log driver: the file format, its writer (the shim's side) and its reader (`docker logs`).

Owns `<container id>-json.log` and its rotated siblings `.1`, `.2`, ...: one JSON object per
line, exactly as Docker's json-file driver writes them, so Docker and hull read each other's logs:

    {"log":"hello\\n","stream":"stdout","time":"2026-11-27T03:26:37.123456789Z"}

- "log" is the output with its newline; an entry without the trailing "\\n" is a partial line
  (a line cut at 16 KiB, or output that ended without a newline).
- The string is escaped like Docker's encoder (jsonlog.ffjsonWriteJSONBytesAsString): `"` `\\`
  as `\\"` `\\\\`, newline and CR as `\\n` `\\r`, every other control character (tab too) as
  `\\u00XX`, `<` `>` `&` U+2028 U+2029 as `\\uXXXX`, and each byte of invalid UTF-8 as `\\ufffd`.
- "time" is RFC3339Nano in UTC, fraction trimmed of trailing zeros as Go prints it.
- max-size/max-file rotate like Docker: before an entry is written, a file that has reached
  max-size is renamed to `.1` (`.1` to `.2`, ... the oldest dropped) so that max-file files exist
  in all; with max-file 1 the file is truncated instead.

Speed: a container may print millions of lines, so neither side works line by line in Python
when it can avoid it. The writer escapes a whole read of output at once and turns its newlines
into entry boundaries with one `str.replace`; the reader cuts a whole block of the file into
its fields with one `re.split` (entries of the exact shape above), joins a run of one stream and
unescapes it with one `replace` (or one `json.loads`). A block with anything else in it (Docker's
"attrs", another encoder's spacing, invalid UTF-8, a bad escape) is read with `json.loads` per
line; lines that are no log entry at all are skipped.

`frame` is here because `read_logs` feeds it; `hull.api.streams.frame` is the same function.
"""

import codecs
import itertools
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import NamedTuple

from hull.errors import InvalidArgument

STDOUT, STDERR = 1, 2
# Docker's copier cuts a line that reaches this many bytes without a newline into partial entries.
MAX_LINE = 16 * 1024
# The reader's unit of work: big enough that per-block costs vanish, small enough that one block
# (a few ms of CPU) does not hold up the daemon's event loop for long.
READ_BLOCK = 1 << 20
# `read_logs(follow=True)` polls: a follower learns of new output within this many seconds, and
# while output keeps coming it reads on without sleeping. A poll costs a few syscalls (read,
# stat, a check for truncation); inotify through ctypes would save those for idle followers but
# needs watches on the file and its directory kept right across renames: not worth it for now.
FOLLOW_POLL = 0.05

_GO_REPLACE = "hull-go-replace"


# Decoding marks each bad byte with a lone surrogate, which valid UTF-8 never yields: the writer
# escapes it as Docker does (the six characters \\ufffd, unlike a real U+FFFD, which stays raw);
# encoding turns it, and any lone surrogate a \\ud800 escape made, into U+FFFD as Go does.
_BAD_BYTE = "\ud800"


def _go_replace(exc: UnicodeError) -> tuple[str | bytes, int]:
    """Go's way with bad UTF-8: one U+FFFD per byte that is not part of a valid sequence."""
    if isinstance(exc, UnicodeDecodeError):
        return _BAD_BYTE * (exc.end - exc.start), exc.end
    if isinstance(exc, UnicodeEncodeError):  # as bytes: the UTF-8 encoder takes only ASCII text from a handler
        return "\ufffd".encode() * (exc.end - exc.start), exc.end
    raise exc


codecs.register_error(_GO_REPLACE, _go_replace)


# --- escaping ------------------------------------------------------------------------------

_ESCAPES = {chr(c): f"\\u{c:04x}" for c in range(0x20)}
_ESCAPES.update({"\n": "\\n", "\r": "\\r", '"': '\\"', "\\": "\\\\"})
_ESCAPES.update({c: f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"})
_ESCAPES[_BAD_BYTE] = "\\ufffd"
_ESCAPES_B = {k.encode(): v.encode() for k, v in _ESCAPES.items() if k.isascii()}
# Newline is left out: in a chunk of output it is the entry boundary, and a single line has none.
_SPECIAL = re.compile('[\x00-\x09\x0b-\x1f"\\\\<>&\u2028\u2029\ud800]')
_SPECIAL_B = re.compile(b'[\x00-\x09\x0b-\x1f"\\\\<>&]')


def _escape_str(text: str) -> str:
    if _SPECIAL.search(text) is None:
        return text
    return _SPECIAL.sub(lambda m: _ESCAPES[m.group()], text)


def _escape_bytes(data: bytes) -> bytes:
    """The JSON string body (no quotes) for `data`, newlines excepted; bytes in, UTF-8 out."""
    if data.isascii():
        if _SPECIAL_B.search(data) is None:
            return data
        return _SPECIAL_B.sub(lambda m: _ESCAPES_B[m.group()], data)
    return _escape_str(data.decode("utf-8", _GO_REPLACE)).encode()


# --- time ----------------------------------------------------------------------------------

_seconds_cache: tuple[int, str] = (-1, "")


def _rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano of a UTC instant: the fraction loses its trailing zeros (and its dot if none remain)."""
    global _seconds_cache
    sec, frac = divmod(ns, 1_000_000_000)
    if _seconds_cache[0] != sec:
        _seconds_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    if frac == 0:
        return _seconds_cache[1] + "Z"
    return f"{_seconds_cache[1]}.{frac:09d}".rstrip("0") + "Z"


_TIME = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def _parse_time(value: bytes) -> int:
    """Unix nanoseconds of an RFC3339 time; ValueError if it is not one."""
    import calendar  # here, not at the top: it costs the shim's lean monitor most of a megabyte (see LogOptions)

    m = _TIME.fullmatch(value)
    if m is None:
        raise ValueError(f"bad time {value!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    sec = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    zone = m.group(8)
    if zone != b"Z":
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        sec -= offset if zone[:1] == b"+" else -offset
    return sec * 1_000_000_000 + int((m.group(7) or b"").ljust(9, b"0"))


def _fixed_time(ns: int) -> bytes:
    """Docker's RFC3339NanoFixed (always nine digits) in UTC: how `docker logs -t` prints a time."""
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode() + b".%09dZ" % frac


# --- writer --------------------------------------------------------------------------------


class JsonLogWriter:
    """Appends a container's output to its json-file log, rotating by size.

    Used by the shim, one writer per container, from one thread. A write of many lines becomes
    one write(2); every entry of it gets the same time (when the shim read it). Partial lines wait
    per stream for their newline, or are written as partial entries when they reach 16 KiB or at
    close(). OSError (disk full, say) propagates: the caller decides whether output may be lost.
    """

    def __init__(self, path: str, max_size: int = 0, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max_file
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._pending = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        """Log `data` that the container wrote to `stream` ("stdout" or "stderr")."""
        pending = self._pending[stream]  # KeyError for anything but the two streams
        if not data:
            return
        buf = pending + data if pending else data
        cut = buf.rfind(b"\n") + 1
        rest = buf[cut:]
        ts = _rfc3339nano(time.time_ns())
        out = self._encode_lines(stream, buf[:cut], ts) if cut else b""
        while len(rest) >= MAX_LINE:
            out += self._entry(stream, rest[:MAX_LINE], False, ts)
            rest = rest[MAX_LINE:]
        self._pending[stream] = rest
        if out:
            self._append(out)

    def close(self) -> None:
        """Write what is left of partial lines (as partial entries) and close the file."""
        if self._fd < 0:
            return
        try:
            ts = _rfc3339nano(time.time_ns())
            for stream, rest in self._pending.items():
                if rest:
                    self._pending[stream] = b""
                    self._append(self._entry(stream, rest, False, ts))
        finally:
            os.close(self._fd)
            self._fd = -1

    def _encode_lines(self, stream: str, lines: bytes, ts: str) -> bytes:
        """Entries for `lines`, which ends with a newline."""
        if len(lines) > MAX_LINE and max(map(len, lines.split(b"\n"))) >= MAX_LINE:
            return b"".join(self._long_line(stream, line, ts) for line in lines[:-1].split(b"\n"))
        # The whole chunk is escaped at once (newlines stay raw), then each newline becomes the
        # end of one entry and the start of the next.
        tail = f'\\n","stream":"{stream}","time":"{ts}"}}\n'
        if lines.isascii():
            body = _escape_bytes(lines[:-1]).replace(b"\n", (tail + '{"log":"').encode())
            return b'{"log":"' + body + tail.encode()
        text = _escape_str(lines[:-1].decode("utf-8", _GO_REPLACE))
        return ('{"log":"' + text.replace("\n", tail + '{"log":"') + tail).encode()

    def _long_line(self, stream: str, line: bytes, ts: str) -> bytes:
        """Partial entries of 16 KiB each, then the rest (maybe empty) with the newline."""
        whole = len(line) - len(line) % MAX_LINE
        parts = [self._entry(stream, line[i : i + MAX_LINE], False, ts) for i in range(0, whole, MAX_LINE)]
        parts.append(self._entry(stream, line[whole:], True, ts))
        return b"".join(parts)

    @staticmethod
    def _entry(stream: str, line: bytes, complete: bool, ts: str) -> bytes:
        end = b'\\n","stream":"' if complete else b'","stream":"'
        return b'{"log":"' + _escape_bytes(line) + end + f'{stream}","time":"{ts}"}}\n'.encode()

    def _append(self, out: bytes) -> None:
        if not self.max_size:
            self._write_all(out)
            return
        start = 0
        while start < len(out):
            if self._size >= self.max_size:
                self._rotate()
            # Docker checks the size before each entry: the entries up to the one that reaches max-size go here.
            end = out.find(b"\n", start + self.max_size - self._size - 1) + 1 or len(out)
            self._write_all(memoryview(out)[start:end])
            start = end

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            self._size += n
            view = view[n:]

    def _rotate(self) -> None:
        if self.max_file < 2:
            os.ftruncate(self._fd, 0)
        else:
            for i in range(self.max_file - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{i - 1}", f"{self.path}.{i}")
                except FileNotFoundError:
                    pass
            os.rename(self.path, f"{self.path}.1")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
            os.close(self._fd)
            self._fd = fd
        self._size = 0


# --- options -------------------------------------------------------------------------------

_LOG_OPTS = {"max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag"}
_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?(?:i?b)?", re.IGNORECASE)
_INT = re.compile(r"[+-]?[0-9]+")
_UNITS = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True}
_BOOLS.update({"0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False})


def parse_log_opts(opts: dict[str, str]) -> tuple[int, int]:
    """(max_size, max_file) from HostConfig.LogConfig.Config, with Docker's checks and messages.

    max-size uses decimal units as Docker's (units.FromHumanSize: 10m = 10,000,000 bytes); 0 means
    no limit. compress, labels, env and tag are Docker's options too and are accepted, but hull
    neither compresses rotated files nor writes "attrs".
    """
    for key in opts:
        if key not in _LOG_OPTS:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    max_size = 0
    if "max-size" in opts:
        value = opts["max-size"]
        m = _SIZE.fullmatch(value)
        if m is None:
            raise InvalidArgument(f"invalid size: '{value}'")
        max_size = int(float(m.group(1)) * _UNITS.get((m.group(2) or "").lower(), 1))
        if max_size <= 0:
            raise InvalidArgument("max-size must be a positive number")
    max_file = 1
    if "max-file" in opts:
        value = opts["max-file"]
        if _INT.fullmatch(value) is None:
            raise InvalidArgument(f'strconv.Atoi: parsing "{value}": invalid syntax')
        max_file = int(value)
        if max_file < 1:
            raise InvalidArgument("max-file cannot be less than 1")
    if "compress" in opts:
        if opts["compress"] not in _BOOLS:
            raise InvalidArgument(f'strconv.ParseBool: parsing "{opts["compress"]}": invalid syntax')
        if _BOOLS[opts["compress"]] and (max_file == 1 or not max_size):
            raise InvalidArgument("compress cannot be true when max-file is less than 2 or max-size is not set")
    return max_size, max_file


# --- reader --------------------------------------------------------------------------------


# A NamedTuple, not a frozen dataclass: the shim's lean monitor imports this module for the
# writer, and dataclasses would pull in inspect and ast (over a megabyte per shim).
class LogOptions(NamedTuple):
    """What `docker logs` asks for. since/until are unix seconds; tail None means every line."""

    stdout: bool = True
    stderr: bool = True
    since: float | None = None
    until: float | None = None
    tail: int | None = None
    timestamps: bool = False
    follow: bool = False



# An entry exactly as Docker's json-file driver and JsonLogWriter write it, with a UTC time.
_LINE = (
    rb'\{"log":"([^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*)","stream":"(stdout|stderr)",'
    rb'"time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z)"\}'
)
_ENTRY_LINE = re.compile(_LINE)
# re.split with this gives [gap, log, stream, time, gap, log, ...] in C; all gaps empty = every line matched.
_ENTRY = re.compile(b"^" + _LINE + b"\n", re.MULTILINE)
_STREAMS = {b"stdout": STDOUT, b"stderr": STDERR}
_SEEN = 64
_FIXED_LEN = len("2006-01-02T15:04:05.000000000Z")


def _fixed(stamp: bytes) -> bytes:
    """RFC3339NanoFixed of a UTC time as _LINE matched it. In this form times sort as bytes."""
    if len(stamp) == _FIXED_LEN:
        return stamp
    if stamp[19:20] == b".":
        return stamp[:20] + stamp[20:-1].ljust(9, b"0") + b"Z"
    return stamp[:19] + b".000000000Z"


def _unescape(body: bytes) -> bytes:
    """The bytes a JSON string body (valid UTF-8, no quotes) stands for; ValueError if it is not one."""
    plain = body.replace(b"\\n", b"\n")
    if b"\\" not in plain:  # only \n escapes (a backslash left over means \\ or another escape)
        return plain
    return json.loads(b'"' + body + b'"').encode("utf-8", _GO_REPLACE)


class _Decoder:
    """Turns blocks of whole log lines into (stream, payload) runs as `options` asks."""

    def __init__(self, options: LogOptions) -> None:
        self.options = options
        self.since = None if options.since is None else _fixed_time(round(options.since * 1e9))
        self.until = None if options.until is None else _fixed_time(round(options.until * 1e9))
        self.until_ns = None if options.until is None else round(options.until * 1e9)
        self.stamps = options.timestamps or self.since is not None or self.until is not None
        self.wanted = {b"stdout": options.stdout, b"stderr": options.stderr}
        self.past_until = False  # an entry later than `until` was seen: Docker stops there

    def decode(self, block: bytes) -> list[tuple[int, bytes]]:
        parts = _ENTRY.split(block)
        if not any(parts[0::4]) and (block.isascii() or _valid_utf8(block)):
            stamps = [t if len(t) == _FIXED_LEN else _fixed(t) for t in parts[3::4]] if self.stamps else []
            try:
                return self._runs(parts[1::4], parts[2::4], stamps, True)
            except ValueError:  # an escape JSON does not know: let json.loads judge each line
                pass
        logs, streams, stamps = [], [], []
        for line in block.split(b"\n"):
            entry = _parse(line)
            if entry is not None:
                logs.append(entry[0])
                streams.append(entry[1])
                stamps.append(entry[2])
        return self._runs(logs, streams, stamps if self.stamps else [], False)

    def _runs(
        self, logs: list[bytes], streams: list[bytes], stamps: list[bytes], escaped: bool
    ) -> list[tuple[int, bytes]]:
        """Filter by time, cut into runs of one stream, and make each run's payload."""
        if self.until is not None:
            late = next((i for i, t in enumerate(stamps) if t > self.until), None)
            if late is not None:
                self.past_until = True
                del logs[late:], streams[late:], stamps[late:]
        if self.since is not None:
            since = self.since
            keep = [i for i, t in enumerate(stamps) if t >= since]
            if len(keep) < len(stamps):
                logs, streams, stamps = [logs[i] for i in keep], [streams[i] for i in keep], [stamps[i] for i in keep]
        if not logs:
            return []
        if streams.count(streams[0]) == len(streams):
            bounds = [0, len(streams)]
        else:
            bounds = [0, *(i for i in range(1, len(streams)) if streams[i] != streams[i - 1]), len(streams)]
        runs = []
        for a, b in itertools.pairwise(bounds):
            if not self.wanted[streams[a]]:
                continue
            if self.options.timestamps:
                pieces = [b" "] * (3 * (b - a))
                pieces[0::3] = stamps[a:b]
                pieces[2::3] = logs[a:b]
            else:
                pieces = logs[a:b]
            joined = b"".join(pieces)
            runs.append((_STREAMS[streams[a]], _unescape(joined) if escaped else joined))
        return runs


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _parse(line: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(payload, stream, fixed time) of one log line, or None if it is not a log entry (skipped)."""
    m = _ENTRY_LINE.fullmatch(line)
    try:
        if m is not None:
            return _unescape(m.group(1)), m.group(2), _fixed(m.group(3))
    except ValueError:
        pass  # invalid UTF-8 or a bad escape: json.loads below replaces or refuses it as Go does
    if not line.strip():
        return None
    try:
        obj = json.loads(line.decode("utf-8", _GO_REPLACE))
        stream = obj["stream"].encode()
        if stream not in _STREAMS:
            return None
        return obj.get("log", "").encode("utf-8", _GO_REPLACE), stream, _fixed_time(_parse_time(obj["time"].encode()))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _log_files(path: str) -> list[str]:
    """The log's files, oldest first: path.N ... path.1, path (those that exist)."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    rotated = sorted(
        (int(n[len(base) + 1 :]) for n in names if n.startswith(base + ".") and n[len(base) + 1 :].isdigit()),
        reverse=True,
    )
    files = [f"{path}.{i}" for i in rotated]
    return [*files, path] if base in names else files


def _open_all(paths: list[str]) -> list[int]:
    """Open what still exists of `paths` (oldest first), each file once, in that order.

    The fds pin each file's content whatever renames follow. Opening newest first means a
    rotation meanwhile can only make us meet a file twice (it moved up to the next name we open),
    never skip one.
    """
    fds: list[int] = []
    seen = set()
    for p in reversed(paths):
        try:
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) in seen:
            os.close(fd)
            continue
        seen.add((st.st_dev, st.st_ino))
        fds.append(fd)
    return fds[::-1]


def _tail_start(fds: list[int], count: int) -> tuple[int, int]:
    """(index into fds, offset) where the last `count` entries begin, counting back across files.

    An entry ends with its newline, so the wanted entries start after the (count+1)-th newline
    from the end; an unfinished line at the end of the newest file is no entry.
    """
    for index in range(len(fds) - 1, -1, -1):
        need = count + 1
        pos = os.fstat(fds[index]).st_size
        while pos > 0:
            start = max(0, pos - READ_BLOCK)
            block = os.pread(fds[index], pos - start, start)
            found = block.count(b"\n")
            if found >= need:
                end = len(block)
                for _ in range(need):
                    end = block.rfind(b"\n", 0, end)
                return index, start + end + 1
            need -= found
            pos = start
        count = need - 1  # still wanted from older files
        if count == 0:
            return index, 0
    return 0, 0


class _FileReader:
    """Reads whole lines from one fd, from an offset on; keeps an unfinished last line for later."""

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = fd
        self.offset = offset
        self.rest = b""
        self.seen = b""  # the last bytes read, to notice that the file was truncated and written again

    def blocks(self) -> Iterator[bytes]:
        while True:
            data = os.pread(self.fd, READ_BLOCK, self.offset)
            if not data:
                return
            self.offset += len(data)
            self.seen = data[-_SEEN:]
            data = self.rest + data if self.rest else data
            cut = data.rfind(b"\n") + 1
            self.rest = data[cut:]
            if cut:
                yield data[:cut]

    def truncated(self) -> bool:
        """Whether max-file 1 rotated the file (truncated it) since the last read; if so, start over.

        The file may have grown past our offset again by now: then the bytes before the offset
        are no longer the ones we read (their times differ).
        """
        if self.seen and os.pread(self.fd, len(self.seen), self.offset - len(self.seen)) != self.seen:
            self.offset, self.rest, self.seen = 0, b"", b""
            return True
        return False


async def read_logs(path: str, options: LogOptions, *, running: Callable[[], bool]) -> AsyncIterator[tuple[int, bytes]]:
    """The log at `path` (and its rotated files) as (stream 1|2, payload) pieces, as `docker logs` shows it.

    A payload holds one or many consecutive entries of one stream; with `timestamps` each entry
    starts with its time (Docker's fixed nine-digit RFC3339Nano) and a space. `tail` counts entries
    from the end across files, before since/until and the stream filter apply (as Docker does);
    None or a negative tail means all. With `follow`, new output is read as it comes, across
    rotations, until `running()` is False and the file is drained, or the clock passes `until`.
    `running()` must turn False only once the writer has closed the log (the shim has flushed
    it), or the last lines may be missed.
    """
    decoder = _Decoder(options)
    # Every file is opened up front: a rotation while we read renames them, but the fds keep their content.
    readers = [_FileReader(fd, 0) for fd in _open_all(_log_files(path))]
    try:
        if options.tail is not None and options.tail >= 0 and readers:
            index, offset = _tail_start([r.fd for r in readers], options.tail)
            for r in readers[:index]:
                os.close(r.fd)
            del readers[:index]
            readers[0].offset = offset
        for reader in readers:
            for run in _drain(reader, decoder):
                yield run
            if decoder.past_until:
                return
        if options.follow:
            async for run in _follow(path, decoder, readers, running):
                yield run
    finally:
        for reader in readers:
            os.close(reader.fd)


def _drain(reader: _FileReader, decoder: _Decoder) -> Iterator[tuple[int, bytes]]:
    for block in reader.blocks():
        yield from decoder.decode(block)
        if decoder.past_until:
            return


async def _follow(
    path: str, decoder: _Decoder, readers: list[_FileReader], running: Callable[[], bool]
) -> AsyncIterator[tuple[int, bytes]]:
    """Go on reading the newest file as it grows; after a rotation, finish it, then the files rotated since."""
    while True:
        # Asked before reading: once the writer is gone, one more pass that finds nothing ends the follow.
        stopped = not running() or (decoder.until_ns is not None and time.time_ns() > decoder.until_ns)
        got = False
        if readers:
            got = readers[-1].truncated()
            for run in _drain(readers[-1], decoder):
                got = True
                yield run
            if decoder.past_until:
                return
        newer = _rotated_since(path, readers[-1] if readers else None)
        if newer:
            if readers:
                # Whatever reached the old file between our last read and its rename.
                for run in _drain(readers[-1], decoder):
                    yield run
                os.close(readers.pop().fd)
            readers.extend(_FileReader(fd, 0) for fd in newer)
            while len(readers) > 1:
                for run in _drain(readers[0], decoder):
                    yield run
                os.close(readers.pop(0).fd)
            continue
        if stopped and not got:
            return
        if not got:
            import asyncio  # here, not at the top: the shim's lean monitor imports this module (see LogOptions)

            await asyncio.sleep(FOLLOW_POLL)


def _rotated_since(path: str, reader: _FileReader | None) -> list[int]:
    """If `path` is no longer the file `reader` reads: fds of the files written after it, oldest first.

    The last of them is the new `path`; those before it were rotated since `reader`'s file
    (all the rotated files, if ours was dropped as the oldest).
    """
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return []
    if reader is None:
        return _open_all([path])
    mine = os.fstat(reader.fd)
    if (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino):
        return []
    fds = _open_all(_log_files(path))
    for i, fd in enumerate(fds):
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
            for older in fds[: i + 1]:
                os.close(older)
            return fds[i + 1 :]
    return fds
