"""The shim process: parent of one container's init, keeper of its stdio, log and exit status.

One thread, one selectors loop, no asyncio: a shim lives as long as its container and there
is one per container, so its memory counts. It serves the protocol of protocol.py on
`<exec_dir>/shim.sock` until `delete`, and it outlives both the daemon that started it and
the container (a restarted daemon reconnects and collects the exit status).

`fork_shim` makes one: a double fork (the shim is reparented away from its caller, in its own
session), then `Shim.setup` (socket, stdio, runtime create) and a one-line handshake on a pipe
back to the caller: `{"ok": true, "pid": N}` once the shim listens, or the error.
"""

import errno
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from hull import multiplex
from hull.errors import Conflict, HullError, InvalidArgument
from hull.fsutil import atomic_write
from hull.runtime import console, syscalls
from hull.runtime.state import now_rfc3339
from hull.shim import oci, protocol
from hull.shim.config import ShimConfig

if TYPE_CHECKING:
    from hull.containers.jsonlog import JsonLogWriter
    from hull.runtime.cgroups import CgroupManager

CREATED, RUNNING, PAUSED, STOPPED = "created", "running", "paused", "stopped"
READ_SIZE = 65536
# Past this much unsent output to one attached client, the shim stops reading the container's
# output until the client catches up: the container then blocks on write, as under Docker.
HIGH_WATER = 1 << 20
# After the init exits, how long processes outside its pid namespace may keep the output open.
DRAIN_TIMEOUT = 2.0
# How long `delete` waits for a killed init to die.
KILL_TIMEOUT = 10.0


@dataclass
class ExitStatus:
    exit_code: int
    exited_at: str
    oom_killed: bool
    pid: int


@dataclass
class Conn:
    sock: socket.socket
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    eof: bool = False  # the client half-closed
    closing: bool = False  # close once outbuf is flushed
    waiting: bool = False  # a `wait` is pending: later requests queue behind it
    skipping: bool = False  # dropping the rest of a request line that was too long
    streaming: bool = False  # attached: output frames out, stdin in
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False


class Shim:
    def __init__(self, cfg: ShimConfig) -> None:
        self.cfg = cfg
        self.runtime = oci.for_config(cfg)
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
        self.memory: CgroupManager | None = None
        self.wake_r = -1
        self.registered: dict[int, int] = {}  # fd -> events, as the selector has them
        self.done = False

    # --- start-up ------------------------------------------------------------------------

    def setup(self) -> None:
        cfg = self.cfg
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
        self.listener = _listen(cfg.socket_path)
        try:
            self._setup_rest()
        except BaseException:
            self.listener.close()
            _unlink(cfg.socket_path)
            raise
        self._refresh(self.listener.fileno())
        self._refresh(self.wake_r)
        self._refresh_outputs()  # read (and log) output even while no client is attached

    def _setup_rest(self) -> None:
        cfg = self.cfg
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)  # a Python handler: the wakeup fd needs one
        if cfg.log_path:
            from hull.containers.jsonlog import JsonLogWriter  # the daemon's format; imported by the forkserver already

            self.log = JsonLogWriter(cfg.log_path, cfg.log_max_size, cfg.log_max_file)
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
        try:
            from hull.runtime.cgroups import new_manager

            self.memory = new_manager(cfg.memory_cgroup, cfg.id)
        except HullError as e:  # no OOM reporting then, but the container runs
            print(f"hull-shim: no memory cgroup to read OOM kills from: {e.message}", file=sys.stderr)
        atomic_write(cfg.pid_path, str(os.getpid()).encode(), fsync=False)

    # --- the loop --------------------------------------------------------------------------

    def serve(self) -> None:
        self._reap()  # the init may have died during create
        while not self.done:
            timeout = None
            if self.exit is not None and not self.finished:
                timeout = max(0.0, self.drain_deadline - time.monotonic())
            for key, events in self.sel.select(timeout):
                fd = key.fd
                if fd not in self.registered:  # closed by an earlier event of this round
                    continue
                try:
                    self._event(fd, events)
                except Exception:  # one bad event must not end the container's shim
                    traceback.print_exc()
                    if fd in self.conns:
                        self._close_conn(self.conns[fd])
            self._maybe_finish()

    def _event(self, fd: int, events: int) -> None:
        if self.listener is not None and fd == self.listener.fileno():
            self._accept()
            return
        if fd == self.wake_r:
            _drain(fd)
            self._reap()
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

    def _want(self, fd: int) -> int:
        """The events `fd` should be polled for, from the current state."""
        if fd == self.wake_r or (self.listener is not None and fd == self.listener.fileno()):
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
            handler = self._ops.get(req["op"])
            if handler is None:
                raise InvalidArgument(f"unknown op {req['op']!r}")
            answer = handler(self, conn, req)
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
        oom = False
        if self.memory is not None:
            try:
                oom = self.memory.oom_kill_count() > 0
            except (HullError, OSError):
                pass
        self.exit = ExitStatus(code if code >= 0 else 128 - code, now_rfc3339(), oom, self.init_pid)
        self.status = STOPPED
        self.drain_deadline = time.monotonic() + DRAIN_TIMEOUT
        self._refresh_outputs()  # no more throttling

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
        record = {**vars(self.exit)}
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.cfg.exit_file)), exist_ok=True)
            atomic_write(self.cfg.exit_file, json.dumps(record).encode(), 0o644, fsync=True)
        except OSError as e:
            print(f"hull-shim: write {self.cfg.exit_file}: {e}", file=sys.stderr)
        answer = protocol.ok(**self._exit_fields())
        for conn in list(self.conns.values()):
            if conn.waiting:
                conn.waiting = False
                self._send(conn, answer)
                self._handle_lines(conn)
            elif conn.streaming:
                conn.closing = True
                self._flush(conn)

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
        self.started_at = now_rfc3339()
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
        flags = [req.get(k, False) for k in ("stdin", "stdout", "stderr")]
        if not all(isinstance(f, bool) for f in flags):
            raise InvalidArgument("attach: stdin, stdout and stderr must be booleans")
        if flags[0] and self.stdin_fd is None and not self.finished:
            raise Conflict("the container's stdin is not open" if not self.cfg.open_stdin else "stdin is closed")
        self._send(conn, protocol.ok())
        conn.streaming = True
        conn.stdin, conn.stdout, conn.stderr = flags
        if self.finished:  # nothing more will come: the stream ends at once
            conn.closing = True
            self._flush(conn)
        return None

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
        _unlink(self.cfg.socket_path)
        _unlink(self.cfg.pid_path)
        conn.sock.setblocking(True)
        try:
            conn.sock.sendall(bytes(conn.outbuf) + protocol.ok())
        except OSError:
            pass
        conn.outbuf.clear()
        self.done = True
        return None

    _ops: dict[str, Callable[["Shim", Conn, dict[str, Any]], dict[str, Any] | None]] = {
        "state": op_state,
        "start": op_start,
        "kill": op_kill,
        "wait": op_wait,
        "pause": op_pause,
        "resume": op_resume,
        "resize": op_resize,
        "attach": op_attach,
        "delete": op_delete,
    }

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


def _listen(path: str) -> socket.socket:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        _unlink(path)  # a dead shim's socket
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


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fork_shim(cfg: ShimConfig) -> int:
    """Start a shim for `cfg` in the background; return the read end of its ready pipe.

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
                _shim_main(cfg, w)
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


def _shim_main(cfg: ShimConfig, ready: int) -> NoReturn:
    status = 1
    try:
        _own_fds(cfg, ready)
        shim = Shim(cfg)
        try:
            shim.setup()
        except BaseException as e:  # every failure goes to the caller, who reports it
            _tell(ready, protocol.error(e))
            os._exit(1)
        _tell(ready, protocol.ok(pid=os.getpid()))
        shim.serve()
        shim.shutdown()
        status = 0
    except BaseException:  # a bug: leave its trace in shim.log
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(status)


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
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        pass
    finally:
        os.close(fd)
