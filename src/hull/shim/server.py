"""The forked shim: sets up one container (socket, stdio, runtime create) and hands it to its Monitor.

`fork_shim` makes one: a double fork (the shim is reparented away from its caller, in its own
session), then `Shim.setup` (socket, stdio, runtime create) and a one-line handshake on a pipe
back to the caller: `{"ok": true, "pid": N}` once the shim listens, or the error. Then the
shim is a monitor.Monitor (the loop, the ops, the exit), which re-execs itself into a lean
process once the container has run a while (see monitor.py for why).

`fork_spare` makes the same process ahead of need (the forkserver keeps one): a *spare* has
been forked and has closed what it inherited, and waits for its request line on a pipe; the
request then pays for neither (some 1.5 ms).
"""

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from hull import multiplex
from hull.errors import Conflict, HullError
from hull.fsutil import atomic_write
from hull.runtime import syscalls
from hull.shim import oci, protocol, sysinfo
from hull.shim.config import ShimConfig
from hull.shim.monitor import Monitor, print_traceback, run, unlink_if_exists, write_all


class Shim(Monitor):
    def __init__(self, cfg: ShimConfig) -> None:
        super().__init__(cfg, oci.for_config(cfg))
        self.may_slim = True

    def setup(self) -> None:
        cfg = self.cfg
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
        self.listener = _listen(cfg.socket_path)
        try:
            if cfg.answer_sysinfo:
                # Before the runtime's create: the runtime connects to it then (see sysinfo.py).
                self.seccomp_socket = _listen(cfg.seccomp_socket_path)
                self.cgroups = _sysinfo_cgroups(cfg)
            self._setup_rest()
        except BaseException:
            for sock, path in ((self.listener, cfg.socket_path), (self.seccomp_socket, cfg.seccomp_socket_path)):
                if sock is not None:
                    sock.close()
                    unlink_if_exists(path)
            raise
        self.watch()

    def _setup_rest(self) -> None:
        cfg = self.cfg
        self.open_log()
        theirs: list[int] = []
        try:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            theirs.append(null)
            stdio = [null, null, null]
            if not cfg.terminal:
                if cfg.open_stdin:
                    stdio[0], self.stdin_fd = os.pipe2(os.O_CLOEXEC)
                    theirs.append(stdio[0])
                for i, stream in ((1, multiplex.STDOUT), (2, multiplex.STDERR)):
                    r, stdio[i] = os.pipe2(os.O_CLOEXEC)
                    theirs.append(stdio[i])
                    self.outputs[r] = stream
            self.init_pid, self.master = self.runtime.create((stdio[0], stdio[1], stdio[2]))
        except BaseException:
            for fd in [*self.outputs, *([self.stdin_fd] if self.stdin_fd is not None else [])]:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        if self.master is not None:
            self.outputs[self.master] = multiplex.STDOUT
            if cfg.open_stdin:
                self.stdin_fd = self.master
        for fd in self.outputs:
            os.set_blocking(fd, False)
        if self.stdin_fd is not None:
            os.set_blocking(self.stdin_fd, False)
        atomic_write(cfg.pid_path, str(os.getpid()).encode(), fsync=False)


def _sysinfo_cgroups(cfg: ShimConfig) -> sysinfo.Cgroups:
    """The container's memory and pids cgroup directories, as the runtime will make them."""
    from hull.runtime.cgroups import new_manager

    manager = new_manager(cfg.memory_cgroup, cfg.id)
    paths = manager.paths()
    if manager.version == 2:  # one directory for every controller
        return sysinfo.Cgroups(paths[""], paths[""], True)
    return sysinfo.Cgroups(paths.get("memory", ""), paths.get("pids", ""), False)


def _listen(path: str) -> socket.socket:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        unlink_if_exists(path)  # a dead shim's socket
    else:
        raise Conflict(f"a shim is already serving {path}")
    finally:
        probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(64)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise HullError(f"listen on {path}: {e.strerror}") from None
    return sock


MakeShim = Callable[[ShimConfig], "Shim"]
# What a spare does with its request line: the config and the maker of the shim it asks for.
ShimRequest = Callable[[bytes], tuple[ShimConfig, MakeShim]]


def fork_shim(cfg: ShimConfig, make: MakeShim = Shim) -> int:
    """Start a shim for `cfg` (made by `make`: execshim.py makes another kind) in the background;
    return the read end of its ready pipe.

    The pipe yields one JSON line, {"ok": true, "pid": N} or {"ok": false, "error": ..., "kind": ...}.
    Read up to the newline, not EOF: the container's init holds a copy until it execs. A shim
    that dies before writing leaves only the EOF.
    """
    r, w = os.pipe2(os.O_CLOEXEC)
    if _fork_detached() == 0:
        try:
            _close_inherited((w,))
        except BaseException:
            os._exit(1)
        _shim_main(cfg, w, make)
    os.close(w)
    return r


@dataclass
class Spare:
    """A shim process forked ahead of its request (see the module docstring)."""

    requests: int  # write the one request line here
    ready: int  # then read its handshake here, as fork_shim's pipe


def fork_spare(serve: ShimRequest) -> Spare:
    """Fork a spare shim; once it reads a request line, `serve` (called in the spare) says what shim it becomes.

    An empty request (the caller closed `requests` without writing) ends the spare: that is how
    a forkserver that exits takes its spare along. `serve`'s errors are the handshake's answer.
    """
    req_r, req_w = os.pipe2(os.O_CLOEXEC)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    if _fork_detached() == 0:
        _spare_main(req_r, ready_w, serve)
    os.close(req_r)
    os.close(ready_w)
    return Spare(req_w, ready_r)


def _fork_detached() -> int:
    """Fork a grandchild in its own session, reparented away from us (we reap the child between):
    0 in the grandchild, else the (reaped) child's pid."""
    child = os.fork()
    if child == 0:  # the intermediate: its only job is to fork and vanish
        try:
            os.setsid()
            if os.fork() == 0:
                return 0
        except BaseException:
            os._exit(1)
        os._exit(0)
    os.waitpid(child, 0)
    return child


def handshake_answer(data: bytes) -> bytes:
    """The answer line to pass on from what a shim wrote on its ready pipe (its first line)."""
    line = data.split(b"\n", 1)[0].strip()
    if not line:
        return protocol.error(HullError("the shim exited before it was ready (see shim.log in its exec dir)"))
    try:
        protocol.decode_answer(line)
    except HullError as e:  # the shim's error, re-encoded with its kind (or a garbled line, as an error)
        return protocol.error(e)
    return line + b"\n"


def read_handshake(fd: int) -> bytes:
    """Block until the shim's ready line (see fork_shim); return it as handshake_answer does."""
    buf = b""
    while b"\n" not in buf and (chunk := os.read(fd, 65536)):
        buf += chunk
    os.close(fd)
    return handshake_answer(buf)


def _spare_main(requests: int, ready: int, serve: ShimRequest) -> NoReturn:
    try:
        _close_inherited((requests, ready))
        # Not the forkserver's pipes to the daemon, which must see them end with the forkserver.
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        line = b""
        while not line.endswith(b"\n") and (chunk := os.read(requests, 65536)):
            line += chunk
        os.close(requests)
        if not line:
            os._exit(0)
        try:
            cfg, make = serve(line)
        except (HullError, OSError) as e:
            _tell(ready, protocol.error(e))
            os._exit(1)
    except BaseException:  # a bug: the forkserver's stderr is still ours
        print_traceback()
        sys.stderr.flush()
        os._exit(1)
    _shim_main(cfg, ready, make)


def _shim_main(cfg: ShimConfig, ready: int, make: MakeShim) -> NoReturn:
    try:
        _own_stdio(cfg)
        shim = make(cfg)
        try:
            shim.setup()
        except BaseException as e:  # every failure goes to the caller, who reports it
            _tell(ready, protocol.error(e))
            os._exit(1)
        if not _tell(ready, protocol.ok(pid=os.getpid())) and not shim.outlives_caller:
            shim.abandon()
            os._exit(0)
    except BaseException:  # a bug: leave its trace in shim.log
        print_traceback()
        sys.stderr.flush()
        os._exit(1)
    run(shim)


def _close_inherited(keep: tuple[int, ...]) -> None:
    """Close everything inherited (the caller's sockets and pipes) but stdio and `keep`."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:  # the listing's own descriptor
                pass


def _own_stdio(cfg: ShimConfig) -> None:
    """stdin and stdout to /dev/null, stderr to the shim log."""
    os.makedirs(cfg.exec_dir, 0o700, exist_ok=True)
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(cfg.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)


def _tell(fd: int, data: bytes) -> bool:
    """Answer the handshake; False if the caller is gone (the daemon died meanwhile). A
    container's shim serves anyway: a restarted daemon finds it by its socket."""
    try:
        write_all(fd, data)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
