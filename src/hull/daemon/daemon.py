"""The daemon object: the services of one data root, wired together, and their start and stop.

Vocabulary: the *store lock* serialises every change to the image store (layers, images,
references, container read-write layers); image-store calls are blocking file work and run
in worker threads (`blocking`), never on the event loop. Containers are created in processes
forked by the shim fork server, not by this (threaded) process.

Live restore: stopping hulld leaves running containers running; their shims keep them, and
the next hulld finds them again (ContainerManager.restore).
"""

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from typing import TypeVar

from hull.containers.manager import ContainerManager
from hull.daemon import lxcfs
from hull.daemon.config import DaemonConfig
from hull.daemon.events import EventBus
from hull.distribution.pull import Downloads
from hull.errors import HullError
from hull.images.service import ImageService
from hull.layout import DataRoot
from hull.network.manager import NetworkManager
from hull.runtime.cgroups.hierarchy import mounted_hierarchies, own_cgroups
from hull.shim.client import ForkServer
from hull.volumes.manager import VolumeManager

log = logging.getLogger("hulld")

T = TypeVar("T")


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        os.makedirs(config.data_root, mode=0o711, exist_ok=True)
        os.makedirs(config.exec_root, mode=0o700, exist_ok=True)
        self.images = ImageService(DataRoot(config.data_root), config.storage_driver)
        self.root: DataRoot = self.images.root
        self.events = EventBus()
        self.store_lock = asyncio.Lock()
        self.downloads = Downloads()  # blobs being pulled, shared by concurrent pulls
        self.forkserver: ForkServer | None = None
        self.lxcfs: lxcfs.Lxcfs | None = None  # None: containers see the host's /proc files
        self.warnings: list[str] = []  # what `info` reports in Warnings
        self.volumes = VolumeManager(self)  # before the containers: loading them counts their volumes' users
        self.containers = ContainerManager(self)
        self.networks = NetworkManager(self)

    async def blocking(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run blocking store or file work in a worker thread."""
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    async def locked(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """`blocking`, holding the store lock: for anything that changes the image store."""
        async with self.store_lock:
            return await self.blocking(fn, *args, **kwargs)

    async def start(self) -> None:
        recovery = await self.blocking(self.images.recover)
        log.info("image store recovered: %s", recovery)
        self.forkserver = await ForkServer.start()
        await self._start_lxcfs()
        await self.networks.start()
        await self.blocking(self.volumes.load)
        await self.containers.restore()
        await self.networks.reconcile(self.containers.running_ids())

    async def _start_lxcfs(self) -> None:
        if not self.config.lxcfs:
            return
        if not lxcfs.installed():
            self.warnings.append(lxcfs.NOT_INSTALLED_WARNING)
            return
        server = lxcfs.Lxcfs(os.path.join(self.config.exec_root, "lxcfs"))
        try:
            await self.blocking(server.ensure)
        except HullError as e:
            self.warnings.append(f"WARNING: {e.message}")
            return
        self.lxcfs = server

    async def stop(self) -> None:
        """Leave containers running (live restore); stop our own helpers."""
        await self.containers.shutdown()
        if self.forkserver is not None:
            await self.forkserver.close()
        await self.networks.stop(containers_running=bool(self.containers.running_ids()))
        if not self.containers.running_ids():
            await self.blocking(remove_empty_cgroup_parent, self.config.cgroup_parent)
            # Running containers read files of this lxcfs: it stays for them (and the next hulld).
            if self.lxcfs is not None:
                await self.blocking(self.lxcfs.stop)


def remove_empty_cgroup_parent(parent: str) -> None:
    """rmdir the containers' parent cgroup (/hull) in every hierarchy where it is empty, so a
    daemon that stops with no container running leaves no cgroup behind."""
    for h in mounted_hierarchies(own_cgroups()):
        try:
            os.rmdir(h.mount_point + "/" + parent.strip("/"))
        except OSError:
            pass  # absent, or still holding a container's cgroup (EBUSY): both are fine
