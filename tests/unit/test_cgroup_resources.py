"""The pure side of cgroups: `linux.resources` parsing, cgroupsPath rules, mountinfo reading,
the cgroup v2 conversions and the stored manager state. Nothing here touches the kernel."""

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hull.errors import HullError, InvalidArgument
from hull.runtime.cgroups import V1Manager, V2Manager, manager_from_json
from hull.runtime.cgroups.hierarchy import Hierarchy, mounted_hierarchies, normalize_cgroups_path, own_cgroups
from hull.runtime.cgroups.resources import (
    LinuxCPU,
    LinuxHugepageLimit,
    LinuxInterfacePriority,
    LinuxMemory,
    LinuxResources,
    LinuxThrottleDevice,
    LinuxWeightDevice,
)
from hull.runtime.cgroups.v2 import blkio_weight_to_io_weight, controllers_for, resource_writes, shares_to_weight
from hull.runtime.devices import DeviceRule

pytestmark = pytest.mark.unit

# The runtime spec's own example (config.md, "linux.resources"), trimmed of nothing it sets.
SPEC_EXAMPLE: dict[str, Any] = {
    "pids": {"limit": 32771},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 9223372036854772000}, {"pageSize": "64KB", "limit": 1000000}],
    "memory": {
        "limit": 536870912,
        "reservation": 536870912,
        "swap": 536870912,
        "kernel": -1,
        "kernelTCP": -1,
        "swappiness": 0,
        "disableOOMKiller": False,
        "useHierarchy": True,
        "checkBeforeUpdate": True,
    },
    "cpu": {
        "shares": 1024,
        "quota": 1000000,
        "burst": 1000000,
        "period": 500000,
        "realtimeRuntime": 950000,
        "realtimePeriod": 1000000,
        "cpus": "2-3",
        "mems": "0-7",
        "idle": 0,
    },
    "devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
        {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
    ],
    "blockIO": {
        "weight": 10,
        "leafWeight": 10,
        "weightDevice": [
            {"major": 8, "minor": 0, "weight": 500, "leafWeight": 300},
            {"major": 8, "minor": 16, "weight": 500},
        ],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
    },
    "network": {
        "classID": 1048577,
        "priorities": [{"name": "eth0", "priority": 500}, {"name": "eth1", "priority": 1000}],
    },
    "unified": {"memory.high": "1073741824", "io.weight": "default 100"},
    "someFutureSection": {"anything": 1},
}


def test_the_spec_example_parses_into_typed_records() -> None:
    r = LinuxResources.from_json(SPEC_EXAMPLE)
    assert r.pids is not None and r.pids.limit == 32771
    assert r.memory == LinuxMemory(
        limit=536870912,
        reservation=536870912,
        swap=536870912,
        kernel=-1,
        kernel_tcp=-1,
        swappiness=0,
        disable_oom_killer=False,
        use_hierarchy=True,
        check_before_update=True,
    )
    assert r.cpu == LinuxCPU(1024, 1000000, 1000000, 500000, 950000, 1000000, "2-3", "0-7", 0)
    assert r.devices == (
        DeviceRule(False, "a", -1, -1, "rwm"),
        DeviceRule(True, "c", 10, 229, "rw"),
        DeviceRule(True, "b", 8, 0, "r"),
    )
    assert r.devices[0].cgroup_v1_line() == "a" and r.devices[1].cgroup_v1_line() == "c 10:229 rw"
    assert r.block_io is not None
    assert r.block_io.weight_device == (LinuxWeightDevice(8, 0, 500, 300), LinuxWeightDevice(8, 16, 500, None))
    assert r.block_io.throttle_read_bps_device == (LinuxThrottleDevice(8, 0, 600),)
    assert r.block_io.throttle_write_iops_device == (LinuxThrottleDevice(8, 16, 300),)
    assert r.block_io.throttle_write_bps_device == ()
    assert r.hugepage_limits[1] == LinuxHugepageLimit("64KB", 1000000)
    assert r.network is not None and r.network.priorities[0] == LinuxInterfacePriority("eth0", 500)
    assert dict(r.unified) == {"memory.high": "1073741824", "io.weight": "default 100"}


def test_an_empty_section_sets_nothing_and_zero_means_unset_as_in_runc() -> None:
    assert LinuxResources.from_json({}) == LinuxResources()
    r = LinuxResources.from_json({"memory": {"limit": 0, "swap": 0}, "cpu": {"shares": 0, "quota": 0, "burst": 0}})
    assert r.memory == LinuxMemory()
    assert r.cpu == LinuxCPU(burst=0)  # a zero burst is a real value: no burst
    assert r.cpu is not None and r.cpu.has_scheduler_settings()
    assert not LinuxCPU(cpus="0").has_scheduler_settings()


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"memory": {"limit": "abc"}}, "linux.resources.memory.limit: expected an integer, got 'abc'"),
        ({"memory": {"limit": True}}, "linux.resources.memory.limit: expected an integer, got True"),
        ({"memory": {"limit": -2}}, "linux.resources.memory.limit: must be at least -1, got -2"),
        ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness: must be between 0 and 100, got 101"),
        ({"memory": {"disableOOMKiller": 1}}, "linux.resources.memory.disableOOMKiller: expected a boolean, got 1"),
        (
            {"memory": {"limit": 100, "swap": 50}},
            "linux.resources.memory.swap: memory+swap limit (50) must be at least",
        ),
        ({"memory": {"limit": -1, "swap": 50}}, "linux.resources.memory.swap: memory+swap limit (50)"),
        ({"memory": []}, "linux.resources.memory: expected an object, got []"),
        ({"cpu": {"shares": "1024"}}, "linux.resources.cpu.shares: expected an integer, got '1024'"),
        ({"cpu": {"cpus": "0-a"}}, "linux.resources.cpu.cpus: expected a list like \"0-3,6\", got '0-a'"),
        ({"cpu": {"mems": 0}}, "linux.resources.cpu.mems: expected a string, got 0"),
        ({"cpu": {"idle": 2}}, "linux.resources.cpu.idle: must be between 0 and 1, got 2"),
        ({"pids": {}}, "linux.resources.pids.limit: required field is missing"),
        ({"pids": {"limit": 1.5}}, "linux.resources.pids.limit: expected an integer, got 1.5"),
        ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight: must be between 10 and 1000, got 5"),
        ({"blockIO": {"weightDevice": [{"minor": 0, "weight": 100}]}}, "blockIO.weightDevice[0]: major and minor"),
        ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}}, "throttleReadBpsDevice[0].rate: required"),
        ({"blockIO": {"throttleWriteBpsDevice": {}}}, "throttleWriteBpsDevice: expected a list, got {}"),
        ({"devices": [{"access": "rwm"}]}, "linux.resources.devices[0].allow: required field is missing"),
        ({"devices": [{"allow": "yes"}]}, "linux.resources.devices[0].allow: expected a boolean, got 'yes'"),
        ({"devices": [{"allow": True, "type": "x"}]}, 'linux.resources.devices[0].type: expected "a", "b" or "c"'),
        ({"devices": [{"allow": True, "access": "rwx"}]}, "linux.resources.devices[0].access: expected letters from"),
        ({"devices": [{"allow": True, "access": ""}]}, "linux.resources.devices[0].access: expected letters from"),
        ({"devices": [{"allow": True, "major": "8"}]}, "linux.resources.devices[0].major: expected an integer"),
        ({"devices": ["a"]}, "linux.resources.devices[0]: expected an object, got 'a'"),
        ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "hugepageLimits[0].pageSize: expected a size like"),
        ({"hugepageLimits": [{"pageSize": "2MB"}]}, "linux.resources.hugepageLimits[0].limit: required"),
        ({"network": {"classID": -1}}, "linux.resources.network.classID: must be at least 0, got -1"),
        ({"network": {"priorities": [{"name": "eth0"}]}}, "network.priorities[0].priority: required field is missing"),
        ({"unified": {"../../etc/passwd": "x"}}, "linux.resources.unified: '../../etc/passwd' is not a cgroup v2"),
        ({"unified": {"memory/../x.max": "1"}}, "is not a cgroup v2 interface file name"),
        ({"unified": {"memory.max": 5}}, "linux.resources.unified.memory.max: expected a string, got 5"),
    ],
)
def test_bad_values_name_the_field(resources: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        LinuxResources.from_json(resources)
    assert message in e.value.message


def test_resources_must_be_an_object() -> None:
    with pytest.raises(InvalidArgument, match=r"^linux.resources: expected an object, got \[\]$"):
        LinuxResources.from_json([])


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_sections = st.sampled_from(["memory", "cpu", "pids", "blockIO", "devices", "hugepageLimits", "network", "unified"])


@given(st.dictionaries(_sections, _json_values, max_size=4))
def test_any_json_is_either_parsed_or_refused_with_invalid_argument(obj: dict[str, Any]) -> None:
    try:
        LinuxResources.from_json(obj)
    except InvalidArgument as e:
        assert e.message.startswith("linux.resources")


# --- cgroupsPath ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cgroups_path", "expected"),
    [
        ("/hull/abc", "/hull/abc"),
        ("//hull/./abc/", "/hull/abc"),
        ("hull/abc", "hull/abc"),
        ("", "/cid"),
        ("system.slice:docker:abc", "/system.slice/docker-abc.scope"),
        ("user-1000.slice:hull:abc", "/user.slice/user-1000.slice/hull-abc.scope"),
        (":hull:abc", "/system.slice/hull-abc.scope"),
        ("-.slice::abc", "/abc.scope"),
    ],
)
def test_cgroups_path_forms(cgroups_path: str, expected: str) -> None:
    assert normalize_cgroups_path(cgroups_path, "cid") == expected


@pytest.mark.parametrize(
    ("cgroups_path", "message"),
    [
        ("/hull/../../etc", "linux.cgroupsPath: \"..\" is not allowed in a cgroup path, got '/hull/../../etc'"),
        ("..", '".." is not allowed'),
        ("/", "linux.cgroupsPath: '/' names the root cgroup; a container needs its own"),
        ("/./", "names the root cgroup"),
        ("a:b", "linux.cgroupsPath: expected slice:prefix:name, got 'a:b'"),
        ("system.slice:docker:", "the unit name is missing"),
        ("system:docker:abc", "'system' is not a slice name"),
        ("a--b.slice:docker:abc", "invalid slice name 'a--b.slice'"),
        ("/hull/a\0b", "must not contain a NUL byte or a newline"),
        ("/hull/a\nb", "must not contain a NUL byte or a newline"),
    ],
)
def test_bad_cgroups_paths_are_refused(cgroups_path: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        normalize_cgroups_path(cgroups_path, "cid")
    assert message in e.value.message


@pytest.mark.parametrize("container_id", ["", "a/b", ".."])
def test_an_empty_path_needs_a_usable_container_id(container_id: str) -> None:
    with pytest.raises(InvalidArgument, match="can't name a cgroup"):
        normalize_cgroups_path("", container_id)


# --- mountinfo and /proc/self/cgroup --------------------------------------------------------

# A host with cpu and cpuacct co-mounted, net_cls,net_prio too, a systemd named hierarchy, the
# hybrid cgroup2, an unrelated tmpfs and a second (bind) mount of memory showing a subtree.
MOUNTINFO = """\
24 30 0:22 / /sys rw,nosuid - sysfs sysfs rw
31 24 0:28 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
33 31 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
37 31 0:34 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
90 24 0:35 /docker/x /mnt/my\\040memory rw - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
"""

PROC_CGROUP = """\
12:memory:/user.slice/session-1
11:net_cls,net_prio:/
4:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/session-1.scope
0::/user.slice/session-1.scope
"""


@pytest.fixture
def host(tmp_path: Path) -> tuple[dict[str, str], list[Hierarchy]]:
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    (tmp_path / "cgroup").write_text(PROC_CGROUP)
    own = own_cgroups(str(tmp_path / "cgroup"))
    return own, mounted_hierarchies(own, str(tmp_path / "mountinfo"))


def test_hierarchies_are_named_as_proc_self_cgroup_names_them(host: tuple[dict[str, str], list[Hierarchy]]) -> None:
    own, hierarchies = host
    assert own["cpu,cpuacct"] == "/user.slice" and own[""] == "/user.slice/session-1.scope"
    assert hierarchies == [
        Hierarchy("", "/sys/fs/cgroup/unified", "/"),
        Hierarchy("name=systemd", "/sys/fs/cgroup/systemd", "/"),
        Hierarchy("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct", "/"),
        Hierarchy("net_cls,net_prio", "/sys/fs/cgroup/net_cls,net_prio", "/"),
        Hierarchy("memory", "/sys/fs/cgroup/memory", "/"),  # the whole tree wins over the bind mount
    ]


def test_directories_follow_runc_path_rules(host: tuple[dict[str, str], list[Hierarchy]]) -> None:
    own, hierarchies = host
    by_name = {h.name: h for h in hierarchies}
    memory, cpu = by_name["memory"], by_name["cpu,cpuacct"]
    assert memory.directory(own["memory"], "/hull/c1") == "/sys/fs/cgroup/memory/hull/c1"
    assert memory.directory(own["memory"], "hull/c1") == "/sys/fs/cgroup/memory/user.slice/session-1/hull/c1"
    assert cpu.directory(own["cpu,cpuacct"], "c1") == "/sys/fs/cgroup/cpu,cpuacct/user.slice/c1"
    # A mount showing only a subtree (a bind mount, a cgroup namespace): paths are relative to it.
    narrowed = Hierarchy("memory", "/mnt/my memory", "/docker/x")
    assert narrowed.directory("/docker/x/sub", "c1") == "/mnt/my memory/sub/c1"
    assert narrowed.directory("/docker/x", "/c1") == "/mnt/my memory/c1"
    with pytest.raises(HullError, match="outside its mount"):
        narrowed.directory("/elsewhere", "c1")


# --- cgroup v2 conversions ------------------------------------------------------------------


def test_cpu_shares_and_blkio_weights_map_onto_v2_ranges() -> None:
    assert [shares_to_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]
    assert shares_to_weight(1) == 1 and shares_to_weight(10**6) == 10000  # clamped like the kernel clamps shares
    assert [blkio_weight_to_io_weight(w) for w in (10, 500, 1000)] == [1, 4950, 10000]


def test_v2_writes_for_a_typical_container() -> None:
    r = LinuxResources.from_json(
        {
            "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "cpus": "0-1"},
            "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
            "pids": {"limit": 0},
            "blockIO": {
                "weight": 500,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"memory.high": "50000000", "cgroup.max.depth": "3"},
        }
    )
    writes, warnings = resource_writes(r)
    assert writes == [
        ("cpu.weight", 39),
        ("cpu.max", "20000 100000"),
        ("cpuset.cpus", "0-1"),
        ("memory.swap.max", 32 << 20),
        ("memory.max", 64 << 20),
        ("memory.low", 32 << 20),
        ("pids.max", "max"),
        ("io.weight", 4950),
        ("io.weight", "8:0 10000"),
        ("io.max", "8:0 rbps=1048576"),
        ("io.max", "8:0 wiops=100"),
        ("hugetlb.2MB.max", 4194304),
        ("memory.high", "50000000"),
        ("cgroup.max.depth", "3"),
    ]
    assert warnings == []
    assert controllers_for(writes) == {"cpu", "cpuset", "memory", "pids", "io", "hugetlb"}


def test_v2_writes_for_limits_meaning_unlimited() -> None:
    r = LinuxResources.from_json({"cpu": {"quota": -1, "period": 50000}, "memory": {"limit": -1, "swap": -1}})
    writes, _ = resource_writes(r)
    assert writes == [("cpu.max", "max 50000"), ("memory.swap.max", "max"), ("memory.max", "max")]
    assert resource_writes(LinuxResources.from_json({"pids": {"limit": 10}}))[0] == [("pids.max", 10)]


def test_v2_warns_about_what_it_cannot_enforce() -> None:
    r = LinuxResources.from_json(
        {
            "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3}],
            "memory": {"kernel": 1 << 20, "swappiness": 10, "disableOOMKiller": True, "useHierarchy": False},
            "blockIO": {"leafWeight": 100},
        }
    )
    writes, warnings = resource_writes(r)
    assert writes == []
    assert any("devices: 2 device rule(s) not enforced" in w and "eBPF" in w for w in warnings)
    for name in ("kernel", "swappiness", "disableOOMKiller", "useHierarchy"):
        assert any(f"memory.{name} is ignored" in w for w in warnings)
    assert any("leaf weights are ignored" in w for w in warnings)


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            {"memory": {"swap": 1 << 20}},
            "linux.resources.memory.swap: on cgroup v2 the swap limit is memory+swap minus",
        ),
        ({"cpu": {"realtimeRuntime": 1000}}, "linux.resources.cpu.realtimeRuntime: realtime CPU limits need cgroup v1"),
        ({"network": {"classID": 1}}, "linux.resources.network: net_cls/net_prio need cgroup v1"),
    ],
)
def test_v2_refuses_what_it_has_no_files_for(resources: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        resource_writes(LinuxResources.from_json(resources))
    assert message in e.value.message


# --- stored state ---------------------------------------------------------------------------


def test_state_round_trips_through_json() -> None:
    v1 = V1Manager(
        {"memory": "/sys/fs/cgroup/memory/hull/c1", "": "/sys/fs/cgroup/unified/hull/c1"},
        ["/sys/fs/cgroup/memory/hull", "/sys/fs/cgroup/memory/hull/c1"],
    )
    again = manager_from_json(json.loads(json.dumps(v1.to_json())))
    assert isinstance(again, V1Manager) and again.to_json() == v1.to_json()
    v2 = V2Manager("/sys/fs/cgroup", "/sys/fs/cgroup/hull/c1", ["/sys/fs/cgroup/hull/c1"])
    again = manager_from_json(json.loads(json.dumps(v2.to_json())))
    assert isinstance(again, V2Manager) and again.to_json() == v2.to_json()
    assert again.paths() == {"": "/sys/fs/cgroup/hull/c1"}


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ([], "unknown cgroup version"),
        ({"version": 3, "paths": {}}, "unknown cgroup version"),
        ({"version": 1, "paths": {"memory": "relative/dir"}}, "paths must map hierarchy names to absolute directories"),
        ({"version": 1, "paths": {"memory": "/sys/fs/cgroup/memory/c1"}, "created": ["/etc"]}, "created must list"),
        (
            {"version": 1, "paths": {"memory": "/sys/fs/cgroup/memory/c1"}, "created": ["/sys/fs/cgroup/memory/c"]},
            "created",
        ),
        ({"version": 2, "paths": {"": "/sys/fs/cgroup/c1"}}, "needs its mount root"),
        ({"version": 2, "paths": {"": "/elsewhere/c1"}, "root": "/sys/fs/cgroup"}, "is not below the cgroup2 mount"),
    ],
)
def test_damaged_state_is_refused(state: Any, message: str) -> None:
    with pytest.raises(HullError, match=message):
        manager_from_json(state)
