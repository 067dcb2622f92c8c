"""`hulld --runtime runc`: the bundle is plain OCI, so Debian's runc runs hull's containers too."""

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def runc_hulld(busybox_rootfs: Path) -> Iterator[HullDaemon]:
    d = HullDaemon(extra_args=["--runtime", "runc"])
    try:
        d.import_busybox(busybox_rootfs)
        yield d
    finally:
        d.stop()


def test_runc_runs_the_container(runc_hulld: HullDaemon) -> None:
    client = docker.DockerClient(base_url=runc_hulld.host, version="auto")
    try:
        assert client.containers.run("busybox", ["echo", "hi"], remove=True) == b"hi\n"
        c = client.containers.run("busybox", ["sleep", "30"], detach=True, mem_limit="16m")
        try:
            # runc's own state file is where its --root says: runc, not hull-runtime, made it.
            state = runc_hulld.exec_root / "runtime" / c.id / "state.json"
            assert state.exists()
            assert '"config"' in state.read_text()  # runc's state.json records the spec it ran
            c.stop(timeout=0)
            assert c.wait()["StatusCode"] == 137
        finally:
            c.remove(force=True)
        assert not (runc_hulld.exec_root / "runtime" / c.id).exists()
    finally:
        client.close()
