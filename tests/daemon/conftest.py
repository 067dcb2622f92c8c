"""Fixtures of the daemon tests: one hulld for the module, with a busybox image.

`hulld` (module scope) is a private HullDaemon (hull.testing.hulld) with `busybox:latest`
imported from the session's busybox root filesystem; `sdk` is a Docker SDK client on it;
`hulld.cli("docker", ...)` runs the official docker CLI against it.
"""

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from hull.testing.hulld import HullDaemon


@pytest.fixture(scope="module")
def hulld(busybox_rootfs: Path) -> Iterator[HullDaemon]:
    d = HullDaemon()
    try:
        d.import_busybox(busybox_rootfs)
        yield d
    finally:
        d.stop()


@pytest.fixture
def sdk(hulld: HullDaemon) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=hulld.host, version="auto", timeout=60)
    try:
        yield client
    finally:
        client.close()
