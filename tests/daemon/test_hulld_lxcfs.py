"""lxcfs: containers' /proc/meminfo, cpuinfo, stat, uptime tell their own limits; --lxcfs=false shows the host's."""

import os
import subprocess
from pathlib import Path

import pytest

from hull.daemon.lxcfs import FSTYPE
from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container


def _lxcfs_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if f" - {FSTYPE} " in line]


def test_container_proc_shows_its_limits(hulld: HullDaemon) -> None:
    # /proc/meminfo, as procps' free reads it (busybox's free asks sysinfo(2), which lxcfs cannot answer).
    out = hulld.cli("docker", "run", "--rm", "--memory", "256m", "busybox", "grep", "MemTotal", "/proc/meminfo")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["MemTotal:", str(256 * 1024), "kB"]
    cpus = hulld.cli(
        "docker", "run", "--rm", "--cpuset-cpus", "0", "busybox", "grep", "-c", "^processor", "/proc/cpuinfo"
    )
    assert cpus.stdout.strip() == "1", cpus.stderr
    stat = hulld.cli("docker", "run", "--rm", "--cpuset-cpus", "0", "busybox", "grep", "-c", "^cpu[0-9]", "/proc/stat")
    assert stat.stdout.strip() == "1"
    uptime = hulld.cli("docker", "run", "--rm", "busybox", "cat", "/proc/uptime")
    assert float(uptime.stdout.split()[0]) < 30  # the container's, not the host's
    status, info = hulld.request("GET", "/info")
    assert status == 200 and not info["Warnings"]


def test_lxcfs_off_shows_the_host(busybox_rootfs: Path) -> None:
    d = HullDaemon(extra_args=["--lxcfs=false"])
    try:
        d.import_busybox(busybox_rootfs)
        out = d.cli("docker", "run", "--rm", "--memory", "256m", "busybox", "grep", "MemTotal", "/proc/meminfo")
        with open("/proc/meminfo") as f:
            host = next(line for line in f if line.startswith("MemTotal"))
        assert out.stdout.split() == host.split()
        cpus = d.cli(
            "docker", "run", "--rm", "--cpuset-cpus", "0", "busybox", "grep", "-c", "^processor", "/proc/cpuinfo"
        )
        assert int(cpus.stdout) == os.cpu_count()
        assert not any(str(d.workdir) in line for line in _lxcfs_mounts())
    finally:
        d.stop()


def test_lxcfs_ends_with_the_daemon(busybox_rootfs: Path) -> None:
    d = HullDaemon()
    try:
        assert any(str(d.workdir) in line for line in _lxcfs_mounts())
        pid = int((d.exec_root / "lxcfs.pid").read_text())
        assert "lxcfs" in Path(f"/proc/{pid}/cmdline").read_text()
    finally:
        d.stop()
    assert not any(str(d.workdir) in line for line in _lxcfs_mounts())
    assert subprocess.run(["pgrep", "-f", f"lxcfs.*{d.workdir}"], capture_output=True).returncode == 1
