"""A program run on a real pseudo-terminal, as a user at a terminal would run it: the pty is its
controlling terminal (so the kernel sends it SIGWINCH when the window size changes), keys go
in through the master, and what it prints is read back from there."""

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from typing import Any


def _make_controlling_terminal() -> None:
    # In the child, after setsid (start_new_session): stdin is the pty's slave.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtySession:
    """`argv` on a new pty of `rows` x `cols`; `output` is everything it printed so far."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80) -> None:
        self.master, slave = os.openpty()
        self.slave_name = os.ttyname(slave)
        self.resize(rows, cols)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=_make_controlling_terminal,
        )
        os.close(slave)
        self.output = b""

    def resize(self, rows: int, cols: int) -> None:
        """TIOCSWINSZ on the master: the kernel sends SIGWINCH to the terminal's foreground group."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes, timeout: float = 10) -> re.Match[bytes]:
        """Read until `pattern` (a regex) matches what arrived since the last expect; then that is consumed."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.output)
            if m:
                self.output = self.output[m.end() :]
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"no {pattern!r} in {self.output!r}")

    def _read(self, timeout: float) -> bool:
        if not select.select([self.master], [], [], timeout)[0]:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the program closed its last descriptor of the slave
            return False
        self.output += data
        return bool(data)

    def wait_raw(self, timeout: float = 10) -> None:
        """Until the program has put the terminal in raw mode (no echo): keys typed before that are
        the line discipline's, and the switch to raw mode discards them (TCSAFLUSH)."""
        deadline = time.monotonic() + timeout
        while self.terminal_attrs()[3] & termios.ECHO:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"the terminal never went raw: {self.output!r}")
            self._read(0.02)

    def wait(self, timeout: float = 10) -> int:
        """The exit status; the output up to the end is read, so the program never blocks writing."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.05)
        return self.proc.wait(max(0.0, deadline - time.monotonic()))

    def terminal_attrs(self) -> list[Any]:
        """The pty's settings as the program left them (the slave side's, read through the master)."""
        return termios.tcgetattr(self.master)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
