"""The forkserver's spare: a shim forked before its request, which the next request turns into
its shim; a new one once the forkserver is idle; gone with the forkserver."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shimtest import ShimEnv, wait_gone

from hull.errors import InvalidArgument
from hull.shim.forkserver import SPARE_DELAY

pytestmark = pytest.mark.container


def _pipes(pid: int, *, skip_stdio: bool) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if skip_stdio and int(fd) <= 2:
            continue
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("pipe:"):
            out.add(target)
    return out


def _spare_of(forkserver: int) -> int | None:
    """The process that waits on a pipe of `forkserver`'s, past its stdio: its spare."""
    theirs = _pipes(forkserver, skip_stdio=True)
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == forkserver:
            continue
        try:
            if b"hull.shim.forkserver" in Path(f"/proc/{name}/cmdline").read_bytes() and (
                _pipes(int(name), skip_stdio=True) & theirs
            ):
                return int(name)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return None


async def _next_spare(forkserver: int, not_: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spare = _spare_of(forkserver)
        if spare is not None and spare != not_:
            return spare
        await asyncio.sleep(SPARE_DELAY / 5)
    raise AssertionError("no new spare")


def test_a_spare_forked_ahead_becomes_the_next_shim(shim_env: ShimEnv) -> None:
    first, second = shim_env.config(["sleep", "30"]), shim_env.config(["sleep", "30"])
    seen: list[int] = []

    async def scenario() -> None:
        async with shim_env:
            fs = shim_env.forkserver
            assert fs is not None
            spare = _spare_of(fs.pid)
            assert spare is not None, "no spare waiting before the first request"
            assert await fs.spawn(first) == spare
            seen.append(spare)
            # The next one comes once the forkserver has been idle a moment, and serves the next request.
            spare = await _next_spare(fs.pid, not_=spare)
            assert await fs.spawn(second) == spare
            seen.append(await _next_spare(fs.pid, not_=spare))

    asyncio.run(scenario())
    # The shims were deleted and the forkserver closed: its waiting spare left with it.
    assert all(wait_gone(pid) for pid in seen)


def test_a_bad_request_costs_the_spare_and_nothing_else(shim_env: ShimEnv) -> None:
    good = shim_env.config(["sleep", "30"])
    bad = shim_env.config(["sleep", "30"])._replace(log_max_file=0)
    shim_env.configs[-1] = bad

    async def scenario() -> None:
        async with shim_env:
            fs = shim_env.forkserver
            assert fs is not None
            with pytest.raises(InvalidArgument, match="log_max_file"):
                await fs.spawn(bad)
            assert not os.path.exists(bad.exec_dir)
            assert await fs.spawn(good) > 0
            assert os.path.exists(good.socket_path)

    asyncio.run(scenario())


def test_a_request_whose_spare_died_gets_a_fresh_one(shim_env: ShimEnv) -> None:
    cfg = shim_env.config(["sleep", "30"])

    async def scenario() -> None:
        async with shim_env:
            fs = shim_env.forkserver
            assert fs is not None
            spare = _spare_of(fs.pid)
            assert spare is not None
            os.kill(spare, signal.SIGKILL)  # killed while it waits (the OOM killer, an admin)
            assert wait_gone(spare)
            pid = await fs.spawn(cfg)
            assert pid not in (0, spare) and os.path.exists(cfg.socket_path)

    asyncio.run(scenario())


ORPHANED_EXEC_SHIM = """
import os, sys
from hull.shim import execshim, server
from hull.shim.config import ShimConfig

line = execshim.encode_request(ShimConfig.from_json(sys.argv[1]), {"args": ["true"], "cwd": "/"})
cfg, make = execshim.shim_for_request(line)
os.close(server.fork_shim(cfg, make))  # the caller is gone before the shim can answer
"""


def test_an_exec_shim_whose_caller_is_gone_ends(shim_env: ShimEnv) -> None:
    # A container's shim serves on (a restarted daemon finds it); an exec's would wait for a
    # `start` that no daemon will ever send.
    cfg = shim_env.config(["sleep", "30"])
    subprocess.run([sys.executable, "-c", ORPHANED_EXEC_SHIM, cfg.to_json()], check=True, timeout=30)

    def shims() -> list[str]:
        return [n for n in os.listdir("/proc") if n.isdigit() and _cmdline_has(n, cfg.exec_dir)]

    deadline = time.monotonic() + 10
    while shims() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not shims()
    assert not os.path.exists(cfg.socket_path) and not os.path.exists(cfg.pid_path)


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
