"""Unit tests of hull.cli.units, hull.cli.format, hull.cli.streams and the record builders."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hull import humanize
from hull.cli import format as fmt
from hull.cli import units
from hull.cli.client import APIClient, CLIError, filters_json, resolve_host
from hull.cli.commands.containers import container_record, split_reference
from hull.cli.commands.images import image_records
from hull.cli.commands.system import df_records, format_event
from hull.cli.streams import copy_stream, frames, is_multiplexed
from hull.multiplex import frame as encode_frame

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64m", 67108864), ("64M", 67108864), ("1g", 1 << 30), ("512k", 524288), ("100", 100), ("1.5g", 1610612736),
     ("64mb", 67108864), ("64MiB", 67108864), ("2 GB", 2 << 30)],
)  # fmt: skip
def test_ram_in_bytes(text: str, expected: int) -> None:
    assert units.ram_in_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "m", "64x", "-1"])
def test_ram_in_bytes_rejects(text: str) -> None:
    with pytest.raises(CLIError):
        units.ram_in_bytes(text)


def test_nano_cpus() -> None:
    assert units.nano_cpus("1.5") == 1_500_000_000
    assert units.nano_cpus("0.01") == 10_000_000
    with pytest.raises(CLIError):
        units.nano_cpus("0.0000000001")


def test_go_duration_and_timestamp() -> None:
    assert units.go_duration("1h30m") == 5400
    assert units.go_duration("10s") == 10
    assert units.go_duration("1.5ms") == pytest.approx(0.0015)
    with pytest.raises(ValueError):
        units.go_duration("10")
    assert units.timestamp("10m", now=1000.0) == "400"
    assert units.timestamp("1700000000") == "1700000000"
    assert units.timestamp("2024-01-02T03:04:05Z") == "1704164645.000000000"
    with pytest.raises(CLIError):
        units.timestamp("yesterday")


def test_ulimit_restart_ports() -> None:
    assert units.ulimit("nofile=1024:2048") == {"Name": "nofile", "Hard": 2048, "Soft": 1024}
    assert units.ulimit("nproc=10") == {"Name": "nproc", "Hard": 10, "Soft": 10}
    assert units.restart_policy("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert units.restart_policy("always") == {"Name": "always", "MaximumRetryCount": 0}
    with pytest.raises(CLIError):
        units.restart_policy("sometimes")
    assert units.port_spec("8080:80") == [("80/tcp", {"HostIp": "", "HostPort": "8080"})]
    assert units.port_spec("127.0.0.1::53/udp") == [("53/udp", {"HostIp": "127.0.0.1", "HostPort": ""})]
    assert [p for p, _ in units.port_spec("7000-7001:8000-8001")] == ["8000/tcp", "8001/tcp"]


@pytest.mark.parametrize(
    ("size", "precision", "expected"),
    [(0, 4, "0B"), (1984000, 4, "1.984MB"), (1984000, 3, "1.98MB"), (4260000, 3, "4.26MB"), (999, 3, "999B"),
     (1000, 3, "1kB"), (1_500_000_000, 3, "1.5GB")],
)  # fmt: skip
def test_human_size(size: int, precision: int, expected: str) -> None:
    assert humanize.human_size(size, precision) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.5, "Less than a second"), (1, "1 second"), (3, "3 seconds"), (60, "About a minute"), (150, "2 minutes"),
     (3600, "About an hour"), (7200, "2 hours"), (3 * 86400, "3 days"), (20 * 86400, "2 weeks"),
     (90 * 86400, "3 months"), (800 * 86400, "2 years")],
)  # fmt: skip
def test_human_duration(seconds: float, expected: str) -> None:
    assert humanize.human_duration(seconds) == expected


def test_tabwrite_matches_docker() -> None:
    text = "CONTAINER ID\tIMAGE\tPORTS\tNAMES\n5b7017f42c41\tbusybox\t\tt2"
    assert fmt.tabwrite(text).splitlines() == [
        "CONTAINER ID   IMAGE     PORTS     NAMES",
        "5b7017f42c41   busybox             t2",
    ]


def test_ellipsis_and_ids() -> None:
    assert fmt.ellipsis("sh -c 'echo out; echo err'", 20) == "sh -c 'echo out; ec…"
    assert fmt.short_id("sha256:" + "a" * 64) == "a" * 12
    assert fmt.short_id("sha256:" + "a" * 64, trunc=False) == "sha256:" + "a" * 64


def test_write_records_table_and_template() -> None:
    out = io.StringIO()
    records = [{"A": "x", "B": "longer value"}, {"A": "yy", "B": "z"}]
    fmt.write_records("table {{.A}}\\t{{.B}}", "", {"A": "COL A", "B": "COL B"}, records, out)
    assert out.getvalue() == "COL A     COL B\nx         longer value\nyy        z\n"
    out = io.StringIO()
    fmt.write_records("{{.A}}-{{.B}}", "", {}, records, out)
    assert out.getvalue() == "x-longer value\nyy-z\n"
    with pytest.raises(CLIError):
        fmt.write_records("{{.A", "", {}, records, io.StringIO())


def test_container_record() -> None:
    c = {"Id": "ab" * 32, "Names": ["/web"], "Image": "busybox", "Command": "sleep 100000000000000000000",
         "Created": 1000, "Status": "Up 2 minutes", "State": "running", "Labels": {"k": "v"},
         "Ports": [{"PrivatePort": 80, "Type": "tcp", "PublicPort": 8080, "IP": "0.0.0.0"}], "SizeRw": 0,
         "SizeRootFs": 1984000}  # fmt: skip
    r = container_record(c, trunc=True, now=1150)
    assert r["ID"] == "ab" * 6
    assert r["Command"] == '"sleep 1000000000000…"'
    assert r["RunningFor"] == "2 minutes ago"
    assert r["Ports"] == "0.0.0.0:8080->80/tcp"
    assert r["Size"] == "0B (virtual 1.98MB)"
    assert r["Label"]("k") == "v"


def test_image_records() -> None:
    img = {"Id": "sha256:" + "c" * 64, "RepoTags": ["busybox:latest", "reg:5000/x/y:1"], "RepoDigests": [],
           "Created": 0, "Size": 1984000}  # fmt: skip
    rows = image_records([img], trunc=True, digests=False)
    assert [(r["Repository"], r["Tag"], r["ID"], r["Size"]) for r in rows] == [
        ("busybox", "latest", "c" * 12, "1.98MB"),
        ("reg:5000/x/y", "1", "c" * 12, "1.98MB"),
    ]
    none = image_records([{"Id": "sha256:d", "RepoTags": None, "Created": 0, "Size": 0}], True, False)
    assert (none[0]["Repository"], none[0]["Tag"]) == ("<none>", "<none>")


def test_split_reference() -> None:
    assert split_reference("busybox") == ("busybox", "latest")
    assert split_reference("localhost:5000/a/b:v2") == ("localhost:5000/a/b", "v2")
    assert split_reference("localhost:5000/a") == ("localhost:5000/a", "latest")


def test_df_records() -> None:
    df = {"LayersSize": 1984000, "Images": [{"Size": 1984000, "SharedSize": 0, "Containers": 0}],
          "Containers": [{"SizeRw": 100, "State": "exited"}], "Volumes": [], "BuildCache": []}  # fmt: skip
    rows = df_records(df)
    assert [r["Reclaimable"] for r in rows] == ["1.984MB (100%)", "100B (100%)", "0B", "0B"]


def test_format_event() -> None:
    e = {"Type": "container", "Action": "start", "Actor": {"ID": "abc", "Attributes": {"name": "x", "image": "b"}},
         "timeNano": 1_700_000_000_123_456_789}  # fmt: skip
    line = format_event(e)
    assert line.endswith(".123456789Z container start abc (image=b, name=x)") or ".123456789" in line


@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=300)), max_size=8), st.integers(1, 17))
def test_demux_round_trip(items: list[tuple[int, bytes]], chunk: int) -> None:
    data = b"".join(encode_frame(s, p) for s, p in items)
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        piece = data[pos : pos + min(n, chunk)]
        pos += len(piece)
        return piece

    assert list(frames(read)) == items


def test_copy_stream_splits_stdout_and_stderr() -> None:
    data = io.BytesIO(encode_frame(1, b"out") + encode_frame(2, b"err") + encode_frame(1, b"!"))
    out, err = io.BytesIO(), io.BytesIO()
    copy_stream(data.read, out, err, multiplexed=True)
    assert (out.getvalue(), err.getvalue()) == (b"out!", b"err")


def test_is_multiplexed() -> None:
    assert is_multiplexed("application/vnd.docker.raw-stream", tty=False, api_version=(1, 41))
    assert not is_multiplexed("application/vnd.docker.raw-stream", tty=False, api_version=(1, 43))
    assert is_multiplexed("application/vnd.docker.multiplexed-stream", tty=True, api_version=(1, 43))
    assert not is_multiplexed("", tty=True)


def test_host_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HULL_HOST", raising=False)
    assert resolve_host(None) == ("unix:///run/hull/hull.sock", False)
    monkeypatch.setenv("HULL_HOST", "unix:///tmp/x.sock")
    assert resolve_host(None) == ("unix:///tmp/x.sock", True)
    assert resolve_host("tcp://h:1") == ("tcp://h:1", True)
    assert APIClient("unix:///tmp/x.sock").unix_path == "/tmp/x.sock"
    assert APIClient("tcp://localhost:2375").tcp == ("localhost", 2375)
    assert APIClient("unix:///x", version="1.41").url("/containers/json", {"all": True, "x": None}) == (
        "/v1.41/containers/json?all=1"
    )
    assert filters_json(["status=exited", "status=created"]) == '{"status": {"exited": true, "created": true}}'
    assert "HULL_HOST" in os.environ
