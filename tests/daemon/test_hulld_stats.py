"""top, stats and update through the official docker CLI and the Docker SDK, checked against what
the kernel reports: ps's view of the container's processes, its cgroup's files, and the limits
a process inside the container sees in /sys/fs/cgroup."""

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator

import docker
import docker.errors
import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container

MiB = 1024 * 1024


def dk(hulld: HullDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    return hulld.cli("docker", *args)


@pytest.fixture
def sleeper(hulld: HullDaemon) -> Iterator[str]:
    r = dk(hulld, "run", "-d", "--name", "st-sleep", "busybox", "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        yield r.stdout.strip()
    finally:
        dk(hulld, "rm", "-f", "st-sleep")


def inside(hulld: HullDaemon, name: str, path: str) -> str:
    r = dk(hulld, "exec", name, "cat", path)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_docker_top_shows_the_containers_processes(hulld: HullDaemon, sleeper: str) -> None:
    pid = int(dk(hulld, "inspect", "-f", "{{.State.Pid}}", "st-sleep").stdout)
    lines = dk(hulld, "top", "st-sleep").stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(lines) == 2 and int(lines[1].split()[1]) == pid and lines[1].endswith("sleep 600")
    # ps's own options, as docker passes them
    lines = dk(hulld, "top", "st-sleep", "-o", "pid,comm").stdout.splitlines()
    assert [line.split() for line in lines] == [["PID", "COMMAND"], [str(pid), "sleep"]]
    r = dk(hulld, "top", "st-sleep", "-x", "--pid=PID")
    assert r.returncode == 1 and 'specifying "--pid=PID" is not allowed' in r.stderr


def test_sdk_top_lists_an_exec_too(hulld: HullDaemon, sdk: docker.DockerClient, sleeper: str) -> None:
    c = sdk.containers.get("st-sleep")
    proc = subprocess.Popen(["docker", "exec", "st-sleep", "sleep", "30"], env=hulld.env)
    try:
        # The exec's process is in the container's cgroup once it runs (its runtime briefly, before that).
        for _ in range(100):
            procs = c.top()["Processes"]
            if sorted(p[-1] for p in procs) == ["sleep 30", "sleep 600"]:
                break
            time.sleep(0.05)
        assert sorted(p[-1] for p in procs) == ["sleep 30", "sleep 600"]
        host_pids = {int(p[1]) for p in procs}
        assert all(os.path.exists(f"/proc/{p}") for p in host_pids)
    finally:
        proc.kill()
        proc.wait()


def test_top_of_a_stopped_container_is_409(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    c = sdk.containers.create("busybox", "true", name="st-created")
    try:
        with pytest.raises(docker.errors.APIError) as e:
            c.top()
        assert e.value.status_code == 409 and f"Container {c.id} is not running" in str(e.value)
        assert dk(hulld, "top", "nosuch").stderr.strip() == "Error response from daemon: No such container: nosuch"
        # stats of a container that is not running: dockerd's empty stats, not an error
        s = c.stats(stream=False)
        assert s["name"] == "/st-created" and s["memory_stats"] == {} and s["read"] == "0001-01-01T00:00:00Z"
    finally:
        c.remove(force=True)


def _mem_bytes(text: str) -> float:
    units = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    m = re.fullmatch(r"([\d.]+)(B|KiB|MiB|GiB)", text)
    assert m, text
    return float(m.group(1)) * units[m.group(2)]


def test_docker_stats_no_stream(hulld: HullDaemon) -> None:
    # ~30 MiB of tmpfs pages (charged to the container's memory cgroup) and one busy CPU
    r = dk(hulld, "run", "-d", "--name", "st-mem", "--memory", "100m", "busybox", "sh", "-c",
           "head -c 31457280 /dev/zero > /dev/shm/fill; while :; do :; done")  # fmt: skip
    assert r.returncode == 0, r.stderr
    try:
        rows = {}
        for _ in range(10):
            out = dk(hulld, "stats", "--no-stream", "--format", "{{json .}}", "st-mem").stdout
            rows = json.loads(out)
            if _mem_bytes(rows["MemUsage"].split(" / ")[0]) > 25 * MiB:
                break
        usage, limit = rows["MemUsage"].split(" / ")
        assert limit == "100MiB"
        assert 25 * MiB < _mem_bytes(usage) < 100 * MiB
        assert float(rows["CPUPerc"].rstrip("%")) > 50  # the busy loop: one CPU's worth
        assert rows["PIDs"] == "1"
        table = dk(hulld, "stats", "--no-stream", "st-mem").stdout.splitlines()
        assert table[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                                    "NET", "I/O", "BLOCK", "I/O", "PIDS"]  # fmt: skip
        assert table[1].split()[1] == "st-mem"
    finally:
        dk(hulld, "rm", "-f", "st-mem")


def test_sdk_stats_matches_the_cgroup(hulld: HullDaemon, sdk: docker.DockerClient, sleeper: str) -> None:
    c = sdk.containers.get("st-sleep")
    s = c.stats(stream=False)
    assert s["id"] == sleeper and s["name"] == "/st-sleep"
    assert s["pids_stats"] == {"current": 1}
    assert s["precpu_stats"]["system_cpu_usage"] < s["cpu_stats"]["system_cpu_usage"]
    assert s["cpu_stats"]["online_cpus"] == os.cpu_count()
    mem_dir = f"/sys/fs/cgroup/memory/hull/{sleeper}"
    with open(f"{mem_dir}/memory.usage_in_bytes") as f:
        assert abs(int(f.read()) - s["memory_stats"]["usage"]) < 4 * MiB
    assert "total_inactive_file" in s["memory_stats"]["stats"]
    assert 0 < s["memory_stats"]["limit"] <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    one = c.stats(stream=False, one_shot=True)
    assert one["preread"] == "0001-01-01T00:00:00Z" and one["pids_stats"]["current"] == 1
    stream = c.stats(stream=True, decode=True)
    first, second = next(stream), next(stream)
    assert second["preread"] == first["read"]
    assert second["precpu_stats"] == first["cpu_stats"]
    stream.close()


def test_docker_update_is_live_and_stored(hulld: HullDaemon, sleeper: str) -> None:
    r = dk(hulld, "update", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", "--restart", "on-failure:3",
           "st-sleep")  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "st-sleep", r.stderr
    assert inside(hulld, "st-sleep", "/sys/fs/cgroup/memory/memory.limit_in_bytes") == str(64 * MiB)
    assert inside(hulld, "st-sleep", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us") == "50000"
    assert inside(hulld, "st-sleep", "/sys/fs/cgroup/pids/pids.max") == "50"
    hc = json.loads(dk(hulld, "inspect", "-f", "{{json .HostConfig}}", "st-sleep").stdout)
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (64 * MiB, 500_000_000, 50)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    # lifting the pids limit again
    assert dk(hulld, "update", "--pids-limit", "-1", "st-sleep").returncode == 0
    assert inside(hulld, "st-sleep", "/sys/fs/cgroup/pids/pids.max") == "max"
    # until a second from now: the events of this second are all in
    until = f"{time.time() + 1:.3f}"
    events = dk(hulld, "events", "--since", "1m", "--until", until, "--filter", "event=update", "--filter",
                f"container={sleeper}", "--format", "{{json .}}").stdout.splitlines()  # fmt: skip
    assert len(events) == 2  # one per update
    ev = json.loads(events[0])
    assert ev["Actor"] == {"ID": sleeper, "Attributes": {"image": "busybox", "name": "st-sleep"}}


def test_sdk_update_of_a_stopped_container_applies_at_start(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    c = sdk.containers.create("busybox", ["sleep", "600"], name="st-later")
    try:
        assert c.update(mem_limit="32m", memswap_limit="64m", cpu_shares=512) == {"Warnings": []}
        c.start()
        assert inside(hulld, "st-later", "/sys/fs/cgroup/memory/memory.limit_in_bytes") == str(32 * MiB)
        assert inside(hulld, "st-later", "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") == str(64 * MiB)
        assert inside(hulld, "st-later", "/sys/fs/cgroup/cpu/cpu.shares") == "512"
    finally:
        c.remove(force=True)


@pytest.mark.parametrize(
    ("args", "status_message"),
    [
        (["--memory", "4m"], "Minimum memory limit allowed is 6MB"),
        (["--memory", "32m", "--memory-swap", "16m"],
         "Minimum memoryswap limit should be larger than memory limit, see usage"),
        (["--memory-reservation", "1m"], "Minimum memory reservation allowed is 6MB"),
        (["--cpu-period", "500"], "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s"),
        (["--cpu-quota", "500"], "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (["--cpus", "100"], f"Range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only "
                            f"{os.cpu_count()} CPUs available"),
        (["--cpuset-cpus", "99"], "Requested CPUs are not available - requested 99, available: "),
        (["--cpuset-cpus", "abc"], "Invalid value abc for cpuset cpus: invalid format: abc"),
        (["--cpu-quota", "50000"], "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"),
        (["--memory-swap", "128m"], "memory.memsw.limit_in_bytes: Invalid argument"),
    ],
)  # fmt: skip
def test_update_with_bad_values_changes_nothing(hulld: HullDaemon, args: list[str], status_message: str) -> None:
    r = dk(hulld, "run", "-d", "--name", "st-bad", "--cpus", "1", "busybox", "sleep", "600")
    assert r.returncode == 0, r.stderr
    try:
        before = dk(hulld, "inspect", "-f", "{{json .HostConfig}}", "st-bad").stdout
        limit = inside(hulld, "st-bad", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        r = dk(hulld, "update", *args, "st-bad")
        assert r.returncode == 1 and status_message in r.stderr, r.stderr
        assert dk(hulld, "inspect", "-f", "{{json .HostConfig}}", "st-bad").stdout == before
        assert inside(hulld, "st-bad", "/sys/fs/cgroup/memory/memory.limit_in_bytes") == limit
    finally:
        dk(hulld, "rm", "-f", "st-bad")


def test_update_conflicts_and_bad_bodies(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    c = sdk.containers.create("busybox", "true", name="st-rm", auto_remove=True)
    try:
        with pytest.raises(docker.errors.APIError) as e:
            c.update(restart_policy={"Name": "always"})
        assert e.value.status_code == 409
        assert "Restart policy cannot be updated because AutoRemove is enabled" in str(e.value)
        for body, status in ((b'{"Memory": "x"}', 400), (b"[1]", 400), (b'{"RestartPolicy": {"Name": "bogus"}}', 400)):
            with pytest.raises(docker.errors.APIError) as e:
                sdk.api._result(sdk.api._post_json(sdk.api._url("/containers/{0}/update", c.id), data=json.loads(body)))
            assert e.value.status_code == status
        with pytest.raises(docker.errors.NotFound):
            sdk.api.update_container("nosuch", mem_limit="64m")
    finally:
        c.remove(force=True)
