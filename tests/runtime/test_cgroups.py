"""The cgroup managers against this kernel: every limit checked in the kernel's own files, and
enforced on real processes (an OOM kill, a fork bomb stopped, a device refused, a freeze).

This host is cgroup v1 hybrid; the v2 manager is exercised on its cgroup2 mount
(/sys/fs/cgroup/unified), which offers the core files (freeze, kill, cpu.stat) and, at most,
the controllers no v1 hierarchy took. Every cgroup made here has `hull` in its name and is
destroyed by the fixtures, whatever the test did.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hull.errors import Conflict, HullError, InvalidArgument
from hull.runtime.cgroups import (
    CgroupManager,
    V1Manager,
    V2Manager,
    manager_from_json,
    new_manager,
)
from hull.runtime.cgroups.resources import LinuxResources

pytestmark = pytest.mark.container

CGROUP = Path("/sys/fs/cgroup")
UNIFIED = CGROUP / "unified"

MakeManager = Callable[..., CgroupManager]
Spawn = Callable[[CgroupManager, str], subprocess.Popen[str]]


def unique(prefix: str = "hull-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def resources(**obj: Any) -> LinuxResources:
    return LinuxResources.from_json(obj)


def read(directory: str, name: str) -> str:
    return Path(directory, name).read_text().strip()


def named_anywhere(name: str) -> list[Path]:
    """Every cgroup directory called `name`, at any depth of any hierarchy."""
    return [Path(top) / d for top, dirs, _ in os.walk(CGROUP) for d in dirs if d == name]


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.fixture
def make_manager() -> Iterator[MakeManager]:
    """new_manager(...) + create(); every manager is emptied and destroyed at teardown."""
    made: list[CgroupManager] = []

    def make(cgroups_path: str | None = None, container_id: str = "unused", **kw: Any) -> CgroupManager:
        m = new_manager(cgroups_path if cgroups_path is not None else "/" + unique(), container_id, **kw)
        made.append(m)
        m.create()
        return m

    yield make
    for m in reversed(made):
        if m.pids():
            m.kill_all(signal.SIGKILL)
        m.destroy()


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start `python -c code` inside a manager's cgroup, joined between fork and exec as the runtime's child joins."""
    children: list[subprocess.Popen[str]] = []

    def start(m: CgroupManager, code: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=m.add_current,
        )  # fmt: skip
        children.append(p)
        return p

    yield start
    for p in children:
        if p.poll() is None:
            p.kill()
        p.communicate()


BUSY = "while True: pass"
SLEEP = "import time\ntime.sleep(120)"


# --- placement ----------------------------------------------------------------------------


def _proc_cgroups(pid: int) -> dict[str, str]:
    return {
        name: path for _, name, path in (line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().split())
    }


def test_the_container_gets_a_cgroup_in_every_hierarchy(make_manager: MakeManager, spawn: Spawn) -> None:
    name = unique()
    m = make_manager("/" + name)
    assert isinstance(m, V1Manager)
    paths = m.paths()
    # Named and unified hierarchies too, so the container leaves the caller's cgroups everywhere.
    assert set(paths) == set(_proc_cgroups(os.getpid()))
    assert paths["name=systemd"] == f"/sys/fs/cgroup/systemd/{name}" and paths[""] == f"{UNIFIED}/{name}"
    assert all(Path(d).is_dir() for d in paths.values())
    p = spawn(m, SLEEP)
    assert set(_proc_cgroups(p.pid).values()) == {"/" + name}
    assert m.pids() == [p.pid]


BORN_IN_CGROUP2 = """
import errno, json, os, sys, time
from hull.runtime import syscalls
from hull.runtime.cgroups import manager_from_json

closed = os.open("/", os.O_RDONLY)
os.close(closed)
try:
    syscalls.clone3_into_cgroup(closed)
except OSError as e:
    print(json.dumps({"bad_fd": errno.errorcode[e.errno]}), flush=True)
m = manager_from_json(json.loads(sys.argv[1]))
fd = os.open(m.cgroup2_dir(), os.O_RDONLY | os.O_DIRECTORY)
pid = syscalls.clone3_into_cgroup(fd)
if pid == 0:
    born = open("/proc/self/cgroup").read()
    m.add_current(born_in_cgroup2=True)
    print(json.dumps({"born": born, "pid": os.getpid()}), flush=True)
    time.sleep(60)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_a_child_born_in_the_cgroup2_directory_joins_the_rest_by_itself(make_manager: MakeManager) -> None:
    name = unique()
    m = make_manager("/" + name)
    assert m.cgroup2_dir() == f"{UNIFIED}/{name}"
    p = subprocess.Popen(
        [sys.executable, "-c", BORN_IN_CGROUP2, json.dumps(m.to_json())], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None
    try:
        assert json.loads(p.stdout.readline()) == {"bad_fd": "EBADF"}
        child = json.loads(p.stdout.readline())
        born = {name_: path for _, name_, path in (line.split(":", 2) for line in child["born"].split())}
        assert born[""] == "/" + name and born["memory"] != "/" + name  # clone3 placed it in cgroup2 only
        assert set(_proc_cgroups(child["pid"]).values()) == {"/" + name}
        assert m.pids() == [child["pid"]]
        os.kill(child["pid"], signal.SIGKILL)
        assert p.wait(timeout=10) == 0
    finally:
        p.kill()
        p.wait()


def test_a_relative_path_goes_below_the_callers_own_cgroups(make_manager: MakeManager) -> None:
    name = unique()
    m = make_manager(name)
    own = _proc_cgroups(os.getpid())
    assert m.paths()["memory"] == os.path.normpath(f"/sys/fs/cgroup/memory{own['memory']}/{name}")
    assert m.paths()["pids"] == os.path.normpath(f"/sys/fs/cgroup/pids{own['pids']}/{name}")
    m.destroy()
    assert Path(f"/sys/fs/cgroup/memory{own['memory']}").is_dir()  # ours to keep, not the manager's
    assert not named_anywhere(name)


def test_an_empty_path_is_named_for_the_container(make_manager: MakeManager) -> None:
    cid = unique()
    assert make_manager("", cid).paths()["memory"] == f"/sys/fs/cgroup/memory/{cid}"


def test_a_systemd_style_path_becomes_a_scope_below_its_slice(make_manager: MakeManager) -> None:
    top = "hull" + uuid.uuid4().hex[:12]  # no dash: systemd reads dashes as nesting
    m = make_manager(f"{top}-sub.slice:hull:c1", "unused")
    assert m.paths()["pids"] == f"/sys/fs/cgroup/pids/{top}.slice/{top}-sub.slice/hull-c1.scope"
    m.destroy()
    assert not named_anywhere(f"{top}.slice")


def test_new_cpusets_inherit_cpus_and_mems_level_by_level(make_manager: MakeManager, spawn: Spawn) -> None:
    top = unique()
    m = make_manager(f"/{top}/a/b")
    root_cpus, root_mems = read("/sys/fs/cgroup/cpuset", "cpuset.cpus"), read("/sys/fs/cgroup/cpuset", "cpuset.mems")
    for level in (top, f"{top}/a", f"{top}/a/b"):
        assert read(f"/sys/fs/cgroup/cpuset/{level}", "cpuset.cpus") == root_cpus
        assert read(f"/sys/fs/cgroup/cpuset/{level}", "cpuset.mems") == root_mems
    spawn(m, SLEEP)  # an empty cpuset would refuse the task (ENOSPC)
    m.apply(resources(cpu={"cpus": "0", "mems": "0"}))
    assert read(m.paths()["cpuset"], "cpuset.cpus") == "0"


# --- limits in the kernel's files ---------------------------------------------------------


def test_cpu_quota_and_period_land_in_cfs_files(make_manager: MakeManager) -> None:
    m = make_manager()
    assert m.apply(resources(cpu={"quota": 20000, "period": 100000, "shares": 512, "burst": 1000, "idle": 0})) == []
    cpu = m.paths()["cpu"]
    assert read(cpu, "cpu.cfs_quota_us") == "20000"
    assert read(cpu, "cpu.cfs_period_us") == "100000"
    assert read(cpu, "cpu.shares") == "512"
    assert read(cpu, "cpu.cfs_burst_us") == "1000"
    m.apply(resources(cpu={"quota": -1, "burst": 0}))
    assert read(cpu, "cpu.cfs_quota_us") == "-1"


def test_quota_and_period_are_written_in_the_order_the_kernel_accepts(make_manager: MakeManager) -> None:
    # Below a parent capped at half a CPU, the child's quota/period may never exceed 0.5 even
    # between the two writes: shrinking needs quota first, growing needs period first.
    top = unique()
    parent = make_manager(f"/{top}")
    parent.apply(resources(cpu={"quota": 50000, "period": 100000}))
    child = make_manager(f"/{top}/c")
    cpu = child.paths()["cpu"]
    for quota, period in ((50000, 100000), (25000, 50000), (50000, 100000)):
        child.apply(resources(cpu={"quota": quota, "period": period}))
        assert (read(cpu, "cpu.cfs_quota_us"), read(cpu, "cpu.cfs_period_us")) == (str(quota), str(period))


def test_realtime_cpu_budget(make_manager: MakeManager) -> None:
    m = make_manager()
    m.apply(resources(cpu={"realtimePeriod": 1000000, "realtimeRuntime": 10000}))
    assert read(m.paths()["cpu"], "cpu.rt_runtime_us") == "10000"
    assert read(m.paths()["cpu"], "cpu.rt_period_us") == "1000000"
    m.apply(resources(cpu={"realtimeRuntime": 0}))  # tasks must leave RT before the budget can go
    assert read(m.paths()["cpu"], "cpu.rt_runtime_us") == "0"


def test_memory_limit_reservation_swap_and_swappiness(make_manager: MakeManager) -> None:
    m = make_manager()
    mem = m.paths()["memory"]
    m.apply(resources(memory={"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20, "swappiness": 10}))
    assert read(mem, "memory.limit_in_bytes") == str(64 << 20)
    assert read(mem, "memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(mem, "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert read(mem, "memory.swappiness") == "10"
    # Raising past the old memory+swap needs memsw first; lowering below the old limit needs
    # the limit first: both directions work.
    m.apply(resources(memory={"limit": 256 << 20, "swap": 512 << 20}))
    assert (read(mem, "memory.limit_in_bytes"), read(mem, "memory.memsw.limit_in_bytes")) == (
        str(256 << 20),
        str(512 << 20),
    )
    m.apply(resources(memory={"limit": 16 << 20, "swap": 32 << 20}))
    assert (read(mem, "memory.limit_in_bytes"), read(mem, "memory.memsw.limit_in_bytes")) == (
        str(16 << 20),
        str(32 << 20),
    )
    # Unlimited memory takes memory+swap along, or the kernel would refuse it.
    m.apply(resources(memory={"limit": -1}))
    assert read(mem, "memory.limit_in_bytes") == read(mem, "memory.memsw.limit_in_bytes")
    assert int(read(mem, "memory.limit_in_bytes")) > 1 << 60


def test_memory_oom_control_and_deprecated_kernel_limit(make_manager: MakeManager) -> None:
    m = make_manager()
    warnings = m.apply(resources(memory={"disableOOMKiller": True, "kernel": 1 << 20, "kernelTCP": 8 << 20}))
    assert warnings == ["linux.resources.memory.kernel is ignored: Linux no longer enforces kernel memory limits"]
    mem = m.paths()["memory"]
    assert "oom_kill_disable 1" in read(mem, "memory.oom_control")
    assert read(mem, "memory.kmem.tcp.limit_in_bytes") == str(8 << 20)


def test_pids_limit_and_blkio(make_manager: MakeManager) -> None:
    m = make_manager()
    m.apply(
        resources(
            pids={"limit": 50},
            blockIO={"weight": 300, "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1 << 20}]},
        )
    )
    assert read(m.paths()["pids"], "pids.max") == "50"
    blkio = m.paths()["blkio"]
    # No CFQ on this kernel: the weight goes to BFQ's file.
    assert read(blkio, "blkio.bfq.weight").split()[-1] == "300"
    assert read(blkio, "blkio.throttle.read_bps_device") == f"254:0 {1 << 20}"
    m.apply(resources(pids={"limit": -1}))
    assert read(m.paths()["pids"], "pids.max") == "max"


# --- limits enforced on processes -----------------------------------------------------------


def test_a_process_over_its_memory_limit_is_oom_killed(make_manager: MakeManager, spawn: Spawn) -> None:
    m = make_manager()
    m.apply(resources(memory={"limit": 32 << 20, "swap": 32 << 20}))
    assert m.oom_kill_count() == 0
    p = spawn(m, "data = b'x' * (200 << 20)\nprint('survived', flush=True)")
    out, _ = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL and "survived" not in out
    assert m.oom_kill_count() >= 1
    assert m.stats()["memory"]["usage"]["max"] == 32 << 20  # it did reach the limit


FORK_LOOP = """
import json, os, time
kids, failed = [], 0
for _ in range(30):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    kids.append(pid)
print(json.dumps({"forked": len(kids), "failed": failed}), flush=True)
time.sleep(120)
"""


def test_pids_max_stops_a_fork_loop(make_manager: MakeManager, spawn: Spawn) -> None:
    m = make_manager()
    m.apply(resources(pids={"limit": 10}))
    p = spawn(m, FORK_LOOP)
    assert p.stdout is not None
    result = json.loads(p.stdout.readline())
    assert result["forked"] == 9 and result["failed"] == 21  # the loop itself is the tenth task
    pids_dir = m.paths()["pids"]
    assert int(read(pids_dir, "pids.current")) == 10
    if Path(pids_dir, "pids.peak").exists():
        assert int(read(pids_dir, "pids.peak")) == 10
    assert "max 21" in read(pids_dir, "pids.events")
    assert m.stats()["pids"] == {"current": 10, "limit": 10}
    m.kill_all(signal.SIGKILL)
    wait_for(lambda: not m.pids())


DEVICE_PROBE = """
import os, sys
for path in sys.argv[1:]:
    for flags, mode in ((os.O_RDONLY, "r"), (os.O_WRONLY, "w")):
        try:
            os.close(os.open(path, flags))
            verdict = "ok"
        except OSError as e:
            verdict = "EPERM" if e.errno == 1 else "other"
        print(os.path.basename(path), mode, verdict)
"""


def _open_devices(m: CgroupManager | None, nodes: list[Path]) -> dict[str, str]:
    """Try to open each node for reading and for writing, in `m`'s cgroup (or outside any):
    "mem r" -> "ok", "EPERM" (the device cgroup refused) or "other" (the driver did)."""
    p = subprocess.Popen(
        [sys.executable, "-c", DEVICE_PROBE, *map(str, nodes)], stdout=subprocess.PIPE, text=True,
        preexec_fn=m.add_current if m is not None else None,
    )  # fmt: skip
    out, _ = p.communicate(timeout=30)
    return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in out.splitlines()}


def test_device_rules_deny_all_but_the_defaults(make_manager: MakeManager, tmp_path: Path) -> None:
    nodes = [tmp_path / "null", tmp_path / "mem", tmp_path / "disk"]
    os.mknod(nodes[0], stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(nodes[1], stat.S_IFCHR | 0o600, os.makedev(1, 1))  # /dev/mem
    os.mknod(nodes[2], stat.S_IFBLK | 0o600, os.makedev(7, 0))  # /dev/loop0
    # Outside the cgroup nothing is refused as EPERM: what refuses inside is the rules.
    assert "EPERM" not in _open_devices(None, nodes).values()
    m = make_manager()
    m.apply(resources(devices=[{"allow": False, "access": "rwm"}]))
    allowed = read(m.paths()["devices"], "devices.list").splitlines()
    assert "c 1:3 rwm" in allowed and "c 136:* rwm" in allowed and "a *:* rwm" not in allowed
    inside = _open_devices(m, nodes)
    assert inside["null r"] == inside["null w"] == "ok"
    assert {inside[k] for k in ("mem r", "mem w", "disk r", "disk w")} == {"EPERM"}
    # The spec's own rules apply in order: read access to c 1:1 only.
    m2 = make_manager()
    m2.apply(
        resources(
            devices=[
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 1, "access": "r"},
            ]
        )
    )
    inside = _open_devices(m2, nodes)
    assert inside["mem r"] != "EPERM" and inside["mem w"] == "EPERM" and inside["disk r"] == "EPERM"


# --- freezer, signals, events -----------------------------------------------------------


def _assert_stopped_then_running(m: CgroupManager, pid: int) -> None:
    m.freeze()
    assert m.frozen()
    before = cpu_ticks(pid)
    time.sleep(0.3)
    assert cpu_ticks(pid) == before
    m.thaw()
    assert not m.frozen()
    wait_for(lambda: cpu_ticks(pid) > before)


def test_freeze_stops_a_running_process_and_thaw_resumes_it(make_manager: MakeManager, spawn: Spawn) -> None:
    m = make_manager()
    p = spawn(m, BUSY)
    wait_for(lambda: cpu_ticks(p.pid) > 0)
    m.freeze()
    assert read(m.paths()["freezer"], "freezer.state") == "FROZEN"
    assert Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "D"
    m.thaw()
    assert read(m.paths()["freezer"], "freezer.state") == "THAWED"
    _assert_stopped_then_running(m, p.pid)


def test_kill_all_reaches_every_process_even_frozen_ones(make_manager: MakeManager, spawn: Spawn) -> None:
    m = make_manager()
    p = spawn(m, "import os, time\nfor _ in range(3):\n    os.fork() or time.sleep(120)\ntime.sleep(120)")
    wait_for(lambda: len(m.pids()) == 4)
    # A signal other than SIGKILL leaves a paused container paused.
    m.freeze()
    m.kill_all(signal.SIGCONT)
    assert m.frozen()
    m.kill_all(signal.SIGKILL)
    assert not m.frozen()
    p.wait(timeout=10)
    assert p.returncode == -signal.SIGKILL
    wait_for(lambda: not m.pids())
    m.kill_all(signal.SIGKILL)  # nothing left: a no-op


def test_stats_have_runc_shape(make_manager: MakeManager, spawn: Spawn) -> None:
    m = make_manager()
    m.apply(resources(memory={"limit": 64 << 20}, pids={"limit": 20}))
    p = spawn(m, "data = bytearray(8 << 20)\nimport time\nt = time.time()\nwhile time.time() < t + 0.3: pass\n" + SLEEP)
    wait_for(lambda: m.stats()["cpu"]["usage"]["total"] > 100_000_000)
    s = m.stats()
    json.dumps(s)
    assert set(s["cpu"]["usage"]) >= {"total", "percpu", "kernel", "user"}
    assert len(s["cpu"]["usage"]["percpu"]) == os.cpu_count()
    assert set(s["cpu"]["throttling"]) == {"periods", "throttledPeriods", "throttledTime"}
    usage = s["memory"]["usage"]
    assert usage["limit"] == 64 << 20 and usage["usage"] >= 8 << 20 and usage["max"] >= usage["usage"]
    assert {"usage", "swap", "raw"} <= set(s["memory"]) and s["memory"]["raw"]["rss"] > 0
    assert s["pids"] == {"current": 1, "limit": 20}
    assert isinstance(s["blkio"]["ioServiceBytesRecursive"], list)
    assert p.poll() is None


# --- state and lifetime -------------------------------------------------------------------


def test_a_manager_rebuilt_from_json_controls_the_same_cgroup(make_manager: MakeManager, spawn: Spawn) -> None:
    m = make_manager("/" + unique() + "/leaf")
    p = spawn(m, BUSY)
    state = json.loads(json.dumps(m.to_json()))
    again = manager_from_json(state)
    assert again.paths() == m.paths() and again.to_json() == m.to_json()
    assert again.pids() == [p.pid]
    _assert_stopped_then_running(again, p.pid)
    again.kill_all(signal.SIGKILL)
    p.wait(timeout=10)
    again.destroy()
    assert not any(Path(d).exists() for d in state["created"])
    m.destroy()  # the original's directories are gone already: fine


def test_destroy_removes_only_what_create_made(make_manager: MakeManager) -> None:
    top = unique()
    existing = sorted([CGROUP / "memory" / top, CGROUP / "pids" / top])
    for d in existing:
        d.mkdir()
    try:
        m = make_manager(f"/{top}/leaf")
        sibling = make_manager(f"/{top}/sibling")
        Path(m.paths()["memory"], "made-by-the-container").mkdir()
        m.destroy()
        assert not any(Path(d).exists() for d in m.paths().values())  # with the container's own sub-cgroup
        assert all(d.is_dir() for d in existing)  # there before m: kept
        assert (CGROUP / "cpu" / top).is_dir()  # made by m, but it holds the sibling now
        sibling.destroy()
        assert (CGROUP / "cpu" / top).is_dir()  # not the sibling's to remove
        m.destroy()  # again: what m made and could not remove before goes now
        assert sorted(named_anywhere(top)) == existing
    finally:
        for d in existing:
            d.rmdir()


def test_destroy_waits_for_killed_tasks_to_leave(make_manager: MakeManager, spawn: Spawn) -> None:
    m = make_manager()
    p = spawn(m, "data = bytearray(64 << 20)\n" + SLEEP)
    wait_for(lambda: int(read(m.paths()["memory"], "memory.usage_in_bytes")) > 32 << 20)
    m.kill_all(signal.SIGKILL)
    m.destroy()  # the task is still exiting (and unreaped): rmdir is retried
    assert not any(Path(d).exists() for d in m.paths().values())
    p.wait(timeout=10)


# --- bad input ------------------------------------------------------------------------------


def test_escaping_paths_are_refused_before_anything_is_made() -> None:
    name = unique()
    for path in (f"/{name}/../../etc", f"{name}/..", "/"):
        with pytest.raises(InvalidArgument):
            new_manager(path, "unused")
    assert not named_anywhere(name)


def test_a_failing_create_leaves_nothing() -> None:
    # The last hierarchy (cgroup2) refuses the leaf: a pre-made parent there allows no
    # descendants. Everything create() made in the other hierarchies must go again.
    top = unique()
    parent = UNIFIED / top
    parent.mkdir()
    try:
        (parent / "cgroup.max.descendants").write_text("0")
        m = new_manager(f"/{top}/leaf", "unused")
        with pytest.raises(HullError, match=f"^create cgroup {parent}/leaf: Resource temporarily unavailable$"):
            m.create()
        assert named_anywhere(top) == [parent]
        assert m.to_json()["created"] == []
    finally:
        parent.rmdir()


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"cpu": {"cpus": "0-999"}},
            r"^write 0-999 to /sys/fs/cgroup/cpuset/hull-test-\w+/cpuset.cpus: "
            r"(Invalid argument|Numerical result out of range)$",
        ),
        ({"memory": {"useHierarchy": False}}, r"^write 0 to /sys/fs/cgroup/memory/\S+/memory.use_hierarchy: Invalid"),
        (
            {"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]},
            'hugepageLimits: the cgroup v1 controller "hugetlb" is not mounted',
        ),
        ({"network": {"classID": 1}}, 'network.classID: the cgroup v1 controller "net_cls" is not mounted'),
        ({"unified": {"memory.high": "1"}}, "linux.resources.unified: needs cgroup v2"),
        ({"blockIO": {"leafWeight": 100}}, r"blkio.leaf_weight: No such file or directory"),
    ],
)
def test_values_the_kernel_refuses_give_clear_errors(
    make_manager: MakeManager, obj: dict[str, Any], message: str
) -> None:
    m = make_manager()
    with pytest.raises(HullError) as e:
        m.apply(LinuxResources.from_json(obj))
    assert e.match(message)
    m.destroy()
    assert not any(Path(d).exists() for d in m.paths().values())


def test_check_before_update_refuses_a_limit_below_usage(make_manager: MakeManager, spawn: Spawn) -> None:
    m = make_manager()
    spawn(m, "data = bytearray(16 << 20)\n" + SLEEP)
    wait_for(lambda: int(read(m.paths()["memory"], "memory.usage_in_bytes")) > 16 << 20)
    before = read(m.paths()["memory"], "memory.limit_in_bytes")
    with pytest.raises(Conflict, match=r"linux.resources.memory.limit: 1048576 is below the current memory usage"):
        m.apply(resources(memory={"limit": 1 << 20, "checkBeforeUpdate": True}))
    assert read(m.paths()["memory"], "memory.limit_in_bytes") == before
    m.apply(resources(memory={"limit": 512 << 20, "checkBeforeUpdate": True}))


# --- cgroup v2, on this host's cgroup2 mount ------------------------------------------------


@pytest.fixture
def unified_subtree_control() -> Iterator[set[str]]:
    """The root's cgroup.subtree_control before the test; restored afterwards (apply may enable controllers)."""
    path = UNIFIED / "cgroup.subtree_control"
    before = set(path.read_text().split())
    yield before
    added = set(path.read_text().split()) - before
    if added:
        try:
            path.write_text(" ".join(f"-{c}" for c in sorted(added)))
        except OSError:
            pass  # EBUSY: a concurrent run's cgroup uses it now; leave it on rather than break that run


def test_v2_manager_places_freezes_and_kills(make_manager: MakeManager, spawn: Spawn) -> None:
    name = unique()
    m = make_manager(f"/{name}", cgroup2_root=str(UNIFIED))
    assert isinstance(m, V2Manager)
    assert m.paths() == {"": f"{UNIFIED}/{name}"}
    p = spawn(m, BUSY)
    assert _proc_cgroups(p.pid)[""] == f"/{name}"
    assert m.pids() == [p.pid]
    wait_for(lambda: cpu_ticks(p.pid) > 0)
    m.freeze()
    assert "frozen 1" in read(m.paths()[""], "cgroup.events") and read(m.paths()[""], "cgroup.freeze") == "1"
    m.thaw()
    _assert_stopped_then_running(m, p.pid)
    s = m.stats()
    json.dumps(s)
    assert s["cpu"]["usage"]["total"] > 0 and set(s["cpu"]["usage"]) == {"total", "kernel", "user"}
    assert m.oom_kill_count() == 0  # no memory controller here: nothing to count
    again = manager_from_json(json.loads(json.dumps(m.to_json())))
    assert isinstance(again, V2Manager) and again.pids() == [p.pid]
    again.kill_all(signal.SIGKILL)  # through cgroup.kill
    p.wait(timeout=10)
    assert p.returncode == -signal.SIGKILL
    again.destroy()
    assert not named_anywhere(name)


def test_v2_kill_all_with_another_signal_freezes_around_it(make_manager: MakeManager, spawn: Spawn) -> None:
    m = make_manager(cgroup2_root=str(UNIFIED))
    p = spawn(m, "import os, time\nos.fork() or time.sleep(120)\ntime.sleep(120)")
    wait_for(lambda: len(m.pids()) == 2)
    m.kill_all(signal.SIGTERM)
    p.wait(timeout=10)
    assert p.returncode == -signal.SIGTERM
    wait_for(lambda: not m.pids())
    assert not m.frozen()


def test_v2_says_which_controller_is_missing(make_manager: MakeManager) -> None:
    m = make_manager(cgroup2_root=str(UNIFIED))
    with pytest.raises(HullError, match=f'^cgroup v2 controller "memory" is not available in {UNIFIED}$'):
        m.apply(resources(memory={"limit": 64 << 20}))
    with pytest.raises(HullError, match=f'^cgroup v2 controllers "cpu", "pids" are not available in {UNIFIED}$'):
        m.apply(resources(cpu={"shares": 512}, pids={"limit": 5}))
    assert not Path(m.paths()[""], "memory.max").exists()


def test_v2_enables_an_available_controller_down_to_the_container(
    make_manager: MakeManager, unified_subtree_control: set[str]
) -> None:
    if "hugetlb" not in read(str(UNIFIED), "cgroup.controllers").split():
        pytest.skip("this host's cgroup2 offers no controller to enable")  # pragma: no cover
    top = unique()
    m = make_manager(f"/{top}/leaf", cgroup2_root=str(UNIFIED))
    warnings = m.apply(resources(hugepageLimits=[{"pageSize": "2MB", "limit": 4 << 20}], devices=[{"allow": False}]))
    assert "hugetlb" in read(str(UNIFIED), "cgroup.subtree_control").split()
    assert read(f"{UNIFIED}/{top}", "cgroup.subtree_control") == "hugetlb"
    assert read(m.paths()[""], "hugetlb.2MB.max") == str(4 << 20)
    assert m.stats()["hugetlb"]["2MB"] == {"usage": 0, "failcnt": 0}
    assert len(warnings) == 1 and "not enforced" in warnings[0]  # device rules need eBPF on v2
    m.destroy()
    assert not named_anywhere(top)


def test_v2_needs_a_cgroup2_mount(tmp_path: Path) -> None:
    with pytest.raises(HullError, match=f"no cgroup2 filesystem is mounted at {tmp_path}"):
        new_manager("/" + unique(), "unused", cgroup2_root=str(tmp_path))
