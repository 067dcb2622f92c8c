"""The root filesystem on the real kernel: prepare_rootfs, pivot_root_into, finalize_rootfs.

Each scenario runs in a forked child that unshares a mount and a pid namespace (plus what the
test asks for) and forks again, so that the grandchild is PID 1 of the new pid namespace, as
mounting proc needs. The grandchild builds the rootfs of a busybox bundle, pivots into it,
runs a probe and sends the probe's JSON answer (or the HullError it met) back over a pipe.
Every mount lives in the child's own namespace and vanishes with it.
"""

import copy
import errno
import json
import os
import select
import shutil
import signal
import stat
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hull.errors import HullError
from hull.runtime import console, rootfs, syscalls
from hull.runtime.cgroups.hierarchy import mounted_hierarchies, own_cgroups
from hull.runtime.devices import DEFAULT_DEVICES
from hull.runtime.spec import Spec

pytestmark = pytest.mark.container

TIMEOUT = 60.0
Probe = Callable[[], Any]


# --- the harness ------------------------------------------------------------------------------


def own_cgroup_dirs() -> dict[str, str]:
    """Hierarchy name -> our own cgroup directory in it: what a cgroup manager's paths() gives."""
    own = own_cgroups()
    return {h.name: h.directory(own[h.name], ".") for h in mounted_hierarchies(own)}


def load_config(bundle: Path) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    return cfg


def make_spec(bundle: Path, cfg: dict[str, Any]) -> Spec:
    return Spec.from_json(copy.deepcopy(cfg), str(bundle))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int, pid: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([fd], [], [], TIMEOUT)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the container child did not answer within {TIMEOUT}s")
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _grandchild(
    spec: Spec,
    probe: Probe,
    out: int,
    cgroup_paths: dict[str, str],
    userns: bool,
    no_pivot: bool,
    before_pivot: Probe | None,
) -> None:
    try:
        rootfs.prepare_rootfs(spec, cgroup_paths, userns)
        before = before_pivot() if before_pivot else None
        rootfs.pivot_root_into(spec.root_path, no_pivot)
        rootfs.finalize_rootfs(spec)
        result = {"before": before, "after": probe()}
    except HullError as e:
        result = {"error": e.message, "kind": type(e).__name__}
    except BaseException:
        result = {"crash": traceback.format_exc()}
    _write_all(out, json.dumps(result).encode())


def run_container(
    spec: Spec,
    probe: Probe = lambda: None,
    *,
    cgroup_paths: dict[str, str] | None = None,
    unshare: int = 0,
    userns: bool = False,
    no_pivot: bool = False,
    before_pivot: Probe | None = None,
    private_ns: bool = False,
) -> dict[str, Any]:
    """Run the three rootfs steps and `probe` in a new mount + pid namespace; return the answer."""
    cgroup_paths = own_cgroup_dirs() if cgroup_paths is None else cgroup_paths
    r, w = os.pipe()
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            os.close(r)
            if userns:
                syscalls.unshare(syscalls.CLONE_NEWUSER)
                os.write(to_parent_w, b"u")
                if os.read(to_child_r, 1) != b"g":
                    raise RuntimeError("no id maps")
            syscalls.unshare(syscalls.CLONE_NEWNS | syscalls.CLONE_NEWPID | unshare)
            if private_ns:
                syscalls.mount(None, "/", None, syscalls.MS_PRIVATE | syscalls.MS_REC)
            grandchild = os.fork()
            if grandchild == 0:
                try:
                    _grandchild(spec, probe, w, cgroup_paths, userns, no_pivot, before_pivot)
                finally:
                    os._exit(0)
            os.close(w)
            _, wstatus = os.waitpid(grandchild, 0)
            status = os.waitstatus_to_exitcode(wstatus)
        except BaseException:
            _write_all(w, json.dumps({"crash": traceback.format_exc()}).encode())
        finally:
            os._exit(status)
    os.close(w)
    for fd in (to_child_r, to_parent_w):
        os.close(fd)
    try:
        if userns and os.read(to_parent_r, 1) == b"u":
            for name in ("uid_map", "gid_map"):
                Path(f"/proc/{pid}/{name}").write_text("0 0 4294967295\n")
            os.write(to_child_w, b"g")
        data = _read_all(r, pid)
    finally:
        for fd in (r, to_child_w, to_parent_r):
            os.close(fd)
        os.waitpid(pid, 0)
    if not data:
        pytest.fail("the container child died without an answer")
    result: dict[str, Any] = json.loads(data)
    if "crash" in result:
        pytest.fail(f"the container child crashed:\n{result['crash']}")
    return result


def answer(result: dict[str, Any]) -> Any:
    """The probe's answer, or a test failure carrying the HullError the setup raised."""
    if "error" in result:
        pytest.fail(f"rootfs setup failed: {result['kind']}: {result['error']}")
    return result["after"]


# --- probes (run inside the container) --------------------------------------------------------


def mountinfo() -> list[dict[str, str]]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            out.append(
                {
                    "root": fields[3],
                    "point": fields[4],
                    "options": fields[5],
                    "type": fields[sep + 1],
                    "super": fields[sep + 3] if len(fields) > sep + 3 else "",
                }
            )
    return out


def mount_at(point: str) -> dict[str, str] | None:
    """The mount on top at `point`, if any."""
    found = None
    for m in mountinfo():
        if m["point"] == point:
            found = m
    return found


def write_errno(path: str, data: bytes = b"x") -> int:
    """0 if writing `data` to `path` works, else the errno."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as e:
        return e.errno or -1
    try:
        os.write(fd, data)
    except OSError as e:
        return e.errno or -1
    finally:
        os.close(fd)
    return 0


def device(path: str) -> list[int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return [int(stat.S_ISCHR(st.st_mode)), os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode)]


def readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


# --- the default spec -------------------------------------------------------------------------


DEV_LINKS = ("/dev/fd", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/ptmx", "/dev/core")
DEFAULT_MOUNT_POINTS = ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup")


def default_probe(marker: str) -> Probe:
    def probe() -> dict[str, Any]:
        with open("/proc/sys/kernel/hostname", "rb") as f:
            hostname = f.read()
        masked = {}
        for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list"):
            if os.path.exists(path):
                with open(path, "rb") as f:
                    masked[path] = [f.read(16).hex(), device(path)]
        cgroup = mount_at("/sys/fs/cgroup")
        return {
            "pid": os.getpid(),
            "marker_visible": os.path.exists(marker),
            "busybox": os.path.isfile("/bin/busybox"),
            "host_mounts": [m["point"] for m in mountinfo() if m["point"].startswith("/tmp/pytest")],
            "masked": masked,
            "acpi": os.listdir("/proc/acpi") if os.path.isdir("/proc/acpi") else None,
            "firmware": os.listdir("/sys/firmware") if os.path.isdir("/sys/firmware") else None,
            "firmware_errno": write_errno("/sys/firmware/x"),
            "proc_sys_errno": write_errno("/proc/sys/kernel/hostname", hostname),
            "root_errno": write_errno("/hull-new-file"),
            "tmp_errno": write_errno("/tmp/hull-new-file"),
            "dev_errno": write_errno("/dev/hull-new-file"),
            "devices": {d.path: device(d.path) for d in DEFAULT_DEVICES},
            "links": {p: readlink(p) for p in DEV_LINKS},
            "types": {p: (mount_at(p) or {}).get("type") for p in DEFAULT_MOUNT_POINTS},
            "sys_options": (mount_at("/sys") or {}).get("options"),
            "shm_mode": stat.S_IMODE(os.stat("/dev/shm").st_mode),
            "cgroup_options": cgroup and cgroup["options"],
            "cgroup_mkdir_errno": write_errno("/sys/fs/cgroup/hull-x"),
            "cgroup_memory": {
                "root": (mount_at("/sys/fs/cgroup/memory") or {}).get("root"),
                "limit_file": os.path.exists("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
                "procs_errno": write_errno("/sys/fs/cgroup/memory/cgroup.procs", b"1"),
            },
        }

    return probe


@pytest.fixture
def default_run(bundle: Path, tmp_path: Path) -> dict[str, Any]:
    marker = tmp_path / "host-marker"
    marker.write_text("on the host")
    return answer(run_container(make_spec(bundle, load_config(bundle)), default_probe(str(marker))))


def test_host_is_invisible_after_pivot(default_run: dict[str, Any]) -> None:
    assert default_run["pid"] == 1
    assert default_run["busybox"]
    assert default_run["marker_visible"] is False
    assert default_run["host_mounts"] == []


def test_masked_paths(default_run: dict[str, Any]) -> None:
    # Masked files are /dev/null: they read empty. Those this kernel lacks are skipped, as for runc.
    expected = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
    assert sorted(default_run["masked"]) == sorted(expected)
    assert expected, "no masked file exists on this kernel to check"
    for path, (head, dev) in default_run["masked"].items():
        assert head == "", path
        assert dev[:3] == [1, 1, 3], path
    if os.path.isdir("/proc/acpi"):
        assert default_run["acpi"] == []
    if os.path.isdir("/sys/firmware"):
        assert default_run["firmware"] == []  # an empty read-only tmpfs over the directory
        assert default_run["firmware_errno"] == errno.EROFS


def test_readonly_paths_and_root(default_run: dict[str, Any]) -> None:
    assert default_run["proc_sys_errno"] == errno.EROFS
    assert default_run["root_errno"] == errno.EROFS  # root.readonly is true in the default spec
    assert default_run["tmp_errno"] == errno.EROFS
    assert default_run["dev_errno"] == 0  # /dev is its own tmpfs, writable


def test_default_devices(default_run: dict[str, Any]) -> None:
    for d in DEFAULT_DEVICES:
        assert default_run["devices"][d.path] == [1, d.major, d.minor, 0o666], d.path
    assert default_run["links"] == {
        "/dev/fd": "/proc/self/fd",
        "/dev/stdin": "/proc/self/fd/0",
        "/dev/stdout": "/proc/self/fd/1",
        "/dev/stderr": "/proc/self/fd/2",
        "/dev/ptmx": "pts/ptmx",
        "/dev/core": "/proc/kcore" if os.path.exists("/proc/kcore") else None,
    }


def test_default_mounts(default_run: dict[str, Any]) -> None:
    assert default_run["types"] == {
        "/proc": "proc",
        "/dev": "tmpfs",
        "/dev/pts": "devpts",
        "/dev/shm": "tmpfs",
        "/dev/mqueue": "mqueue",
        "/sys": "sysfs",
        "/sys/fs/cgroup": "tmpfs",
    }
    assert default_run["sys_options"].split(",")[0] == "ro"
    assert default_run["shm_mode"] == 0o1777


def test_cgroup_mount_shows_own_cgroups_read_only(default_run: dict[str, Any]) -> None:
    own = own_cgroups()
    assert default_run["cgroup_options"].split(",")[0] == "ro"
    assert default_run["cgroup_mkdir_errno"] == errno.EROFS
    if "memory" in own:
        assert default_run["cgroup_memory"] == {"root": own["memory"], "limit_file": True, "procs_errno": errno.EROFS}


# --- single features --------------------------------------------------------------------------


def test_bind_mounts_ro_and_file(bundle: Path, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (share / "hello").write_text("hi")
    host_file = tmp_path / "file.conf"
    host_file.write_text("conf")
    cfg = load_config(bundle)
    cfg["root"]["readonly"] = False
    cfg["mounts"] += [
        {"destination": "/data", "type": "bind", "source": str(share), "options": ["rbind", "ro", "rprivate"]},
        {"destination": "/etc/app/file.conf", "type": "none", "source": str(host_file), "options": ["bind"]},
    ]

    def probe() -> dict[str, Any]:
        with open("/data/hello") as f, open("/etc/app/file.conf") as g:
            contents = [f.read(), g.read()]
        return {
            "contents": contents,
            "data_errno": write_errno("/data/new"),
            "file_is_file": os.path.isfile("/etc/app/file.conf"),
            "file_errno": write_errno("/etc/app/file.conf", b"conf"),
            "root_errno": write_errno("/root-writable"),
        }

    got = answer(run_container(make_spec(bundle, cfg), probe))
    assert got == {
        "contents": ["hi", "conf"],
        "data_errno": errno.EROFS,
        "file_is_file": True,
        "file_errno": 0,
        "root_errno": 0,
    }
    assert sorted(os.listdir(share)) == ["hello"]


def test_tmpfs_options_reach_the_kernel(bundle: Path) -> None:
    cfg = load_config(bundle)
    cfg["mounts"] += [
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m", "mode=1777"]},
        {"destination": "/scratch2", "type": "tmpfs", "source": "tmpfs", "options": ["noexec", "mode=750", "size=2m"]},
    ]

    def probe() -> dict[str, Any]:
        return {p: [mount_at(p), stat.S_IMODE(os.stat(p).st_mode)] for p in ("/scratch", "/scratch2")}

    got = answer(run_container(make_spec(bundle, cfg), probe))
    (scratch, scratch_mode), (scratch2, scratch2_mode) = got["/scratch"], got["/scratch2"]
    assert scratch["type"] == scratch2["type"] == "tmpfs"
    assert "nosuid" in scratch["options"].split(",")
    assert "noexec" in scratch2["options"].split(",")
    # mountinfo leaves out tmpfs's default mode (1777): that one shows in the directory's mode.
    assert "size=1024k" in scratch["super"].split(",")
    assert scratch_mode == 0o1777
    assert {"size=2048k", "mode=750"} <= set(scratch2["super"].split(","))
    assert scratch2_mode == 0o750


def test_dev_read_only_after_devices_are_made(bundle: Path) -> None:
    cfg = load_config(bundle)
    dev = next(m for m in cfg["mounts"] if m["destination"] == "/dev")
    dev["options"].append("ro")
    cfg["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600, "uid": 1000, "gid": 1000}
    ]

    def probe() -> dict[str, Any]:
        st = os.stat("/dev/fuse")
        return {
            "null": device("/dev/null"),
            "fuse": device("/dev/fuse"),
            "fuse_owner": [st.st_uid, st.st_gid],
            "dev_errno": write_errno("/dev/hull-new"),
        }

    got = answer(run_container(make_spec(bundle, cfg), probe))
    assert got == {
        "null": [1, 1, 3, 0o666],
        "fuse": [1, 10, 229, 0o600],
        "fuse_owner": [1000, 1000],
        "dev_errno": errno.EROFS,
    }


def test_symlinked_destinations_land_inside_the_rootfs(bundle: Path) -> None:
    rootfs_dir = bundle / "rootfs"
    (rootfs_dir / "evil").symlink_to("/../../etc")
    escape = f"hull-escape-{uuid.uuid4().hex[:8]}"
    (rootfs_dir / "evil2").symlink_to("../../../../../../../../tmp")
    cfg = load_config(bundle)
    cfg["root"]["readonly"] = False
    cfg["mounts"] += [
        {"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": f"/evil2/{escape}", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ]

    def before_pivot() -> dict[str, Any]:  # still in the host's tree (our own mount namespace)
        return {
            "host_etc_mounted": mount_at("/etc") is not None,
            "host_tmp_escape": os.path.exists(f"/tmp/{escape}"),
            "host_passwd": os.path.exists("/etc/passwd"),
        }

    def probe() -> dict[str, Any]:
        return {
            "etc": (mount_at("/etc") or {}).get("type"),
            "passwd": os.path.exists("/etc/passwd"),
            "tmp_escape": (mount_at(f"/tmp/{escape}") or {}).get("type"),
        }

    result = run_container(make_spec(bundle, cfg), probe, before_pivot=before_pivot)
    assert answer(result) == {"etc": "tmpfs", "passwd": False, "tmp_escape": "tmpfs"}
    assert result["before"] == {"host_etc_mounted": False, "host_tmp_escape": False, "host_passwd": True}
    assert not os.path.exists(f"/tmp/{escape}")
    assert (rootfs_dir / "tmp" / escape).is_dir()  # created inside the rootfs


def test_sysctls_are_written_in_the_container_namespaces(bundle: Path) -> None:
    cfg = load_config(bundle)
    cfg["linux"]["sysctl"] = {"kernel.shmmax": "123456789", "net.ipv4.ip_forward": "1", "net/ipv4/ip_default_ttl": "42"}
    host = {p: Path(p).read_text() for p in ("/proc/sys/kernel/shmmax", "/proc/sys/net/ipv4/ip_forward")}

    def probe() -> dict[str, str]:
        paths = ("kernel/shmmax", "net/ipv4/ip_forward", "net/ipv4/ip_default_ttl")
        return {p: Path(f"/proc/sys/{p}").read_text().strip() for p in paths}

    got = answer(run_container(make_spec(bundle, cfg), probe, unshare=syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWNET))
    assert got == {"kernel/shmmax": "123456789", "net/ipv4/ip_forward": "1", "net/ipv4/ip_default_ttl": "42"}
    assert {p: Path(p).read_text() for p in host} == host


def test_cgroup_v1_layout_with_co_mounted_controllers(bundle: Path) -> None:
    own = own_cgroup_dirs()
    if "memory" not in own or "cpu" not in own:
        pytest.skip("needs cgroup v1 cpu and memory hierarchies")
    # The names only decide the layout: pretend cpu is co-mounted with cpuacct, as on most hosts.
    paths = {"cpu,cpuacct": own["cpu"], "memory": own["memory"]}
    for name in ("name=systemd", ""):
        if name in own:
            paths[name] = own[name]
    cfg = load_config(bundle)

    def probe() -> dict[str, Any]:
        return {
            "entries": sorted(os.listdir("/sys/fs/cgroup")),
            "cpu": readlink("/sys/fs/cgroup/cpu"),
            "cpuacct": readlink("/sys/fs/cgroup/cpuacct"),
            "shares": os.path.exists("/sys/fs/cgroup/cpu/cpu.shares"),
            "unified": os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"),
        }

    got = answer(run_container(make_spec(bundle, cfg), probe, cgroup_paths=paths))
    expected = ["cpu", "cpu,cpuacct", "cpuacct", "memory"]
    expected += [s for n, s in (("name=systemd", "systemd"), ("", "unified")) if n in paths]
    assert got["entries"] == sorted(expected)
    assert got["cpu"] == got["cpuacct"] == "cpu,cpuacct"
    assert got["shares"]
    assert got["unified"] == ("" in paths)


def test_cgroup2_only_host_binds_the_container_directory(bundle: Path) -> None:
    own = own_cgroup_dirs()
    if "" not in own:
        pytest.skip("no cgroup2 hierarchy mounted")
    cfg = load_config(bundle)

    def probe() -> dict[str, Any]:
        m = mount_at("/sys/fs/cgroup") or {}
        return {
            "type": m.get("type"),
            "ro": m.get("options", "").startswith("ro"),
            "controllers": os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
        }

    got = answer(run_container(make_spec(bundle, cfg), probe, cgroup_paths={"": own[""]}))
    assert got == {"type": "cgroup2", "ro": True, "controllers": True}


def test_no_pivot_moves_the_root(bundle: Path, tmp_path: Path) -> None:
    marker = tmp_path / "host-marker"
    marker.write_text("on the host")

    def probe() -> dict[str, Any]:
        return {
            "marker": os.path.exists(str(marker)),
            "busybox": os.path.isfile("/bin/busybox"),
            "proc_mounts": [m["point"] for m in mountinfo() if m["type"] == "proc"],
            "keys": device("/proc/keys"),
        }

    got = answer(run_container(make_spec(bundle, load_config(bundle)), probe, no_pivot=True))
    assert got["marker"] is False
    assert got["busybox"]
    assert got["proc_mounts"][0] == "/proc"
    assert got["keys"][:3] == [1, 1, 3]


def test_console_is_the_pty_slave(bundle: Path) -> None:
    spec = make_spec(bundle, load_config(bundle))

    def before_pivot() -> str:  # what the init does between prepare_rootfs and pivot_root_into
        _master, number = console.open_pty(f"{spec.root_path}/dev/pts/ptmx")
        rootfs.bind_console(spec.root_path, f"{spec.root_path}/dev/pts/{number}")
        return number

    def probe() -> list[int] | None:
        return device("/dev/console")

    result = run_container(spec, probe, before_pivot=before_pivot)
    assert answer(result)[:3] == [1, 136, int(result["before"])]
    assert not (bundle / "rootfs/dev/console").exists()  # made in the container's /dev tmpfs


@pytest.mark.parametrize("propagation, tag", [("rprivate", None), ("slave", None), ("rshared", "shared:")])
def test_rootfs_propagation(bundle: Path, propagation: str, tag: str | None) -> None:
    cfg = load_config(bundle)
    cfg["linux"]["rootfsPropagation"] = propagation

    def probe() -> list[str]:
        with open("/proc/self/mountinfo") as f:
            root = [line.split(" - ")[0].split()[6:] for line in f if line.split()[4] == "/"]
        return root[-1]

    # Private from the start, so that even `rshared` cannot reach a host whose mounts are shared.
    optional = answer(run_container(make_spec(bundle, cfg), probe, private_ns=True))
    assert [f.split(":")[0] + ":" for f in optional] == ([tag] if tag else [])


def test_user_namespace(bundle: Path) -> None:
    """In a user namespace: host device nodes are bound (mknod is refused), locked flags are kept,
    and sysfs, which needs its own network namespace there, falls back to a bind of the host's."""

    def probe() -> dict[str, Any]:
        return {
            "devices": {d.path: device(d.path) for d in DEFAULT_DEVICES},
            "root_errno": write_errno("/hull-new-file"),
            "proc_sys_errno": write_errno("/proc/sys/kernel/shmmax", b"1"),
            "keys": device("/proc/keys"),
            "sys": (mount_at("/sys") or {}).get("options", "").split(",")[0],
            "sys_kernel": os.path.isdir("/sys/kernel"),
            "cgroup_errno": write_errno("/sys/fs/cgroup/hull-x"),
        }

    got = answer(
        run_container(make_spec(bundle, load_config(bundle)), probe, userns=True, unshare=syscalls.CLONE_NEWIPC)
    )
    for d in DEFAULT_DEVICES:
        assert got["devices"][d.path][:3] == [1, d.major, d.minor], d.path
    assert got["root_errno"] == errno.EROFS
    assert got["proc_sys_errno"] == errno.EROFS
    assert got["keys"][:3] == [1, 1, 3]
    assert got["sys"] == "ro"
    assert got["sys_kernel"]
    assert got["cgroup_errno"] == errno.EROFS


def test_mounts_do_not_propagate_to_the_parent_namespace(bundle: Path, tmp_path: Path) -> None:
    """With the rootfs on a *shared* mount, nothing the container mounts shows in the namespace it came from.

    The host's own mounts here are private, so the check is made one level down: a child
    namespace mounts a shared tmpfs, puts the rootfs on it and watches its own mount table
    while a grandchild namespace (a peer of that tmpfs) builds the container.
    """
    outer = tmp_path / "outer"
    outer.mkdir()
    rootfs_dir = outer / "rootfs"
    cfg = load_config(bundle)
    cfg["root"]["path"] = str(rootfs_dir)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            syscalls.unshare(syscalls.CLONE_NEWNS)
            syscalls.mount(None, "/", None, syscalls.MS_PRIVATE | syscalls.MS_REC)  # keep the host out of it
            syscalls.mount("tmpfs", str(outer), "tmpfs", 0, "size=64m")
            syscalls.mount(None, str(outer), None, syscalls.MS_SHARED)
            shutil.copytree(bundle / "rootfs", rootfs_dir, symlinks=True)
            ready_r, ready_w = os.pipe()
            go_r, go_w = os.pipe()

            def hold() -> None:  # inside the container, after finalize: wait while the parent looks
                os.write(ready_w, b"r")
                os.read(go_r, 1)

            inner = os.fork()
            if inner == 0:
                os.close(ready_r)
                os.close(go_w)
                status = 1
                try:
                    syscalls.unshare(syscalls.CLONE_NEWNS | syscalls.CLONE_NEWPID)
                    grandchild = os.fork()
                    if grandchild == 0:
                        try:
                            _grandchild(make_spec(bundle, cfg), hold, w, own_cgroup_dirs(), False, False, None)
                        finally:
                            os._exit(0)
                    _, wstatus = os.waitpid(grandchild, 0)
                    status = os.waitstatus_to_exitcode(wstatus)
                finally:
                    os._exit(status)
            os.close(ready_w)
            os.close(go_r)
            os.read(ready_r, 1)
            with open("/proc/self/mountinfo") as f:
                seen = [line.split()[4] for line in f if line.split()[4].startswith(str(rootfs_dir))]
            os.write(go_w, b"g")
            os.waitpid(inner, 0)
            _write_all(w, b"\n" + json.dumps({"seen": seen}).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = _read_all(r, pid)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    container_part, _, parent_part = data.partition(b"\n")
    assert answer(json.loads(container_part)) is None
    assert json.loads(parent_part) == {"seen": []}


# --- bad input --------------------------------------------------------------------------------


def add_mount(**m: Any) -> Callable[[dict[str, Any], Path], None]:
    def change(cfg: dict[str, Any], tmp_path: Path) -> None:
        cfg["mounts"].append({k: str(v).replace("TMP", str(tmp_path)) if k == "source" else v for k, v in m.items()})

    return change


def set_sysctl(**values: str) -> Callable[[dict[str, Any], Path], None]:
    def change(cfg: dict[str, Any], tmp_path: Path) -> None:
        cfg["linux"]["sysctl"] = {k.replace("__", "."): v for k, v in values.items()}

    return change


BAD_INPUT = [
    pytest.param(
        add_mount(destination="/data", type="bind", source="TMP", options=["rbind", "bogus"]),
        "mount TMP on /data: unknown mount option(s) for a bind mount: bogus",
        id="unknown-bind-option",
    ),
    pytest.param(
        add_mount(destination="/scratch", type="tmpfs", source="tmpfs", options=["size=1m", "bogus"]),
        "mount tmpfs on /scratch: Invalid argument (options 'size=1m,bogus')",
        id="unknown-tmpfs-option",
    ),
    pytest.param(
        add_mount(destination="/data", type="bind", source="TMP/missing", options=["rbind"]),
        "mount TMP/missing on /data: bind source TMP/missing does not exist",
        id="missing-bind-source",
    ),
    pytest.param(
        add_mount(destination="/data", type="tmpfs", source="tmpfs", options=["tmpcopyup"]),
        "mount tmpfs on /data: mount option 'tmpcopyup': copying the image's files up",
        id="tmpcopyup",
    ),
    pytest.param(
        add_mount(destination="/proc/sysrq-trigger", type="bind", source="TMP", options=["rbind"]),
        "mount TMP on /proc/sysrq-trigger: /proc/sysrq-trigger is inside /proc",
        id="inside-proc",
    ),
    pytest.param(
        add_mount(destination="/proc", type="tmpfs", source="tmpfs"),
        "mount tmpfs on /proc: only a proc filesystem may be mounted at /proc",
        id="not-proc-on-proc",
    ),
    pytest.param(
        set_sysctl(net__ipv4__hull_no_such_sysctl="1"),
        "sysctl 'net.ipv4.hull_no_such_sysctl': no such sysctl (/proc/sys/net/ipv4/hull_no_such_sysctl does not exist)",
        id="unknown-sysctl",
    ),
    pytest.param(
        set_sysctl(kernel__shmmax="many"),
        "sysctl 'kernel.shmmax': write 'many' to /proc/sys/kernel/shmmax: Invalid argument",
        id="bad-sysctl-value",
    ),
    pytest.param(
        set_sysctl(vm__swappiness="1"),
        "sysctl 'vm.swappiness' is not in a separate kernel namespace",
        id="host-sysctl",
    ),
]


@pytest.mark.parametrize("change, message", BAD_INPUT)
def test_bad_input_is_a_hull_error_naming_it(
    bundle: Path, tmp_path: Path, change: Callable[[dict[str, Any], Path], None], message: str
) -> None:
    cfg = load_config(bundle)
    change(cfg, tmp_path)
    swappiness = Path("/proc/sys/vm/swappiness").read_text()
    result = run_container(make_spec(bundle, cfg), unshare=syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWNET)
    assert "error" in result, result
    assert result["error"].startswith(message.replace("TMP", str(tmp_path))), result["error"]
    assert Path("/proc/sys/vm/swappiness").read_text() == swappiness
