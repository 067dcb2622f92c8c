"""Networks through the Docker SDK for Python against hulld: create, connect, containers by name, ports."""

from collections.abc import Callable

import docker
import pytest

pytestmark = pytest.mark.container

SERVE = "mkdir -p /www && echo sdk says hi > /www/index.html && exec httpd -f -p 80 -h /www"


def test_sdk_networks(sdk: docker.DockerClient, free_port: Callable[[], int]) -> None:
    port = free_port()
    net = sdk.networks.create("sdknet", driver="bridge", labels={"made-by": "sdk"})
    server = None
    try:
        assert net.attrs["Driver"] == "bridge" and net.attrs["Labels"] == {"made-by": "sdk"}
        assert {n.name for n in sdk.networks.list()} >= {"bridge", "host", "none", "sdknet"}
        server = sdk.containers.run("busybox", ["sh", "-c", SERVE], name="sdkweb", detach=True,
                                       network="sdknet", ports={"80/tcp": ("127.0.0.1", port)})  # fmt: skip
        server.reload()
        assert server.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        out = sdk.containers.run("busybox", ["wget", "-qO-", "http://sdkweb/"], network="sdknet", remove=True)
        assert out == b"sdk says hi\n"
        net.reload()
        assert [c.name for c in net.containers] == ["sdkweb"]
        net.disconnect(server)
        net.reload()
        assert net.containers == []
        with pytest.raises(docker.errors.NotFound):
            sdk.networks.get("no-such-net")
    finally:
        if server is not None:
            server.remove(force=True)
        net.remove()
