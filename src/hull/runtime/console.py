"""The container's terminal: a pty made inside the container, whose master leaves over the console socket.

As runc does, the init opens /dev/ptmx of the container's own devpts, makes the slave its
controlling terminal and sends the master to whoever listens on `--console-socket`, with
SCM_RIGHTS. The caller (a shim, or `hull-runtime run` itself) then owns the terminal.
"""

import fcntl
import os
import selectors
import signal
import socket
import struct
import termios
import tty
from collections.abc import Callable

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def open_pty(ptmx: str = "/dev/ptmx") -> tuple[int, str]:
    """Open a new pty master at `ptmx`, unlock it; return (master fd, slave number as text)."""
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    return master, str(number)


def set_winsize(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def get_winsize(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def make_controlling_terminal(slave_fd: int) -> None:
    """New session, the slave as its controlling tty, and as stdin/stdout/stderr."""
    os.setsid()
    fcntl.ioctl(slave_fd, termios.TIOCSCTTY, 0)
    for std in (0, 1, 2):
        os.dup2(slave_fd, std)


def send_master(sock: socket.socket, master: int) -> None:
    # runc sends the name "/dev/ptmx" with the fd; receivers only use the fd.
    socket.send_fds(sock, [b"/dev/ptmx"], [master])


def recv_master(sock: socket.socket) -> int:
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise OSError("no terminal received on the console socket")
    return fds[0]


def proxy(master: int, until_exit: Callable[[], bool]) -> None:
    """Copy our stdin to the master and the master to our stdout until the pty closes.

    Our own terminal (if stdin is one) goes raw for the duration and its size follows ours.
    """
    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None
    if stdin_tty:
        tty.setraw(0)
        set_winsize(master, *get_winsize(0))
        signal.signal(signal.SIGWINCH, lambda *_: set_winsize(master, *get_winsize(0)))
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ)
    try:
        sel.register(0, selectors.EVENT_READ)
    except (ValueError, OSError):  # stdin closed or not pollable: output only
        pass
    try:
        while True:
            for key, _ in sel.select(timeout=0.2):
                if key.fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every slave fd is closed
                        data = b""
                    if not data:
                        return
                    os.write(1, data)
                else:
                    data = os.read(0, 65536)
                    if not data:
                        sel.unregister(0)
                        continue
                    os.write(master, data)
            if until_exit():
                return
    finally:
        sel.close()
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
