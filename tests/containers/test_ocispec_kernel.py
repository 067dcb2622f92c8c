"""build_spec's config.json run for real, by hull-runtime and by runc: what the container sees.

One container per runtime and case; a shell script inside prints what the kernel reports
(capabilities, seccomp mode, masked and read-only paths, /dev/shm, cgroup limits, `id`),
and the test compares it with Docker's defaults and the flags given.
"""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hull.containers.ocispec import SpecInputs, build_spec
from hull.errors import InvalidArgument

pytestmark = pytest.mark.container

RUNC = "/usr/sbin/runc"
HULL_RUNTIME = str(Path(sys.executable).parent / "hull-runtime")
DOCKER_DEFAULT_CAP_MASK = 0x00000000A80425FB
TIMEOUT = 30

# Prints one `key=value` line per fact; every command is busybox's.
PROBE = r"""
grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\t' | sed 's/:/=/'
echo masked=$(grep -cE ' /proc/(keys|timer_list) ' /proc/mounts)
echo timer_list=$(wc -c < /proc/timer_list)
echo firmware=$(ls /sys/firmware | wc -l)
echo procsys_mount=$(grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)
if echo 1 > /proc/sys/vm/overcommit_memory 2>/dev/null; then echo procsys=rw; else echo procsys=ro; fi
echo shm=$(grep ' /dev/shm ' /proc/mounts | grep -o 'size=[0-9]*k')
echo memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
echo quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)
echo period=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
echo pids=$(cat /sys/fs/cgroup/pids/pids.max)
echo id=$(id)
echo home=$HOME
echo hostname=$(hostname)
if unshare -m true 2>/dev/null; then echo unshare=allowed; else echo unshare=refused; fi
"""


def _runtime_cmd(runtime: str, state_root: Path) -> list[str]:
    return [runtime, "--root", str(state_root)]


def _inputs(bundle: Path, config: dict, host_config: dict) -> SpecInputs:
    etc = bundle.parent / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "hostname").write_text("probe\n")
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n")
    (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    return SpecInputs(
        container_id=cid,
        config={"Cmd": ["sh", "-c", PROBE], "Hostname": "probe", **config},
        host_config={"NetworkMode": "none", **host_config},
        rootfs=str(bundle / "rootfs"),
        hostname_path=str(etc / "hostname"),
        hosts_path=str(etc / "hosts"),
        resolv_conf_path=str(etc / "resolv.conf"),
        cgroup_parent_default="/",  # the runtime removes /<id> on delete; a parent would stay behind
    )


def _run(runtime: str, bundle: Path, spec: dict) -> dict[str, str]:
    (bundle / "config.json").write_text(json.dumps(spec))
    state_root = bundle.parent / "state"
    cid = "hull-spec-" + uuid.uuid4().hex[:12]
    try:
        done = subprocess.run(
            [*_runtime_cmd(runtime, state_root), "run", "--bundle", str(bundle), cid],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )  # fmt: skip
    finally:
        subprocess.run(
            [*_runtime_cmd(runtime, state_root), "delete", "--force", cid], capture_output=True, timeout=TIMEOUT,
            check=False,
        )  # fmt: skip
    assert done.returncode == 0, f"{runtime} run exited {done.returncode}: {done.stderr}\n{done.stdout}"
    facts = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return facts


RUNTIMES = [pytest.param(HULL_RUNTIME, id="hull-runtime"), pytest.param(RUNC, id="runc")]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_docker_defaults_seen_from_inside(runtime: str, bundle: Path) -> None:
    spec = build_spec(_inputs(bundle, {}, {}))
    facts = _run(runtime, bundle, spec)
    assert int(facts["CapEff"], 16) == DOCKER_DEFAULT_CAP_MASK
    assert int(facts["CapBnd"], 16) == DOCKER_DEFAULT_CAP_MASK
    assert facts["Seccomp"] == "2"
    assert facts["NoNewPrivs"] == "0"
    # Masked: something is mounted over each (this host's kernel has no /proc/kcore to show it on).
    assert facts["masked"] == "2"
    assert facts["timer_list"] == "0"
    assert facts["firmware"] == "0"
    assert facts["procsys_mount"] == "ro"
    assert facts["procsys"] == "ro"
    assert facts["shm"] == "size=65536k"  # 64 MiB
    assert facts["pids"] == "max"
    assert facts["id"].startswith("uid=0(root) gid=0(root)")
    assert facts["home"] == "/root"
    assert facts["hostname"] == "probe"
    assert facts["unshare"] == "refused"  # seccomp: no CAP_SYS_ADMIN, no unshare


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_flags_seen_from_inside(runtime: str, bundle: Path) -> None:
    host_config = {
        "Memory": 64 * 1024 * 1024,
        "NanoCpus": 1_500_000_000,
        "PidsLimit": 50,
        "ShmSize": 128 * 1024 * 1024,
        "SecurityOpt": ["no-new-privileges"],
        "CapDrop": ["chown"],
    }
    spec = build_spec(_inputs(bundle, {"User": "user"}, host_config))
    facts = _run(runtime, bundle, spec)
    assert facts["memory"] == str(64 * 1024 * 1024)
    assert (facts["quota"], facts["period"]) == ("150000", "100000")
    assert facts["pids"] == "50"
    assert facts["shm"] == "size=131072k"
    assert facts["NoNewPrivs"] == "1"
    assert int(facts["CapEff"], 16) == 0  # a non-root user keeps no capability across execve
    assert int(facts["CapBnd"], 16) == DOCKER_DEFAULT_CAP_MASK & ~1  # CAP_CHOWN is bit 0
    assert facts["id"] == "uid=1000(user) gid=1000(user) groups=1000(user)"
    assert facts["home"] == "/home/user"


def test_unknown_user_is_refused_before_anything_runs(bundle: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"^unable to find user nosuch: no matching entries in passwd file$"):
        build_spec(_inputs(bundle, {"User": "nosuch"}, {}))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_privileged_seen_from_inside(runtime: str, bundle: Path) -> None:
    probe = (
        "grep -E '^(CapEff|Seccomp):' /proc/self/status | tr -d '\\t' | sed 's/:/=/';"
        "echo sys=$(grep ' /sys sysfs ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1);"
        "echo masked=$(grep -cE ' /proc/(keys|timer_list) ' /proc/mounts);"
        "test -c /dev/full && test -c /dev/null && echo devices=host"
    )
    spec = build_spec(_inputs(bundle, {"Cmd": ["sh", "-c", probe]}, {"Privileged": True}))
    facts = _run(runtime, bundle, spec)
    assert int(facts["CapEff"], 16) == int(host_cap_bounding(), 16)
    assert facts["Seccomp"] == "0"
    assert facts["sys"] == "rw"
    assert facts["masked"] == "0"
    assert facts["devices"] == "host"


def host_cap_bounding() -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return line.split()[1]
    raise AssertionError("no CapBnd in /proc/self/status")
