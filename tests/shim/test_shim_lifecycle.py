"""A shim's whole life on the real kernel, with the built-in runtime and with runc: create, attach,
start, output in the log and on the attach stream, wait, exit status and the exit file, delete."""

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
from shimtest import RUNC, ShimEnv, log_text, read_frames, wait_gone

from hull.errors import Conflict, HullError, NotFound
from hull.shim.client import ShimClient

pytestmark = pytest.mark.container
RUNTIMES = [pytest.param("", id="builtin"), pytest.param(RUNC, id="runc")]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_shim_runs_a_container_to_its_end(shim_env: ShimEnv, runtime: str) -> None:
    cfg = shim_env.config(["sh", "-c", "echo out; echo err >&2; echo more; exit 3"], runtime=runtime)

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            shim_pid = int(Path(cfg.pid_path).read_text())
            assert (await shim.state())["status"] == "created"
            reader, writer = await shim.attach(stdin=False, stdout=True, stderr=True)
            waiter = asyncio.ensure_future(shim.wait())
            started = await shim.start()
            assert started["pid"] > 0 and started["started_at"].endswith("Z")
            frames = await read_frames(reader)
            writer.close()
            assert frames == {1: b"out\nmore\n", 2: b"err\n"}
            status = await asyncio.wait_for(waiter, 20)
            assert status["exit_code"] == 3 and status["oom_killed"] is False
            assert (await shim.wait()) == status  # after the exit: answered at once
            state = await shim.state()
            assert state["status"] == "stopped" and state["exit_code"] == 3 and state["pid"] == 0
            assert state["started_at"] == started["started_at"]
            record = json.loads(Path(cfg.exit_file).read_text())
            assert record == {**status, "pid": started["pid"]}
            assert log_text(cfg, "stdout") == "out\nmore\n" and log_text(cfg, "stderr") == "err\n"
            with pytest.raises(Conflict):
                await shim.start()
            await shim.delete()
            assert wait_gone(shim_pid)
            assert not os.path.exists(cfg.socket_path) and not os.path.exists(cfg.pid_path)
            assert not os.path.exists(os.path.join(cfg.runtime_root, cfg.id))
            assert not shim.alive()
            with pytest.raises(NotFound):
                await shim.state()

    asyncio.run(scenario())


def test_shim_without_an_exit_file_answers_wait_and_writes_no_record(shim_env: ShimEnv) -> None:
    # An exec's shim: its daemon learns the exit from `wait`, and the fsync of a record nobody
    # reads was a tenth of a `docker exec true`.
    cfg = shim_env.config(["sh", "-c", "exit 4"])._replace(exit_file="")
    shim_env.configs[-1] = cfg

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            waiter = asyncio.ensure_future(shim.wait())
            await shim.start()
            assert (await asyncio.wait_for(waiter, 20))["exit_code"] == 4
            assert sorted(os.listdir(cfg.exec_dir)) == ["shim.log", "shim.pid", "shim.sock"]
            await shim.delete()

    asyncio.run(scenario())


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_shim_reports_sigkill_and_sigterm_as_128_plus_signal(shim_env: ShimEnv, runtime: str) -> None:
    # PID 1 of a pid namespace ignores SIGTERM without a handler: this one shares the host's.
    killed = shim_env.config(["sleep", "100"], runtime=runtime)
    termed = shim_env.config(["sleep", "100"], runtime=runtime, pid_namespace=False)

    async def scenario() -> None:
        async with shim_env:
            a, b = await asyncio.gather(shim_env.spawn(killed), shim_env.spawn(termed))
            await a.start()
            await b.start()
            assert (await a.state())["status"] == "running"
            await a.kill(signal.SIGKILL)
            await b.kill(signal.SIGTERM, all=True)
            assert (await a.wait())["exit_code"] == 137
            assert (await b.wait())["exit_code"] == 143
            with pytest.raises(Conflict):
                await a.kill(signal.SIGKILL)

    asyncio.run(scenario())


def test_shim_pause_resume_and_delete_of_a_running_container(shim_env: ShimEnv) -> None:
    cfg = shim_env.config(["sleep", "100"])

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            await shim.start()
            await shim.pause()
            assert (await shim.state())["status"] == "paused"
            with pytest.raises(Conflict):
                await shim.pause()
            await shim.resume()
            assert (await shim.state())["status"] == "running"
            waiter = asyncio.ensure_future(shim.wait())
            await asyncio.sleep(0.2)  # the wait is pending in the shim
            await shim.delete()  # kills it first: the exit is still recorded and the waiter answered
            assert (await asyncio.wait_for(waiter, 20))["exit_code"] == 137
            assert json.loads(Path(cfg.exit_file).read_text())["exit_code"] == 137

    asyncio.run(scenario())


def test_shim_delete_of_a_created_container(shim_env: ShimEnv) -> None:
    cfg = shim_env.config(["true"], log=False)

    async def scenario() -> None:
        async with shim_env:
            shim = await shim_env.spawn(cfg)
            await shim.delete()
            assert not os.path.exists(os.path.join(cfg.runtime_root, cfg.id))

    asyncio.run(scenario())


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_shim_bad_command_reaches_the_client(shim_env: ShimEnv, runtime: str) -> None:
    cfg = shim_env.config(["nosuch"], runtime=runtime)

    async def scenario() -> None:
        async with shim_env:
            with pytest.raises(HullError, match=r'"nosuch".*not found') as info:
                await shim_env.spawn(cfg)
            print(info.value.message)
            assert not ShimClient(cfg.exec_dir).alive()
            assert not os.path.exists(cfg.socket_path)
            assert not os.path.exists(os.path.join(cfg.runtime_root, cfg.id))
            # The forkserver is unharmed: the next container starts.
            ok = shim_env.config(["true"], runtime=runtime)
            shim = await shim_env.spawn(ok)
            await shim.start()
            assert (await shim.wait())["exit_code"] == 0

    asyncio.run(scenario())
