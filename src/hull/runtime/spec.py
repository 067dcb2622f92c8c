"""The OCI runtime specification's config.json (v1.0-1.2) as typed records.

Vocabulary: a *bundle* is a directory holding `config.json` and the root filesystem it
names; the *spec* is that file parsed. `load_spec` is the only way in: it checks every field
the runtime uses and raises InvalidArgument naming the field, so nothing half-valid reaches
the kernel. Fields the runtime does not act on are accepted and ignored, as the spec allows.
The sections owned by other modules (cgroup resources, capabilities, seccomp) parse
themselves there.
"""

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hull.errors import InvalidArgument
from hull.runtime import fields as F
from hull.runtime.capabilities import LinuxCapabilities
from hull.runtime.cgroups.resources import LinuxResources
from hull.runtime.devices import DeviceNode

if TYPE_CHECKING:
    from hull.runtime.seccomp import LinuxSeccomp

CONFIG_FILE = "config.json"
OCI_VERSION = "1.2.0"

# Namespace type in the spec -> the name of its link in /proc/<pid>/ns/.
NAMESPACE_PROC_NAMES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}

RLIMIT_NAMES = (
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
    "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
)  # fmt: skip


@dataclass
class User:
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] = field(default_factory=list)


@dataclass
class Rlimit:
    type: str
    soft: int
    hard: int


@dataclass
class Process:
    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    user: User = field(default_factory=User)
    capabilities: LinuxCapabilities | None = None
    rlimits: list[Rlimit] = field(default_factory=list)
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str = ""
    selinux_label: str = ""

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "process") -> "Process":
        args = F.str_list(obj, "args", where)
        if not args:
            raise InvalidArgument(f"{where}.args: must name the program to run")
        cwd = F.field(obj, "cwd", str, where, "/")
        if not cwd.startswith("/"):
            raise InvalidArgument(f"{where}.cwd: must be an absolute path, got {cwd!r}")
        user_obj = F.field(obj, "user", dict, where, {})
        uw = f"{where}.user"
        user = User(
            uid=F.field(user_obj, "uid", int, uw, 0),
            gid=F.field(user_obj, "gid", int, uw, 0),
            umask=F.field(user_obj, "umask", int, uw, None),
            additional_gids=[
                F.expect(g, int, f"{uw}.additionalGids") for g in F.field(user_obj, "additionalGids", list, uw, [])
            ],
        )
        if "username" in user_obj and "uid" not in user_obj:
            raise InvalidArgument(f"{uw}.username: only numeric uid/gid are supported on Linux")
        rlimits = []
        seen: set[str] = set()
        for w, r in F.obj_list(obj, "rlimits", where):
            rtype = F.field(r, "type", str, w)
            if rtype not in RLIMIT_NAMES:
                raise InvalidArgument(f"{w}.type: unknown rlimit {rtype!r}")
            if rtype in seen:
                raise InvalidArgument(f"{w}.type: duplicate rlimit {rtype!r}")
            seen.add(rtype)
            rlimits.append(Rlimit(rtype, F.field(r, "soft", int, w), F.field(r, "hard", int, w)))
        console = F.field(obj, "consoleSize", dict, where, None)
        caps = F.field(obj, "capabilities", dict, where, None)
        return cls(
            args=args,
            env=F.str_list(obj, "env", where),
            cwd=cwd,
            terminal=F.field(obj, "terminal", bool, where, False),
            console_size=(
                (
                    F.field(console, "height", int, f"{where}.consoleSize"),
                    F.field(console, "width", int, f"{where}.consoleSize"),
                )
                if console
                else None
            ),
            user=user,
            capabilities=LinuxCapabilities.from_json(caps, where=f"{where}.capabilities") if caps is not None else None,
            rlimits=rlimits,
            no_new_privileges=F.field(obj, "noNewPrivileges", bool, where, False),
            oom_score_adj=F.field(obj, "oomScoreAdj", int, where, None),
            apparmor_profile=F.field(obj, "apparmorProfile", str, where, ""),
            selinux_label=F.field(obj, "selinuxLabel", str, where, ""),
        )


@dataclass
class IDMapping:
    container_id: int
    host_id: int
    size: int

    @classmethod
    def list_from_json(cls, obj: dict[str, Any], key: str, where: str) -> list["IDMapping"]:
        return [
            cls(F.field(m, "containerID", int, w), F.field(m, "hostID", int, w), F.field(m, "size", int, w))
            for w, m in F.obj_list(obj, key, where)
        ]


@dataclass
class Mount:
    destination: str
    type: str = ""
    source: str = ""
    options: list[str] = field(default_factory=list)


@dataclass
class Hook:
    path: str
    args: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    timeout: int | None = None


HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


@dataclass
class Namespace:
    type: str
    path: str = ""


@dataclass
class Linux:
    namespaces: list[Namespace] = field(default_factory=list)
    uid_mappings: list[IDMapping] = field(default_factory=list)
    gid_mappings: list[IDMapping] = field(default_factory=list)
    devices: list[DeviceNode] = field(default_factory=list)
    cgroups_path: str = ""
    resources: LinuxResources | None = None
    rootfs_propagation: str = ""
    seccomp: "LinuxSeccomp | None" = None  # its module (and libseccomp) load only when a spec has one
    sysctl: dict[str, str] = field(default_factory=dict)
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)

    def namespace(self, ns_type: str) -> Namespace | None:
        return next((n for n in self.namespaces if n.type == ns_type), None)


@dataclass
class Spec:
    oci_version: str
    root_path: str  # absolute: resolved against the bundle
    root_readonly: bool
    process: Process | None
    hostname: str = ""
    domainname: str = ""
    mounts: list[Mount] = field(default_factory=list)
    hooks: dict[str, list[Hook]] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    linux: Linux = field(default_factory=Linux)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)  # the config.json object itself

    @classmethod
    def from_json(cls, obj: Any, bundle: str) -> "Spec":
        F.expect(obj, dict, "config.json")
        root = F.field(obj, "root", dict, "config.json")
        root_path = F.field(root, "path", str, "root")
        root_path = os.path.normpath(os.path.join(bundle, root_path))
        proc = F.field(obj, "process", dict, "config.json", None)
        mounts = [
            Mount(
                destination=F.field(m, "destination", str, w),
                type=F.field(m, "type", str, w, ""),
                source=F.field(m, "source", str, w, ""),
                options=F.str_list(m, "options", w),
            )
            for w, m in F.obj_list(obj, "mounts", "config.json")
        ]
        for m in mounts:
            if not m.destination.startswith("/"):
                raise InvalidArgument(f"mounts: destination {m.destination!r} is not an absolute path")
        hooks_obj = F.field(obj, "hooks", dict, "config.json", {})
        hooks: dict[str, list[Hook]] = {}
        for kind in HOOK_KINDS:
            hooks[kind] = [
                Hook(
                    path=F.field(h, "path", str, w),
                    args=F.str_list(h, "args", w),
                    env=F.str_list(h, "env", w),
                    timeout=F.field(h, "timeout", int, w, None),
                )
                for w, h in F.obj_list(hooks_obj, kind, "hooks")
            ]
        annotations = F.field(obj, "annotations", dict, "config.json", {})
        for k, v in annotations.items():
            F.expect(v, str, f"annotations.{k}")
        spec = cls(
            oci_version=F.field(obj, "ociVersion", str, "config.json"),
            root_path=root_path,
            root_readonly=F.field(root, "readonly", bool, "root", False),
            process=Process.from_json(proc) if proc is not None else None,
            hostname=F.field(obj, "hostname", str, "config.json", ""),
            domainname=F.field(obj, "domainname", str, "config.json", ""),
            mounts=mounts,
            hooks=hooks,
            annotations=dict(annotations),
            linux=_linux_from_json(F.field(obj, "linux", dict, "config.json", {})),
            raw=obj,
        )
        spec._check_fields()
        return spec

    def validate_host(self) -> None:
        """Checks against this host, made when a container is created from the spec."""
        if not os.path.isdir(self.root_path):
            raise InvalidArgument(f'rootfs ("{self.root_path}") does not exist')
        for n in self.linux.namespaces:
            if n.path and not os.path.exists(n.path):
                raise InvalidArgument(f"linux.namespaces: {n.type} namespace path {n.path!r} does not exist")

    def _check_fields(self) -> None:
        """Checks that span several fields."""
        own_uts = (ns := self.linux.namespace("uts")) is not None and not ns.path
        if self.hostname and not own_uts:
            raise InvalidArgument("hostname: setting the hostname requires a new uts namespace")
        userns = self.linux.namespace("user")
        if userns is not None and not userns.path:
            if not self.linux.uid_mappings or not self.linux.gid_mappings:
                raise InvalidArgument(
                    "linux.namespaces: a new user namespace needs linux.uidMappings and linux.gidMappings"
                )
        elif self.linux.uid_mappings or self.linux.gid_mappings:
            raise InvalidArgument("linux.uidMappings: mappings are given but no new user namespace is asked for")


def _linux_from_json(obj: dict[str, Any]) -> Linux:
    where = "linux"
    namespaces: list[Namespace] = []
    for w, n in F.obj_list(obj, "namespaces", where):
        ns_type = F.field(n, "type", str, w)
        if ns_type not in NAMESPACE_PROC_NAMES:
            raise InvalidArgument(f"{w}.type: unknown namespace type {ns_type!r}")
        if any(x.type == ns_type for x in namespaces):
            raise InvalidArgument(f"{w}.type: namespace {ns_type!r} is listed twice")
        namespaces.append(Namespace(ns_type, F.field(n, "path", str, w, "")))
    devices = []
    for w, d in F.obj_list(obj, "devices", where):
        dtype = F.field(d, "type", str, w)
        if dtype not in ("c", "b", "u", "p"):
            raise InvalidArgument(f"{w}.type: unknown device type {dtype!r}")
        path = F.field(d, "path", str, w)
        if not path.startswith("/dev/"):
            raise InvalidArgument(f"{w}.path: device {path!r} is not under /dev")
        devices.append(
            DeviceNode(
                path=path,
                type=dtype,
                major=F.field(d, "major", int, w, 0),
                minor=F.field(d, "minor", int, w, 0),
                file_mode=F.field(d, "fileMode", int, w, 0o666),
                uid=F.field(d, "uid", int, w, 0),
                gid=F.field(d, "gid", int, w, 0),
            )
        )
    sysctl = F.field(obj, "sysctl", dict, where, {})
    for k, v in sysctl.items():
        F.expect(v, str, f"{where}.sysctl.{k}")
    propagation = F.field(obj, "rootfsPropagation", str, where, "")
    if propagation not in (
        "",
        "shared",
        "slave",
        "private",
        "unbindable",
        "rshared",
        "rslave",
        "rprivate",
        "runbindable",
    ):
        raise InvalidArgument(f"{where}.rootfsPropagation: unknown propagation {propagation!r}")
    resources = F.field(obj, "resources", dict, where, None)
    seccomp = F.field(obj, "seccomp", dict, where, None)
    return Linux(
        namespaces=namespaces,
        uid_mappings=IDMapping.list_from_json(obj, "uidMappings", where),
        gid_mappings=IDMapping.list_from_json(obj, "gidMappings", where),
        devices=devices,
        cgroups_path=F.field(obj, "cgroupsPath", str, where, ""),
        resources=LinuxResources.from_json(resources) if resources is not None else None,
        rootfs_propagation=propagation,
        seccomp=_parse_seccomp(seccomp),
        sysctl=dict(sysctl),
        masked_paths=F.str_list(obj, "maskedPaths", where),
        readonly_paths=F.str_list(obj, "readonlyPaths", where),
    )


def read_config(bundle: str) -> dict[str, Any]:
    """The raw config.json of a bundle, with runc's wording when it is missing or not JSON."""
    path = os.path.join(bundle, CONFIG_FILE)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InvalidArgument(f"JSON specification file {CONFIG_FILE} not found in {bundle}") from None
    except OSError as e:
        raise InvalidArgument(f"cannot read {path}: {e.strerror}") from None
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"{CONFIG_FILE}: invalid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{CONFIG_FILE}: expected a JSON object")
    return obj


def load_spec(bundle: str) -> Spec:
    """Parse and check `<bundle>/config.json`."""
    bundle = os.path.abspath(bundle)
    spec = Spec.from_json(read_config(bundle), bundle)
    spec.validate_host()
    return spec


def default_spec() -> dict[str, Any]:
    """The config.json that `hull-runtime spec` writes: runc's default, hostname `hull`."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "hull",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
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
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    }  # fmt: skip


def _parse_seccomp(obj: dict[str, Any] | None) -> "LinuxSeccomp | None":
    if obj is None:
        return None
    from hull.runtime.seccomp import LinuxSeccomp

    return LinuxSeccomp.from_json(obj, where="linux.seccomp")
