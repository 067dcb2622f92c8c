"""A shim re-execs itself into a lean monitor once its container has run a while (monitor.py):
its memory then stays near a bare interpreter's, and everything works on as before the re-exec:
attached and waiting clients, stdin, new attaches, kill, pause/resume, OOM, exit, delete."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shimtest import RUNC, ShimEnv, log_text, read_frames, wait_gone

import hull
from hull.shim.client import ShimClient
from hull.shim.monitor import SLIM_AFTER

pytestmark = pytest.mark.container
RUNTIMES = [pytest.param("", id="builtin"), pytest.param(RUNC, id="runc")]
# What the lean monitor may hold above a bare interpreter that has imported the modules no
# shim can do without (json, socket): its own few modules and its state, measured at 1.3-1.5 MB.
# One heavy import more (dataclasses: 1.6 MB; asyncio: 9 MB) goes past it; the forked shim
# before the re-exec holds some 12 MB more.
MARGIN_KB = 2 << 10
# What the lean monitor must not import at start: each costs a megabyte or more per container.
HEAVY = ["dataclasses", "asyncio", "ctypes", "subprocess", "calendar", "hull.runtime.state", "hull.runtime.cgroups"]


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _baseline_kb() -> int:
    """The RSS of a bare `python -I -S` with json and socket imported: the least a Python shim can hold."""
    code = "import json, socket; print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"
    return int(subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, check=True).stdout)


def test_the_lean_monitor_imports_little() -> None:
    code = "import sys, hull.shim.monitor; print(' '.join(sys.modules))"
    root = os.path.dirname(os.path.dirname(os.path.abspath(hull.__file__)))
    argv = [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {root!r}); {code}"]
    loaded = set(subprocess.run(argv, capture_output=True, check=True, text=True).stdout.split())
    assert "hull.shim.monitor" in loaded and loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


async def _slimmed(pid: int) -> None:
    """Wait until the shim `pid` has re-exec'd into the lean monitor."""
    deadline = time.monotonic() + SLIM_AFTER + 10
    while b"hull.shim.monitor" not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the shim did not re-exec"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # until it has read the hand-over and serves


async def _frames_until(reader: asyncio.StreamReader, want: dict[int, bytes]) -> None:
    got: dict[int, bytes] = {1: b"", 2: b""}
    while any(not got[s].endswith(w) for s, w in want.items()):
        header = await asyncio.wait_for(reader.readexactly(8), 20)
        got[header[0]] += await reader.readexactly(int.from_bytes(header[4:], "big"))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_shim_slims_and_serves_on(shim_env: ShimEnv, runtime: str) -> None:
    script = 'echo before; while read l; do echo "got $l"; echo "err $l" >&2; done; exit 5'
    cfg = shim_env.config(["sh", "-c", script], runtime=runtime, open_stdin=True, stdin_once=True)

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            pid = int(Path(cfg.pid_path).read_text())
            reader, writer = await shim.attach(stdin=True, stdout=True, stderr=True)
            waiter = asyncio.ensure_future(shim.wait())  # pending across the re-exec
            started = await shim.start()
            await _frames_until(reader, {1: b"before\n"})
            await _slimmed(pid)
            assert _rss_kb(pid) <= _baseline_kb() + MARGIN_KB
            # Its fds: stdio, the socket and its clients, the container's pipes, the selector, the wakeup pipe.
            assert len(os.listdir(f"/proc/{pid}/fd")) <= 3 + 1 + 3 + 3 + 1 + 2

            writer.write(b"x\n")
            await writer.drain()
            await _frames_until(reader, {1: b"got x\n", 2: b"err x\n"})
            late, late_w = await shim.attach(stdin=False, stdout=True, stderr=False)
            state = await shim.state()
            assert state["status"] == "running" and state["pid"] == started["pid"]
            assert state["started_at"] == started["started_at"]
            writer.write(b"y\n")
            await writer.drain()
            writer.write_eof()  # stdin_once: the loop ends, the container exits
            frames, late_frames = await asyncio.gather(read_frames(reader), read_frames(late))
            writer.close()
            late_w.close()
            assert frames == {1: b"got y\n", 2: b"err y\n"} and late_frames == {1: b"got y\n", 2: b""}

            status = await asyncio.wait_for(waiter, 20)
            assert status["exit_code"] == 5 and status["oom_killed"] is False
            assert json.loads(Path(cfg.exit_file).read_text()) == {**status, "pid": started["pid"]}
            assert log_text(cfg, "stdout") == "before\ngot x\ngot y\n"
            assert log_text(cfg, "stderr") == "err x\nerr y\n"
            await shim.delete()
            assert wait_gone(pid)
            assert not os.path.exists(cfg.socket_path) and not os.path.exists(cfg.pid_path)
            assert not os.path.exists(os.path.join(cfg.runtime_root, cfg.id))

    asyncio.run(scenario())


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_shim_kill_pause_and_resume_after_slimming(shim_env: ShimEnv, runtime: str) -> None:
    cfg = shim_env.config(["sleep", "100"], runtime=runtime)

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            await shim.start()
            await _slimmed(int(Path(cfg.pid_path).read_text()))
            await shim.pause()
            assert (await shim.state())["status"] == "paused"
            await shim.resume()
            assert (await shim.state())["status"] == "running"
            await shim.kill(signal.SIGKILL, all=True)
            assert (await shim.wait())["exit_code"] == 137

    asyncio.run(scenario())


def test_shim_delete_kills_a_slimmed_container(shim_env: ShimEnv) -> None:
    cfg = shim_env.config(["sleep", "100"])

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            await shim.start()
            await _slimmed(int(Path(cfg.pid_path).read_text()))
            await shim.delete()
            assert json.loads(Path(cfg.exit_file).read_text())["exit_code"] == 137
            assert not os.path.exists(os.path.join(cfg.runtime_root, cfg.id))

    asyncio.run(scenario())


def test_shim_reports_an_oom_kill_after_slimming(shim_env: ShimEnv) -> None:
    script = f"sleep {SLIM_AFTER + 1}; x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived"
    cfg = shim_env.config(["sh", "-c", script], memory_limit=8 << 20)

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            await shim.start()
            await _slimmed(int(Path(cfg.pid_path).read_text()))
            status = await asyncio.wait_for(shim.wait(), 30)
            assert status["oom_killed"] is True and status["exit_code"] == 137

    asyncio.run(scenario())


def test_shim_stays_subreaper_after_slimming(shim_env: ShimEnv) -> None:
    # No pid namespace: when the init dies, its orphan goes to the nearest subreaper, which must still be the shim.
    cfg = shim_env.config(["sh", "-c", "sleep 100 & echo $!; exec sleep 200"], pid_namespace=False)

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            started = await shim.start()
            pid = int(Path(cfg.pid_path).read_text())
            await _slimmed(pid)
            orphan = int(log_text(cfg, "stdout"))
            await shim.kill(signal.SIGKILL)  # the init only
            assert (await shim.wait())["exit_code"] == 137
            stat = Path(f"/proc/{orphan}/stat").read_text()
            assert int(stat[stat.rindex(")") + 2 :].split()[1]) == pid != started["pid"]
            await shim.delete()
            assert wait_gone(orphan)

    asyncio.run(scenario())


def test_a_new_client_finds_a_slimmed_shim(shim_env: ShimEnv) -> None:
    cfg = shim_env.config(["sh", "-c", "read line; echo got $line; exit 7"], open_stdin=True)

    async def scenario() -> None:
        async with shim_env:
            await (await shim_env.spawn(cfg)).start()
            await _slimmed(int(Path(cfg.pid_path).read_text()))
            shim = ShimClient(cfg.exec_dir)  # a restarted daemon's client
            assert shim.alive() and (await shim.state())["status"] == "running"
            _, writer = await shim.attach(stdin=True, stdout=False, stderr=False)
            writer.write(b"it\n")
            await writer.drain()
            assert (await shim.wait())["exit_code"] == 7
            writer.close()
            assert log_text(cfg, "stdout") == "got it\n"

    asyncio.run(scenario())
