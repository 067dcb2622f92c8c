"""How a shim drives the OCI runtime below it: hull-runtime in-process, or an external binary.

`BuiltinRuntime` calls hull.runtime.container directly: no extra interpreter per operation,
and the forkserver has imported it already. `ExternalRuntime` runs a runc-compatible command
(`runc`, or `hull-runtime` itself) with runc's command line, `--log` in json so that its error
message can be handed to the daemon as it is. The lean monitor (monitor.py) has not imported
the built-in runtime and must not: it drives every runtime by its command line
(`command_runtime`).

Both `create` the container with the given stdio (or a terminal, whose pty master they
return) and return the init's pid; the init becomes the shim's child because the shim is a
child subreaper.
"""

import json
import os
import socket
import sys
from typing import Protocol

from hull.errors import HullError
from hull.runtime import console
from hull.shim.config import ShimConfig

CONSOLE_NAME = "console.sock"
INIT_PID_NAME = "init.pid"
# How long a runtime that succeeded at create has had to hand over the terminal.
CONSOLE_TIMEOUT = 5.0

Stdio = tuple[int, int, int]


class OciRuntime(Protocol):
    def create(self, stdio: Stdio) -> tuple[int, int | None]:
        """Create the container; return (init pid, pty master or None)."""

    def start(self) -> None: ...
    def kill(self, sig: int, all_processes: bool) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def delete(self) -> None:
        """Force-delete: the container's processes, cgroup and runtime state."""


def for_config(cfg: ShimConfig) -> OciRuntime:
    return ExternalRuntime(cfg, [cfg.runtime]) if cfg.runtime else BuiltinRuntime(cfg)


def command_runtime(cfg: ShimConfig) -> OciRuntime:
    """The container's runtime through its command line, the built-in one as `python -m hull.runtime.cli`."""
    return ExternalRuntime(cfg, [cfg.runtime] if cfg.runtime else [sys.executable, "-m", "hull.runtime.cli"])


class BuiltinRuntime:
    def __init__(self, cfg: ShimConfig) -> None:
        from hull.runtime import container, log
        from hull.runtime.state import Options

        self._cfg = cfg
        self._c = container
        self._opts = Options(root=cfg.runtime_root) if cfg.runtime_root else Options()
        # The runtime's warnings would otherwise go to fd 2, which is the container's stderr during create.
        log.configure(cfg.log_file, "json", False)

    def create(self, stdio: Stdio) -> tuple[int, int | None]:
        ours, theirs = socket.socketpair() if self._cfg.terminal else (None, None)
        # The init inherits fds 0-2 of the process that forks it, which is us: lend it the container's stdio.
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        try:
            for fd, target in zip((0, 1, 2), stdio, strict=True):
                os.dup2(target, fd)
            st = self._c.create(self._opts, self._cfg.id, self._cfg.bundle, console_sock=theirs)
            master = console.recv_master(ours) if ours is not None else None
        finally:
            for fd, old in zip((0, 1, 2), saved, strict=True):
                os.dup2(old, fd)
                os.close(old)
            for s in (ours, theirs):
                if s is not None:
                    s.close()
        return st.init_pid, master

    def start(self) -> None:
        self._c.start(self._opts, self._cfg.id)

    def kill(self, sig: int, all_processes: bool) -> None:
        self._c.kill(self._opts, self._cfg.id, sig, all_processes)

    def pause(self) -> None:
        self._c.pause(self._opts, self._cfg.id)

    def resume(self) -> None:
        self._c.resume(self._opts, self._cfg.id)

    def delete(self) -> None:
        self._c.delete(self._opts, self._cfg.id, force=True)


class ExternalRuntime:
    def __init__(self, cfg: ShimConfig, command: list[str]) -> None:
        self._cfg = cfg
        self._name = " ".join(command)
        root = ["--root", cfg.runtime_root] if cfg.runtime_root else []
        self._base = [*command, *root, "--log", cfg.log_file, "--log-format", "json"]

    def _run(self, verb: str, args: list[str], stdio: Stdio | None = None) -> None:
        import subprocess  # here: the lean monitor (monitor.py) may never run a command, and it is not small

        start = _size(self._cfg.log_file)
        argv = [*self._base, verb, *args]
        try:
            if stdio is None:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
            else:
                done = subprocess.run(argv, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], check=False)
        except OSError as e:
            raise HullError(f"{self._name}: {e.strerror}") from None
        if done.returncode != 0:
            message = _last_error(self._cfg.log_file, start) or (done.stderr or b"").decode(errors="replace").strip()
            raise HullError(message or f"{self._name} {verb} failed with exit status {done.returncode}")

    def create(self, stdio: Stdio) -> tuple[int, int | None]:
        pid_file = os.path.join(self._cfg.exec_dir, INIT_PID_NAME)
        args = ["--bundle", self._cfg.bundle, "--pid-file", pid_file]
        listener = None
        if self._cfg.terminal:
            path = os.path.join(self._cfg.exec_dir, CONSOLE_NAME)
            _unlink(path)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(1)
            args += ["--console-socket", path]
        try:
            self._run("create", [*args, self._cfg.id], stdio)
            with open(pid_file) as f:
                pid = int(f.read().strip())
            master = None
            if listener is not None:
                # The runtime's init connected and sent the master during create: it waits in the backlog.
                listener.settimeout(CONSOLE_TIMEOUT)
                conn, _ = listener.accept()
                with conn:
                    master = console.recv_master(conn)
            return pid, master
        finally:
            _unlink(pid_file)
            if listener is not None:
                listener.close()
                _unlink(os.path.join(self._cfg.exec_dir, CONSOLE_NAME))

    def start(self) -> None:
        self._run("start", [self._cfg.id])

    def kill(self, sig: int, all_processes: bool) -> None:
        self._run("kill", [*(["--all"] if all_processes else []), self._cfg.id, str(sig)])

    def pause(self) -> None:
        self._run("pause", [self._cfg.id])

    def resume(self) -> None:
        self._run("resume", [self._cfg.id])

    def delete(self) -> None:
        self._run("delete", ["--force", self._cfg.id])


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _last_error(log_file: str, offset: int) -> str:
    """The last error-level message the runtime logged (json lines) past `offset` of its log."""
    try:
        with open(log_file, "rb") as f:
            f.seek(offset)
            lines = f.read().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal") and entry.get("msg"):
            return str(entry["msg"])
    return ""


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
