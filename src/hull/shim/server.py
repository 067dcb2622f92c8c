"""The forked shim: sets up one container (socket, stdio, runtime create) and hands it to its Monitor.

`fork_shim` makes one: a double fork (the shim is reparented away from its caller, in its own
session), then `Shim.setup` (socket, stdio, runtime create) and a one-line handshake on a pipe
back to the caller: `{"ok": true, "pid": N}` once the shim listens, or the error. Then the
shim is a monitor.Monitor (the loop, the ops, the exit), which re-execs itself into a lean
process once the container has run a while (see monitor.py for why).
"""

import os
import socket
import sys
from collections.abc import Callable
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


def fork_shim(cfg: ShimConfig, make: Callable[[ShimConfig], Shim] = Shim) -> int:
    """Start a shim for `cfg` (made by `make`: execshim.py makes another kind) in the background;
    return the read end of its ready pipe.

    The pipe yields one JSON line, {"ok": true, "pid": N} or {"ok": false, "error": ..., "kind": ...}.
    Read up to the newline, not EOF: the container's init holds a copy until it execs. A shim
    that dies before writing leaves only the EOF.
    """
    r, w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:  # the intermediate: its only job is to fork the shim and vanish
        status = 1
        try:
            os.close(r)
            os.setsid()
            if os.fork() == 0:
                _shim_main(cfg, w, make)
            status = 0
        finally:
            os._exit(status)
    os.close(w)
    os.waitpid(child, 0)
    return r


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


def _shim_main(cfg: ShimConfig, ready: int, make: Callable[[ShimConfig], Shim]) -> NoReturn:
    try:
        _own_fds(cfg, ready)
        shim = make(cfg)
        try:
            shim.setup()
        except BaseException as e:  # every failure goes to the caller, who reports it
            _tell(ready, protocol.error(e))
            os._exit(1)
        _tell(ready, protocol.ok(pid=os.getpid()))
    except BaseException:  # a bug: leave its trace in shim.log
        print_traceback()
        sys.stderr.flush()
        os._exit(1)
    run(shim)


def _own_fds(cfg: ShimConfig, keep: int) -> None:
    """Close everything inherited (the caller's sockets and pipes) but `keep`; stdio to /dev/null and the shim log."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:  # the listing's own descriptor
                pass
    os.makedirs(cfg.exec_dir, 0o700, exist_ok=True)
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(cfg.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)


def _tell(fd: int, data: bytes) -> None:
    """Answer the handshake. If the caller is gone (the daemon died meanwhile), serve anyway:
    a restarted daemon finds this shim by its socket."""
    try:
        write_all(fd, data)
    except OSError:
        pass
    finally:
        os.close(fd)
