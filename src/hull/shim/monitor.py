"""The shim's loop (one container's stdio, clients and exit), and the re-exec that keeps it small.

`Monitor` is the shim once its container exists: one thread, one selectors loop, no asyncio.
It serves the protocol of protocol.py on `<exec_dir>/shim.sock` until `delete`, pumps the
container's output into the json-file log and to attached clients, feeds its stdin, reaps its
init and records the exit. server.py makes the first one (socket, stdio, runtime create).

Why the re-exec: a shim is forked from the forkserver so that no container start pays for an
interpreter, but a forked shim keeps the forkserver's whole heap resident (the runtime, ctypes,
libseccomp: some 23 MB of RSS), per container, for as long as the container runs. So once
its container has run for SLIM_AFTER seconds, the forked shim execs a fresh interpreter
(`python -I -S`) that imports only this module and hands it its state (`_slim`, `main`):
the same pid, so the container's init stays its child and the child-subreaper mark stays
(execve keeps both); the same listening socket; the container's stdio; its clients. The new
process drives the runtime by its command line (oci.command_runtime): kill, pause and delete
are rare and never on the path of a start, and a container that exits within SLIM_AFTER
(`docker run --rm` of a short command) never re-execs at all.

So this module, and what it imports at module level, must stay small: no dataclasses, no
hull.runtime.state or hull.runtime.cgroups (imported at the exit, when memory no longer
counts: the daemon deletes the shim once it has the exit status). tests/shim/test_shim_slim.py
holds the re-exec'd shim's RSS to a bound.
"""

import errno
import json
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import hull
from hull import multiplex
from hull.containers.jsonlog import JsonLogWriter
from hull.errors import Conflict, HullError, InvalidArgument
from hull.fsutil import atomic_write
from hull.runtime import console
from hull.shim import oci, protocol, sysinfo
from hull.shim.config import ShimConfig

CREATED, RUNNING, PAUSED, STOPPED = "created", "running", "paused", "stopped"
READ_SIZE = 65536
# Past this much unsent output to one attached client, the shim stops reading the container's
# output until the client catches up: the container then blocks on write, as under Docker.
HIGH_WATER = 1 << 20
# After the init exits, how long processes outside its pid namespace may keep the output open.
DRAIN_TIMEOUT = 2.0
# How long `delete` waits for a killed init to die.
KILL_TIMEOUT = 10.0
# How long a started container runs before its shim re-execs into a lean one, and how long to
# wait for a moment without buffered data (which the hand-over does not carry) to do it.
SLIM_AFTER = 1.0
SLIM_RETRY = 0.5
# What the re-exec'd interpreter runs: argv is [-c, <dir holding the hull package>, <state fd>].
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from hull.shim.monitor import main; main(int(sys.argv[2]))"
# A connection's flags that the hand-over carries (its buffers must be empty).
_CONN_FLAGS = ("eof", "waiting", "streaming", "stdin", "stdout", "stderr")


class ExitStatus:
    def __init__(self, exit_code: int, exited_at: str, oom_killed: bool, pid: int) -> None:
        self.exit_code = exit_code
        self.exited_at = exited_at
        self.oom_killed = oom_killed
        self.pid = pid


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.eof = False  # the client half-closed
        self.closing = False  # close once outbuf is flushed
        self.waiting = False  # a `wait` is pending: later requests queue behind it
        self.skipping = False  # dropping the rest of a request line that was too long
        self.streaming = False  # attached: output frames out, stdin in
        self.stdin = False
        self.stdout = False
        self.stderr = False


class Monitor:
    _OPS = frozenset({"state", "start", "kill", "wait", "pause", "resume", "resize", "attach", "delete"})

    def __init__(self, cfg: ShimConfig, runtime: oci.OciRuntime) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.sel = selectors.DefaultSelector()
        self.listener: socket.socket | None = None
        self.conns: dict[int, Conn] = {}
        self.status = CREATED
        self.init_pid = 0
        self.started_at: str | None = None
        self.exit: ExitStatus | None = None  # set when the init is reaped
        self.finished = False  # exit recorded, output drained, waiters answered
        self.drain_deadline = 0.0
        self.outputs: dict[int, int] = {}  # fd -> protocol stream (STDOUT/STDERR)
        self.stdin_fd: int | None = None  # pipe write end, or the pty master
        self.stdin_buf = bytearray()
        self.master: int | None = None
        self.log: JsonLogWriter | None = None
        self.wake_r = -1
        self.registered: dict[int, int] = {}  # fd -> events, as the selector has them
        self.done = False
        # When to re-exec into a lean monitor; None: not (this one is lean already, or the container ended).
        self.slim_at: float | None = None
        self.may_slim = False  # set by the forked shim (server.Shim)
        # Whether to serve on when the daemon that asked for us is gone before our handshake
        # (a restarted one finds a container's shim by its socket).
        self.outlives_caller = True
        # sysinfo(2) answered for the container (cfg.answer_sysinfo): the socket the runtime
        # sends seccomp listeners to, its connections until they have, and the listeners.
        self.seccomp_socket: socket.socket | None = None
        self.seccomp_conns: dict[int, socket.socket] = {}
        self.notify_fds: set[int] = set()
        self.cgroups: sysinfo.Cgroups | None = None

    def open_log(self) -> None:
        if self.cfg.log_path:
            self.log = JsonLogWriter(self.cfg.log_path, self.cfg.log_max_size, self.cfg.log_max_file)

    def watch(self) -> None:
        """Catch SIGCHLD on a wakeup pipe and poll everything there is: the loop can run."""
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)  # a Python handler: the wakeup fd needs one
        assert self.listener is not None
        seccomp = [self.seccomp_socket.fileno()] if self.seccomp_socket is not None else []
        for fd in (self.listener.fileno(), self.wake_r, *self.conns, *seccomp, *self.seccomp_conns, *self.notify_fds):
            self._refresh(fd)
        self._refresh_outputs()  # read (and log) output even while no client is attached

    # --- the loop --------------------------------------------------------------------------

    def serve(self) -> None:
        self._reap()  # the init may have died during create (or while the shim re-exec'd)
        while not self.done:
            deadlines = [self.drain_deadline] if self.exit is not None and not self.finished else []
            if self.slim_at is not None:
                deadlines.append(self.slim_at)
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, events in self.sel.select(timeout):
                fd = key.fd
                if fd not in self.registered:  # closed by an earlier event of this round
                    continue
                try:
                    self._event(fd, events)
                except Exception:  # one bad event must not end the container's shim
                    print_traceback()
                    if fd in self.conns:
                        self._close_conn(self.conns[fd])
            self._maybe_finish()
            if self.slim_at is not None and time.monotonic() >= self.slim_at:
                self._slim()

    def _event(self, fd: int, events: int) -> None:
        if self.listener is not None and fd == self.listener.fileno():
            self._accept()
            return
        if fd == self.wake_r:
            _drain(fd)
            self._reap()
            return
        if self._seccomp_event(fd):
            return
        conn = self.conns.get(fd)
        if conn is not None:
            if events & selectors.EVENT_WRITE:
                self._flush(conn)
            if events & selectors.EVENT_READ and fd in self.conns:
                self._read_conn(conn)
            return
        if events & selectors.EVENT_WRITE and fd == self.stdin_fd:
            self._flush_stdin()
        if events & selectors.EVENT_READ and fd in self.outputs:
            self._read_output(fd)

    def _seccomp_event(self, fd: int) -> bool:
        """A seccomp listener arriving, or a sysinfo call to answer (see sysinfo.py); False: not ours."""
        if self.seccomp_socket is not None and fd == self.seccomp_socket.fileno():
            try:
                sock, _ = self.seccomp_socket.accept()
            except (BlockingIOError, InterruptedError):
                return True
            self.seccomp_conns[sock.fileno()] = sock
            self._refresh(sock.fileno())
        elif fd in self.seccomp_conns:
            sock = self.seccomp_conns.pop(fd)
            self._forget(fd)
            listener = sysinfo.receive_listener(sock)
            sock.close()
            if listener is not None:
                self.notify_fds.add(listener)
                self._refresh(listener)
        elif fd in self.notify_fds:
            assert self.cgroups is not None
            if not sysinfo.answer(fd, self.cgroups, self.init_pid):
                self.notify_fds.discard(fd)
                self._forget(fd)
                os.close(fd)
        else:
            return False
        return True

    def _want(self, fd: int) -> int:
        """The events `fd` should be polled for, from the current state."""
        if fd == self.wake_r or (self.listener is not None and fd == self.listener.fileno()):
            return selectors.EVENT_READ
        if (
            fd in self.notify_fds
            or fd in self.seccomp_conns
            or (self.seccomp_socket is not None and fd == self.seccomp_socket.fileno())
        ):
            return selectors.EVENT_READ
        conn = self.conns.get(fd)
        if conn is not None:
            want = selectors.EVENT_WRITE if conn.outbuf else 0
            if not conn.eof and not (conn.streaming and conn.stdin and len(self.stdin_buf) > HIGH_WATER):
                want |= selectors.EVENT_READ
            return want
        want = 0
        if fd in self.outputs and not self._throttled():
            want |= selectors.EVENT_READ
        if fd == self.stdin_fd and self.stdin_buf:
            want |= selectors.EVENT_WRITE
        return want

    def _refresh(self, fd: int) -> None:
        want = self._want(fd)
        have = self.registered.get(fd, 0)
        if want == have:
            return
        if not want:
            self.sel.unregister(fd)
            del self.registered[fd]
        elif not have:
            self.sel.register(fd, want)
            self.registered[fd] = want
        else:
            self.sel.modify(fd, want)
            self.registered[fd] = want

    def _forget(self, fd: int) -> None:
        if fd in self.registered:
            self.sel.unregister(fd)
            del self.registered[fd]

    def _throttled(self) -> bool:
        # Once the init is gone nobody waits on the pipes: drain them whatever the clients do.
        return self.exit is None and any(c.streaming and len(c.outbuf) > HIGH_WATER for c in self.conns.values())

    def _refresh_outputs(self) -> None:
        for fd in list(self.outputs):
            self._refresh(fd)

    # --- clients ---------------------------------------------------------------------------

    def _accept(self) -> bool:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return False
        sock.setblocking(False)
        self.conns[sock.fileno()] = Conn(sock)
        self._refresh(sock.fileno())
        return True

    def _read_conn(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            conn.eof = True
            if not conn.streaming and not conn.waiting:
                self._close_conn(conn)
                return
            if conn.streaming and conn.stdin and self.cfg.stdin_once:
                self._close_stdin()
            self._refresh(conn.sock.fileno())
            return
        if conn.streaming:
            self._feed_stdin(conn, data)
            return
        conn.inbuf += data
        self._handle_lines(conn)

    def _handle_lines(self, conn: Conn) -> None:
        while not conn.waiting and not conn.streaming and not conn.closing:
            line, sep, rest = conn.inbuf.partition(b"\n")
            if not sep:
                if len(conn.inbuf) > protocol.MAX_LINE and not conn.skipping:
                    self._send(conn, protocol.error(InvalidArgument("request line too long")))
                    conn.skipping = True
                if conn.skipping:
                    conn.inbuf.clear()
                return
            conn.inbuf = bytearray(rest)
            if conn.skipping:  # the end of the line too long, already refused
                conn.skipping = False
            elif line.strip():
                self._request(conn, bytes(line))
        if conn.streaming and conn.inbuf:  # stdin that came with the attach request
            data, conn.inbuf = bytes(conn.inbuf), bytearray()
            self._feed_stdin(conn, data)

    def _request(self, conn: Conn, line: bytes) -> None:
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise InvalidArgument('a request is a JSON object with an "op"')
            if req["op"] not in self._OPS:
                raise InvalidArgument(f"unknown op {req['op']!r}")
            handler: Callable[[Conn, dict[str, Any]], dict[str, Any] | None] = getattr(self, "op_" + req["op"])
            answer = handler(conn, req)
        except ValueError as e:  # json's errors; InvalidArgument is no ValueError
            self._send(conn, protocol.error(InvalidArgument(f"malformed request: {e}")))
        except (HullError, OSError) as e:
            self._send(conn, protocol.error(e))
        else:
            if answer is not None:
                self._send(conn, protocol.ok(**answer))

    def _send(self, conn: Conn, data: bytes) -> None:
        if conn.sock.fileno() < 0:
            return
        conn.outbuf += data
        self._flush(conn)

    def _flush(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        if conn.outbuf:
            try:
                sent = conn.sock.send(conn.outbuf)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:  # the client is gone
                self._close_conn(conn)
                return
            del conn.outbuf[:sent]
        if not conn.outbuf and conn.closing:
            self._close_conn(conn)
            return
        self._refresh(fd)
        if conn.streaming:
            self._refresh_outputs()

    def _close_conn(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        self._forget(fd)
        self.conns.pop(fd, None)
        conn.sock.close()
        if conn.streaming:
            self._refresh_outputs()

    # --- container stdio -------------------------------------------------------------------

    def _read_output(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last slave is closed, which is EOF
                raise
            data = b""
        if not data:
            self._output_eof(fd)
            return
        self._output(self.outputs[fd], data)

    def _output(self, stream: int, data: bytes) -> None:
        if self.log is not None:
            self.log.write("stdout" if stream == multiplex.STDOUT else "stderr", data)
        frame = None
        for conn in list(self.conns.values()):
            if conn.streaming and (conn.stdout if stream == multiplex.STDOUT else conn.stderr):
                frame = frame or multiplex.frame(stream, data)
                self._send(conn, frame)

    def _output_eof(self, fd: int) -> None:
        self._forget(fd)
        del self.outputs[fd]
        if fd != self.master:  # the master is also the stdin: closed with everything else at the end
            os.close(fd)

    def _feed_stdin(self, conn: Conn, data: bytes) -> None:
        if not conn.stdin or self.stdin_fd is None:
            return  # attached without stdin, or stdin closed already: dropped, as Docker does
        self.stdin_buf += data
        self._flush_stdin()
        self._refresh(conn.sock.fileno())

    def _flush_stdin(self) -> None:
        if self.stdin_fd is None:
            self.stdin_buf.clear()
            return
        try:
            while self.stdin_buf:
                n = os.write(self.stdin_fd, self.stdin_buf)
                del self.stdin_buf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # EPIPE/EIO: the container closed its stdin or is gone
            self.stdin_buf.clear()
            self._close_stdin()
            return
        self._refresh(self.stdin_fd)
        for c in list(self.conns.values()):
            if c.streaming and c.stdin:
                self._refresh(c.sock.fileno())

    def _close_stdin(self) -> None:
        fd, self.stdin_fd = self.stdin_fd, None
        if fd is None:
            return
        self.stdin_buf.clear()
        if fd == self.master:
            # A pty has no half-close: send ^D, which a reader in canonical mode takes as end of input.
            try:
                os.write(fd, b"\x04")
            except OSError:
                pass
            self._refresh(fd)
        else:
            self._forget(fd)
            os.close(fd)

    # --- the container's end ---------------------------------------------------------------

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid and self.exit is None:
                self._init_exited(status)

    def _init_exited(self, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        exited_at = _now()
        self.exit = ExitStatus(code if code >= 0 else 128 - code, exited_at, self._oom_killed(), self.init_pid)
        self.status = STOPPED
        self.slim_at = None
        self.drain_deadline = time.monotonic() + DRAIN_TIMEOUT
        self._refresh_outputs()  # no more throttling

    def _oom_killed(self) -> bool:
        from hull.runtime.cgroups import new_manager  # here: see the module docstring

        try:
            return new_manager(self.cfg.memory_cgroup, self.cfg.id).oom_kill_count() > 0
        except HullError as e:  # no OOM reporting then
            print(f"hull-shim: no memory cgroup to read OOM kills from: {e.message}", file=sys.stderr)
        except OSError as e:
            print(f"hull-shim: read the OOM kill count: {e}", file=sys.stderr)
        return False

    def _maybe_finish(self) -> None:
        if self.exit is None or self.finished:
            return
        if self.outputs.keys() - {self.master} and time.monotonic() < self.drain_deadline:
            return
        self._finish()

    def _finish(self) -> None:
        """Record the exit: after the last output, the exit file, then waiters and attached clients."""
        assert self.exit is not None
        self.finished = True
        for fd in list(self.outputs):
            if fd != self.master:
                self._read_rest(fd)
                self._output_eof(fd)
        if self.master is not None:
            if self.master in self.outputs:
                self._read_rest(self.master)
                self._output_eof(self.master)
            if self.stdin_fd == self.master:
                self.stdin_fd = None
            self._forget(self.master)
            os.close(self.master)
        self._close_stdin()
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.cfg.exit_file:
            self._write_exit_file()
        answer = protocol.ok(**self._exit_fields())
        for conn in list(self.conns.values()):
            if conn.waiting:
                conn.waiting = False
                self._send(conn, answer)
                self._handle_lines(conn)
            elif conn.streaming:
                conn.closing = True
                self._flush(conn)

    def _write_exit_file(self) -> None:
        assert self.exit is not None
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.cfg.exit_file)), exist_ok=True)
            atomic_write(self.cfg.exit_file, json.dumps(vars(self.exit)).encode(), 0o644, fsync=True)
        except OSError as e:
            print(f"hull-shim: write {self.cfg.exit_file}: {e}", file=sys.stderr)

    def _read_rest(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:
                return
            if not data:
                return
            self._output(self.outputs[fd], data)

    def _exit_fields(self) -> dict[str, Any]:
        assert self.exit is not None
        return {"exit_code": self.exit.exit_code, "exited_at": self.exit.exited_at, "oom_killed": self.exit.oom_killed}

    def _wait_init(self) -> None:
        """Block until the (killed) init is reaped."""
        deadline = time.monotonic() + KILL_TIMEOUT
        while self.exit is None:
            self._reap()
            if self.exit is not None:
                return
            if time.monotonic() > deadline:
                raise HullError(f"container {self.cfg.id}: init (pid {self.init_pid}) did not die after SIGKILL")
            time.sleep(0.005)

    # --- ops -------------------------------------------------------------------------------

    def op_state(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "pid": 0 if self.exit is not None else self.init_pid,
            "exit_code": None,
            "exited_at": None,
            "oom_killed": False,
            "started_at": self.started_at,
        }
        if self.exit is not None:
            out.update(self._exit_fields())
        return out

    def op_start(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        if self.exit is not None:
            raise Conflict("cannot start a container that has stopped")
        if self.status != CREATED:
            raise Conflict("cannot start an already running container")
        self.runtime.start()
        self.status = RUNNING
        self.started_at = _now()
        if self.may_slim:
            self.slim_at = time.monotonic() + SLIM_AFTER
        return {"pid": self.init_pid, "started_at": self.started_at}

    def op_kill(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        sig = req.get("signal")
        if not isinstance(sig, int) or isinstance(sig, bool) or not 0 < sig < signal.NSIG:
            raise InvalidArgument(f"kill: invalid signal {sig!r}")
        if self.exit is not None:
            raise Conflict("container not running")
        self.runtime.kill(sig, bool(req.get("all", False)))
        return {}

    def op_wait(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any] | None:
        if self.finished:
            return self._exit_fields()
        conn.waiting = True
        return None

    def op_pause(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        if self.status not in (RUNNING, CREATED):
            raise Conflict("container not running")
        self.runtime.pause()
        self.status = PAUSED
        return {}

    def op_resume(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        if self.status != PAUSED:
            raise Conflict("container not paused")
        self.runtime.resume()
        self.status = RUNNING if self.started_at else CREATED
        return {}

    def op_resize(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        height, width = req.get("height"), req.get("width")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 65536 for v in (height, width)):
            raise InvalidArgument(
                f"resize: height and width must be integers from 0 to 65535, got {height!r}, {width!r}"
            )
        if self.master is None or self.finished:
            raise Conflict("the container has no terminal" if self.master is None else "container not running")
        console.set_winsize(self.master, int(height), int(width))  # type: ignore[arg-type]  # checked above
        return {}

    def op_attach(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any] | None:
        self._attach(conn, self._attach_flags(req), {})
        return None

    def _attach_flags(self, req: dict[str, Any]) -> tuple[bool, bool, bool]:
        stdin, stdout, stderr = (req.get(k, False) for k in ("stdin", "stdout", "stderr"))
        if not all(isinstance(f, bool) for f in (stdin, stdout, stderr)):
            raise InvalidArgument("attach: stdin, stdout and stderr must be booleans")
        if stdin and self.stdin_fd is None and not self.finished:
            raise Conflict("the container's stdin is not open" if not self.cfg.open_stdin else "stdin is closed")
        return stdin, stdout, stderr

    def _attach(self, conn: Conn, flags: tuple[bool, bool, bool], answer: dict[str, Any]) -> None:
        """Answer `answer`, then turn the connection into the stream of `flags`' streams."""
        self._send(conn, protocol.ok(**answer))
        conn.streaming = True
        conn.stdin, conn.stdout, conn.stderr = flags
        if self.finished:  # nothing more will come: the stream ends at once
            conn.closing = True
            self._flush(conn)

    def op_delete(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any] | None:
        if self.exit is None:
            try:
                self.runtime.kill(signal.SIGKILL, True)
            except HullError:
                pass  # it may have died meanwhile: the reap below tells
            self._wait_init()
        if not self.finished:
            self.drain_deadline = time.monotonic()  # nobody is left to wait for
            self._finish()
        self.runtime.delete()
        # Gone from the path before the answer: a client that saw `delete` return never connects again.
        unlink_if_exists(self.cfg.socket_path)
        unlink_if_exists(self.cfg.pid_path)
        conn.sock.setblocking(True)
        try:
            conn.sock.sendall(bytes(conn.outbuf) + protocol.ok())
        except OSError:
            pass
        conn.outbuf.clear()
        self.done = True
        return None

    def abandon(self) -> None:
        """Nobody will ever talk to us (see outlives_caller): take back the paths setup made."""
        for path in (self.cfg.socket_path, self.cfg.seccomp_socket_path, self.cfg.pid_path):
            unlink_if_exists(path)

    def shutdown(self) -> None:
        """After `delete`: answer what clients asked meanwhile (the container is gone: state,
        wait), hang up on everyone, remove our files."""
        if self.listener is not None:
            # Connections made before the socket was unlinked: closing the listener would reset them.
            while self._accept():
                pass
        for conn in list(self.conns.values()):
            if not conn.streaming:
                try:
                    conn.sock.setblocking(False)  # the `delete` connection is blocking by now
                    conn.inbuf += conn.sock.recv(protocol.MAX_LINE)
                except OSError:
                    pass
                self._handle_lines(conn)
            try:
                conn.sock.settimeout(1.0)
                conn.sock.sendall(conn.outbuf)
            except OSError:
                pass
            self._close_conn(conn)
        if self.listener is not None:
            self.listener.close()

    # --- the re-exec into a lean monitor ---------------------------------------------------

    def _slim(self) -> None:
        """Re-exec into a lean monitor (see the module docstring) if nothing is in flight; else retry soon."""
        busy = self.stdin_buf or any(c.inbuf or c.outbuf or c.closing or c.skipping for c in self.conns.values())
        if self.exit is not None or busy:
            self.slim_at = None if self.exit is not None else time.monotonic() + SLIM_RETRY
            return
        self.slim_at = None
        state = self._handover()
        fd = os.memfd_create("hull-shim-state", 0)  # no O_CLOEXEC: the new interpreter reads it
        write_all(fd, json.dumps(state).encode())
        os.lseek(fd, 0, os.SEEK_SET)
        handed = _handed_fds(state)
        for h in handed:
            os.set_inheritable(h, True)
        if self.log is not None:
            # The writer's state (partial lines) is not handed over: they become partial entries,
            # which readers join as they join Docker's 16 KiB pieces.
            self.log.close()
            self.log = None
        sys.stderr.flush()
        root = os.path.dirname(os.path.dirname(os.path.abspath(hull.__file__)))
        try:
            os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", _BOOT, root, str(fd)])
        except OSError as e:  # serve on as we are
            print(f"hull-shim: re-exec into a lean monitor: {e}", file=sys.stderr)
            os.close(fd)
            for h in handed:
                os.set_inheritable(h, False)
            self.open_log()

    def _handover(self) -> dict[str, Any]:
        assert self.listener is not None
        return {
            "config": self.cfg._asdict(),
            "status": self.status,
            "init_pid": self.init_pid,
            "started_at": self.started_at,
            "listener": self.listener.fileno(),
            "outputs": {str(fd): stream for fd, stream in self.outputs.items()},
            "master": self.master,
            "stdin_fd": self.stdin_fd,
            "conns": [{"fd": fd, **{k: getattr(c, k) for k in _CONN_FLAGS}} for fd, c in self.conns.items()],
            "seccomp_socket": self.seccomp_socket.fileno() if self.seccomp_socket is not None else None,
            "seccomp_conns": list(self.seccomp_conns),
            "notify_fds": sorted(self.notify_fds),
            "cgroups": self.cgroups.to_json() if self.cgroups is not None else None,
        }

    @classmethod
    def restore(cls, state: dict[str, Any]) -> "Monitor":
        """The monitor that `_handover` described, in the re-exec'd process."""
        cfg = ShimConfig(**state["config"])  # validated by the shim that handed it over
        mon = cls(cfg, oci.command_runtime(cfg))
        for fd in _handed_fds(state):
            os.set_inheritable(fd, False)
        mon.status, mon.init_pid, mon.started_at = state["status"], state["init_pid"], state["started_at"]
        mon.listener = socket.socket(fileno=state["listener"])
        mon.listener.setblocking(False)
        mon.outputs = {int(fd): stream for fd, stream in state["outputs"].items()}
        mon.master, mon.stdin_fd = state["master"], state["stdin_fd"]
        for c in state["conns"]:
            conn = Conn(socket.socket(fileno=c["fd"]))
            conn.sock.setblocking(False)
            for k in _CONN_FLAGS:
                setattr(conn, k, c[k])
            mon.conns[c["fd"]] = conn
        if state["seccomp_socket"] is not None:
            mon.seccomp_socket = socket.socket(fileno=state["seccomp_socket"])
        mon.seccomp_conns = {fd: socket.socket(fileno=fd) for fd in state["seccomp_conns"]}
        mon.notify_fds = set(state["notify_fds"])
        if state["cgroups"] is not None:
            mon.cgroups = sysinfo.Cgroups.from_json(state["cgroups"])
        mon.open_log()
        mon.watch()
        return mon


def run(mon: Monitor) -> NoReturn:
    """Serve until `delete`, then exit: the end of every shim process."""
    status = 1
    try:
        mon.serve()
        mon.shutdown()
        status = 0
    except BaseException:  # a bug: leave its trace in shim.log
        print_traceback()
    finally:
        sys.stderr.flush()
        os._exit(status)


def main(state_fd: int) -> NoReturn:
    """The re-exec'd shim (see `_slim`): read the hand-over, serve on."""
    try:
        with os.fdopen(state_fd, "rb") as f:
            mon = Monitor.restore(json.loads(f.read()))
    except BaseException:
        print_traceback()
        sys.stderr.flush()
        os._exit(1)
    run(mon)


def _handed_fds(state: dict[str, Any]) -> list[int]:
    fds = [state["listener"], *map(int, state["outputs"]), *(c["fd"] for c in state["conns"])]
    fds += [*state["seccomp_conns"], *state["notify_fds"]]
    if state["seccomp_socket"] is not None:
        fds.append(state["seccomp_socket"])
    fds += [fd for fd in (state["master"], state["stdin_fd"]) if fd is not None and fd not in fds]
    return fds


def _now() -> str:
    from hull.runtime.state import now_rfc3339  # here: see the module docstring

    return now_rfc3339()


def print_traceback() -> None:
    import traceback  # here: only a bug needs it

    traceback.print_exc()


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def unlink_if_exists(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
