"""hulld's configuration: command-line flags over a daemon.json-style file over defaults.

The file uses dockerd's key names (`data-root`, `exec-root`, `hosts`, `storage-driver`,
`pidfile`, `log-level`, `default-runtime`, `runtimes`, `cgroup-parent`, `init-path`,
`insecure-registries`, `bridge`; and hull's `lxcfs`), so a Docker user's daemon.json reads the same;
unknown keys are refused, as dockerd refuses them.
"""

import ipaddress
import json
import os
from dataclasses import dataclass, field
from typing import Any

from hull.errors import InvalidArgument
from hull.layout import DEFAULT_DATA_ROOT

DEFAULT_EXEC_ROOT = "/run/hull"
DEFAULT_HOST = "unix:///run/hull/hull.sock"
DEFAULT_CONFIG_FILE = "/etc/hull/daemon.json"
DEFAULT_CGROUP_PARENT = "/hull"
DEFAULT_BRIDGE = "hull0"
# The built-in runtime: hull-runtime's library driven inside the shim, no extra process.
BUILTIN_RUNTIME = "hull"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
# What --init runs as the container's PID 1: Debian's tini, static (it needs no libc in the image).
DEFAULT_INIT_PATH = "/usr/bin/tini-static"


@dataclass
class DaemonConfig:
    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    hosts: list[str] = field(default_factory=lambda: [DEFAULT_HOST])
    storage_driver: str | None = None  # None: overlay2 where overlayfs mounts, else vfs
    pidfile: str = ""
    log_level: str = "info"
    default_runtime: str = BUILTIN_RUNTIME
    # name -> path of an OCI runtime binary (dockerd's "runtimes": {"name": {"path": ...}}).
    runtimes: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str = DEFAULT_CGROUP_PARENT
    init_path: str = DEFAULT_INIT_PATH
    lxcfs: bool = True  # serve containers' /proc/meminfo, cpuinfo, ... from lxcfs when it is installed
    # Registries that may be reached over plain HTTP: "host:port" or CIDRs of their addresses
    # (loopback ones always may, as in Docker).
    insecure_registries: list[str] = field(default_factory=list)
    # The default bridge network's Linux bridge ("none": no default bridge network, as dockerd's --bridge).
    bridge: str = DEFAULT_BRIDGE

    @property
    def pidfile_path(self) -> str:
        return self.pidfile or os.path.join(self.exec_root, "hulld.pid")

    def runtime_path(self, name: str) -> str:
        """'' for the built-in runtime, else the binary the shim drives by its CLI."""
        if name in ("", BUILTIN_RUNTIME):
            return ""
        if name in self.runtimes:
            return self.runtimes[name]
        if name == "runc" or os.path.isabs(name):
            return name
        raise InvalidArgument(f"unknown or invalid runtime name: {name}")

    def is_insecure(self, domain: str) -> bool:
        if domain in self.insecure_registries:
            return True
        host = domain.rsplit(":", 1)[0].strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(
            address in ipaddress.ip_network(entry, strict=False) for entry in self.insecure_registries if "/" in entry
        )

    def unix_socket_paths(self) -> list[str]:
        paths = []
        for host in self.hosts:
            if not host.startswith("unix://"):
                raise InvalidArgument(f"unsupported host {host!r}: hulld listens on unix:// sockets only")
            paths.append(host.removeprefix("unix://"))
        return paths


_FILE_KEYS = {
    "data-root": "data_root",
    "exec-root": "exec_root",
    "hosts": "hosts",
    "storage-driver": "storage_driver",
    "pidfile": "pidfile",
    "log-level": "log_level",
    "default-runtime": "default_runtime",
    "runtimes": "runtimes",
    "cgroup-parent": "cgroup_parent",
    "init-path": "init_path",
    "lxcfs": "lxcfs",
    "insecure-registries": "insecure_registries",
    "bridge": "bridge",
}


def load_file(path: str, required: bool) -> dict[str, Any]:
    """The file's settings as DaemonConfig field names; {} when absent and not required."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read() or b"{}")
    except FileNotFoundError:
        if required:
            raise InvalidArgument(f"unable to configure the daemon: open {path}: no such file or directory") from None
        return {}
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"unable to configure the daemon with file {path}: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"unable to configure the daemon with file {path}: not a JSON object")
    unknown = sorted(set(data) - set(_FILE_KEYS))
    if unknown:
        raise InvalidArgument(f"the following directives don't match any configuration option: {', '.join(unknown)}")
    out = {_FILE_KEYS[k]: v for k, v in data.items()}
    if "runtimes" in out:
        rts = out["runtimes"]
        if not isinstance(rts, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("path"), str) for v in rts.values()
        ):
            raise InvalidArgument(f'{path}: runtimes must map names to {{"path": ...}}')
        out["runtimes"] = {k: v["path"] for k, v in rts.items()}
    if not isinstance(out.get("lxcfs", True), bool):
        raise InvalidArgument(f"{path}: lxcfs must be true or false")
    return out


def build(flags: dict[str, Any], config_file: str | None) -> DaemonConfig:
    """Defaults, then the file, then flags that were given (None means not given). A setting in
    both the file and a flag is an error, as in dockerd."""
    file_settings = load_file(config_file or DEFAULT_CONFIG_FILE, required=config_file is not None)
    given = {k: v for k, v in flags.items() if v is not None}
    clash = sorted(set(file_settings) & set(given))
    if clash:
        names = ", ".join(k.replace("_", "-") for k in clash)
        raise InvalidArgument(
            f"the following directives are specified both as a flag and in the configuration file: {names}"
        )
    cfg = DaemonConfig(**{**file_settings, **given})
    if cfg.log_level not in LOG_LEVELS:
        raise InvalidArgument(f"unable to parse logging level: {cfg.log_level}")
    cfg.unix_socket_paths()
    return cfg
