"""Pull from a real registry (Debian's docker-registry on 127.0.0.1): what real Docker pushed,
manifest lists, corrupted blobs, and a daemon killed in the middle of a pull."""

import gzip
import io
import json
import os
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from hull.images import ids
from hull.images import mediatypes as mt
from hull.testing.dockerd import DockerDaemon
from hull.testing.hulld import HullDaemon
from hull.testing.layers import make_layer_tar
from hull.testing.registry import LocalRegistry

pytestmark = pytest.mark.container



def push_image(reg: LocalRegistry, repo: str, tag: str, files: dict[str, bytes], arch: str = "amd64") -> str:
    """An image of one gzip layer with `files`, pushed blob by blob; returns the manifest digest."""
    layer = make_layer_tar([(name, data) for name, data in files.items()])
    blob = gzip.compress(layer, mtime=0)
    config = json.dumps({
        "architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [ids.digest_bytes(layer)]},
    }).encode()  # fmt: skip
    manifest = {
        "schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST,
        "config": {"mediaType": mt.DOCKER_CONFIG, "digest": reg.put_blob(repo, config), "size": len(config)},
        "layers": [{"mediaType": mt.DOCKER_LAYER_GZIP, "digest": reg.put_blob(repo, blob), "size": len(blob)}],
    }  # fmt: skip
    return reg.put_manifest(repo, tag, mt.DOCKER_MANIFEST, manifest)


def _layer_count(d: HullDaemon) -> int:
    return len(os.listdir(d.data_root / "image" / "overlay2" / "layerdb" / "sha256"))


def test_pull_what_real_docker_pushed_and_run_it(
    registry: LocalRegistry, hulld: HullDaemon, busybox_rootfs: Path
) -> None:
    name = f"{registry.domain}/hull/bb:1"
    docker = DockerDaemon()
    try:
        tar = subprocess.run(["tar", "-C", str(busybox_rootfs), "-c", "."], capture_output=True, check=True).stdout
        docker.docker("import", "-", name, input=tar)
        docker.docker("push", name)
        docker_digest = json.loads(docker.docker("inspect", name).stdout)[0]["RepoDigests"][0]
        docker_id = docker.docker("inspect", "--format", "{{.Id}}", name).stdout.strip()
    finally:
        docker.stop()
    pulled = hulld.cli("docker", "pull", name)
    assert pulled.returncode == 0, pulled.stderr
    assert f"Status: Downloaded newer image for {name}" in pulled.stdout
    info = json.loads(hulld.cli("docker", "inspect", name).stdout)[0]
    assert info["Id"] == docker_id
    assert info["RepoDigests"] == [docker_digest]
    blob_digest = docker_digest.split("@")[1]
    assert blob_digest.startswith("sha256:")
    by_digest = hulld.data_root / "image" / "overlay2" / "distribution" / "diffid-by-digest" / "sha256"
    assert len(os.listdir(by_digest)) >= 1
    assert hulld.cli("docker", "run", "--rm", name, "echo", "pulled").stdout == "pulled\n"
    again = hulld.cli("docker", "pull", name)
    assert f"Status: Image is up to date for {name}" in again.stdout
    assert hulld.cli("docker", "rmi", name).returncode == 0


def test_manifest_list_pulls_the_platform_entry(registry: LocalRegistry, hulld: HullDaemon) -> None:
    repo = "hull/multi"
    entries = []
    for arch in ("arm64", "amd64"):
        digest = push_image(registry, repo, f"only-{arch}", {"arch": arch.encode()}, arch)
        _, _, raw = registry.request("GET", f"/v2/{repo}/manifests/{digest}", headers={"Accept": mt.DOCKER_MANIFEST})
        entries.append({"mediaType": mt.DOCKER_MANIFEST, "digest": digest, "size": len(raw),
                        "platform": {"os": "linux", "architecture": arch}})  # fmt: skip
    registry.put_manifest(repo, "multi", mt.DOCKER_MANIFEST_LIST,
                          {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": entries})  # fmt: skip
    name = f"{registry.domain}/{repo}:multi"
    assert hulld.cli("hull", "pull", name).returncode == 0
    assert hulld.cli("hull", "inspect", "--format", "{{.Architecture}}", name).stdout.strip() == "amd64"
    r = hulld.cli("docker", "pull", "--platform", "linux/arm64", f"{registry.domain}/{repo}:multi")
    assert r.returncode == 0, r.stderr
    assert hulld.cli("hull", "inspect", "--format", "{{.Architecture}}", name).stdout.strip() == "arm64"
    r = hulld.cli("docker", "pull", "--platform", "linux/s390x", name)
    assert r.returncode != 0 and "no matching manifest for linux/s390x" in r.stderr
    hulld.cli("docker", "rmi", name)


def test_corrupted_blob_is_refused_and_nothing_stored(registry: LocalRegistry, hulld: HullDaemon) -> None:
    repo = "hull/corrupt"
    push_image(registry, repo, "1", {"data": b"x" * 5000})
    _, _, raw = registry.request("GET", f"/v2/{repo}/manifests/1", headers={"Accept": mt.DOCKER_MANIFEST})
    layer_digest = json.loads(raw)["layers"][0]["digest"]
    path = registry.blob_path(layer_digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    layers_before = _layer_count(hulld)
    r = hulld.cli("docker", "pull", f"{registry.domain}/{repo}:1")
    assert r.returncode != 0
    assert f"filesystem layer verification failed for digest {layer_digest}" in r.stderr + r.stdout
    assert _layer_count(hulld) == layers_before
    assert os.listdir(hulld.data_root / "image" / "overlay2" / "layerdb" / "tmp") == []
    assert hulld.cli("docker", "inspect", f"{registry.domain}/{repo}:1").returncode != 0


def test_unknown_tag(registry: LocalRegistry, hulld: HullDaemon) -> None:
    r = hulld.cli("docker", "pull", f"{registry.domain}/hull/nosuch:1")
    assert r.returncode == 1
    assert "manifest for hull/nosuch:1 not found" in r.stderr


def test_killing_hulld_mid_pull_then_pulling_again(registry: LocalRegistry, busybox_rootfs: Path) -> None:
    repo = "hull/big"
    big = os.urandom(24 << 20)  # random: gzip can't shrink it, so the download takes a while
    push_image(registry, repo, "1", {"big": big, "small": b"s"})
    name = f"{registry.domain}/{repo}:1"
    d = HullDaemon()
    try:
        pulling = subprocess.Popen(["docker", "pull", name], env=d.env, stdout=subprocess.PIPE, text=True)
        assert pulling.stdout is not None
        watcher = threading.Thread(target=lambda: [line for line in pulling.stdout])  # type: ignore[union-attr]
        deadline = time.monotonic() + 20
        while (
            not list((d.data_root / "image" / "overlay2" / "layerdb" / "tmp").glob("*")) and time.monotonic() < deadline
        ):
            time.sleep(0.005)
        d.kill()
        watcher.start()
        pulling.wait(timeout=20)
        d.start()  # restart: recovery drops the half-downloaded blob
        assert list((d.data_root / "image" / "overlay2" / "layerdb" / "tmp").glob("*")) == []
        r = d.cli("docker", "pull", name)
        assert r.returncode == 0, r.stderr
        created = d.cli("docker", "create", name, "true").stdout.strip()
        exported = subprocess.run(["docker", "export", created], env=d.env, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
            small = tar.extractfile("small")
            assert small is not None and small.read() == b"s"
            assert tar.getmember("big").size == len(big)
    finally:
        d.stop()


def test_concurrent_pulls_download_each_blob_once(registry: LocalRegistry, hulld: HullDaemon) -> None:
    repo = "hull/concurrent"
    push_image(registry, repo, "1", {"data": os.urandom(4 << 20)})
    _, _, raw = registry.request("GET", f"/v2/{repo}/manifests/1", headers={"Accept": mt.DOCKER_MANIFEST})
    layer = json.loads(raw)["layers"][0]["digest"]
    name = f"{registry.domain}/{repo}:1"
    pulls = [subprocess.Popen(["docker", "pull", name], env=hulld.env, stdout=subprocess.PIPE) for _ in range(3)]
    assert [p.wait(timeout=60) for p in pulls] == [0, 0, 0]
    log = (registry.workdir / "registry.log").read_text()
    assert log.count(f"GET /v2/{repo}/blobs/{layer}") == 1
    hulld.cli("docker", "rmi", name)


class CuttingProxy:
    """A TCP proxy to the registry that drops the first download of one blob part-way through."""

    def __init__(self, upstream_port: int, digest: str, after: int) -> None:
        self.upstream_port, self.digest, self.after = upstream_port, digest, after
        self.blob_requests = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        cut = threading.Event()  # set when this connection carries the first request for the blob

        def requests() -> None:
            try:
                while data := client.recv(65536):
                    if data.startswith(b"GET") and f"/blobs/{self.digest}".encode() in data:
                        self.blob_requests += 1
                        if self.blob_requests == 1:
                            cut.set()
                    upstream.sendall(data)
            except OSError:
                pass

        threading.Thread(target=requests, daemon=True).start()
        sent = 0
        try:
            while data := upstream.recv(65536):
                if cut.is_set():
                    if sent + len(data) > self.after:
                        client.sendall(data[: self.after - sent])
                        break  # the connection drops mid-body
                    sent += len(data)
                client.sendall(data)
        except OSError:
            pass
        for sock in (client, upstream):
            # shutdown, not just close: the other thread's recv holds the socket, and only a
            # shutdown makes the peer see the connection end now.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.server.close()


def test_a_dropped_download_resumes(registry: LocalRegistry, hulld: HullDaemon) -> None:
    repo = "hull/dropped"
    push_image(registry, repo, "1", {"data": os.urandom(3 << 20)})
    _, _, raw = registry.request("GET", f"/v2/{repo}/manifests/1", headers={"Accept": mt.DOCKER_MANIFEST})
    layer = json.loads(raw)["layers"][0]["digest"]
    proxy = CuttingProxy(registry.port, layer, after=1 << 20)
    try:
        name = f"127.0.0.1:{proxy.port}/{repo}:1"
        pulled = hulld.cli("docker", "pull", name)
        assert pulled.returncode == 0, pulled.stderr
        assert proxy.blob_requests >= 2  # the first was cut; the rest came by resuming
        assert hulld.cli("docker", "inspect", name).returncode == 0
        hulld.cli("docker", "rmi", name)
    finally:
        proxy.close()
