"""Detach keys: Docker's key-sequence syntax, the scan of a stdin stream for it, and the
daemon's stdin copy that ends when the sequence is typed.

The syntax is the docker CLI's `--detach-keys` (moby's term.ToBytes): comma-separated keys,
each a single character, `ctrl-<c>` for `c` in `@`, `a`-`z`, `[`, `\\`, `]`, `^`, `_`, or
`DEL`. Docker scans in the daemon (attach and exec copy stdin through an escape proxy when
there is a TTY) and the client scans too, so that it knows it detached rather than that the
container ended. Both use this module; the CLI imports it, so it imports nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the CLI's start)
if TYPE_CHECKING:
    import asyncio

DEFAULT = "ctrl-p,ctrl-q"

# Index = control code: ctrl-@ is 0, ctrl-a is 1, ..., ctrl-_ is 31.
_CTRL = [
    "ctrl-@",
    *(f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)),
    "ctrl-[",
    "ctrl-\\",
    "ctrl-]",
    "ctrl-^",
    "ctrl-_",
]


def parse(spec: str) -> bytes:
    """The bytes of a key sequence such as "ctrl-p,ctrl-q"; ValueError names the bad key."""
    codes = bytearray()
    for key in spec.split(","):
        if len(key) == 1:
            codes += key.encode()
        elif key in _CTRL:
            codes.append(_CTRL.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


class Scanner:
    """Finds the sequence in a byte stream fed in pieces. A partial match is held back until the
    next byte shows whether it is the sequence (then it is dropped) or typing (then it is passed
    on), as Docker's escape proxy does: a lone ctrl-p reaches the container with the next key."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = 0  # how many bytes of `keys` the stream ended with

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to pass on, whether the sequence is complete); after it completes, the rest of
        `data` is not looked at."""
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            if b == self.keys[self.held]:
                self.held += 1
                if self.held == len(self.keys):
                    self.held = 0
                    return bytes(out), True
                continue
            out += self.keys[: self.held]
            self.held = 1 if b == self.keys[0] else 0
            if not self.held:
                out.append(b)
        return bytes(out), False

    def flush(self) -> bytes:
        """The held partial match, at the end of the stream."""
        held, self.held = self.keys[: self.held], 0
        return held


async def copy_stdin(source: asyncio.StreamReader, sink: asyncio.StreamWriter, keys: bytes) -> bool:
    """Copy a client's stdin to a container's until the client half-closes (then the sink is
    half-closed too; False) or types `keys` (True: detached, the sequence is not passed on).
    Empty `keys` never match. A connection that breaks counts as the end of stdin."""
    scanner = Scanner(keys)
    try:
        while data := await source.read(65536):
            out, detached = scanner.feed(data)
            if out:
                sink.write(out)
                await sink.drain()
            if detached:
                return True
        sink.write(scanner.flush())
        if sink.can_write_eof():
            sink.write_eof()
    except ConnectionError:
        pass
    return False
