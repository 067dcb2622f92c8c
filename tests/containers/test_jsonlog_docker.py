"""hull's json-file logs against real Docker's: the same bytes for the same output, and each reads the other's.

A private dockerd runs busybox containers; their `<id>-json.log` files are compared with what
JsonLogWriter makes of the same output (times aside), read with `read_logs`, and replaced with
hull-written logs that `docker logs` must then show.
"""

import asyncio
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.containers.jsonlog import JsonLogWriter, LogOptions, read_logs
from hull.testing.dockerd import DockerDaemon

pytestmark = pytest.mark.container

IMAGE = "hull-jsonlog-busybox"
# Every kind of escape, invalid UTF-8, a 16K line, a longer one, stderr, and no newline at the end.
SCRIPT = (
    r"""printf 'a\tb<c>&d"e\\f\rg\001h\177i\010\014\n'; """
    r"printf '\342\200\250 \342\200\251 \357\277\275 \303\251 \355\240\200 \342\202 x \300\200 \377 end\n'; "
    r"printf 'err line\n' >&2; "
    r"head -c 16384 /dev/zero | tr '\0' y; echo; "
    r"head -c 40000 /dev/zero | tr '\0' x; echo; "
    r"printf 'no newline at end'"
)
STDOUT = (
    b'a\tb<c>&d"e\\f\rg\x01h\x7fi\x08\x0c\n'
    b"\xe2\x80\xa8 \xe2\x80\xa9 \xef\xbf\xbd \xc3\xa9 \xed\xa0\x80 \xe2\x82 x \xc0\x80 \xff end\n"
    + b"y" * 16384
    + b"\n"
    + b"x" * 40000
    + b"\nno newline at end"
)
STDERR = b"err line\n"
# What is left after the format: one U+FFFD per byte of invalid UTF-8, as Go decodes.
R = "\ufffd".encode()
SHOWN = STDOUT.replace(b"\xed\xa0\x80", R * 3).replace(b"\xe2\x82 ", R * 2 + b" ").replace(b"\xc0\x80", R * 2)
SHOWN = SHOWN.replace(b"\xff", R)
TIME = re.compile(rb'"time":"[^"]*"')


@pytest.fixture(scope="module")
def docker(busybox_rootfs: Path) -> Iterator[DockerDaemon]:
    daemon = DockerDaemon()
    try:
        rootfs = subprocess.run(["tar", "-C", str(busybox_rootfs), "-c", "."], capture_output=True, check=True)
        daemon.docker("import", "-", IMAGE, input=rootfs.stdout)
        yield daemon
    finally:
        daemon.stop()


def run(docker: DockerDaemon, *args: str) -> tuple[str, Path]:
    """Run a container to its end; its id and its json-file log."""
    cid = docker.docker("run", "-d", "--network", "none", *args).stdout.strip()
    docker.docker("wait", cid)
    return cid, docker.workdir / "data" / "containers" / cid / f"{cid}-json.log"


def docker_logs(docker: DockerDaemon, cid: str, *flags: str) -> tuple[bytes, bytes]:
    done = subprocess.run(
        ["docker", "--host", docker.host, "logs", *flags, cid], capture_output=True, timeout=120, check=True
    )
    return done.stdout, done.stderr


def hull_logs(path: Path, **options: object) -> tuple[bytes, bytes]:
    async def collect() -> list[tuple[int, bytes]]:
        return [item async for item in read_logs(str(path), LogOptions(**options), running=lambda: False)]  # type: ignore[arg-type]

    items = asyncio.run(collect())
    return b"".join(p for s, p in items if s == 1), b"".join(p for s, p in items if s == 2)


def by_stream(data: bytes, stream: bytes) -> list[bytes]:
    """The lines of one stream with their times blanked (the two streams' order depends on timing)."""
    return [TIME.sub(b'"time":""', line) for line in data.splitlines() if b'"stream":"' + stream + b'"' in line]


def test_writer_makes_the_bytes_docker_makes(docker: DockerDaemon, tmp_path: Path) -> None:
    _, theirs = run(docker, IMAGE, "sh", "-c", SCRIPT)
    ours = tmp_path / "ours-json.log"
    w = JsonLogWriter(str(ours))
    for i in range(0, len(STDOUT), 1000):  # in pieces, as a pipe delivers it
        w.write("stdout", STDOUT[i : i + 1000])
    w.write("stderr", STDERR)
    w.close()
    for stream in (b"stdout", b"stderr"):
        assert by_stream(ours.read_bytes(), stream) == by_stream(theirs.read_bytes(), stream)


def test_reader_shows_dockers_log_as_docker_logs_does(docker: DockerDaemon) -> None:
    cid, theirs = run(docker, IMAGE, "sh", "-c", SCRIPT)
    assert hull_logs(theirs) == docker_logs(docker, cid) == (SHOWN, STDERR)
    assert hull_logs(theirs, timestamps=True) == docker_logs(docker, cid, "-t")
    assert hull_logs(theirs, tail=2) == docker_logs(docker, cid, "--tail", "2")


def test_reader_follows_dockers_rotation(docker: DockerDaemon) -> None:
    cid, theirs = run(docker, "--log-opt", "max-size=2k", "--log-opt", "max-file=3", IMAGE, "seq", "1000")
    assert sorted(p.name for p in theirs.parent.glob("*-json.log*")) == [theirs.name + s for s in ("", ".1", ".2")]
    out, err = hull_logs(theirs)
    assert (out, err) == docker_logs(docker, cid)
    assert out.endswith(b"\n999\n1000\n") and len(out.splitlines()) > 30
    assert hull_logs(theirs, tail=40) == docker_logs(docker, cid, "--tail", "40")


def test_docker_reads_the_log_hull_wrote(docker: DockerDaemon) -> None:
    cid, theirs = run(docker, IMAGE, "true")
    theirs.unlink()
    w = JsonLogWriter(str(theirs))
    for i in range(0, len(STDOUT), 1000):
        w.write("stdout", STDOUT[i : i + 1000])
        w.write("stderr", STDERR)
    w.close()
    out, err = docker_logs(docker, cid)
    assert (out, err) == hull_logs(theirs)
    assert out == SHOWN
    assert err == STDERR * len(range(0, len(STDOUT), 1000))
    assert docker_logs(docker, cid, "-t") == hull_logs(theirs, timestamps=True)
    assert docker_logs(docker, cid, "--tail", "3") == hull_logs(theirs, tail=3)
