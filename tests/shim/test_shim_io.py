"""A shim's stdio on the real kernel: stdin through attach, a terminal, OOM kills, and a shim
that outlives the process that started it; plus requests it must refuse without harm."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from shimtest import ShimEnv, log_text, read_frames

from hull.errors import Conflict, InvalidArgument
from hull.shim.client import ShimClient
from hull.shim.config import ShimConfig

pytestmark = pytest.mark.container


def test_shim_stdin_through_attach_with_stdin_once(shim_env: ShimEnv) -> None:
    cfg = shim_env.config(["sh", "-c", "cat; echo done"], open_stdin=True, stdin_once=True)

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            reader, writer = await shim.attach(stdin=True, stdout=True, stderr=True)
            watcher, watcher_w = await shim.attach(stdin=False, stdout=True, stderr=False)
            await shim.start()
            writer.write(b"hello\nworld")
            await writer.drain()
            writer.write_eof()  # stdin_once: the container's stdin ends here
            frames, watched = await asyncio.gather(read_frames(reader), read_frames(watcher))
            writer.close()
            watcher_w.close()
            assert frames[1] == watched[1] == b"hello\nworlddone\n"
            assert (await shim.wait())["exit_code"] == 0
            assert log_text(cfg, "stdout") == "hello\nworlddone\n"

    asyncio.run(scenario())


def test_shim_logs_output_with_no_client_attached(shim_env: ShimEnv) -> None:
    cfg = shim_env.config(["sh", "-c", "echo one; echo two >&2; sleep 100"])

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            await shim.start()
            for _ in range(100):  # the container keeps running: the shim must log as output comes
                if log_text(cfg, "stdout") == "one\n" and log_text(cfg, "stderr") == "two\n":
                    break
                await asyncio.sleep(0.05)
            assert (log_text(cfg, "stdout"), log_text(cfg, "stderr")) == ("one\n", "two\n")
            assert (await shim.state())["status"] == "running"

    asyncio.run(scenario())


def test_shim_terminal_output_and_resize(shim_env: ShimEnv) -> None:
    cfg = shim_env.config(["sh", "-c", "stty size; tty; echo out; echo err >&2"], terminal=True)

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            await shim.resize(30, 100)
            reader, writer = await shim.attach(stdin=False, stdout=True, stderr=True)
            await shim.start()
            frames = await read_frames(reader)
            writer.close()
            # One stream on a terminal, with its line discipline's CRLF.
            assert frames == {1: b"30 100\r\n/dev/pts/0\r\nout\r\nerr\r\n", 2: b""}
            assert (await shim.wait())["exit_code"] == 0
            assert log_text(cfg, "stdout") == "30 100\r\n/dev/pts/0\r\nout\r\nerr\r\n"
            with pytest.raises(Conflict):
                await shim.resize(10, 10)

    asyncio.run(scenario())


def test_shim_reports_an_oom_kill(shim_env: ShimEnv) -> None:
    cfg = shim_env.config(["sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived"], memory_limit=8 << 20)

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            await shim.start()
            status = await asyncio.wait_for(shim.wait(), 30)
            assert status["oom_killed"] is True and status["exit_code"] == 137
            assert json.loads(Path(cfg.exit_file).read_text())["oom_killed"] is True
            assert (await shim.state())["oom_killed"] is True
            assert "survived" not in log_text(cfg, "stdout")

    asyncio.run(scenario())


def test_shim_outlives_its_forkserver(shim_env: ShimEnv) -> None:
    cfg = shim_env.config(["sh", "-c", "read line; echo got $line; exit 7"], open_stdin=True)

    async def scenario() -> None:
        async with shim_env:
            assert shim_env.forkserver is not None
            await shim_env.spawn(cfg)
            os.kill(shim_env.forkserver.pid, signal.SIGKILL)  # the daemon and its forkserver die
            await shim_env.forkserver.close()
            shim_env.forkserver = None
            shim = ShimClient(cfg.exec_dir)  # a restarted daemon's client
            assert shim.alive()
            await shim.start()
            assert (await shim.state())["status"] == "running"
            _, writer = await shim.attach(stdin=True, stdout=False, stderr=False)
            writer.write(b"it\n")
            await writer.drain()
            assert (await shim.wait())["exit_code"] == 7
            writer.close()
            assert json.loads(Path(cfg.exit_file).read_text())["exit_code"] == 7
            assert log_text(cfg, "stdout") == "got it\n"

    asyncio.run(scenario())


def test_shim_standalone_handshake(shim_env: ShimEnv, tmp_path: Path) -> None:
    cfg = shim_env.config(["sh", "-c", "echo standalone"])
    bad = shim_env.config(["nosuch"])
    for c in (cfg, bad):
        (tmp_path / f"{c.id}.json").write_text(c.to_json())

    def hull_shim(c: ShimConfig) -> subprocess.CompletedProcess[str]:
        path = tmp_path / f"{c.id}.json"
        argv = [sys.executable, "-m", "hull.shim.main", "--config", str(path)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)

    done = hull_shim(cfg)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["ok"] is True and int(Path(cfg.pid_path).read_text()) == answer["pid"]
    failed = hull_shim(bad)
    assert failed.returncode == 1 and json.loads(failed.stdout)["ok"] is False
    assert "nosuch" in failed.stderr

    async def scenario() -> None:
        shim = ShimClient(cfg.exec_dir)
        await shim.start()
        assert (await shim.wait())["exit_code"] == 0
        assert log_text(cfg, "stdout") == "standalone\n"
        await shim.delete()

    asyncio.run(scenario())


def _raw_bad_lines(path: str) -> None:
    """Raw lines on one connection: each refused, the connection still serves."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        with sock.makefile("rwb") as f:
            for line in (b"garbage", b"[1, 2]", b'{"op": 3}', b'{"op": "nope"}', b'{"op": "kill", "signal": "x"}'):
                f.write(line + b"\n")
                f.flush()
                answer = json.loads(f.readline())
                assert answer["ok"] is False and answer["kind"] == "invalid", answer
            f.write(b'{"op": "state"}\n')
            f.flush()
            assert json.loads(f.readline())["status"] == "created"
            f.write(b"x" * (2 << 20) + b"\n")  # past the line limit: refused, the rest of the line skipped
            f.write(b'{"op": "state"}\n')
            f.flush()
            assert json.loads(f.readline())["kind"] == "invalid"
            assert json.loads(f.readline())["status"] == "created"


def test_shim_refuses_bad_requests_unharmed(shim_env: ShimEnv) -> None:
    cfg = shim_env.config(["sleep", "100"], log=False)

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            with pytest.raises(InvalidArgument):
                await shim.kill(0)
            with pytest.raises(Conflict):
                await shim.resize(24, 80)  # no terminal
            with pytest.raises(Conflict):
                await shim.attach(stdin=True, stdout=True, stderr=True)  # stdin not open
            with pytest.raises(Conflict):
                await shim.resume()
            await asyncio.to_thread(_raw_bad_lines, cfg.socket_path)
            assert (await shim.state())["status"] == "created"

    asyncio.run(scenario())
