"""A private hulld for tests and benchmarks, in the same shape as `DockerDaemon`.

`HullDaemon` runs `hulld` with its own data root, exec root, pid file and socket in a
scratch directory (short, because the shims' socket paths live below the exec root and unix
socket paths are capped at 108 bytes). `restart`, `kill` (SIGKILL) and `start` let tests
take the daemon away while containers keep running. `stop` removes every container first,
then ends the daemon and deletes the directory, so nothing is left behind.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from hull.errors import HullError
from hull.testing import mounts_under
from hull.testing.busybox import build_busybox_rootfs

START_TIMEOUT = 30.0
# How long processes on their way out after a stop (a forkserver's spare) get before they count as left behind.
LEFTOVER_WAIT = 2.0


class HullDaemon:
    def __init__(self, extra_args: list[str] | None = None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="hd-", dir="/tmp"))
        self.data_root = self.workdir / "data"
        self.exec_root = self.workdir / "exec"
        self.socket = self.workdir / "hull.sock"
        self.host = f"unix://{self.socket}"
        self.extra_args = list(extra_args or [])
        if "--bridge" not in self.extra_args:
            # A default bridge of its own (hull0 is the system daemon's): hull + the directory's suffix.
            self.bridge = "hull" + self.workdir.name.removeprefix("hd-")
            self.extra_args += ["--bridge", self.bridge]
        self._proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def env(self) -> dict[str, str]:
        """An environment where `hull` and `docker` both talk to this daemon."""
        return {**os.environ, "HULL_HOST": self.host, "DOCKER_HOST": self.host}

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "hull.daemon.main",
            "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
            "--host", self.host, "--pidfile", str(self.workdir / "hulld.pid"),
            "--config-file", str(self._config_file()), *self.extra_args,
        ]  # fmt: skip
        log = open(self.workdir / "hulld.log", "ab")  # noqa: SIM115  # handed to the child
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if self._proc.poll() is not None:
                raise HullError(f"hulld exited with {self._proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise HullError(f"hulld did not answer within {START_TIMEOUT}s: {self.log_tail()}")
            time.sleep(0.05)

    def _config_file(self) -> Path:
        path = self.workdir / "daemon.json"
        if not path.exists():
            path.write_text("{}")
        return path

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def answers(self) -> bool:
        try:
            self.request("GET", "/_ping")
            return True
        except OSError:
            return False

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        """One raw API call; returns (status, decoded JSON or bytes)."""
        import http.client
        import socket

        class Conn(http.client.HTTPConnection):
            def connect(self_inner) -> None:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(60)
                s.connect(str(self.socket))
                self_inner.sock = s

        conn = Conn("localhost")
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.getheader("Content-Type", "").startswith("application/json") and data:
            try:
                return resp.status, json.loads(data)
            except ValueError:
                return resp.status, data
        return resp.status, data

    def cli(
        self, program: str, *args: str, input: bytes | None = None, timeout: float = 60
    ) -> "subprocess.CompletedProcess[str]":
        """`docker ARGS` (the official CLI) or `hull ARGS` against this daemon; never raises on exit status."""
        exe = program if program == "docker" else str(Path(sys.executable).parent / program)
        raw = subprocess.run([exe, *args], input=input, capture_output=True, timeout=timeout, env=self.env, check=False)
        return subprocess.CompletedProcess(
            raw.args, raw.returncode, raw.stdout.decode(errors="replace"), raw.stderr.decode(errors="replace")
        )

    def import_busybox(self, rootfs: Path, name: str = "busybox:latest") -> str:
        """Make `name` from a busybox root filesystem (built if `rootfs` does not exist); returns the image id."""
        if not rootfs.exists():
            build_busybox_rootfs(rootfs)
        tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True).stdout
        repo, _, tag = name.partition(":")
        query = urllib.parse.urlencode({"fromSrc": "-", "repo": repo, "tag": tag or "latest"})
        status, out = self.request(
            "POST", f"/images/create?{query}", body=tar, headers={"Content-Type": "application/x-tar"}
        )
        if status != 200:
            raise HullError(f"import of {name} failed: {status} {out!r}")
        status, info = self.request("GET", f"/images/{name}/json")
        return str(info["Id"])

    def log_tail(self, lines: int = 30) -> str:
        text = (self.workdir / "hulld.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self) -> None:
        """SIGTERM and wait: containers keep running (live restore)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        self._proc.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL: the daemon gets no chance to tidy anything."""
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait(timeout=30)

    def restart(self) -> None:
        self.terminate()
        self.start()

    def stop(self) -> None:
        """Remove every container, end hulld, delete everything it made."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                status, found = self.request("GET", "/containers/json?all=1")
                for c in found if status == 200 else []:
                    self.request("DELETE", f"/containers/{c['Id']}?force=1")
            except OSError:
                pass
            self.terminate()
        self._kill_leftover_shims()
        leaked = self._leftover_processes()
        for pid, _ in leaked:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for target in sorted(mounts_under(self.workdir), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        if leaked:
            raise HullError("hulld left processes behind (killed now): " + "; ".join(w for _, w in leaked))

    def _leftover_processes(self) -> list[tuple[int, str]]:
        """Processes still holding a file under the daemon's directory once its containers are
        gone and it has stopped (an exec's shim it forgot, say), with what they hold. Those
        on their way out (the forkserver's spare follows the forkserver) get a moment first."""
        deadline = time.monotonic() + LEFTOVER_WAIT
        while True:
            found = _holders(str(self.workdir))
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def _kill_leftover_shims(self) -> None:
        """Shims (and their containers) of a test that failed midway: found by their exec dirs."""
        shims = self.exec_root / "containers"
        if not shims.is_dir():
            return
        for pidfile in shims.glob("*/shim.pid"):
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
            except (OSError, ValueError):
                pass


def _holders(directory: str) -> list[tuple[int, str]]:
    """(pid, "pid cmdline: file") of each process but ours with a descriptor open below `directory`."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{name}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(directory + "/"):
                try:
                    cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                except OSError:
                    cmdline = "?"
                out.append((int(name), f"{name} {cmdline}: {target}"))
                break
    return out
