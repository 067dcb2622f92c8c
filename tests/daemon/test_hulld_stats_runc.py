"""top, stats and update with `hulld --runtime runc`: the cgroup is found through runc's state
file, and limits are changed by `runc update`."""

import contextlib
from pathlib import Path

import docker
import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container


def test_top_stats_update_through_runc(busybox_rootfs: Path) -> None:
    with contextlib.ExitStack() as cleanup:
        hulld = HullDaemon(extra_args=["--runtime", "runc"])
        cleanup.callback(hulld.stop)
        hulld.import_busybox(busybox_rootfs)
        sdk = docker.DockerClient(base_url=hulld.host, version="auto", timeout=60)
        cleanup.callback(sdk.close)
        c = sdk.containers.run("busybox", ["sleep", "600"], detach=True, mem_limit="64m")
        cleanup.callback(c.remove, force=True)
        assert [p[-1] for p in c.top()["Processes"]] == ["sleep 600"]
        s = c.stats(stream=False)
        assert s["pids_stats"]["current"] == 1 and s["memory_stats"]["limit"] == 64 << 20
        assert c.update(mem_limit="96m", memswap_limit="192m", cpu_quota=20000) == {"Warnings": []}
        out = c.exec_run(["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"])
        assert out.output.decode().split() == [str(96 << 20), "20000"]
        c.reload()
        assert (c.attrs["HostConfig"]["Memory"], c.attrs["HostConfig"]["CpuQuota"]) == (96 << 20, 20000)
