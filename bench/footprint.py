"""Memory, not time: what hulld and its shims hold, against dockerd + containerd and containerd's shims.

Resident set sizes (VmRSS) of: the idle daemon (hulld and its shim fork server; dockerd and
its containerd), then the per-container monitor with CONTAINERS `sleep` containers running
(hull-shim; containerd-shim-runc-v2), median over the containers. PSS is printed beside RSS
because forked shims share pages with each other, which RSS counts once per process.
"""

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from hull.testing import remove_tree
from hull.testing.busybox import build_busybox_rootfs
from hull.testing.dockerd import DockerDaemon
from hull.testing.hulld import HullDaemon

CONTAINERS = 5
IMAGE = "busybox:bench"
SETTLE = 2.0


def _kb(pid: int, field: str) -> int:
    path = f"/proc/{pid}/smaps_rollup" if field == "Pss:" else f"/proc/{pid}/status"
    with open(path) as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(p) for p in f.read().split()]
    return out


def _processes_matching(*needles: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmdline for n in needles):
            found.append(int(entry))
    return found


def _mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


def report() -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="hull-bench-footprint-"))
    hulld = docker = None
    try:
        rootfs = work / "rootfs"
        build_busybox_rootfs(rootfs)
        hulld, docker = HullDaemon(), DockerDaemon()
        hulld.import_busybox(rootfs, IMAGE)
        archive = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True).stdout
        docker.docker("import", "-", IMAGE, input=archive)
        time.sleep(SETTLE)
        hull_daemon = [hulld.pid, *_children(hulld.pid)]
        docker_daemon = _processes_matching("dockerd", str(docker.workdir)) + _processes_matching(
            "containerd", "--config", str(docker.workdir)
        )
        lines = []
        for who, pids in (("hulld (+ fork server)", hull_daemon), ("dockerd + containerd", docker_daemon)):
            rss = sum(_kb(p, "VmRSS:") for p in pids)
            pss = sum(_kb(p, "Pss:") for p in pids)
            lines.append(f"idle {who}: RSS {_mb(rss)}, PSS {_mb(pss)} ({len(pids)} processes)")
        for i in range(CONTAINERS):
            hulld.cli("docker", "run", "-d", "--name", f"fp{i}", IMAGE, "sleep", "300")
            docker.docker("run", "-d", "--name", f"fp{i}", IMAGE, "sleep", "300")
        time.sleep(SETTLE)
        shims = {
            "hull-shim": [int((hulld.exec_root / "containers" / d / "shim.pid").read_text())
                          for d in os.listdir(hulld.exec_root / "containers")],
            "containerd-shim-runc-v2": _processes_matching("containerd-shim-runc-v2", str(docker.workdir)),
        }  # fmt: skip
        for who, pids in shims.items():
            rss_median = statistics.median(_kb(p, "VmRSS:") for p in pids)
            pss_median = statistics.median(_kb(p, "Pss:") for p in pids)
            lines.append(f"per container, {who}: RSS {_mb(rss_median)}, PSS {_mb(pss_median)} (median of {len(pids)})")
        return lines
    finally:
        if hulld is not None:
            hulld.stop()
        if docker is not None:
            docker.stop()
        remove_tree(work)
