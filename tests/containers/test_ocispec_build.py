"""build_spec and its pieces: each Docker flag's mapping, Docker's defaults, Docker's errors.

The expected values marked "Docker 20.10" are what a real dockerd 20.10.24 wrote into its
config.json for the same flags (the oracle this module was checked against).
"""

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hull.containers import defaults as D
from hull.containers.ocispec import (
    UINT64_MAX,
    ULIMIT_NAMES,
    SpecInputs,
    build_spec,
    cgroups_path,
    merge_env,
    parse_security_opts,
    parse_ulimit,
    resolve_command,
    rlimits,
    tmpfs_options,
    tweak_capabilities,
)
from hull.errors import InvalidArgument
from hull.testing.busybox import GROUP, PASSWD

pytestmark = pytest.mark.unit

CID = "a361b153e8b5dd2903e69118e159ab81834ce4aec51dab2cf91d28c1d508731d"

# Docker 20.10: the mounts of `docker run --network none busybox` (sources of the /etc files aside).
DOCKER_DEFAULT_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
        "destination": "/dev/pts",
        "type": "devpts",
        "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["ro", "nosuid", "noexec", "nodev"],
    },
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
    },
    {"destination": "/etc/resolv.conf", "type": "bind", "source": "/c/resolv.conf", "options": ["rbind", "rprivate"]},
    {"destination": "/etc/hostname", "type": "bind", "source": "/c/hostname", "options": ["rbind", "rprivate"]},
    {"destination": "/etc/hosts", "type": "bind", "source": "/c/hosts", "options": ["rbind", "rprivate"]},
]


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


def inputs(rootfs: Path, config: dict[str, Any] | None = None, **host_config: Any) -> SpecInputs:
    return SpecInputs(
        container_id=CID,
        config={"Cmd": ["sleep", "1000"], "Hostname": CID[:12], **(config or {})},
        host_config={"NetworkMode": "none", **host_config},
        rootfs=str(rootfs),
        hostname_path="/c/hostname",
        hosts_path="/c/hosts",
        resolv_conf_path="/c/resolv.conf",
    )


def test_default_spec_is_dockers(rootfs: Path) -> None:
    spec = build_spec(inputs(rootfs))
    caps = list(D.DEFAULT_CAPABILITIES)
    assert spec["process"] == {
        "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
        "args": ["sleep", "1000"],
        "env": [D.DEFAULT_PATH_ENV, f"HOSTNAME={CID[:12]}", "HOME=/root"],  # HOME: hull's addition
        "cwd": "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "oomScoreAdj": 0,
    }
    assert spec["root"] == {"path": str(rootfs)}
    assert spec["hostname"] == CID[:12]
    assert spec["mounts"] == DOCKER_DEFAULT_MOUNTS
    linux = spec["linux"]
    assert linux["namespaces"] == [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")]
    assert linux["cgroupsPath"] == f"/hull/{CID}"
    assert linux["maskedPaths"] == list(D.DEFAULT_MASKED_PATHS)
    assert linux["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    assert linux["resources"] == {
        "devices": list(D.DEFAULT_DEVICE_RULES),
        "memory": {"disableOOMKiller": False},
        "cpu": {"shares": 0},
        "blockIO": {"weight": 0},
    }
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "sysctl" not in linux and "devices" not in linux


def test_many_flags_as_docker_writes_them(rootfs: Path) -> None:
    # docker run --cap-add sys_admin --cap-drop CAP_CHOWN --read-only --tmpfs /run:rw,size=64m --tmpfs /tmp2
    #   --ulimit nofile=1024:2048 --ulimit nproc=100 --security-opt no-new-privileges --memory 64m
    #   --memory-swap 128m --memory-reservation 32m --cpus 1.5 --cpu-shares 512 --cpuset-cpus 0 --cpuset-mems 0
    #   --pids-limit 50 --shm-size 128m --hostname myhost --domainname example.com -u nobody -w /tmp
    #   -e FOO=bar --oom-score-adj 100 --oom-kill-disable -t
    config = {
        "Hostname": "myhost",
        "Domainname": "example.com",
        "User": "nobody",
        "Env": ["FOO=bar"],
        "WorkingDir": "/tmp",
        "Tty": True,
    }
    host = {
        "CapAdd": ["CAP_SYS_ADMIN"],
        "CapDrop": ["CAP_CHOWN"],
        "ReadonlyRootfs": True,
        "Tmpfs": {"/run": "rw,size=64m", "/tmp2": ""},
        "Ulimits": [{"Name": "nofile", "Hard": 2048, "Soft": 1024}, {"Name": "nproc", "Hard": 100, "Soft": 100}],
        "SecurityOpt": ["no-new-privileges"],
        "Memory": 67108864,
        "MemorySwap": 134217728,
        "MemoryReservation": 33554432,
        "NanoCpus": 1500000000,
        "CpuShares": 512,
        "CpusetCpus": "0",
        "CpusetMems": "0",
        "PidsLimit": 50,
        "ShmSize": 134217728,
        "OomScoreAdj": 100,
        "OomKillDisable": True,
    }
    spec = build_spec(inputs(rootfs, config, **host))
    proc = spec["process"]
    assert proc["user"] == {"uid": 65534, "gid": 65534, "additionalGids": [65534]}
    assert proc["env"] == [D.DEFAULT_PATH_ENV, "HOSTNAME=myhost", "TERM=xterm", "FOO=bar", "HOME=/nonexistent"]
    assert proc["cwd"] == "/tmp"
    assert proc["terminal"] is True
    assert proc["noNewPrivileges"] is True
    assert proc["oomScoreAdj"] == 100
    assert proc["capabilities"] == {  # non-root: the bounding set only
        "bounding": [c for c in D.DEFAULT_CAPABILITIES if c != "CAP_CHOWN"] + ["CAP_SYS_ADMIN"]
    }
    assert proc["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024},
        {"type": "RLIMIT_NPROC", "hard": 100, "soft": 100},
    ]
    assert spec["root"] == {"path": str(rootfs), "readonly": True}
    assert spec["hostname"] == "myhost"
    assert spec["linux"]["sysctl"] == {"kernel.domainname": "example.com"}
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert [m["destination"] for m in spec["mounts"]][6:] == [
        "/dev/shm", "/run", "/tmp2", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts",
    ]  # fmt: skip
    assert mounts["/dev/shm"]["options"][-1] == "size=134217728"
    assert mounts["/run"] == {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                              "options": ["noexec", "nosuid", "nodev", "rprivate", "rw", "size=64m"]}  # fmt: skip
    assert mounts["/tmp2"]["options"] == ["noexec", "nosuid", "nodev", "rprivate"]
    assert mounts["/etc/hosts"]["options"] == ["rbind", "ro", "rprivate"]
    res = spec["linux"]["resources"]
    assert res["memory"] == {"limit": 67108864, "reservation": 33554432, "swap": 134217728, "disableOOMKiller": True}
    assert res["cpu"] == {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0", "mems": "0"}
    assert res["pids"] == {"limit": 50}
    seccomp_names = {n for s in spec["linux"]["seccomp"]["syscalls"] for n in s["names"]}
    assert "mount" in seccomp_names  # CAP_SYS_ADMIN's group


def test_privileged(rootfs: Path) -> None:
    spec = build_spec(inputs(rootfs, Privileged=True, CapDrop=["ALL"]))
    linux = spec["linux"]
    assert "seccomp" not in linux and "maskedPaths" not in linux and "readonlyPaths" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert any(d["path"] == "/dev/null" and (d["major"], d["minor"]) == (1, 3) for d in linux["devices"])
    assert not any(d["path"].startswith(("/dev/pts/", "/dev/console")) for d in linux["devices"])
    assert "CAP_SYS_ADMIN" in spec["process"]["capabilities"]["bounding"]  # CapDrop means nothing here
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert "ro" not in mounts["/sys"]["options"] and "ro" not in mounts["/sys/fs/cgroup"]["options"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ({"PidMode": "host", "IpcMode": "host", "UTSMode": "host"}, [{"type": "mount"}, {"type": "network"}]),
        ({"NetworkMode": "host"}, [{"type": t} for t in ("mount", "uts", "pid", "ipc")]),
        ({"NetworkMode": "bridge"}, [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")]),
        ({"NetworkMode": "container:x", "PidMode": "container:x", "IpcMode": "container:x"},
         [{"type": "mount"}, {"type": "network", "path": "/proc/9/ns/net"}, {"type": "uts"},
          {"type": "pid", "path": "/proc/9/ns/pid"}, {"type": "ipc", "path": "/proc/9/ns/ipc"}]),
        ({"CgroupnsMode": "private"}, [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc", "cgroup")]),
    ],
)  # fmt: skip
def test_namespace_modes(rootfs: Path, host: dict[str, Any], expected: list[dict[str, str]]) -> None:
    i = inputs(rootfs, **host)
    i.namespace_paths = {"network": "/proc/9/ns/net", "pid": "/proc/9/ns/pid", "ipc": "/proc/9/ns/ipc"}
    spec = build_spec(i)
    assert spec["linux"]["namespaces"] == expected
    assert ("hostname" in spec) == (host.get("UTSMode") != "host")


def test_ipc_modes_and_shm(rootfs: Path) -> None:
    def shm(**host: Any) -> list[dict[str, Any]]:
        i = inputs(rootfs, **host)
        i.shm_path = "/c/mounts/shm"
        return [m for m in build_spec(i)["mounts"] if m["destination"] == "/dev/shm"]

    assert shm(IpcMode="none") == []
    assert shm(IpcMode="host") == [{"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                                     "options": ["rbind", "rprivate"]}]  # fmt: skip
    assert shm(IpcMode="shareable")[0]["source"] == "/c/mounts/shm"
    assert shm(Tmpfs={"/dev/shm": "size=1m"})[0]["options"][-1] == "size=1m"  # a user mount wins


def test_cgroups_path(rootfs: Path) -> None:
    assert cgroups_path(inputs(rootfs)) == f"/hull/{CID}"
    assert cgroups_path(inputs(rootfs, CgroupParent="/my/parent/")) == f"/my/parent/{CID}"
    i = inputs(rootfs)
    i.cgroup_parent_default = "/docker"
    assert cgroups_path(i) == f"/docker/{CID}"


def test_resolve_command() -> None:
    assert resolve_command({"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"]}) == ["/bin/sh", "-c", "echo hi"]
    assert resolve_command({"Entrypoint": None, "Cmd": ["ls"]}) == ["ls"]
    assert resolve_command({"Entrypoint": ["top"], "Cmd": None}) == ["top"]
    assert resolve_command({"Cmd": "ls"}) == ["ls"]
    empty: list[dict[str, Any]] = [{}, {"Entrypoint": [], "Cmd": []}]
    for config in empty:
        with pytest.raises(InvalidArgument, match=r"^No command specified$"):
            resolve_command(config)


def test_capabilities_add_and_drop() -> None:
    assert tweak_capabilities([], [], False) == list(D.DEFAULT_CAPABILITIES)
    assert tweak_capabilities(["net_admin", "Cap_Sys_Time"], ["kill", "CAP_MKNOD"], False) == [
        *(c for c in D.DEFAULT_CAPABILITIES if c not in ("CAP_KILL", "CAP_MKNOD")),
        "CAP_NET_ADMIN",
        "CAP_SYS_TIME",
    ]
    assert tweak_capabilities(["net_raw"], ["all"], False) == ["CAP_NET_RAW"]
    everything = tweak_capabilities(["ALL"], ["chown"], False)
    assert "CAP_CHOWN" not in everything and "CAP_SYS_ADMIN" in everything
    assert tweak_capabilities(["chown"], [], False).count("CAP_CHOWN") == 1
    with pytest.raises(InvalidArgument, match=r'^invalid CapAdd: unknown capability: "CAP_FOO"$'):
        tweak_capabilities(["foo"], [], False)
    with pytest.raises(InvalidArgument, match=r'^invalid CapDrop: unknown capability: "CAP_NOPE"$'):
        tweak_capabilities([], ["nope"], False)


def test_ulimits() -> None:
    assert parse_ulimit("nofile=1024:2048") == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    assert parse_ulimit("nproc=100") == {"Name": "nproc", "Soft": 100, "Hard": 100}
    assert rlimits(["core=-1", {"Name": "nofile", "Soft": 1, "Hard": 2}, "core=0"]) == [
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},  # a later name wins
        {"type": "RLIMIT_NOFILE", "hard": 2, "soft": 1},
    ]
    assert rlimits(["core=-1"]) == [{"type": "RLIMIT_CORE", "hard": UINT64_MAX, "soft": UINT64_MAX}]  # Docker 20.10
    for bad, message in [
        ("nofile", "invalid ulimit argument: nofile"),
        ("bogus=1", "invalid ulimit type: bogus"),
        ("nofile=abc", 'invalid ulimit value "abc"'),
        ("nofile=1:2:3", "too many limit value arguments"),
        ("nofile=20:10", "ulimit soft limit must be less than or equal to hard limit: 20 > 10"),
        ("nofile=-2", "invalid ulimit value for nofile"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            rlimits([bad])


@given(
    name=st.sampled_from(sorted(ULIMIT_NAMES)),
    soft=st.integers(min_value=-1, max_value=2**63 - 1),
    extra=st.integers(min_value=0, max_value=2**20),
)
def test_ulimit_strings_round_trip(name: str, soft: int, extra: int) -> None:
    hard = -1 if soft == -1 else soft + extra
    (limit,) = rlimits([f"{name}={soft}:{hard}"])
    as_uint = [UINT64_MAX if v == -1 else v for v in (soft, hard)]
    assert limit == {"type": ULIMIT_NAMES[name], "soft": as_uint[0], "hard": as_uint[1]}


def test_security_opts() -> None:
    assert parse_security_opts(["no-new-privileges"]).no_new_privileges
    assert parse_security_opts(["no-new-privileges:true"]).no_new_privileges
    assert not parse_security_opts(["no-new-privileges=false"]).no_new_privileges
    opts = parse_security_opts(["label=disable", "apparmor=unconfined", "seccomp=unconfined", "disable"])
    assert (opts.seccomp, opts.no_new_privileges) == ("unconfined", False)
    for bad in ("foo=bar", "nonsense", "no-new-privileges=maybe"):
        with pytest.raises(InvalidArgument, match=f'^invalid --security-opt: "{bad}"$'):
            parse_security_opts([bad])


def test_seccomp_security_opt(rootfs: Path) -> None:
    assert "seccomp" not in build_spec(inputs(rootfs, SecurityOpt=["seccomp=unconfined"]))["linux"]
    custom = '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}'
    spec = build_spec(inputs(rootfs, SecurityOpt=[f"seccomp={custom}"]))
    assert spec["linux"]["seccomp"] == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }


def test_tmpfs_options_merge_as_docker() -> None:
    assert tmpfs_options("") == ["noexec", "nosuid", "nodev", "rprivate"]
    assert tmpfs_options("exec,mode=1777") == ["nosuid", "nodev", "rprivate", "exec", "mode=1777"]  # Docker 20.10
    assert tmpfs_options("size=1m,size=2m,shared,defaults") == ["noexec", "nosuid", "nodev", "size=2m", "shared"]
    for bad in ("foo=bar", "size=abc", "mode=999", "uid=x", "bogus"):
        with pytest.raises(InvalidArgument, match=f'^invalid tmpfs option "{bad}"$'):
            tmpfs_options(bad)


TMPFS_FLAGS = ["ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "private", "shared", "rslave"]
TMPFS_WORDS = st.sampled_from([*TMPFS_FLAGS, "size=64m", "size=10%", "mode=0755", "uid=1000", "gid=5", "nr_inodes=4k"])


@given(words=st.lists(TMPFS_WORDS, max_size=8))
def test_tmpfs_options_keep_the_last_word_of_each_kind(words: list[str]) -> None:
    merged = tmpfs_options(",".join(words))
    keys = [w.split("=")[0] if "=" in w else w.removeprefix("no") for w in merged]
    keys = ["propagation" if k in ("private", "shared", "rslave", "rprivate") else k for k in keys]
    assert len(keys) == len(set(keys))
    for word in words[-1:]:
        assert word in merged  # the last word given always survives


def test_bad_tmpfs_destinations(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"^invalid mount path: 'run' mount path must be absolute$"):
        build_spec(inputs(rootfs, Tmpfs={"run": ""}))
    with pytest.raises(InvalidArgument, match=r"invalid mount path: '/'"):
        build_spec(inputs(rootfs, Tmpfs={"/": ""}))


def test_env_merge() -> None:
    assert merge_env(["PATH=/a", "HOSTNAME=h"], ["PATH=/b", "X=1", "HOSTNAME", "X=2"]) == ["PATH=/b", "X=2"]


def test_env_keeps_image_path_and_home(rootfs: Path) -> None:
    spec = build_spec(inputs(rootfs, {"Env": ["PATH=/opt/bin", "HOME=/data"]}))
    assert spec["process"]["env"] == ["PATH=/opt/bin", f"HOSTNAME={CID[:12]}", "HOME=/data"]


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ({"NanoCpus": 10**9, "CpuQuota": 1000}, "^Conflicting options: Nano CPUs and CPU Quota cannot both be set$"),
        ({"NanoCpus": 10**9, "CpuPeriod": 1000}, "^Conflicting options: Nano CPUs and CPU Period cannot both be set$"),
        ({"NanoCpus": 1000}, "^Range of CPUs is from 0.01 to"),
        ({"Memory": 1024}, "^Minimum memory limit allowed is 6MB$"),
        ({"Memory": 67108864, "MemorySwap": 33554432}, "^Minimum memoryswap limit should be larger than memory limit"),
        ({"BlkioWeight": 5}, "^Range of blkio weight is from 10 to 1000$"),
        ({"ShmSize": -1}, "^SHM size can not be less than 0$"),
        ({"PidMode": "bogus"}, '^invalid --pid: "bogus"$'),
        ({"IpcMode": "bogus"}, '^invalid --ipc: "bogus"$'),
        ({"PidMode": "container:x"}, "pid namespace mode 'container:x': the daemon gave no namespace path"),
        ({"CapAdd": ["foo"]}, '^invalid CapAdd: unknown capability: "CAP_FOO"$'),
        ({"Ulimits": [{"Name": "nofile", "Soft": 20, "Hard": 10}]}, "^ulimit soft limit must be"),
    ],
)  # fmt: skip
def test_bad_host_config(rootfs: Path, host: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        build_spec(inputs(rootfs, **host))


def test_limits_docker_reads_as_unset(rootfs: Path) -> None:
    res = build_spec(inputs(rootfs, PidsLimit=-1, MemorySwap=-1, Memory=33554432, CpuPeriod=50000, CpuQuota=25000))[
        "linux"
    ]["resources"]
    assert "pids" not in res
    assert res["memory"] == {"limit": 33554432, "disableOOMKiller": False}  # Docker 20.10: swap -1 is left out
    assert (res["cpu"]["period"], res["cpu"]["quota"]) == (50000, 25000)


def test_relative_workdir_refused(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match="the working directory 'tmp' is invalid"):
        build_spec(inputs(rootfs, {"WorkingDir": "tmp"}))


def test_inputs_are_not_changed(rootfs: Path) -> None:
    i = inputs(rootfs, Tmpfs={"/run": "size=1m"}, Ulimits=["nofile=1:2"])
    before = copy.deepcopy((i.config, i.host_config))
    build_spec(i)
    build_spec(i)
    assert (i.config, i.host_config) == before
