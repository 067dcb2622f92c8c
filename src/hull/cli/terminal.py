"""The local terminal of an interactive `hull run/start/attach/exec -t`: raw mode while attached
(restored on every way out), and the window size sent to the daemon at the start (retried, as
the docker CLI does) and again on every SIGWINCH.

Shared by the container verbs and exec: `path` is `/containers/{id}` or `/exec/{id}`, whose
`/resize?h=&w=` the daemon answers.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from hull.cli.client import CLIError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms of every start)
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

    from hull.cli.client import APIClient

# The docker CLI's initTtyResize: up to 10 more tries, 10 ms, 20 ms, ... apart (0.55 s in all).
RESIZE_RETRIES = 10


class RawTerminal:
    """Raw mode on stdin when `enabled` and stdin is a terminal: every key, ^C and ^D included,
    goes to the container, whose own pty does the echo and line editing."""

    def __init__(self, enabled: bool) -> None:
        self.saved: Any = None
        if enabled and sys.stdin.isatty():
            import termios
            import tty

            self.saved = termios.tcgetattr(sys.stdin.fileno())
            tty.setraw(sys.stdin.fileno())

    def restore(self) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self.saved)
            self.saved = None

    def __enter__(self) -> RawTerminal:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.restore()


class WindowSize:
    """Keeps the size of the container's (or exec's) terminal that of ours, as the docker CLI
    does: only when our stdout is a terminal."""

    def __init__(self, client: APIClient, path: str) -> None:
        self.client, self.path = client, path
        self.fd = sys.stdout.fileno()

    def send(self) -> bool:
        """One POST .../resize with our size; False when there is no size or the daemon refused."""
        try:
            size = os.get_terminal_size(self.fd)
        except OSError:
            return False
        try:
            self.client.post(f"{self.path}/resize", {"h": size.lines, "w": size.columns})
        except CLIError:
            return False
        return True

    def start(self) -> None:
        """The first resize, retried while the daemon refuses it (the process may not be running yet),
        then one on every SIGWINCH."""
        if not os.isatty(self.fd):
            return
        ok = self.send()
        for attempt in range(RESIZE_RETRIES):
            if ok:
                break
            time.sleep((attempt + 1) * 0.01)
            ok = self.send()
        if not ok:
            sys.stderr.write("failed to resize tty, using default size\n")
        signal.signal(signal.SIGWINCH, lambda _signum, _frame: self.send())
