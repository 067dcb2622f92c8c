"""The local volume driver: each volume a directory volumes/<name>/_data, or a filesystem mounted there.

A volume created with options (`-o type=tmpfs -o device=tmpfs -o o=size=1m`, or
`type=none,o=bind,device=/path`) is mounted as `mount -t <type> -o <o> <device> _data` when
the first container starting with it needs it, and unmounted when the last one releases it,
as Docker's local driver does. Who holds a mount is counted in memory: a daemon restart
counts the running containers again (a mount that is already there is kept).
"""

import os
import re
import shutil
import threading

from hull.errors import HullError, InvalidArgument
from hull.layout import DataRoot
from hull.runtime.mounts import parse_mount_options
from hull.runtime.syscalls import MNT_DETACH, mount, umount2

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
VALID_OPTIONS = ("type", "device", "o")
REQUIRED_OPTIONS = ("type", "device")
QUOTA_OPTION = "size"


def check_name(name: str) -> None:
    """Docker's local driver rule; its hint is for `-v relative/path:/x`, which names a volume."""
    if not NAME_PATTERN.match(name):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'
        )


def check_options(name: str, options: dict[str, str]) -> None:
    for key in options:
        if key == QUOTA_OPTION:
            raise InvalidArgument(f"create {name}: quota size requested but no quota support")
        if key not in VALID_OPTIONS:
            raise InvalidArgument(f'create {name}: invalid option: "{key}"')
    if options:
        for key in REQUIRED_OPTIONS:
            if key not in options:
                raise InvalidArgument(f'create {name}: missing required option: "{key}"')
        parse_mount_options(options.get("o", "").split(","))


def is_mount_point(path: str) -> bool:
    return os.path.ismount(path)


def dir_size(path: str) -> int:
    """Bytes of the regular files under `path` (hard links counted once), as `system df` reports."""
    total, seen = 0, set()
    for top, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


class LocalDriver:
    def __init__(self, root: DataRoot) -> None:
        self.root = root
        self._holders: dict[str, set[str]] = {}  # volume name -> ids of the containers that mounted it
        self._lock = threading.Lock()

    def path(self, name: str) -> str:
        return self.root.volume_data(name)

    def create(self, name: str) -> None:
        """volumes/<name>/_data (the caller checked the name and options and writes the metadata)."""
        os.makedirs(self.root.volumes, mode=0o701, exist_ok=True)
        os.mkdir(self.root.volume_dir(name), 0o701)
        os.mkdir(self.path(name), 0o755)

    def remove(self, name: str) -> None:
        data = self.path(name)
        if is_mount_point(data):
            umount2(data, MNT_DETACH)
        shutil.rmtree(self.root.volume_dir(name))
        self._holders.pop(name, None)

    def hold(self, name: str, holder: str) -> None:
        """Count `holder` (a container found running at daemon start) without mounting anything."""
        with self._lock:
            self._holders.setdefault(name, set()).add(holder)

    def mount(self, name: str, options: dict[str, str], holder: str) -> None:
        """Make the volume ready for `holder`: for a volume with options, its filesystem mounted on _data."""
        if not options:
            return
        with self._lock:
            holders = self._holders.setdefault(name, set())
            data = self.path(name)
            if not is_mount_point(data):
                parsed = parse_mount_options(options.get("o", "").split(","))
                try:
                    mount(options["device"], data, options["type"], parsed.flags, parsed.data or None)
                except OSError as e:
                    raise HullError(
                        f"error while mounting volume '{data}': failed to mount local volume: "
                        f"mount {options['device']}:{data}, data: {parsed.data}: {os.strerror(e.errno or 0).lower()}"
                    ) from None
            holders.add(holder)

    def unmount(self, name: str, options: dict[str, str], holder: str) -> None:
        if not options:
            return
        with self._lock:
            holders = self._holders.get(name, set())
            holders.discard(holder)
            data = self.path(name)
            if not holders and is_mount_point(data):
                umount2(data, MNT_DETACH)
