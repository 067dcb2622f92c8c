"""`hull exec` end to end, against hulld and against dockerd: the same answers from both."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from hull.testing.terminal import PtySession

if TYPE_CHECKING:
    from conftest import Engine  # tests/cli/conftest.py (type only: test directories are not packages)

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def box(engine: Engine) -> Iterator[str]:
    cid = engine.hull("run", "-d", "-e", "FROM_CTR=1", engine.image, "sleep", "1000", check=True).stdout.strip()
    try:
        yield cid
    finally:
        engine.hull("rm", "-f", cid)


def test_output_and_exit_codes(engine: Engine, box: str) -> None:
    r = engine.hull("exec", box, "sh", "-c", "echo out; echo err >&2")
    assert (r.returncode, r.stdout, r.stderr) == (0, "out\n", "err\n")
    assert engine.hull("exec", box, "sh", "-c", "exit 3").returncode == 3
    assert engine.hull("exec", box, "sh", "-c", "nosuch").returncode == 127
    missing = engine.hull("exec", box, "nosuch")
    assert missing.returncode == 126
    assert 'exec: "nosuch": executable file not found in $PATH' in missing.stdout
    assert engine.hull("exec", box, "/etc/passwd").returncode == 126
    r = engine.hull("exec", box)
    assert r.returncode != 0 and "requires at least 2 arguments" in r.stderr


def test_flags(engine: Engine, box: str) -> None:
    r = engine.hull("exec", "-e", "A=b", "-w", "/tmp", "-u", "nobody", box,
                    "sh", "-c", 'echo "$A $FROM_CTR"; pwd; id -u')  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "b 1\n/tmp\n65534\n")
    r = engine.hull("exec", "-i", box, "sh", "-c", "cat; echo done", input=b"typed\n")
    assert (r.returncode, r.stdout) == (0, "typed\ndone\n")
    r = engine.hull("exec", box, "cat", input=b"not sent")  # without -i the process has no stdin
    assert (r.returncode, r.stdout) == (0, "")
    r = engine.hull("exec", "-d", box, "sh", "-c", "echo bg > /tmp/bg")
    assert (r.returncode, r.stdout) == (0, "")
    deadline = time.monotonic() + 10
    while engine.hull("exec", box, "cat", "/tmp/bg").stdout != "bg\n":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_tty(engine: Engine, box: str) -> None:
    env = {**os.environ, "HULL_HOST": engine.host}
    argv = [sys.executable, "-m", "hull.cli.main", "exec", "-it", box, "sh", "-c", "tty; read x; echo got $x"]
    session = PtySession(argv, env)
    try:
        session.expect(rb"/dev/pts/\d+\r\n")
        session.wait_raw()
        session.send(b"hello\r")
        session.expect(rb"got hello\r\n")
        assert session.wait() == 0
        assert b"failed to resize" not in session.output
    finally:
        session.close()


def test_stopped_container(engine: Engine) -> None:
    cid = engine.hull("create", engine.image, "sleep", "1000", check=True).stdout.strip()
    try:
        r = engine.hull("exec", cid, "true")
        assert r.returncode == 1
        assert f"Container {cid} is not running" in r.stderr
    finally:
        engine.hull("rm", "-f", cid)
