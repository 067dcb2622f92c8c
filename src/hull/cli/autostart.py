"""Start hulld in the background when nothing answers on the default socket and we are root.

Only for the default host: a host given with -H or HULL_HOST is the user's choice, and a
daemon missing there is reported, never started. The daemon is detached (its own session,
stdin from /dev/null, output appended to /var/log/hull/hulld.log) and keeps running after
this `hull` exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from hull.cli.client import APIClient, ConnectError

LOG_DIR = "/var/log/hull"
LOG_FILE = os.path.join(LOG_DIR, "hulld.log")
WAIT_SECONDS = 10.0


def daemon_command() -> list[str]:
    return [sys.executable, "-m", "hull.daemon.main"]


def start_daemon(client: APIClient, wait: float = WAIT_SECONDS) -> bool:
    """Start hulld and wait (bounded) until `client` gets an answer; False when we may not or cannot."""
    if os.geteuid() != 0 or client.unix_path is None:
        return False
    os.makedirs(LOG_DIR, exist_ok=True)
    try:
        with open(LOG_FILE, "ab") as log, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(
                daemon_command(), stdin=devnull, stdout=log, stderr=log, start_new_session=True, close_fds=True
            )
    except OSError as e:
        sys.stderr.write(f"hull: could not start hulld: {e}\n")
        return False
    sys.stderr.write(f"hull: started hulld (pid {proc.pid}); it keeps running in the background\n")
    sys.stderr.flush()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.stderr.write(f"hull: hulld exited with status {proc.returncode}; see {LOG_FILE}\n")
            return False
        try:
            client.ping(timeout=1.0)
            return True
        except ConnectError:
            time.sleep(0.1)
    sys.stderr.write(f"hull: hulld did not answer within {wait:.0f}s; see {LOG_FILE}\n")
    return False
