"""lxcfs: containers' /proc/meminfo, cpuinfo, stat, uptime tell their own limits; --lxcfs=false shows the host's."""

import os
import subprocess
import time
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


def _free_total_mb(out: "subprocess.CompletedProcess[str]") -> int:
    assert out.returncode == 0, out.stderr
    mem = next(line for line in out.stdout.splitlines() if line.startswith("Mem:"))
    return int(mem.split()[1])


def _host_total_mb() -> int:
    with open("/proc/meminfo") as f:
        kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return kb // 1024


def test_free_reports_the_memory_limit(hulld: HullDaemon) -> None:
    # busybox's free takes its totals from sysinfo(2): the shim answers it through seccomp (shim/sysinfo.py).
    out = hulld.cli("docker", "run", "--rm", "--memory", "256m", "busybox", "free", "-m")
    assert _free_total_mb(out) == 256
    assert _free_total_mb(hulld.cli("hull", "run", "--rm", "--memory", "100m", "busybox", "free", "-m")) == 100
    # No limit: the call runs as usual.
    assert abs(_free_total_mb(hulld.cli("docker", "run", "--rm", "busybox", "free", "-m")) - _host_total_mb()) <= 1


def test_free_in_a_long_running_container_and_its_execs(hulld: HullDaemon) -> None:
    # Past a second the shim has re-exec'd into its lean monitor: the listener went with it.
    run = hulld.cli("docker", "run", "-d", "--name", "freeloader", "--memory", "64m", "busybox", "sleep", "60")
    assert run.returncode == 0, run.stderr
    try:
        time.sleep(1.5)
        assert _free_total_mb(hulld.cli("docker", "exec", "freeloader", "free", "-m")) == 64
        usage = hulld.cli("docker", "exec", "freeloader", "sh", "-c", "head -c 20000000 /dev/zero > /dev/shm/x; free")
        free_kb = int(next(line for line in usage.stdout.splitlines() if line.startswith("Mem:")).split()[3])
        assert free_kb < 64 * 1024 - 19_000, usage.stdout  # the tmpfs file counts in the container's usage
        # Each exec brought the shim a listener of its own; once the exec is over the shim lets it
        # go (a dead listener reports POLLHUP for ever: kept, it spun the shim's loop at 100% CPU).
        cid = hulld.cli("docker", "inspect", "-f", "{{.Id}}", "freeloader").stdout.strip()
        shim = int((hulld.exec_root / "containers" / cid / "shim.pid").read_text())
        time.sleep(0.5)
        fds = [os.readlink(f"/proc/{shim}/fd/{fd}") for fd in os.listdir(f"/proc/{shim}/fd")]
        assert fds.count("anon_inode:seccomp notify") == 1  # the container's own
        cpu_ticks = lambda: sum(int(v) for v in Path(f"/proc/{shim}/stat").read_text().rsplit(")", 1)[1].split()[11:13])  # noqa: E731
        before = cpu_ticks()
        time.sleep(1)
        assert cpu_ticks() - before < 10  # idle: well under a tenth of a CPU second
    finally:
        hulld.cli("docker", "rm", "-f", "freeloader")


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
        # No lxcfs, no sysinfo answering either: free shows the host.
        free = d.cli("docker", "run", "--rm", "--memory", "256m", "busybox", "free", "-m")
        assert abs(_free_total_mb(free) - _host_total_mb()) <= 1  # busybox rounds its own way
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
