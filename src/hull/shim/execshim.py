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


def _decode(line: bytes) -> tuple[dict[str, Any], ShimConfig]:
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise InvalidArgument(f"exec request: malformed JSON: {e}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("exec"), dict):
        raise InvalidArgument('exec request: expected {"exec": {...}, "shim": {...}}')
    return obj["exec"], ShimConfig.from_dict(obj.get("shim"))


def shim_for_request(line: bytes) -> tuple[ShimConfig, server.MakeShim]:
    """The config and maker of the exec shim a request line asks for (server.ShimRequest)."""
    from hull.runtime.spec import Process

    raw, cfg = _decode(line)
    process = Process.from_json(raw)  # a bad one is refused now, not at start
    if cfg.runtime:
        return cfg, lambda cfg: ExecShim(cfg, _ExternalExec(cfg, raw))
    spec = _container_spec(cfg)
    return cfg, lambda cfg: ExecShim(cfg, _BuiltinExec(cfg, process, spec))


def warm_spec_cache(line: bytes) -> None:
    """In the forkserver, after the request went to a spare: parse the container's spec here
    too, and compile its seccomp program, so the spares forked from now on have both."""
    from hull.runtime import state
    from hull.runtime.seccomp import compile_filter

    try:
        _, cfg = _decode(line)
        spec = None if cfg.runtime else _container_spec(cfg)
        if spec is not None and spec.linux.seccomp is not None:
            compile_filter(spec.linux.seccomp, state.seccomp_cache_dir(_runtime_root(cfg)))
    except (HullError, OSError, ValueError):
        pass  # the spare has answered what is wrong


# The containers' parsed specs (by the mtime of their runtime state), kept by the forkserver
# (warm_spec_cache): the spares it forks inherit them, so a container's spec is parsed once,
# not per exec.
_SPECS: dict[str, tuple[int, Any]] = {}
SPEC_CACHE_SIZE = 64


def _runtime_root(cfg: ShimConfig) -> str:
    from hull.runtime import state

    return cfg.runtime_root or state.Options().root


def _container_spec(cfg: ShimConfig) -> Any:
    from hull.runtime import state
    from hull.runtime.spec import Spec

    root = _runtime_root(cfg)
    try:
        mtime = os.stat(os.path.join(state.container_dir(root, cfg.id), state.STATE_FILE)).st_mtime_ns
    except FileNotFoundError:
        return None  # exec_process says what is wrong
    hit = _SPECS.get(cfg.id)
    if hit is None or hit[0] != mtime:
        st = state.load(root, cfg.id)
        hit = _SPECS[cfg.id] = (mtime, Spec.from_json(st.config, st.bundle))
        while len(_SPECS) > SPEC_CACHE_SIZE:
            del _SPECS[next(iter(_SPECS))]
    return hit[1]


class _BuiltinExec(oci.BuiltinRuntime):
    """BuiltinRuntime whose `create` (stdio lent to the child, the pty master received) runs an exec."""

    def __init__(self, cfg: ShimConfig, process: Any, spec: Any) -> None:
        super().__init__(cfg)
        self._exec = _ExecAsCreate(self._c, process, spec)
        self._c = self._exec  # type: ignore[assignment]  # BuiltinRuntime.create calls self._c.create

    def console_size(self, height: int, width: int) -> None:
        self._exec.process.console_size = (height, width)


class _ExecAsCreate:
    def __init__(self, container: Any, process: Any, spec: Any) -> None:
        self._container = container
        self.process = process
        self._spec = spec

    def create(self, opts: Any, container_id: str, bundle: str, *, console_sock: Any) -> Any:
        pid = self._container.exec_process(opts, container_id, self.process, console_sock=console_sock, spec=self._spec)
        return SimpleNamespace(init_pid=pid)


class _ExternalExec(oci.ExternalRuntime):
    """ExternalRuntime whose `create` (pid file, console socket) runs `exec --detach --process FILE`."""

    def __init__(self, cfg: ShimConfig, process: dict[str, Any]) -> None:
        super().__init__(cfg, [cfg.runtime])
        self._process_file = os.path.join(cfg.exec_dir, PROCESS_FILE)
        self._process = process

    def console_size(self, height: int, width: int) -> None:
        self._process["consoleSize"] = {"height": height, "width": width}

    def _run(self, verb: str, args: list[str], stdio: oci.Stdio | None = None) -> None:
        if verb == "create":  # args: --bundle B --pid-file F [--console-socket S] ID
            with open(self._process_file, "w") as f:
                json.dump(self._process, f)
            verb, args = "exec", ["--detach", "--process", self._process_file, *args[2:]]
        super()._run(verb, args, stdio)


ExecRuntime = _BuiltinExec | _ExternalExec


class ExecShim(server.Shim):
    def __init__(self, cfg: ShimConfig, exec_runtime: ExecRuntime) -> None:
        super().__init__(cfg)
        self.may_slim = False  # an exec is short; and the lean monitor knows no exec runtime
        self.outlives_caller = False  # execs are not restored: a daemon that is gone never starts us
        self.exec_runtime = exec_runtime
        self.runtime = _Deferred(self)
        self.stdio: list[int] = []

    def op_start(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        if self.status != CREATED or self.exit is not None:
            raise Conflict("the exec has been started already")
        size = (req.get("height"), req.get("width"))
        if size != (None, None):  # the terminal's size from the exec's start
            if not all(type(v) is int and 0 <= v < 65536 for v in size):
                raise InvalidArgument(f"start: height and width must be integers from 0 to 65535, got {size!r}")
            self.exec_runtime.console_size(int(size[0]), int(size[1]))  # type: ignore[arg-type]  # ints: checked
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
        """Attach; with "start" (op_start's request), start the process too and answer as start:
        the daemon's attach and start in one round trip."""
        start = req.get("start")
        if start is not None and not isinstance(start, dict):
            raise InvalidArgument("attach: start must be an object")
        if self.status != CREATED or self.stdin_fd is not None or not self.cfg.open_stdin:
            flags = self._attach_flags(req)
        else:
            # A terminal's stdin is its master, which comes at start: let the attach ask for it
            # now (the daemon sends no stdin before the start has answered).
            self.stdin_fd = -1
            try:
                flags = self._attach_flags(req)
            finally:
                self.stdin_fd = None
        # Started before the stream is: no output is read before this op returns.
        self._attach(conn, flags, {} if start is None else self.op_start(conn, start))
        return None

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
