"""One volume's record: volumes/<name>/metadata.json, what Docker keeps in volumes/metadata.db and opts.json.

The JSON shape is that of `docker volume inspect` minus what is derived (Mountpoint, Scope):
Name, Driver, Labels, Options, CreatedAt. Written atomically, so a volume directory without
the file is a create that did not finish.
"""

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from hull.fsutil import atomic_write

METADATA_FILE = "metadata.json"
LOCAL_DRIVER = "local"
SCOPE_LOCAL = "local"
# Docker 23+ marks the volumes it made for a container (image VOLUMEs, `-v /path`) with this label;
# API 1.42+ prune removes only those unless asked for all.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


def rfc3339_seconds(t: float | None = None) -> str:
    """Docker's volume CreatedAt: UTC, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


@dataclass
class Volume:
    name: str
    driver: str = LOCAL_DRIVER
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created_at: str = field(default_factory=rfc3339_seconds)

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    def to_api(self, mountpoint: str) -> dict[str, Any]:
        """The Engine API Volume object (inspect, list); Docker sends null for no labels or options."""
        return {
            "CreatedAt": self.created_at,
            "Driver": self.driver,
            "Labels": dict(self.labels) or None,
            "Mountpoint": mountpoint,
            "Name": self.name,
            "Options": dict(self.options) or None,
            "Scope": SCOPE_LOCAL,
        }

    def save(self, directory: str) -> None:
        data = {
            "Name": self.name,
            "Driver": self.driver,
            "Labels": self.labels,
            "Options": self.options,
            "CreatedAt": self.created_at,
        }
        atomic_write(os.path.join(directory, METADATA_FILE), json.dumps(data).encode(), mode=0o600)

    @classmethod
    def load(cls, directory: str) -> "Volume":
        with open(os.path.join(directory, METADATA_FILE), "rb") as f:
            d = json.load(f)
        return cls(
            name=str(d["Name"]),
            driver=str(d.get("Driver") or LOCAL_DRIVER),
            labels={str(k): str(v) for k, v in (d.get("Labels") or {}).items()},
            options={str(k): str(v) for k, v in (d.get("Options") or {}).items()},
            created_at=str(d.get("CreatedAt") or rfc3339_seconds()),
        )
