"""A private Docker daemon for tests and benchmarks: the real engine, to compare with and to drive hull.

`DockerDaemon` starts Debian's dockerd (package docker.io) with its own data root, exec root
and socket in a scratch directory, so it never touches a system Docker, and with networking
reduced to what tests need (no bridge, no iptables rules). Extra OCI runtimes can be added
(`--add-runtime hull=...`): Docker then drives that runtime through containerd's runc shim,
exactly as it drives runc. `stop` ends the daemon and everything it started; `docker(...)`
runs the official CLI against it.
"""

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from hull.errors import HullError
from hull.runtime.syscalls import MNT_DETACH, umount2
from hull.testing import mounts_under

INSTALL_HINT = "install it with `apt-get install docker.io` (or `make setup`)"
START_TIMEOUT = 60.0


class DockerDaemon:
    """One dockerd with everything under `workdir` (created; removed by stop)."""

    def __init__(self, runtimes: dict[str, str] | None = None) -> None:
        dockerd = shutil.which("dockerd")
        if dockerd is None or shutil.which("docker") is None:
            raise HullError(f"dockerd or docker not found: {INSTALL_HINT}")
        # Short: containerd's sockets live below the exec root and unix socket paths are capped at 108 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix="dkr-", dir="/tmp"))
        self.host = f"unix://{self.workdir}/docker.sock"
        argv = [
            dockerd, "--data-root", str(self.workdir / "data"), "--exec-root", str(self.workdir / "exec"),
            "--pidfile", str(self.workdir / "docker.pid"), "--host", self.host,
            "--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
        ]  # fmt: skip
        for name, path in (runtimes or {}).items():
            argv += ["--add-runtime", f"{name}={path}"]
        self._log = open(self.workdir / "dockerd.log", "wb")  # noqa: SIM115  # closed by stop
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                raise HullError(f"dockerd exited with {self._proc.returncode}: {self.log_tail()}")
            if self.docker("version", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise HullError(f"dockerd did not answer within {START_TIMEOUT}s: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 20) -> str:
        text = (self.workdir / "dockerd.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def docker(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """The official docker CLI against this daemon; output as text."""
        raw = subprocess.run(
            ["docker", "--host", self.host, *args], input=input, capture_output=True, timeout=timeout, check=False
        )
        done = subprocess.CompletedProcess(
            raw.args, raw.returncode, raw.stdout.decode(errors="replace"), raw.stderr.decode(errors="replace")
        )
        if check and done.returncode != 0:
            raise HullError(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def stop(self) -> None:
        """End dockerd (it stops its containers and its containerd), then remove its directory."""
        if self._proc.poll() is None:
            for container in self.docker("ps", "-aq", check=False).stdout.split():
                self.docker("rm", "-f", container, check=False)
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        _unmount_below(self.workdir)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _unmount_below(path: Path) -> None:
    """dockerd can leave its data root's own mounts (netns files, overlay2's bind) on exit: lift them."""
    for target in sorted(mounts_under(path), key=len, reverse=True):
        umount2(target, MNT_DETACH)
