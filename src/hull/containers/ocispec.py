"""The OCI runtime spec (a bundle's config.json) that hulld generates for a Docker container.

Vocabulary: the *config* is the Engine API ContainerConfig as config.v2.json stores it
(already merged with the image's defaults), the *host config* the Engine API HostConfig;
`SpecInputs` carries both with the paths the daemon prepared. `build_spec` is a pure
function of its inputs and of what it reads from the image (/etc/passwd, /etc/group) and the
host (/dev for privileged containers, the kernel's capabilities): it writes nothing.

Contract: the spec is what Docker 20.10 writes for the same request (its config.json was the
oracle, compared field by field), with Docker's defaults from `defaults` and its seccomp
profile from `seccomp_profile`. Deliberate differences, each explained where it is made:
cgroups live under /hull; HOME is put in the environment here rather than left to the
runtime; a privileged container gets the capabilities this host can grant rather than every
one the kernel knows; no networking sysctls or hooks (the daemon sets networks up itself).
Bad input raises InvalidArgument worded as Docker's errors; the finished spec is also parsed by the runtime's own
`Spec.from_json`, so nothing the runtime would refuse leaves here.
"""

import copy
import functools
import os
import posixpath
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hull.containers import defaults as D
from hull.containers import seccomp_profile
from hull.containers.users import ExecUser, resolve_user
from hull.errors import HullError, InvalidArgument
from hull.runtime.capabilities import CAP_NUMBERS, CAPABILITIES, last_cap
from hull.runtime.mounts import FLAG_WORDS, PROPAGATION_WORDS
from hull.runtime.spec import OCI_VERSION, Spec

ALL_CAPABILITIES_WORD = "ALL"
CAP_PREFIX = "CAP_"
HOSTNAME_LENGTH = 12  # Docker's default hostname: the container id's first 12 digits
NANO_CPUS_PER_CPU = 1_000_000_000
MIN_NANO_CPUS = NANO_CPUS_PER_CPU // 100  # 0.01 CPU: a smaller quota is below the kernel's 1 ms minimum
MIN_MEMORY = 6 * 1024 * 1024  # Docker's smallest --memory
BLKIO_WEIGHT_RANGE = (10, 1000)
UINT64_MAX = 2**64 - 1  # an rlimit of -1 (unlimited) as the spec's unsigned field holds it, RLIM_INFINITY

# --ulimit names -> the rlimit each sets. RLIMIT_AS is left out, as Docker does.
ULIMIT_NAMES = {
    name: f"RLIMIT_{name.upper()}"
    for name in (
        "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
        "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
    )
}  # fmt: skip

# --tmpfs options that are the filesystem's own (key=value); anything else must be a mount flag.
TMPFS_DATA_KEYS = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"})
_TMPFS_VALUE_CHECKS = {
    "size": re.compile(r"^[0-9]+[kKmMgGtTpPeE%]?$"),
    "nr_inodes": re.compile(r"^[0-9]+[kKmMgGtTpPeE]?$"),
    "nr_blocks": re.compile(r"^[0-9]+[kKmMgGtTpPeE]?$"),
    "mode": re.compile(r"^[0-7]{1,4}$"),
    "uid": re.compile(r"^[0-9]+$"),
    "gid": re.compile(r"^[0-9]+$"),
}
_PROPAGATION_SLOT = -1  # the merge key all propagation words share: only the last one counts

# Namespace modes: HostConfig key, the flag Docker names in its errors, the spec's type.
HOST_MODE = "host"
CONTAINER_MODE_PREFIX = "container:"
IPC_MODES = frozenset({"", "none", "private", "shareable", HOST_MODE})
PID_UTS_MODES = frozenset({"", HOST_MODE})
ETC_FILES = ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts")  # Docker's order
DOMAINNAME_SYSCTL = "kernel.domainname"
SECURITY_OPT_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # Go's strconv.ParseBool
SECURITY_OPT_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
UNCONFINED = "unconfined"
PROC_STATUS = "/proc/self/status"
DEV_DIR = "/dev"


@dataclass
class SpecInputs:
    container_id: str
    config: dict[str, Any]  # Engine API ContainerConfig, merged with the image's defaults
    host_config: dict[str, Any]  # Engine API HostConfig
    rootfs: str  # the mounted merged dir
    hostname_path: str  # bind-mounted at /etc/hostname
    hosts_path: str  # bind-mounted at /etc/hosts
    resolv_conf_path: str  # bind-mounted at /etc/resolv.conf
    shm_path: str | None = None  # a shareable /dev/shm to bind (IpcMode shareable, container:<x>)
    namespace_paths: dict[str, str] = field(default_factory=dict)  # spec type -> /proc/<pid>/ns/<x>
    sandbox_key: str | None = None  # the network namespace the daemon made (bridge networks)
    cgroup_parent_default: str = D.DEFAULT_CGROUP_PARENT
    init_path: str = ""  # the daemon's --init binary on the host, bound at /sbin/docker-init with HostConfig.Init
    lxcfs_root: str | None = None  # the daemon's lxcfs mount point; None: the container sees the host's /proc files
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)  # binds, volumes, --mount tmpfs (hull.volumes)
    rootfs_propagation: str = ""  # rshared or rslave when a bind's propagation needs it (hull.volumes)
    sysinfo_listener: str = ""  # a socket of the shim's that answers sysinfo(2) (hull.shim.sysinfo); "": none


@dataclass
class SecurityOptions:
    """HostConfig.SecurityOpt, parsed."""

    no_new_privileges: bool = False
    seccomp: str = ""  # "" for the default profile, "unconfined", or the profile (JSON text or a path)


# ---- the pieces, each a pure function of its part of the request ----


def _str_list(value: Any, what: str) -> list[str]:
    """A ContainerConfig list field; the API also takes a single string for Cmd and Entrypoint."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{what}: expected a list of strings, got {value!r}")
    return list(value)


def resolve_command(config: Mapping[str, Any]) -> list[str]:
    """Entrypoint followed by Cmd, as Docker runs them; InvalidArgument when both are empty."""
    args = _str_list(config.get("Entrypoint"), "Entrypoint") + _str_list(config.get("Cmd"), "Cmd")
    if not args:
        raise InvalidArgument("No command specified")
    return args


def cgroups_path(inputs: SpecInputs) -> str:
    """linux.cgroupsPath: `<CgroupParent or the default parent>/<id>`, cleaned as Docker's filepath.Join."""
    parent = inputs.host_config.get("CgroupParent") or inputs.cgroup_parent_default
    return posixpath.normpath(posixpath.join(parent, inputs.container_id))


def normalize_capability(name: str, flag: str) -> str:
    """`sys_admin`, `CAP_SYS_ADMIN`, `Sys_Admin` -> CAP_SYS_ADMIN; "ALL" stays; unknown names are refused."""
    upper = name.upper()
    if upper == ALL_CAPABILITIES_WORD:
        return upper
    if not upper.startswith(CAP_PREFIX):
        upper = CAP_PREFIX + upper
    if upper not in CAP_NUMBERS:
        raise InvalidArgument(f'invalid {flag}: unknown capability: "{upper}"')
    return upper


def host_capabilities() -> list[str]:
    """Every capability this host can grant: known to the kernel and in this process's bounding set.

    Docker asks for every capability the kernel knows, and its runtime then fails with
    "unable to apply caps" where the daemon itself runs without some (as in a container).
    """
    bounding = (1 << (last_cap() + 1)) - 1
    try:
        with open(PROC_STATUS) as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    bounding = int(line.split()[1], 16)
    except OSError:
        pass  # no /proc: the kernel's list alone
    return [name for number, name in enumerate(CAPABILITIES[: last_cap() + 1]) if bounding & (1 << number)]


def tweak_capabilities(cap_add: Sequence[str], cap_drop: Sequence[str], privileged: bool) -> list[str]:
    """Docker's capability set for CapAdd/CapDrop ("ALL" in either) and Privileged."""
    if privileged:
        return host_capabilities()
    drops = [normalize_capability(c, "CapDrop") for c in cap_drop]
    adds = [normalize_capability(c, "CapAdd") for c in cap_add]
    if ALL_CAPABILITIES_WORD in adds:
        caps = [c for c in host_capabilities() if c not in drops]
    elif ALL_CAPABILITIES_WORD in drops:
        caps = adds
    else:
        caps = [c for c in D.DEFAULT_CAPABILITIES if c not in drops] + adds
    return list(dict.fromkeys(caps))


def parse_ulimit(text: str) -> dict[str, Any]:
    """`--ulimit name=soft[:hard]` as the API's {"Name", "Soft", "Hard"}, with go-units' checks."""
    name, sep, values = text.partition("=")
    if not sep:
        raise InvalidArgument(f"invalid ulimit argument: {text}")
    if name not in ULIMIT_NAMES:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    parts = values.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"too many limit value arguments - {values}, can only have up to two, `soft[:hard]`")
    numbers = []
    for p in parts:
        if not re.match(r"^[+-]?[0-9]+$", p):
            raise InvalidArgument(f'invalid ulimit value "{p}" in {text}: not an integer')
        numbers.append(int(p))
    return {"Name": name, "Soft": numbers[0], "Hard": numbers[-1]}


def _rlimit_value(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < -1 or value > UINT64_MAX:
        raise InvalidArgument(f"invalid ulimit value for {name}: {value!r} (a count, or -1 for unlimited)")
    return UINT64_MAX if value == -1 else value


def rlimits(ulimits: Iterable[Any]) -> list[dict[str, Any]]:
    """process.rlimits from HostConfig.Ulimits (API objects, or `name=soft:hard` strings); a later name wins."""
    out: dict[str, dict[str, Any]] = {}
    for u in ulimits:
        if isinstance(u, str):
            u = parse_ulimit(u)
        if not isinstance(u, dict):
            raise InvalidArgument(f"invalid ulimit: {u!r}")
        name = u.get("Name")
        if name not in ULIMIT_NAMES:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        soft, hard = _rlimit_value(u.get("Soft"), name), _rlimit_value(u.get("Hard"), name)
        if soft > hard:
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        out[name] = {"type": ULIMIT_NAMES[name], "hard": hard, "soft": soft}
    return list(out.values())


def parse_security_opts(opts: Iterable[str]) -> SecurityOptions:
    """HostConfig.SecurityOpt: no-new-privileges[=|:bool], seccomp=..., label and apparmor (accepted, ignored)."""
    result = SecurityOptions()
    for opt in opts:
        if opt == "no-new-privileges":
            result.no_new_privileges = True
            continue
        if opt == "disable":  # an old spelling of label=disable
            continue
        sep = "=" if "=" in opt else ":"  # ":" is Docker's deprecated separator
        key, found, value = opt.partition(sep)
        if not found:
            raise InvalidArgument(f'invalid --security-opt: "{opt}"')
        if key in ("label", "apparmor"):
            continue  # no SELinux or AppArmor on hull's hosts: accepted as Docker accepts them there
        if key == "seccomp":
            result.seccomp = value
        elif key == "no-new-privileges" and value in SECURITY_OPT_TRUE | SECURITY_OPT_FALSE:
            result.no_new_privileges = value in SECURITY_OPT_TRUE
        else:
            raise InvalidArgument(f'invalid --security-opt: "{opt}"')
    return result


def _tmpfs_option_key(word: str) -> int | str:
    """Which earlier option a --tmpfs word overrides (its mount flag, or its key=), or raise if unknown."""
    if word in FLAG_WORDS:
        return FLAG_WORDS[word][0]
    if word in PROPAGATION_WORDS:
        return _PROPAGATION_SLOT
    key, sep, value = word.partition("=")
    check = _TMPFS_VALUE_CHECKS.get(key)
    if not sep or key not in TMPFS_DATA_KEYS or (check is not None and not check.match(value)):
        raise InvalidArgument(f'invalid tmpfs option "{word}"')
    return key


def tmpfs_options(data: str) -> list[str]:
    """A --tmpfs mount's options: Docker's defaults, then the user's, a later word replacing an earlier one."""
    words = [*D.DEFAULT_TMPFS_OPTIONS, *(w for w in data.split(",") if w)]
    kept: list[str] = []
    seen: set[int | str] = set()
    for word in reversed(words):
        key = _tmpfs_option_key(word)
        if key == 0:
            continue  # "defaults" means nothing of its own
        if key not in seen:
            seen.add(key)
            kept.append(word)
    kept.reverse()
    return kept


def mount_depth(destination: str) -> int:
    """How many path components deep a mount is: parents (fewer) are mounted before children."""
    return len([part for part in destination.split("/") if part])


def tmpfs_mounts(tmpfs: Mapping[str, str]) -> list[dict[str, Any]]:
    """The mounts of HostConfig.Tmpfs ({destination: options}), parents before children."""
    mounts = []
    for dest in sorted(tmpfs, key=lambda d: (d.rstrip("/").count("/"), d)):
        if not dest.startswith("/"):
            raise InvalidArgument(f"invalid mount path: '{dest}' mount path must be absolute")
        if posixpath.normpath(dest) == "/":
            raise InvalidArgument("invalid mount path: '/' a tmpfs cannot replace the root filesystem")
        mounts.append(
            {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": tmpfs_options(tmpfs[dest] or "")}
        )
    return mounts


def merge_env(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: `K=V` replaces K in place or is appended; a bare `K` unsets K."""
    env: dict[str, str | None] = {}
    for entry in [*base, *overrides]:
        key, sep, _ = entry.partition("=")
        if sep:
            env[key] = entry
        elif key in env:
            env[key] = None
    return [e for e in env.values() if e is not None]


def process_env(config: Mapping[str, Any], hostname: str, user: ExecUser) -> list[str]:
    """PATH, HOSTNAME, TERM=xterm for a tty, then the config's Env over them; HOME from passwd if still unset."""
    base = [D.DEFAULT_PATH_ENV, f"HOSTNAME={hostname}"]
    if config.get("Tty"):
        base.append(D.TTY_TERM_ENV)
    env = merge_env(base, _str_list(config.get("Env"), "Env"))
    # runc and hull-runtime would fill HOME in themselves, but not every runtime does.
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home or '/'}")
    return env


def _mode(host_config: Mapping[str, Any], key: str) -> str:
    value = host_config.get(key) or ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{key}: expected a string, got {value!r}")
    return value


def _check_mode(mode: str, allowed: frozenset[str], flag: str) -> None:
    if mode not in allowed and not mode.startswith(CONTAINER_MODE_PREFIX):
        raise InvalidArgument(f'invalid {flag}: "{mode}"')


def namespaces(inputs: SpecInputs) -> list[dict[str, str]]:
    """linux.namespaces: Docker's five, less those shared with the host, joined by path for container:<x>."""
    hc = inputs.host_config
    ipc, pid, uts = _mode(hc, "IpcMode"), _mode(hc, "PidMode"), _mode(hc, "UTSMode")
    _check_mode(ipc, IPC_MODES, "--ipc")
    _check_mode(pid, PID_UTS_MODES, "--pid")
    _check_mode(uts, PID_UTS_MODES, "--uts")
    # Every network mode but host and container:<x> (none, default, bridge, a network's
    # name) gets a network namespace of its own: on a bridge network the daemon made it
    # already (its SandboxKey), otherwise the runtime makes a fresh one.
    modes = {"mount": "", "network": _mode(hc, "NetworkMode"), "uts": uts, "pid": pid, "ipc": ipc}
    out = []
    for ns_type in D.DEFAULT_NAMESPACES:
        mode = modes[ns_type]
        if mode == HOST_MODE:
            continue
        if mode.startswith(CONTAINER_MODE_PREFIX):
            path = inputs.namespace_paths.get(ns_type)
            if not path:
                raise InvalidArgument(f"{ns_type} namespace mode {mode!r}: the daemon gave no namespace path to join")
            out.append({"type": ns_type, "path": path})
        elif ns_type == "network" and inputs.sandbox_key:
            out.append({"type": ns_type, "path": inputs.sandbox_key})
        else:
            out.append({"type": ns_type})
    if _mode(hc, "CgroupnsMode") == "private":
        out.append({"type": "cgroup"})
    return out


def _shm_mount(inputs: SpecInputs) -> dict[str, Any] | None:
    """/dev/shm: the host's, a shared one the daemon made, none, or (by default) a private tmpfs."""
    hc = inputs.host_config
    ipc = _mode(hc, "IpcMode")
    bind_options = list(D.ETC_FILE_BIND_OPTIONS)
    if ipc == "none":
        return None
    if ipc == HOST_MODE:
        return {"destination": D.SHM_DESTINATION, "type": "bind", "source": D.HOST_SHM, "options": bind_options}
    if (ipc == "shareable" or ipc.startswith(CONTAINER_MODE_PREFIX)) and inputs.shm_path:
        return {"destination": D.SHM_DESTINATION, "type": "bind", "source": inputs.shm_path, "options": bind_options}
    size = hc.get("ShmSize") or D.DEFAULT_SHM_SIZE
    if not isinstance(size, int) or size < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    return {
        "destination": D.SHM_DESTINATION,
        "type": "tmpfs",
        "source": "shm",
        "options": [*D.SHM_OPTIONS, f"size={size}"],
    }


def mounts(inputs: SpecInputs) -> list[dict[str, Any]]:
    """The spec's mounts in Docker's order: defaults, /dev/shm, the container's own (volumes, binds,
    --tmpfs; parents first), the /etc files.

    A mount of the container's own replaces a default one at the same destination.
    """
    hc = inputs.host_config
    privileged = bool(hc.get("Privileged"))
    tmpfs = hc.get("Tmpfs") or {}
    if not isinstance(tmpfs, dict):
        raise InvalidArgument(f"Tmpfs: expected an object of destination: options, got {tmpfs!r}")
    user = sorted([*inputs.volume_mounts, *tmpfs_mounts(tmpfs)], key=lambda m: mount_depth(m["destination"]))
    taken = {m["destination"] for m in user}
    out = []
    for m in copy.deepcopy(D.DEFAULT_MOUNTS):
        if m["destination"] in taken:
            continue
        if privileged and m["type"] in ("sysfs", "cgroup"):
            m["options"] = [o for o in m["options"] if o != "ro"]  # a privileged container may write them
        out.append(m)
    shm = _shm_mount(inputs)
    if shm is not None and shm["destination"] in taken:
        shm = None
    if shm is not None and shm["type"] == "tmpfs":
        out.append(shm)
    out += user
    etc_options = list(D.ETC_FILE_BIND_OPTIONS)
    if hc.get("ReadonlyRootfs"):
        etc_options.insert(1, "ro")  # Docker's order: rbind, ro, rprivate
    sources = {
        "/etc/resolv.conf": inputs.resolv_conf_path,
        "/etc/hostname": inputs.hostname_path,
        "/etc/hosts": inputs.hosts_path,
    }
    for dest in ETC_FILES:
        if dest not in taken:
            out.append({"destination": dest, "type": "bind", "source": sources[dest], "options": list(etc_options)})
    if shm is not None and shm["type"] == "bind":
        out.append(shm)  # Docker lists a shared /dev/shm with the container's own mounts, after the /etc files
    if inputs.lxcfs_root is not None:
        out += lxcfs_mounts(inputs.lxcfs_root, taken)
    if hc.get("Init"):
        out.append(init_mount(inputs.init_path))
    return out


def lxcfs_mounts(root: str, taken: set[str]) -> list[dict[str, Any]]:
    """Binds of the files lxcfs serves under `root` over the container's own (not over a --tmpfs)."""
    return [
        {"destination": f, "type": "bind", "source": root + f, "options": ["bind", "ro"]}
        for f in D.LXCFS_FILES
        if os.path.exists(root + f) and not any(f.startswith(t.rstrip("/") + "/") for t in taken)
    ]


def init_mount(path: str) -> dict[str, Any]:
    """--init: the daemon's init binary, read-only at /sbin/docker-init (Docker's mount)."""
    if not path or not os.path.isfile(path):
        raise HullError(
            f"the --init binary {path or '(none)'} was not found: install Debian's tini or set hulld's --init-path"
        )
    return {"destination": D.INIT_DESTINATION, "type": "bind", "source": path, "options": ["bind", "ro"]}


def _int_field(hc: Mapping[str, Any], key: str) -> int:
    value = hc.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{key}: expected an integer, got {value!r}")
    return value


def resources(host_config: Mapping[str, Any], privileged: bool) -> dict[str, Any]:
    """linux.resources from the HostConfig's limits, with Docker's always-present zero fields and checks."""
    hc = host_config
    memory: dict[str, Any] = {}
    limit, swap, reservation = (
        _int_field(hc, "Memory"),
        _int_field(hc, "MemorySwap"),
        _int_field(hc, "MemoryReservation"),
    )
    if 0 < limit < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if limit > 0:
        memory["limit"] = limit
    if reservation > 0:
        memory["reservation"] = reservation
    if swap > 0:  # -1 (unlimited) is the kernel's default already
        if limit > 0 and swap < limit:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
        memory["swap"] = swap
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1:
        memory["swappiness"] = swappiness
    memory["disableOOMKiller"] = bool(hc.get("OomKillDisable"))

    cpu: dict[str, Any] = {"shares": _int_field(hc, "CpuShares")}
    nano, period, quota = _int_field(hc, "NanoCpus"), _int_field(hc, "CpuPeriod"), _int_field(hc, "CpuQuota")
    if nano:
        if period:
            raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
        if quota:
            raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
        cpus = os.cpu_count() or 1
        if not MIN_NANO_CPUS <= nano <= cpus * NANO_CPUS_PER_CPU:
            raise InvalidArgument(f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available")
        period, quota = D.DEFAULT_CPU_PERIOD, nano * D.DEFAULT_CPU_PERIOD // NANO_CPUS_PER_CPU
    if quota:
        cpu["quota"] = quota
    if period:
        cpu["period"] = period
    for key, spec_key in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        if hc.get(key):
            cpu[spec_key] = hc[key]

    weight = _int_field(hc, "BlkioWeight")
    if weight and not BLKIO_WEIGHT_RANGE[0] <= weight <= BLKIO_WEIGHT_RANGE[1]:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    rules = D.PRIVILEGED_DEVICE_RULES if privileged else D.DEFAULT_DEVICE_RULES
    out: dict[str, Any] = {
        "devices": copy.deepcopy(list(rules)),
        "memory": memory,
        "cpu": cpu,
        "blockIO": {"weight": weight},
    }
    pids = _int_field(hc, "PidsLimit")
    if pids > 0:  # 0 and -1 both mean unlimited
        out["pids"] = {"limit": pids}
    return out


def host_devices(dev_dir: str = DEV_DIR) -> list[dict[str, Any]]:
    """linux.devices for a privileged container: every block and character device under the host's /dev."""
    out: list[dict[str, Any]] = []
    try:
        entries = sorted(os.scandir(dev_dir), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in D.HOST_DEVICE_SKIP_DIRS:
                out += host_devices(entry.path)
            continue
        if entry.name in D.HOST_DEVICE_SKIP_FILES:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            out.append(
                {
                    "path": entry.path,
                    "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                    "major": os.major(st.st_rdev),
                    "minor": os.minor(st.st_rdev),
                    "fileMode": stat.S_IMODE(st.st_mode),
                    "uid": st.st_uid,
                    "gid": st.st_gid,
                }
            )
    return out


SYSINFO = "sysinfo"


def seccomp(security: SecurityOptions, privileged: bool, bounding: Sequence[str]) -> dict[str, Any] | None:
    """linux.seccomp: none when privileged or unconfined, else Docker's default or the given profile."""
    if privileged or security.seccomp == UNCONFINED:
        return None
    if not security.seccomp:
        return _default_seccomp(tuple(bounding))
    return seccomp_profile.to_oci(seccomp_profile.parse_security_opt_profile(security.seccomp), bounding)


def notify_sysinfo(section: dict[str, Any], listener_path: str) -> dict[str, Any]:
    """A copy of the seccomp section that hands sysinfo(2) to the shim at `listener_path`, which
    answers with the container's memory (lxcfs cannot reach a system call). A profile that
    does not allow sysinfo keeps it refused."""
    rules = []
    allowed = False
    for rule in section.get("syscalls", []):
        if SYSINFO in rule["names"] and rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args"):
            allowed = True
            rule = {**rule, "names": [n for n in rule["names"] if n != SYSINFO]}
        if rule["names"]:
            rules.append(rule)
    if not allowed:
        return section
    rules.append({"names": [SYSINFO], "action": "SCMP_ACT_NOTIFY"})
    return {**section, "syscalls": rules, "listenerPath": listener_path}


@functools.lru_cache(maxsize=16)
def _default_seccomp(bounding: tuple[str, ...]) -> dict[str, Any]:
    """Docker's default profile for this capability set, converted once: the conversion was half
    a millisecond of every container start. Shared between specs, so read only."""
    return seccomp_profile.to_oci(seccomp_profile.default_profile(), bounding)


def capabilities(caps: list[str], user: ExecUser) -> dict[str, list[str]]:
    """process.capabilities: a non-root process gets only the bounding set, as Docker 20.10 writes it.

    Effective and permitted would be lost at the execve of any ordinary binary by a non-root
    user anyway; leaving them out keeps file capabilities the only way in. Inheritable and
    ambient stay empty (CVE-2022-24769).
    """
    if user.uid == 0:
        return {"bounding": list(caps), "effective": list(caps), "permitted": list(caps)}
    return {"bounding": list(caps)}


# ---- the whole spec ----


def check_request(config: Mapping[str, Any], hc: Mapping[str, Any]) -> None:
    """Refuse at create what build_spec would refuse in the request itself (everything but the
    user, which needs the container's files), as Docker validates a create before storing it."""
    privileged = bool(hc.get("Privileged"))
    resolve_command(config)
    parse_security_opts(_str_list(hc.get("SecurityOpt"), "SecurityOpt"))
    tweak_capabilities(_str_list(hc.get("CapAdd"), "CapAdd"), _str_list(hc.get("CapDrop"), "CapDrop"), privileged)
    rlimits(hc.get("Ulimits") or [])
    tmpfs_mounts(hc.get("Tmpfs") or {})
    resources(hc, privileged)
    _check_cwd(config.get("WorkingDir") or "/")


def _check_cwd(cwd: str) -> None:
    if not cwd.startswith("/"):
        raise InvalidArgument(f"the working directory '{cwd}' is invalid, it needs to be an absolute path")


def build_spec(inputs: SpecInputs) -> dict[str, Any]:
    """The config.json for the container `inputs` describes (see the module docstring)."""
    config, hc = inputs.config, inputs.host_config
    privileged = bool(hc.get("Privileged"))
    args = resolve_command(config)
    if hc.get("Init"):
        args = [D.INIT_DESTINATION, "--", *args]  # the init runs the command and forwards signals to it
    security = parse_security_opts(_str_list(hc.get("SecurityOpt"), "SecurityOpt"))
    caps = tweak_capabilities(
        _str_list(hc.get("CapAdd"), "CapAdd"), _str_list(hc.get("CapDrop"), "CapDrop"), privileged
    )
    user = resolve_user(inputs.rootfs, config.get("User") or "", _str_list(hc.get("GroupAdd"), "GroupAdd"))
    hostname = config.get("Hostname") or inputs.container_id[:HOSTNAME_LENGTH]
    cwd = config.get("WorkingDir") or "/"
    _check_cwd(cwd)

    process: dict[str, Any] = {
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": args,
        "env": process_env(config, hostname, user),
        "cwd": cwd,
        "capabilities": capabilities(caps, user),
        "oomScoreAdj": _int_field(hc, "OomScoreAdj"),
    }
    if config.get("Tty"):
        process["terminal"] = True
    limits = rlimits(hc.get("Ulimits") or [])
    if limits:
        process["rlimits"] = limits
    if security.no_new_privileges:
        process["noNewPrivileges"] = True

    ns = namespaces(inputs)
    own_uts = any(n["type"] == "uts" and "path" not in n for n in ns)
    linux: dict[str, Any] = {
        "resources": resources(hc, privileged),
        "cgroupsPath": cgroups_path(inputs),
        "namespaces": ns,
    }
    sysctl = dict(hc.get("Sysctls") or {})
    # Docker sets the domain name as a sysctl, not the spec's domainname: runc before 1.2 ignores that field.
    if config.get("Domainname") and own_uts:
        sysctl[DOMAINNAME_SYSCTL] = config["Domainname"]
    if sysctl:
        linux["sysctl"] = sysctl
    if privileged:
        linux["devices"] = host_devices()
    else:
        masked, readonly = hc.get("MaskedPaths"), hc.get("ReadonlyPaths")  # API 1.40+: --security-opt systempaths
        linux["maskedPaths"] = list(D.DEFAULT_MASKED_PATHS) if masked is None else _str_list(masked, "MaskedPaths")
        linux["readonlyPaths"] = (
            list(D.DEFAULT_READONLY_PATHS) if readonly is None else _str_list(readonly, "ReadonlyPaths")
        )
    filter_section = seccomp(security, privileged, caps)
    if filter_section is not None and inputs.sysinfo_listener:
        filter_section = notify_sysinfo(filter_section, inputs.sysinfo_listener)
    if filter_section is not None:
        linux["seccomp"] = filter_section

    root: dict[str, Any] = {"path": inputs.rootfs}
    if hc.get("ReadonlyRootfs"):
        root["readonly"] = True
    spec: dict[str, Any] = {"ociVersion": OCI_VERSION, "process": process, "root": root}
    if own_uts:
        spec["hostname"] = hostname
    spec["mounts"] = mounts(inputs)
    if inputs.rootfs_propagation:
        linux["rootfsPropagation"] = inputs.rootfs_propagation
    spec["linux"] = linux
    Spec.from_json(spec, inputs.rootfs)  # the runtime's own checks: refuse here what it would refuse at start
    return spec
