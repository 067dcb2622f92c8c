"""A container's record, as Docker keeps it: `containers/<id>/config.v2.json` and `hostconfig.json`.

The JSON shapes are Docker's (seeds/004): config.v2.json holds ID, Name ("/name"), Created,
Path, Args, Config (the Engine API's ContainerConfig, image defaults merged in), Image (the
image id), State, NetworkSettings, LogPath, HostnamePath, HostsPath, ResolvConfPath,
RestartCount, Driver; hostconfig.json holds the HostConfig. `Config` and `HostConfig` stay
dicts in the API's own field names: they go back out unchanged in inspect. State is typed;
its Status string is derived from the flags, as Docker derives it.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Any

from hull.fsutil import atomic_write
from hull.volumes.mounts import MountPoint

CONFIG_FILE = "config.v2.json"
HOSTCONFIG_FILE = "hostconfig.json"
HOSTNAME_FILE = "hostname"
HOSTS_FILE = "hosts"
RESOLV_CONF_FILE = "resolv.conf"
# Written by the container's shim when its init exits (the shim outlives the daemon).
EXIT_FILE = "exit.json"
ZERO_TIME = "0001-01-01T00:00:00Z"


def log_file_name(container_id: str) -> str:
    return f"{container_id}-json.log"


@dataclass
class State:
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = False
    removal_in_progress: bool = False
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    health: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        """Docker's State.Status: created, running, paused, restarting, removing, exited, dead."""
        if self.running:
            if self.paused:
                return "paused"
            if self.restarting:
                return "restarting"
            return "running"
        if self.removal_in_progress:
            return "removing"
        if self.dead:
            return "dead"
        if self.started_at == ZERO_TIME:
            return "created"
        return "exited"

    def to_json(self) -> dict[str, Any]:
        out = {
            "Status": self.status,
            "Running": self.running,
            "Paused": self.paused,
            "Restarting": self.restarting,
            "OOMKilled": self.oom_killed,
            "RemovalInProgress": self.removal_in_progress,
            "Dead": self.dead,
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
        }
        if self.health is not None:
            out["Health"] = self.health
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "State":
        return cls(
            running=bool(d.get("Running")),
            paused=bool(d.get("Paused")),
            restarting=bool(d.get("Restarting")),
            oom_killed=bool(d.get("OOMKilled")),
            removal_in_progress=bool(d.get("RemovalInProgress")),
            dead=bool(d.get("Dead")),
            pid=int(d.get("Pid") or 0),
            exit_code=int(d.get("ExitCode") or 0),
            error=str(d.get("Error") or ""),
            started_at=str(d.get("StartedAt") or ZERO_TIME),
            finished_at=str(d.get("FinishedAt") or ZERO_TIME),
            health=d.get("Health"),
        )


@dataclass
class Container:
    id: str
    name: str  # without Docker's leading "/"
    created: str
    image_id: str  # sha256:...
    config: dict[str, Any]
    host_config: dict[str, Any]
    path: str = ""
    args: list[str] = field(default_factory=list)
    state: State = field(default_factory=State)
    driver: str = ""
    directory: str = ""  # containers/<id>
    restart_count: int = 0
    has_been_started_before: bool = False
    has_been_manually_stopped: bool = False
    network_settings: dict[str, Any] = field(default_factory=dict)
    mount_points: list[MountPoint] = field(default_factory=list)

    @property
    def log_path(self) -> str:
        return os.path.join(self.directory, log_file_name(self.id))

    @property
    def hostname_path(self) -> str:
        return os.path.join(self.directory, HOSTNAME_FILE)

    @property
    def hosts_path(self) -> str:
        return os.path.join(self.directory, HOSTS_FILE)

    @property
    def resolv_conf_path(self) -> str:
        return os.path.join(self.directory, RESOLV_CONF_FILE)

    @property
    def exit_file(self) -> str:
        return os.path.join(self.directory, EXIT_FILE)

    @property
    def image_name(self) -> str:
        """What the user asked for (Config.Image), as ps shows it."""
        return str(self.config.get("Image") or self.image_id)

    def config_v2(self) -> dict[str, Any]:
        return {
            "StreamConfig": {},
            "State": self.state.to_json(),
            "ID": self.id,
            "Created": self.created,
            "Managed": False,
            "Path": self.path,
            "Args": self.args,
            "Config": self.config,
            "Image": self.image_id,
            "NetworkSettings": self.network_settings,
            "LogPath": self.log_path,
            "Name": "/" + self.name,
            "Driver": self.driver,
            "OS": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "RestartCount": self.restart_count,
            "HasBeenStartedBefore": self.has_been_started_before,
            "HasBeenManuallyStopped": self.has_been_manually_stopped,
            "MountPoints": {p.destination: p.to_config() for p in self.mount_points},
            "AppArmorProfile": "",
            "HostnamePath": self.hostname_path,
            "HostsPath": self.hosts_path,
            "ShmPath": "",
            "ResolvConfPath": self.resolv_conf_path,
            "SeccompProfile": "",
            "NoNewPrivileges": False,
        }

    def save(self) -> None:
        """Both files, each atomically (hostconfig first: a config.v2.json vouches for a complete record)."""
        atomic_write(os.path.join(self.directory, HOSTCONFIG_FILE), _dump(self.host_config), mode=0o644)
        atomic_write(os.path.join(self.directory, CONFIG_FILE), _dump(self.config_v2()), mode=0o600)

    @classmethod
    def load(cls, directory: str) -> "Container":
        with open(os.path.join(directory, CONFIG_FILE), "rb") as f:
            d = json.load(f)
        with open(os.path.join(directory, HOSTCONFIG_FILE), "rb") as f:
            host_config = json.load(f)
        return cls(
            id=d["ID"],
            name=str(d.get("Name", "")).lstrip("/"),
            created=d.get("Created", ZERO_TIME),
            image_id=d.get("Image", ""),
            config=d.get("Config") or {},
            host_config=host_config or {},
            path=d.get("Path", ""),
            args=list(d.get("Args") or []),
            state=State.from_json(d.get("State") or {}),
            driver=d.get("Driver", ""),
            directory=directory,
            restart_count=int(d.get("RestartCount") or 0),
            has_been_started_before=bool(d.get("HasBeenStartedBefore")),
            has_been_manually_stopped=bool(d.get("HasBeenManuallyStopped")),
            network_settings=d.get("NetworkSettings") or {},
            mount_points=[MountPoint.from_config(m) for m in (d.get("MountPoints") or {}).values()],
        )


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
