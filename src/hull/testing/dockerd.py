"""A private Docker daemon for tests and benchmarks: the real engine, to compare with and to drive hull.

`DockerDaemon` starts Debian's dockerd (package docker.io) with its own data root, exec root
and socket in a scratch directory, so it never touches a system Docker, and with networking
reduced to what tests need (no bridge, no iptables rules) unless `networking=True` asks for
Docker's own (a default bridge and its iptables rules, for network comparisons: `stop` removes
both). That bridge is not docker0: any dockerd started with `--bridge none` deletes docker0.
Extra OCI runtimes can be added (`--add-runtime hull=...`): Docker then drives that runtime
through containerd's runc shim, exactly as it drives runc. `stop` ends the daemon and
everything it started; `docker(...)` runs the official CLI against it.
"""

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from hull.errors import HullError
from hull.runtime.syscalls import MNT_DETACH, umount2
from hull.testing import mounts_under

INSTALL_HINT = "install it with `apt-get install docker.io` (or `make setup`)"
START_TIMEOUT = 60.0


class DockerDaemon:
    """One dockerd with everything under `workdir` (created; removed by stop)."""

    def __init__(self, runtimes: dict[str, str] | None = None, networking: bool = False) -> None:
        dockerd = shutil.which("dockerd")
        if dockerd is None or shutil.which("docker") is None:
            raise HullError(f"dockerd or docker not found: {INSTALL_HINT}")
        # Short: containerd's sockets live below the exec root and unix socket paths are capped at 108 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix="dkr-", dir="/tmp"))
        self.host = f"unix://{self.workdir}/docker.sock"
        argv = [
            dockerd, "--data-root", str(self.workdir / "data"), "--exec-root", str(self.workdir / "exec"),
            "--pidfile", str(self.workdir / "docker.pid"), "--host", self.host,
        ]  # fmt: skip
        self._networking_lock = _take_networking_lock() if networking else None
        self.bridge = "dkr" + self.workdir.name.removeprefix("dkr-") if networking else ""
        if networking:
            _make_bridge(self.bridge)
            argv += ["--bridge", self.bridge]
        else:
            argv += ["--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"]
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
            # Their bridges (br-<id>) would outlive dockerd.
            for network in self.docker("network", "ls", "-q", "--filter", "type=custom", check=False).stdout.split():
                self.docker("network", "rm", network, check=False)
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        if self._networking_lock is not None:
            _remove_docker_networking(self.bridge)
            self._networking_lock.close()  # the next dockerd with networking may start
            self._networking_lock = None
        _unmount_below(self.workdir)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _unmount_below(path: Path) -> None:
    """dockerd can leave its data root's own mounts (netns files, overlay2's bind) on exit: lift them."""
    for target in sorted(mounts_under(path), key=len, reverse=True):
        umount2(target, MNT_DETACH)


# Docker's iptables chains have fixed names: one dockerd with networking at a time on this host
# (two benchmark runs side by side wait for each other instead of breaking).
NETWORKING_LOCK = "/run/lock/hull-dockerd-networking.lock"


def _take_networking_lock() -> IO[str]:
    os.makedirs(os.path.dirname(NETWORKING_LOCK), exist_ok=True)
    f = open(NETWORKING_LOCK, "a")  # noqa: SIM115  # held until stop
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def _make_bridge(name: str) -> None:
    """A bridge for dockerd's --bridge, with a gateway address in a subnet nothing on the host uses."""
    from ipaddress import IPv4Network

    from hull.network import bridge, ipam
    from hull.network.manager import host_ipam_lock

    with host_ipam_lock():
        subnet = ipam.choose_subnet(bridge.host_networks())
        bridge.ensure_bridge(name, next(subnet.hosts()), IPv4Network(subnet).prefixlen)


def _remove_docker_networking(bridge: str) -> None:
    """What dockerd leaves after it stops: its bridge, the jumps to its chains and the chains."""
    subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
        chains = [line.split()[1] for line in rules.splitlines() if line.startswith("-N DOCKER")]
        for line in rules.splitlines():
            words = line.split()
            if words[0] == "-A" and not words[1].startswith("DOCKER") and (
                bridge in words or any(w.startswith("DOCKER") for w in words)
            ):
                subprocess.run(["iptables", "-w", "-t", table, "-D", *words[1:]], capture_output=True, check=False)
        for flag in ("-F", "-X"):
            for chain in chains:
                subprocess.run(["iptables", "-w", "-t", table, flag, chain], capture_output=True, check=False)
