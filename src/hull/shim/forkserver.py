"""The forkserver: one process per daemon that forks shims, so no container start pays for an interpreter.

The daemon starts it once as `python -m hull.shim.forkserver` with pipes for stdin and stdout
(client.ForkServer does). It imports everything a shim needs, moves itself once into the root
cgroup of every hierarchy (shims inherit that, so they neither count against nor die with
the daemon's cgroup; cgroup.procs writes are slow, so never per container), freezes the GC so
forked shims share those pages, and writes `{"ok": true, "pid": N}` when ready.

Then, per request: one ShimConfig JSON line on stdin (or an exec request: execshim.py). It hands
the line to its spare (server.fork_spare: a shim forked before the request, waiting for one),
which becomes that shim, and forks the next spare once it has been idle a moment (with no
spare, a request gets a spare forked for it). It answers on
stdout, *in request order*, `{"ok": true, "pid": shim_pid}` once that shim has run runtime
create and listens, or `{"ok": false, "error": ..., "kind": ...}` with the runtime's message.
Requests are served concurrently: a slow create holds up only the answers after it. At EOF on
stdin (the daemon is gone) it exits, and its spare with it; the shims it made keep running.
"""

import errno
import gc
import os
import selectors
import sys
from collections import deque
from dataclasses import dataclass, field

# Imported for the shims it forks, which import these lazily (BuiltinRuntime, the spec's
# seccomp section, the OOM reader, the exit time): an import after the fork is paid per container.
import hull.runtime.cgroups
import hull.runtime.container
import hull.runtime.seccomp
import hull.runtime.state
from hull.errors import HullError
from hull.runtime.cgroups.hierarchy import mounted_hierarchies, own_cgroups
from hull.shim import execshim, protocol, server
from hull.shim.config import ShimConfig
from hull.shim.monitor import write_all


@dataclass
class Pending:
    ready_fd: int = -1  # the shim's handshake pipe; -1 once answered
    buf: bytearray = field(default_factory=bytearray)
    answer: bytes = b""


def _give(spare: server.Spare, line: bytes) -> bool:
    """Write the request line to the spare and close that pipe; False if the spare is gone."""
    try:
        write_all(spare.requests, line + b"\n")
        return True
    except BrokenPipeError:
        os.close(spare.ready)
        return False
    finally:
        os.close(spare.requests)


def move_to_root_cgroups() -> None:
    pid = str(os.getpid())
    for h in mounted_hierarchies(own_cgroups()):
        try:
            with open(os.path.join(h.mount_point, "cgroup.procs"), "w") as f:
                f.write(pid)
        except OSError as e:
            print(f"hull-shim forkserver: stays in its cgroup of {h.mount_point}: {e.strerror}", file=sys.stderr)


# How long the forkserver waits, once it has nothing to do, before it forks the next spare: a
# fork (and the spare's first steps) right after a request would compete for the CPUs with the
# shim that request started, and whatever that shim's client does next.
SPARE_DELAY = 0.05


def shim_for_request(line: bytes) -> tuple[ShimConfig, server.MakeShim]:
    """What a spare becomes for a request line (server.ShimRequest): an exec's shim or a container's."""
    if line.startswith(execshim.REQUEST_PREFIX):
        return execshim.shim_for_request(line)
    return ShimConfig.from_json(line), server.Shim


class ForkServer:
    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.queue: deque[Pending] = deque()
        self.inbuf = bytearray()
        self.spare: server.Spare | None = None
        self.to_warm: list[bytes] = []  # exec requests handed out since the last spare

    def run(self) -> None:
        os.set_blocking(0, False)
        self.sel.register(0, selectors.EVENT_READ)
        self.spare = server.fork_spare(shim_for_request)
        self._write(protocol.ok(pid=os.getpid()))
        try:
            while True:
                idle = self.spare is None and not self.queue
                events = self.sel.select(SPARE_DELAY if idle else None)
                if not events and idle:
                    self._make_spare()
                for key, _ in events:
                    if key.fd == 0:
                        if not self._read_requests():
                            return
                    else:
                        self._read_ready(key.data)
                while self.queue and self.queue[0].answer:
                    self._write(self.queue.popleft().answer)
        finally:
            if self.spare is not None:
                os.close(self.spare.requests)  # the spare reads EOF and exits
                os.close(self.spare.ready)

    def _read_requests(self) -> bool:
        try:
            data = os.read(0, 65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        self.inbuf += data
        while b"\n" in self.inbuf:
            line, _, rest = self.inbuf.partition(b"\n")
            self.inbuf = bytearray(rest)
            if line.strip():
                self.queue.append(self._spawn(bytes(line)))
        return True

    def _spawn(self, line: bytes) -> Pending:
        try:
            fd = self._hand_to_spare(line)
        except OSError as e:
            return Pending(answer=protocol.error(HullError(f"start a shim: {e}")))
        if line.startswith(execshim.REQUEST_PREFIX):
            self.to_warm.append(line)
        p = Pending(ready_fd=fd)
        os.set_blocking(fd, False)
        self.sel.register(fd, selectors.EVENT_READ, p)
        return p

    def _make_spare(self) -> None:
        """Fork the next spare, with the specs of the containers exec'd into since the last parsed."""
        for line in self.to_warm:
            execshim.warm_spec_cache(line)
        self.to_warm.clear()
        self.spare = server.fork_spare(shim_for_request)

    def _hand_to_spare(self, line: bytes) -> int:
        """Give the line to the spare (a fresh one if there is none, or ours died); its ready pipe."""
        spare, self.spare = self.spare, None
        if spare is None or not _give(spare, line):
            spare = server.fork_spare(shim_for_request)
            if not _give(spare, line):
                raise OSError(errno.EPIPE, "the shim exited before its request came")
        return spare.ready

    def _read_ready(self, p: Pending) -> None:
        # The answer is the first line, not everything until EOF: the container's init holds a
        # copy of the pipe until it execs, which is after `start`.
        try:
            data = os.read(p.ready_fd, 65536)
        except BlockingIOError:
            return
        p.buf += data
        if data and b"\n" not in p.buf:
            return
        self.sel.unregister(p.ready_fd)
        os.close(p.ready_fd)
        p.ready_fd = -1
        p.answer = server.handshake_answer(bytes(p.buf))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]


def main() -> int:
    move_to_root_cgroups()
    hull.runtime.seccomp.preload()
    gc.freeze()  # everything imported so far stays shared with the shims: the collector won't touch it
    try:
        ForkServer().run()
    except BrokenPipeError:  # the daemon went away mid-answer
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
