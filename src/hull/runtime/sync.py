"""The channel between the runtime and the container's init while it is being made.

A SOCK_SEQPACKET socketpair keeps message boundaries, so each message is one JSON object:
`{"type": ...}` plus fields. The child asks (`userns`: write my id maps; `hooks`: run
createRuntime hooks), reports (`pid`: the init's pid; `ready`: about to wait for start or
exec) or fails (`error` with a message); the parent answers `ok`, to `pid` too: stage two
starts only once the parent knows its pid, and gets the compiled seccomp program (base64, in
`seccomp`) with that answer when the spec has a filter. An exec's child reports no pid (the
runtime forked it itself): its `ok` comes unasked, as soon as the runtime has the program.
"""

import json
import socket
from typing import Any

from hull.errors import HullError

USERNS, PID, HOOKS, READY, ERROR, OK = "userns", "pid", "hooks", "ready", "error", "ok"


def channel() -> tuple[socket.socket, socket.socket]:
    """(parent end, child end)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, kind: str, **fields: Any) -> None:
    sock.send(json.dumps({"type": kind, **fields}).encode())


def recv(sock: socket.socket) -> dict[str, Any]:
    """The next message; an empty dict when the other end closed without a word."""
    data = sock.recv(1 << 20)
    if not data:
        return {}
    msg = json.loads(data)
    assert isinstance(msg, dict)
    return msg


def expect_ok(sock: socket.socket) -> dict[str, Any]:
    msg = recv(sock)
    if msg.get("type") != OK:
        raise HullError(f"unexpected message from the runtime: {msg!r}")
    return msg
