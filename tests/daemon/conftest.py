"""Fixtures of the daemon tests: `sdk`, a Docker SDK client on the module's `hulld` (tests/conftest.py).

`hulld.cli("docker", ...)` runs the official docker CLI against the same daemon.
"""

from collections.abc import Iterator

import docker
import pytest

from hull.testing.hulld import HullDaemon


@pytest.fixture
def sdk(hulld: HullDaemon) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=hulld.host, version="auto", timeout=60)
    try:
        yield client
    finally:
        client.close()
