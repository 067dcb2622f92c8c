"""The daemon's side of the shim protocol, in asyncio: ForkServer starts shims, ShimClient talks to one.

Every ShimClient call opens its own connection to `<exec_dir>/shim.sock`, so a client needs
no state and works the same before and after a daemon restart. Errors arrive as the
hull.errors class that the shim's `kind` names; a shim that is not there is NotFound.
"""

import asyncio
import json
import os
import socket
import sys
from collections import deque
from typing import Any

from hull.errors import HullError, NotFound
from hull.shim import protocol
from hull.shim.config import SOCKET_NAME, ShimConfig


class ForkServer:
    """The forkserver process (forkserver.py), with requests answered in order over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, pid: int) -> None:
        self._proc = proc
        self.pid = pid
        self._pending: deque[asyncio.Future[dict[str, Any]]] = deque()
        self._lock = asyncio.Lock()  # one request line at a time on the pipe, so the order is the queue's
        self._reader = asyncio.get_running_loop().create_task(self._read_answers())

    @classmethod
    async def start(cls, python: str = sys.executable) -> "ForkServer":
        proc = await asyncio.create_subprocess_exec(
            python, "-m", "hull.shim.forkserver", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        try:
            hello = protocol.decode_answer(line)
        except HullError as e:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            raise HullError(f"the shim forkserver did not start: {e.message}") from None
        return cls(proc, int(hello["pid"]))

    async def _read_answers(self) -> None:
        assert self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                break
            if not self._pending:
                continue  # an answer nobody asked for: ignore rather than misassign
            fut = self._pending.popleft()
            try:
                answer = json.loads(line)
            except ValueError:
                # Not the forkserver's JSON: fail this request rather than the reader (and every later one).
                answer = {"ok": False, "error": f"shim forkserver: malformed answer {line[:200]!r}"}
            if not fut.done():
                fut.set_result(answer)
        while self._pending:
            fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(HullError("the shim forkserver exited"))

    async def spawn(self, config: ShimConfig) -> int:
        """Start a shim for `config`; return its pid once it listens (raises with the runtime's error)."""
        return await self._request(config.to_json().encode() + b"\n")

    async def spawn_exec(self, config: ShimConfig, process: dict[str, Any]) -> int:
        """Start an exec shim (execshim.py) that will run `process` in container `config.id` at `start`."""
        from hull.shim.execshim import encode_request

        return await self._request(encode_request(config, process))

    async def _request(self, line: bytes) -> int:
        assert self._proc.stdin is not None
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        async with self._lock:
            if self._reader.done():
                raise HullError("the shim forkserver exited")
            self._pending.append(fut)
            self._proc.stdin.write(line)
            try:
                await self._proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                raise HullError("the shim forkserver exited") from None
        answer = protocol.raise_for(await fut)
        return int(answer["pid"])

    async def close(self) -> None:
        """End the forkserver (its shims keep running)."""
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
        await self._proc.wait()
        await self._reader


class ShimClient:
    def __init__(self, exec_dir: str) -> None:
        self.exec_dir = exec_dir
        self.socket_path = os.path.join(exec_dir, SOCKET_NAME)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_unix_connection(self.socket_path, limit=protocol.MAX_LINE)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotFound(f"no shim is running for {self.exec_dir}") from None

    async def _call(self, op: str, **args: Any) -> dict[str, Any]:
        reader, writer = await self._open()
        try:
            writer.write(protocol.encode({"op": op, **args}))
            await writer.drain()
            return protocol.decode_answer(await reader.readline())
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def state(self) -> dict[str, Any]:
        return _strip(await self._call("state"))

    async def start(self, console_size: tuple[int, int] | None = None) -> dict[str, Any]:
        """Start the process; `console_size` (height, width) is an exec's terminal's, from its start."""
        return _strip(await self._call("start", **_size(console_size)))

    async def kill(self, signal: int, all: bool = False) -> None:  # the daemon's agreed signature
        await self._call("kill", signal=signal, all=all)

    async def wait(self) -> dict[str, Any]:
        """The exit status, once the container has exited (at once if it has)."""
        return _strip(await self._call("wait"))

    async def pause(self) -> None:
        await self._call("pause")

    async def resume(self) -> None:
        await self._call("resume")

    async def resize(self, height: int, width: int) -> None:
        await self._call("resize", height=height, width=width)

    async def attach(
        self, stdin: bool, stdout: bool, stderr: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A stream of the container's output in Docker's frames; bytes written go to its stdin
        (write_eof ends stdin when the container has stdin_once). Ends after the container's last output."""
        _, reader, writer = await self._attach(stdin, stdout, stderr, None)
        return reader, writer

    async def start_attached(
        self, stdin: bool, stdout: bool, stderr: bool, console_size: tuple[int, int] | None = None
    ) -> tuple[dict[str, Any], asyncio.StreamReader, asyncio.StreamWriter]:
        """An exec shim's attach and start in one request: start's answer, then attach's stream.
        The process starts a round trip sooner than after attach, then start."""
        return await self._attach(stdin, stdout, stderr, _size(console_size))

    async def _attach(
        self, stdin: bool, stdout: bool, stderr: bool, start: dict[str, int] | None
    ) -> tuple[dict[str, Any], asyncio.StreamReader, asyncio.StreamWriter]:
        req: dict[str, Any] = {"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr}
        if start is not None:
            req["start"] = start
        reader, writer = await self._open()
        try:
            writer.write(protocol.encode(req))
            await writer.drain()
            answer = protocol.decode_answer(await reader.readline())
        except BaseException:
            writer.close()
            raise
        return _strip(answer), reader, writer

    async def delete(self) -> None:
        """Delete the container (killing it if needed) and end the shim."""
        await self._call("delete")

    def alive(self) -> bool:
        """Whether a shim listens on the socket (at daemon start: which containers still have one)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.socket_path)
        except OSError:
            return False
        finally:
            sock.close()
        return True


def _strip(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "ok"}


def _size(console_size: tuple[int, int] | None) -> dict[str, int]:
    """A terminal's size as start takes it: {} for none."""
    return {} if console_size is None else {"height": console_size[0], "width": console_size[1]}
