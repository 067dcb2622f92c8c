"""Push to a real registry (Debian's docker-registry on 127.0.0.1), pulled back by real Docker."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from hull.testing.dockerd import DockerDaemon
from hull.testing.hulld import HullDaemon
from hull.testing.registry import LocalRegistry

pytestmark = pytest.mark.container



def _aux_digest(output: str) -> str:
    line = next(line for line in output.splitlines() if ": digest: sha256:" in line)
    return line.split("digest: ")[1].split()[0]


def test_push_then_real_docker_pulls_and_runs_it(registry: LocalRegistry, hulld: HullDaemon, tmp_path: Path) -> None:
    name = f"{registry.domain}/hull/pushed:1"
    assert hulld.cli("docker", "tag", "busybox", name).returncode == 0
    pushed = hulld.cli("docker", "push", name)
    assert pushed.returncode == 0, pushed.stderr
    assert f"The push refers to repository [{registry.domain}/hull/pushed]" in pushed.stdout
    digest = _aux_digest(pushed.stdout)
    # Pushed again: the registry has every layer, nothing is uploaded.
    again = hulld.cli("docker", "push", name)
    assert "Layer already exists" in again.stdout and _aux_digest(again.stdout) == digest
    # Another repository of the same registry: the layer is mounted across, not uploaded.
    other = f"{registry.domain}/hull/elsewhere:1"
    hulld.cli("docker", "tag", "busybox", other)
    mounted = hulld.cli("docker", "push", other)
    assert mounted.returncode == 0 and "Mounted from hull/pushed" in mounted.stdout, mounted.stdout
    hull_id = hulld.cli("docker", "inspect", "--format", "{{.Id}}", name).stdout.strip()
    docker = DockerDaemon()
    try:
        docker.docker("pull", name)
        info = json.loads(docker.docker("inspect", name).stdout)[0]
        assert info["Id"] == hull_id
        assert info["RepoDigests"] == [f"{registry.domain}/hull/pushed@{digest}"]
        assert docker.docker("run", "--rm", "--network", "none", name, "echo", "from hull").stdout == "from hull\n"
    finally:
        docker.stop()
    hull_digests = json.loads(hulld.cli("docker", "inspect", name).stdout)[0]["RepoDigests"]
    assert f"{registry.domain}/hull/pushed@{digest}" in hull_digests
    hulld.cli("docker", "rmi", name, other)


def test_large_layers_go_up_in_chunks(registry: LocalRegistry, hulld: HullDaemon, tmp_path: Path) -> None:
    rootfs = tmp_path / "big"
    rootfs.mkdir()
    (rootfs / "blob").write_bytes(os.urandom(12 << 20))  # random: its gzip stays above one chunk
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True).stdout
    name = f"{registry.domain}/hull/big:1"
    assert hulld.cli("docker", "import", "-", name, input=tar).returncode == 0
    log_before = (registry.workdir / "registry.log").read_text().count('"PATCH ')
    pushed = hulld.cli("docker", "push", name)
    assert pushed.returncode == 0, pushed.stderr
    assert (registry.workdir / "registry.log").read_text().count('"PATCH ') - log_before >= 2
    hulld.cli("docker", "rmi", name)
    pulled = hulld.cli("docker", "pull", name)
    assert pulled.returncode == 0, pulled.stderr
    hulld.cli("docker", "rmi", name)


def test_push_of_a_missing_image(registry: LocalRegistry, hulld: HullDaemon) -> None:
    r = hulld.cli("docker", "push", f"{registry.domain}/hull/nothing:1")
    assert r.returncode == 1
    assert f"An image does not exist locally with the tag: {registry.domain}/hull/nothing" in r.stderr
