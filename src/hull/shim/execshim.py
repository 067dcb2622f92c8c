"""The exec shim: one short-lived monitor per `docker exec`, forked from the warm forkserver.

An exec is a container's shim in miniature: a process to start in an existing container,
its stdio to pump to an attached client, its exit to record. So the exec shim *is* a shim
(server.Shim, monitor.Monitor: the same protocol, socket, pipes, pty, attach and `wait`) with
two differences:

* its process starts at `start`, not at setup: the daemon attaches first, so no output is
  lost, and only then lets the process run;
* its "runtime" is an exec into the container: the built-in runtime's exec_process called
  in-process (no interpreter is started per exec: this process is a fork of the forkserver,
  which has imported the runtime), or `<runtime> exec --detach --process FILE` for an
  external runtime such as runc. `kill` signals the exec'd process only, and `delete` leaves
  the container alone.

The forkserver tells an exec request from a container's by its first bytes (REQUEST_PREFIX):
`{"exec": <OCI process>, "shim": <ShimConfig>}`, with the ShimConfig's id the container's
and its exec_dir the exec's own.
"""

import json
import os
from types import SimpleNamespace
from typing import Any

from hull import multiplex
from hull.errors import Conflict, HullError, InvalidArgument
from hull.shim import oci, server
from hull.shim.config import ShimConfig
from hull.shim.monitor import CREATED, RUNNING, Conn, ExitStatus, _now

REQUEST_PREFIX = b'{"exec":'
PROCESS_FILE = "process.json"


def encode_request(cfg: ShimConfig, process: dict[str, Any]) -> bytes:
    return json.dumps({"exec": process, "shim": cfg._asdict()}, separators=(",", ":")).encode() + b"\n"


def fork_from_request(line: bytes) -> int:
    """Fork the exec shim a request line asks for; the read end of its ready pipe (as server.fork_shim)."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise InvalidArgument(f"exec request: malformed JSON: {e}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("exec"), dict):
        raise InvalidArgument("exec request: expected {\"exec\": {...}, \"shim\": {...}}")
    from hull.runtime.spec import Process

    Process.from_json(obj["exec"])  # refuse a bad process now, not at start
    process = obj["exec"]
    return server.fork_shim(ShimConfig.from_dict(obj.get("shim")), lambda cfg: ExecShim(cfg, process))


class _BuiltinExec(oci.BuiltinRuntime):
    """BuiltinRuntime whose `create` (stdio lent to the child, the pty master received) runs an exec."""

    def __init__(self, cfg: ShimConfig, process: dict[str, Any]) -> None:
        super().__init__(cfg)
        from hull.runtime.spec import Process

        self._exec = _ExecAsCreate(self._c, Process.from_json(process))
        self._c = self._exec  # type: ignore[assignment]  # BuiltinRuntime.create calls self._c.create


class _ExecAsCreate:
    def __init__(self, container: Any, process: Any) -> None:
        self._container = container
        self._process = process

    def create(self, opts: Any, container_id: str, bundle: str, *, console_sock: Any) -> Any:
        pid = self._container.exec_process(opts, container_id, self._process, console_sock=console_sock)
        return SimpleNamespace(init_pid=pid)


class _ExternalExec(oci.ExternalRuntime):
    """ExternalRuntime whose `create` (pid file, console socket) runs `exec --detach --process FILE`."""

    def __init__(self, cfg: ShimConfig, process: dict[str, Any]) -> None:
        super().__init__(cfg, [cfg.runtime])
        self._process_file = os.path.join(cfg.exec_dir, PROCESS_FILE)
        with open(self._process_file, "w") as f:
            json.dump(process, f)

    def _run(self, verb: str, args: list[str], stdio: oci.Stdio | None = None) -> None:
        if verb == "create":  # args: --bundle B --pid-file F [--console-socket S] ID
            verb, args = "exec", ["--detach", "--process", self._process_file, *args[2:]]
        super()._run(verb, args, stdio)


class ExecShim(server.Shim):
    def __init__(self, cfg: ShimConfig, process: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.may_slim = False  # an exec is short; and the lean monitor knows no exec runtime
        self.exec_runtime = _ExternalExec(cfg, process) if cfg.runtime else _BuiltinExec(cfg, process)
        self.runtime = _Deferred(self)
        self.stdio: list[int] = []

    def op_start(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        if self.status != CREATED or self.exit is not None:
            raise Conflict("the exec has been started already")
        try:
            self.init_pid, self.master = self.exec_runtime.create((self.stdio[0], self.stdio[1], self.stdio[2]))
        finally:
            for fd in self.stdio:
                os.close(fd)
            self.stdio = []
        if self.master is not None:
            os.set_blocking(self.master, False)
            self.outputs[self.master] = multiplex.STDOUT  # a terminal has one stream
            if self.cfg.open_stdin:
                self.stdin_fd = self.master
            self._refresh(self.master)
        self.status = RUNNING
        self.started_at = _now()
        return {"pid": self.init_pid, "started_at": self.started_at}

    def op_attach(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any] | None:
        if self.status != CREATED or self.stdin_fd is not None or not self.cfg.open_stdin:
            return super().op_attach(conn, req)
        # A terminal's stdin is its master, which comes at start: let the attach ask for it now
        # (the daemon sends no stdin before the start has answered).
        self.stdin_fd = -1
        try:
            return super().op_attach(conn, req)
        finally:
            self.stdin_fd = None

    def op_delete(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any] | None:
        if self.init_pid == 0 and self.exit is None:  # never started: nothing to kill or wait for
            self.exit = ExitStatus(255, _now(), False, 0)
        return super().op_delete(conn, req)

    def _oom_killed(self) -> bool:
        return False  # the container's OOM count is the container's, not this process's


class _Deferred:
    """The exec shim's runtime as Shim.setup drives it: `create` keeps the stdio for `start`;
    `kill` signals the exec'd process; `delete` leaves the container to its own shim."""

    def __init__(self, shim: ExecShim) -> None:
        self._shim = shim

    def create(self, stdio: oci.Stdio) -> tuple[int, int | None]:
        self._shim.stdio = [os.dup(fd) for fd in stdio]
        return 0, None

    def start(self) -> None:
        raise HullError("an exec starts through ExecShim.op_start")

    def kill(self, sig: int, all_processes: bool) -> None:
        if self._shim.init_pid and self._shim.exit is None:
            try:
                os.kill(self._shim.init_pid, sig)
            except ProcessLookupError:
                pass

    def pause(self) -> None:
        raise Conflict("an exec cannot be paused")

    def resume(self) -> None:
        raise Conflict("an exec cannot be paused")

    def delete(self) -> None:
        pass
