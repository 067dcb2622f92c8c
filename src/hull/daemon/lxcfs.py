"""hulld's lxcfs: the FUSE filesystem whose /proc files show a container its own cgroup limits.

lxcfs (Debian's package) answers a read of <mount>/proc/meminfo, cpuinfo, stat, uptime, ...
with the values of the reading process's cgroups; the OCI spec bind-mounts those files over
the container's /proc ones (ocispec.lxcfs_mounts). hulld runs one lxcfs on <exec-root>/lxcfs,
in its own session so it outlives hulld: containers keep bind mounts of its files, and a
FUSE mount whose server died answers ENOTCONN for good. So a hulld that finds lxcfs serving
there reuses it, and stops it only when no container runs. A mount whose server is gone is
detached and a new lxcfs started (containers started on the old one keep the dead files).
"""

import errno
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from hull.errors import HullError
from hull.runtime.syscalls import MNT_DETACH, umount2

log = logging.getLogger("hulld.lxcfs")

BINARY = "lxcfs"
FSTYPE = "fuse.lxcfs"
START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
# -l: virtualize /proc/loadavg; --enable-cfs: count CPUs from the CFS quota (--cpus), not only the cpuset.
ARGS = ("--foreground", "--enable-loadavg", "--enable-cfs")
NOT_INSTALLED_WARNING = "WARNING: lxcfs is not installed: containers see the host's /proc/meminfo, cpuinfo, uptime"


def installed() -> bool:
    return shutil.which(BINARY) is not None


def is_mounted(mount_point: str) -> bool:
    """A fuse.lxcfs filesystem is mounted at mount_point (alive or not)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fields[4] == mount_point and fstype == FSTYPE:
                return True
    return False


@dataclass
class Lxcfs:
    """One lxcfs serving mount_point (a directory under hulld's exec root)."""

    mount_point: str

    @property
    def pidfile(self) -> str:
        return self.mount_point + ".pid"

    @property
    def logfile(self) -> str:
        return self.mount_point + ".log"

    def serving(self) -> bool:
        """Mounted, and its server answers."""
        if not is_mounted(self.mount_point):
            return False
        try:
            os.stat(os.path.join(self.mount_point, "proc", "meminfo"))
        except OSError:
            return False
        return True

    def pid(self) -> int | None:
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def ensure(self) -> None:
        """Serve mount_point: reuse a live lxcfs, replace a dead one. HullError if it won't start."""
        if self.serving():
            log.info("lxcfs already serving %s (pid %s)", self.mount_point, self.pid())
            return
        self._detach()
        os.makedirs(self.mount_point, mode=0o755, exist_ok=True)
        with open(self.logfile, "ab") as out:
            proc = subprocess.Popen(
                [BINARY, *ARGS, "--pidfile", self.pidfile, self.mount_point],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True,  # not hulld's process group: it outlives hulld
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not self.serving():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                self._detach()
                raise HullError(f"lxcfs did not start on {self.mount_point}: see {self.logfile}")
            time.sleep(0.02)
        log.info("lxcfs serving %s (pid %d)", self.mount_point, proc.pid)

    def stop(self) -> None:
        """End lxcfs (it unmounts itself on SIGTERM) and remove its mount point."""
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pid = None
        deadline = time.monotonic() + STOP_TIMEOUT
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._detach()
        for path in (self.pidfile, self.mount_point):
            try:
                os.rmdir(path) if path == self.mount_point else os.unlink(path)
            except OSError:
                pass

    def _detach(self) -> None:
        while is_mounted(self.mount_point):
            try:
                umount2(self.mount_point, MNT_DETACH)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                break


def _alive(pid: int) -> bool:
    """pid exists and is not a zombie (lxcfs is not our child when a previous hulld started it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
