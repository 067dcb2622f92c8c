"""json-file logs: the writer's format and rotation, the reader's options, follow, and the frame header.

What Docker itself writes and reads is checked against a real dockerd in test_jsonlog_docker.py;
here the expected bytes are Docker's format as that test found it.
"""

import asyncio
import itertools
import json
import os
import re
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hull.containers import jsonlog
from hull.containers.jsonlog import JsonLogWriter, LogOptions, parse_log_opts, read_logs
from hull.errors import InvalidArgument
from hull.multiplex import frame

pytestmark = pytest.mark.unit

TIME = r'"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z"'
ENTRY = re.compile(rb'\{"log":"(.*)","stream":"(stdout|stderr)",' + TIME.encode() + rb"\}")


def entries(path: Path) -> list[tuple[str, str]]:
    """(stream, log) of each line, after checking the line's exact shape."""
    out = []
    for line in path.read_bytes().splitlines():
        m = ENTRY.fullmatch(line)
        assert m is not None, line
        obj = json.loads(line)
        out.append((obj["stream"], obj["log"]))
    return out


def escaped(path: Path) -> list[bytes]:
    """The raw JSON of each entry's "log" value."""
    return [m.group(1) for m in map(ENTRY.fullmatch, path.read_bytes().splitlines()) if m is not None]


def read(
    path: Path, options: LogOptions | None = None, running: Callable[[], bool] = lambda: False
) -> list[tuple[int, bytes]]:
    async def collect() -> list[tuple[int, bytes]]:
        return [item async for item in read_logs(str(path), options or LogOptions(), running=running)]

    return asyncio.run(collect())


def streams(items: list[tuple[int, bytes]]) -> tuple[bytes, bytes]:
    return b"".join(p for s, p in items if s == 1), b"".join(p for s, p in items if s == 2)


def write_log(path: Path, *chunks: tuple[str, bytes], max_size: int = 0, max_file: int = 1) -> None:
    w = JsonLogWriter(str(path), max_size, max_file)
    for stream, data in chunks:
        w.write(stream, data)
    w.close()


def go_decode(data: bytes) -> bytes:
    """What survives the format: each byte of invalid UTF-8 becomes U+FFFD, as in Go."""
    return "".join("\ufffd" if c == "\ud800" else c for c in data.decode("utf-8", "hull-go-replace")).encode()


# --- writer ----------------------------------------------------------------------------------


def test_one_entry_per_line_with_docker_layout(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    write_log(log, ("stdout", b"hello\nworld\n"), ("stderr", b"oops\n"))
    lines = log.read_bytes().splitlines(keepends=True)
    assert [line[: line.index(b',"time"')] for line in lines] == [
        b'{"log":"hello\\n","stream":"stdout"',
        b'{"log":"world\\n","stream":"stdout"',
        b'{"log":"oops\\n","stream":"stderr"',
    ]
    assert all(re.fullmatch(rb".*," + TIME.encode() + rb"\}\n", line) for line in lines)
    assert os.stat(log).st_mode & 0o777 == 0o640


def test_time_is_go_rfc3339nano_in_utc() -> None:
    base = 1795748400 * 10**9  # 2026-11-27T03:00:00Z
    assert jsonlog._rfc3339nano(base) == "2026-11-27T03:00:00Z"
    assert jsonlog._rfc3339nano(base + 120_000_000) == "2026-11-27T03:00:00.12Z"
    assert jsonlog._rfc3339nano(base + 123_456_789) == "2026-11-27T03:00:00.123456789Z"
    assert jsonlog._rfc3339nano(base + 1) == "2026-11-27T03:00:00.000000001Z"


def test_escaping_is_dockers(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    write_log(
        log,
        ("stdout", b'a\tb<c>&d"e\\f\rg\x01h\x7fi\x08\x0c\n'),
        ("stdout", "\u2028 \u2029 \ufffd \u00e9\U0001f680\n".encode()),
        ("stdout", b"\xed\xa0\x80 \xe2\x82 x \xc0\x80 \xff end\n"),
    )
    assert escaped(log) == [
        b'a\\u0009b\\u003cc\\u003e\\u0026d\\"e\\\\f\\rg\\u0001h\x7fi\\u0008\\u000c\\n',
        "\\u2028 \\u2029 \ufffd \u00e9\U0001f680\\n".encode(),
        b"\\ufffd\\ufffd\\ufffd \\ufffd\\ufffd x \\ufffd\\ufffd \\ufffd end\\n",
    ]


def test_partial_lines_wait_for_their_newline_per_stream(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    w = JsonLogWriter(str(log))
    w.write("stdout", b"hel")
    w.write("stderr", b"err")
    w.write("stdout", b"lo\nwor")
    assert entries(log) == [("stdout", "hello\n")]
    w.write("stderr", b"or\n")
    w.write("stdout", b"ld")
    w.close()
    w.close()  # twice is harmless
    assert entries(log) == [("stdout", "hello\n"), ("stderr", "error\n"), ("stdout", "world")]


def test_long_lines_are_cut_at_16k_as_partial_entries(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    k = jsonlog.MAX_LINE
    w = JsonLogWriter(str(log))
    w.write("stdout", b"a" * (k - 1) + b"\n")  # just fits
    w.write("stdout", b"b" * k + b"\n")  # exactly 16K: a full partial entry, then the newline alone
    w.write("stdout", b"c" * 10000)
    w.write("stdout", b"c" * 10000)  # pending reaches 16K: written before any newline comes
    assert entries(log)[-1] == ("stdout", "c" * k)
    w.write("stdout", b"c\n" + b"d" * (2 * k + 5) + b"\nshort\n")
    w.close()
    assert entries(log) == [
        ("stdout", "a" * (k - 1) + "\n"),
        ("stdout", "b" * k),
        ("stdout", "\n"),
        ("stdout", "c" * k),
        ("stdout", "c" * (20000 - k + 1) + "\n"),
        ("stdout", "d" * k),
        ("stdout", "d" * k),
        ("stdout", "d" * 5 + "\n"),
        ("stdout", "short\n"),
    ]


def test_unknown_stream_is_refused(tmp_path: Path) -> None:
    w = JsonLogWriter(str(tmp_path / "c-json.log"))
    with pytest.raises(KeyError):
        w.write("stdin", b"x\n")
    w.close()


def test_writer_appends_to_an_existing_log(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    write_log(log, ("stdout", b"one\n"))
    write_log(log, ("stdout", b"two\n"))
    assert entries(log) == [("stdout", "one\n"), ("stdout", "two\n")]


# Lines short enough never to be cut, from an alphabet with every kind of escape.
TEXT = st.text(alphabet=st.sampled_from(list('ab \t\r\n"\\<>&\x00\x1f\x7f\u00e9\u2028\u2029\ufffd\U0001f680')))


@settings(max_examples=150)
@given(
    writes=st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), TEXT.map(str.encode)), max_size=30),
    long_line=st.integers(min_value=0, max_value=3 * jsonlog.MAX_LINE),
)
def test_any_output_reads_back_identical(
    tmp_path_factory: pytest.TempPathFactory, writes: list[tuple[str, bytes]], long_line: int
) -> None:
    log = tmp_path_factory.mktemp("prop") / "c-json.log"
    # A long ASCII line somewhere, cut into chunks that cross the 16K boundaries at odd places.
    big = b"L" * long_line + b"\n"
    chunks = [("stdout", big[i : i + 7000]) for i in range(0, len(big), 7000)]
    write_log(log, *writes[: len(writes) // 2], *chunks, *writes[len(writes) // 2 :])
    out, err = streams(read(log))
    assert out == b"".join(d for s, d in writes[: len(writes) // 2] if s == "stdout") + big + b"".join(
        d for s, d in writes[len(writes) // 2 :] if s == "stdout"
    )
    assert err == b"".join(d for s, d in writes if s == "stderr")


@settings(max_examples=150)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=6))
def test_invalid_utf8_reads_back_as_go_replaces_it(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, cuts: list[int]
) -> None:
    log = tmp_path_factory.mktemp("prop") / "c-json.log"
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    write_log(log, *(("stderr", data[a:b]) for a, b in itertools.pairwise(bounds)))
    assert streams(read(log)) == (b"", go_decode(data))


# --- rotation --------------------------------------------------------------------------------


def test_rotation_keeps_max_file_files_of_max_size(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    lines = [b"line %03d\n" % i for i in range(200)]
    w = JsonLogWriter(str(log), max_size=1000, max_file=3)
    for i in range(0, 200, 7):  # batches: a rotation can fall inside one write
        w.write("stdout", b"".join(lines[i : i + 7]))
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    for name in ("c-json.log.2", "c-json.log.1"):
        data = (tmp_path / name).read_bytes()
        last = len(data.splitlines(keepends=True)[-1])
        # Docker's rule: an entry is written while the file is below max-size, so it passes max-size by one entry.
        assert len(data) - last < 1000 <= len(data)
    got = b"".join(log_ for _, log_ in read(log))
    assert got == b"".join(lines[-len(got.splitlines()) :])
    assert len(got.splitlines()) > 25


def test_rotation_is_the_same_whether_lines_come_together_or_alone(tmp_path: Path) -> None:
    lines = [b"%d\n" % i for i in range(500)]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_log(a / "log", ("stdout", b"".join(lines)), max_size=700, max_file=4)
    write_log(b / "log", *(("stdout", line) for line in lines), max_size=700, max_file=4)

    def shape(d: Path) -> list[tuple[str, list[tuple[str, str]]]]:
        return [(p.name, entries(p)) for p in sorted(d.iterdir())]

    assert shape(a) == shape(b)


def test_max_file_1_truncates(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    w = JsonLogWriter(str(log), max_size=500, max_file=1)
    for i in range(100):
        w.write("stdout", b"line %d\n" % i)
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c-json.log"]
    assert log.stat().st_size < 600
    assert entries(log)[-1] == ("stdout", "line 99\n")


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({}, (0, 1)),
        ({"max-size": "10m", "max-file": "3"}, (10_000_000, 3)),
        ({"max-size": "1k"}, (1000, 1)),
        ({"max-size": "1.5KB"}, (1500, 1)),
        ({"max-size": "2 MiB"}, (2_000_000, 1)),
        ({"max-size": "123"}, (123, 1)),
        ({"max-size": "1g", "max-file": "+2", "compress": "true"}, (10**9, 2)),
        ({"labels": "a,b", "env": "X", "tag": "{{.Name}}", "compress": "false"}, (0, 1)),
    ],
)
def test_parse_log_opts(opts: dict[str, str], expected: tuple[int, int]) -> None:
    assert parse_log_opts(opts) == expected


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"max-size": "ten"}, "invalid size: 'ten'"),
        ({"max-size": "10x"}, "invalid size: '10x'"),
        ({"max-size": "-1"}, "invalid size: '-1'"),
        ({"max-size": "0"}, "max-size must be a positive number"),
        ({"max-file": "many"}, 'strconv.Atoi: parsing "many": invalid syntax'),
        ({"max-file": "0"}, "max-file cannot be less than 1"),
        ({"max-size": "1m", "compress": "yes"}, 'strconv.ParseBool: parsing "yes": invalid syntax'),
        (
            {"compress": "true", "max-file": "3"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        (
            {"max-size": "1m", "compress": "1"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        ({"max-buffer-size": "4m"}, "unknown log opt 'max-buffer-size' for json-file log driver"),
    ],
)
def test_parse_log_opts_errors_are_dockers(opts: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_log_opts(opts)
    assert e.value.message == message


# --- reader ----------------------------------------------------------------------------------


def handmade(path: Path, *items: tuple[str, str, str]) -> None:
    """A log as Docker writes it, with chosen times: (stream, log, time) per entry."""
    with open(path, "a") as f:
        for stream, log, t in items:
            f.write(json.dumps({"log": log, "stream": stream, "time": t}, separators=(",", ":")) + "\n")


def times_log(path: Path) -> None:
    handmade(
        path,
        ("stdout", "a\n", "2026-11-27T10:00:00Z"),
        ("stderr", "b\n", "2026-11-27T10:00:00.5Z"),
        ("stdout", "c\n", "2026-11-27T10:00:01.000000001Z"),
        ("stdout", "d\n", "2026-11-27T10:00:02.123456789Z"),
        ("stdout", "e\n", "2026-11-27T10:00:03Z"),
    )


T0 = 1795773600.0  # 2026-11-27T10:00:00Z


def test_consecutive_entries_of_a_stream_come_as_one_payload(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    write_log(log, ("stdout", b"".join(b"%d\n" % i for i in range(1000))), ("stderr", b"x\ny\n"), ("stdout", b"z\n"))
    assert read(log) == [(1, b"".join(b"%d\n" % i for i in range(1000))), (2, b"x\ny\n"), (1, b"z\n")]


def test_timestamps_are_fixed_width_as_docker_prints_them(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    times_log(log)
    assert read(log, LogOptions(timestamps=True)) == [
        (1, b"2026-11-27T10:00:00.000000000Z a\n"),
        (2, b"2026-11-27T10:00:00.500000000Z b\n"),
        (
            1,
            b"2026-11-27T10:00:01.000000001Z c\n2026-11-27T10:00:02.123456789Z d\n2026-11-27T10:00:03.000000000Z e\n",
        ),
    ]


def test_stream_filter(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    times_log(log)
    assert read(log, LogOptions(stderr=False)) == [(1, b"a\n"), (1, b"c\nd\ne\n")]
    assert read(log, LogOptions(stdout=False)) == [(2, b"b\n")]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (LogOptions(tail=0), b""),
        (LogOptions(tail=2), b"de"),
        (LogOptions(tail=4), b"bcde"),
        (LogOptions(tail=99), b"abcde"),
        (LogOptions(tail=-1), b"abcde"),
        (LogOptions(tail=4, stderr=False), b"cde"),  # tail counts entries of both streams, as Docker's
        (LogOptions(since=T0 + 0.5), b"bcde"),
        (LogOptions(since=T0 + 0.6), b"cde"),
        (LogOptions(until=T0 + 1.5), b"abc"),
        (LogOptions(until=T0 + 3), b"abcde"),
        (LogOptions(since=T0 + 1, until=T0 + 2.2), b"cd"),
        (LogOptions(tail=3, since=T0 + 2), b"de"),
    ],
)
def test_tail_since_until(tmp_path: Path, options: LogOptions, expected: bytes) -> None:
    log = tmp_path / "c-json.log"
    times_log(log)
    assert b"".join(p for _, p in read(log, options)).replace(b"\n", b"") == expected


def test_tail_counts_across_rotated_files_and_skips_an_unfinished_line(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    lines = [b"%d\n" % i for i in range(300)]
    write_log(log, *(("stdout", line) for line in lines), max_size=500, max_file=10)
    assert len(list(tmp_path.iterdir())) > 3
    newest = len(entries(log))
    with open(log, "ab") as f:
        f.write(b'{"log":"half a line as the writer')
    for n in (1, newest, newest + 1, newest + 40):
        assert b"".join(p for _, p in read(log, LogOptions(tail=n))) == b"".join(lines[-n:])
    everything = b"".join(p for _, p in read(log))
    assert everything == b"".join(lines[-len(everything.splitlines()) :])


def test_big_log_reads_in_blocks(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    data = b"".join(b"line number %d\n" % i for i in range(200_000))
    write_log(log, ("stdout", data))
    assert log.stat().st_size > 3 * jsonlog.READ_BLOCK
    assert streams(read(log)) == (data, b"")
    assert read(log, LogOptions(tail=3)) == [(1, b"line number 199997\nline number 199998\nline number 199999\n")]
    stamped = streams(read(log, LogOptions(timestamps=True)))[0].splitlines()
    assert len(stamped) == 200_000 and stamped[-1].endswith(b"Z line number 199999")


def test_lines_of_other_writers_are_read_by_json(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    log.write_bytes(
        b'{"log":"with attrs\\n","stream":"stdout","attrs":{"tag":"x"},"time":"2026-11-27T10:00:00Z"}\n'
        b'{ "log": "spaced\\n", "stream": "stdout", "time": "2026-11-27T10:00:01Z" }\n'
        b'{"log":"zoned\\n","stream":"stdout","time":"2026-11-27T12:00:02+02:00"}\n'
        b'{"log":"raw \xff byte \\ud800 surrogate \\ud83d\\ude80\\n","stream":"stdout","time":"2026-11-27T10:00:03Z"}\n'
        b'{"log":"bad escape \\q\\n","stream":"stdout","time":"2026-11-27T10:00:04Z"}\n'
        b"not json at all\n"
        b'{"stream":"stdout","time":"2026-11-27T10:00:05Z"}\n'
        b'{"log":"other stream\\n","stream":"stdin","time":"2026-11-27T10:00:06Z"}\n'
        b'{"log":"last\\n","stream":"stderr","time":"2026-11-27T10:00:07Z"}\n'
    )
    assert read(log, LogOptions(timestamps=True)) == [
        (
            1,
            b"2026-11-27T10:00:00.000000000Z with attrs\n"
            b"2026-11-27T10:00:01.000000000Z spaced\n"
            b"2026-11-27T10:00:02.000000000Z zoned\n"
            + "2026-11-27T10:00:03.000000000Z raw \ufffd byte \ufffd surrogate \U0001f680\n".encode()
            + b"2026-11-27T10:00:05.000000000Z ",
        ),
        (2, b"2026-11-27T10:00:07.000000000Z last\n"),
    ]


def test_missing_log_reads_empty(tmp_path: Path) -> None:
    assert read(tmp_path / "nothing-json.log") == []
    assert read(tmp_path / "nothing-json.log", LogOptions(tail=5, follow=True)) == []


# --- follow ----------------------------------------------------------------------------------


def test_follow_reads_across_rotations_until_not_running(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    write_log(log, ("stdout", b"before\n"))
    lines = [b"follow %04d\n" % i for i in range(3000)]
    done = threading.Event()

    def produce() -> None:
        w = JsonLogWriter(str(log), max_size=4000, max_file=50)
        for i in range(0, len(lines), 30):
            w.write("stdout" if i % 60 else "stderr", b"".join(lines[i : i + 30]))
            time.sleep(0.002)
        w.write("stdout", b"no newline")
        w.close()
        done.set()

    async def follow() -> list[tuple[int, bytes]]:
        writer = asyncio.create_task(asyncio.to_thread(produce))
        got = [item async for item in read_logs(str(log), LogOptions(follow=True), running=lambda: not done.is_set())]
        await writer
        return got

    got = asyncio.run(follow())
    assert len(list(tmp_path.iterdir())) > 5  # it did rotate while we followed
    assert b"".join(p for _, p in got) == b"before\n" + b"".join(lines) + b"no newline"
    assert streams(got)[1] == b"".join(b"".join(lines[i : i + 30]) for i in range(0, len(lines), 60))


def test_follow_with_tail_waits_for_the_file_and_stops_at_until(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"

    async def follow() -> tuple[list[tuple[int, bytes]], float]:
        async def produce() -> None:
            await asyncio.sleep(0.2)
            write_log(log, ("stdout", b"first\n"))
            await asyncio.sleep(0.2)
            write_log(log, ("stdout", b"second\n"))

        writer = asyncio.create_task(produce())
        start = time.monotonic()
        options = LogOptions(follow=True, tail=0, until=time.time() + 1.0)
        got = [item async for item in read_logs(str(log), options, running=lambda: True)]
        await writer
        return got, time.monotonic() - start

    got, took = asyncio.run(follow())
    assert got == [(1, b"first\n"), (1, b"second\n")]
    assert 0.9 < took < 3


def test_follow_of_a_stopped_container_drains_and_returns(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    write_log(log, ("stdout", b"a\nb\n"))
    assert read(log, LogOptions(follow=True, tail=1)) == [(1, b"b\n")]


def test_follow_survives_truncation_by_max_file_1(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    done = threading.Event()

    def produce() -> None:
        w = JsonLogWriter(str(log), max_size=300, max_file=1)
        for i in range(200):
            w.write("stdout", b"t %03d\n" % i)
            time.sleep(0.001)
        w.close()
        done.set()

    async def follow() -> list[tuple[int, bytes]]:
        writer = asyncio.create_task(asyncio.to_thread(produce))
        got = [item async for item in read_logs(str(log), LogOptions(follow=True), running=lambda: not done.is_set())]
        await writer
        return got

    got = b"".join(p for _, p in asyncio.run(follow())).splitlines()
    # Lines written between a poll and a truncation are lost (as with Docker); what is read is whole and in order.
    assert got == sorted(got) and got[-1] == b"t 199" and all(re.fullmatch(rb"t \d{3}", line) for line in got)


# --- framing ---------------------------------------------------------------------------------


def test_frame_is_dockers_multiplexing_header() -> None:
    assert frame(1, b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    big = b"x" * 70000
    assert frame(2, big) == b"\x02\x00\x00\x00" + struct.pack(">I", 70000) + big
    assert frame(1, b"") == b"\x01" + b"\x00" * 7
