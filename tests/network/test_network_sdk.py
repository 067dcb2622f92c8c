"""Networks through the Docker SDK for Python against hulld: create, connect, containers by name, ports."""

from collections.abc import Callable, Iterator

import docker
import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container

SERVE = "mkdir -p /www && echo sdk says hi > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture
def client(hulld: HullDaemon) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=hulld.host, version="auto", timeout=60)
    try:
        yield c
    finally:
        c.close()


def test_sdk_networks(client: docker.DockerClient, free_port: Callable[[], int]) -> None:
    port = free_port()
    net = client.networks.create("sdknet", driver="bridge", labels={"made-by": "sdk"})
    server = None
    try:
        assert net.attrs["Driver"] == "bridge" and net.attrs["Labels"] == {"made-by": "sdk"}
        assert {n.name for n in client.networks.list()} >= {"bridge", "host", "none", "sdknet"}
        server = client.containers.run("busybox", ["sh", "-c", SERVE], name="sdkweb", detach=True,
                                       network="sdknet", ports={"80/tcp": ("127.0.0.1", port)})  # fmt: skip
        server.reload()
        assert server.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        out = client.containers.run("busybox", ["wget", "-qO-", "http://sdkweb/"], network="sdknet", remove=True)
        assert out == b"sdk says hi\n"
        net.reload()
        assert [c.name for c in net.containers] == ["sdkweb"]
        net.disconnect(server)
        net.reload()
        assert net.containers == []
        with pytest.raises(docker.errors.NotFound):
            client.networks.get("no-such-net")
    finally:
        if server is not None:
            server.remove(force=True)
        net.remove()
