"""hull and real Docker exchange images both ways, through the files each of them writes.

Docker -> hull: an image built by `docker build` (two layers, one with whiteouts) and saved by
`docker save` loads into hull with Docker's image id, diff ids and chain ids (the same names
Docker's own layerdb uses), lies on disk where the seeds say, and runs under hull-runtime.
hull -> Docker: what hull saves (an image it loaded, and one it made itself) loads with
`docker load` under the same id and runs with `docker run`; skopeo reads it too. And an OCI
image layout written by skopeo loads into hull.
"""

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest

from hull.images import ids, tarexport
from hull.images.service import ImageService
from hull.layout import DataRoot
from hull.runtime.spec import CONFIG_FILE, default_spec
from hull.testing import mounts_under
from hull.testing.dockerd import DockerDaemon

pytestmark = pytest.mark.container

BASE = "hull-interop-base:1"
BUILT = "hull-interop:1"
MADE = "hull-made:1"
# The RUN layer adds a file and deletes a file and a directory of the base (whiteouts in the layer tar).
DOCKERFILE = f"""\
FROM {BASE}
RUN echo hello > /greeting && rm /etc/group && rmdir /mnt
ENV GREETING=hi
CMD ["sh", "-c", "cat /greeting; echo $GREETING; test -e /etc/group || echo group-gone; test -d /mnt || echo mnt-gone"]
"""
EXPECTED = "hello\nhi\ngroup-gone\nmnt-gone\n"


@pytest.fixture(scope="module")
def docker(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    daemon = DockerDaemon()
    try:
        rootfs = subprocess.run(["tar", "-C", str(busybox_rootfs), "-c", "."], capture_output=True, check=True)
        daemon.docker("import", "-", BASE, input=rootfs.stdout)
        context = tmp_path_factory.mktemp("build")
        (context / "Dockerfile").write_text(DOCKERFILE)
        # The legacy builder works offline from a local base image; the daemon has no bridge network.
        built = subprocess.run(
            ["docker", "--host", daemon.host, "build", "--network", "none", "-t", BUILT, str(context)],
            env={**os.environ, "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr + built.stdout
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def docker_saved(docker: DockerDaemon, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("docker-save") / "built.tar"
    docker.docker("save", "-o", str(path), BUILT)
    return path


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ImageService]:
    svc = ImageService(DataRoot(str(tmp_path / "data")))
    yield svc
    svc.close()
    assert not mounts_under(tmp_path)


def inspect(docker: DockerDaemon, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(docker.docker("inspect", name).stdout)[0]
    return found


def load_file(service: ImageService, path: Path) -> tarexport.LoadResult:
    with open(path, "rb") as f:
        return tarexport.load(service, f)


def save_file(service: ImageService, names: list[str], path: Path) -> Path:
    with open(path, "wb") as f:
        tarexport.save(service, names, f)
    return path


def run_in_hull(service: ImageService, image_id: str, work: Path) -> str:
    """Run the image's Cmd with hull-runtime on a read-write layer of the image; its stdout."""
    config = service.config(image_id)
    top = service.top_layer(image_id)
    container_id = ids.new_id()
    service.layers.create_rw(container_id, top)
    try:
        merged = service.layers.mount(container_id)
        name = f"hull-test-{uuid.uuid4().hex[:12]}"
        runtime = [sys.executable, "-m", "hull.runtime.cli", "--root", str(work / "runtime-state")]
        try:
            bundle = work / "bundle"
            bundle.mkdir()
            spec = default_spec()
            spec["root"] = {"path": merged, "readonly": False}
            assert config.config.cmd is not None
            spec["process"].update(args=list(config.config.cmd), env=list(config.config.env), terminal=False)
            spec["linux"]["cgroupsPath"] = f"/{name}"
            (bundle / CONFIG_FILE).write_text(json.dumps(spec))
            done = subprocess.run([*runtime, "run", "--bundle", str(bundle), name],
                                  capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
            assert done.returncode == 0, done.stderr
            return done.stdout
        finally:
            subprocess.run([*runtime, "delete", "--force", name], capture_output=True, timeout=30, check=False)
            service.layers.unmount(container_id)
    finally:
        service.layers.delete_rw(container_id)


def docker_layerdb(docker: DockerDaemon) -> dict[str, str]:
    """Docker's own layerdb: chain id -> the diff id in its `diff` file."""
    layerdb = docker.workdir / "data" / "image" / "overlay2" / "layerdb" / "sha256"
    return {f"sha256:{d.name}": (d / "diff").read_text().strip() for d in layerdb.iterdir()}


def test_docker_save_loads_into_hull_with_dockers_ids_and_runs(
    docker: DockerDaemon, docker_saved: Path, service: ImageService, tmp_path: Path
) -> None:
    result = load_file(service, docker_saved)
    theirs = inspect(docker, BUILT)
    assert result.format == "docker-archive"
    assert result.image_ids == (theirs["Id"],) and result.tags == (BUILT,)
    diff_ids = list(service.config(theirs["Id"]).diff_ids)
    assert diff_ids == theirs["RootFS"]["Layers"] and len(diff_ids) >= 2
    chains = ids.chain_ids(diff_ids)
    assert list(result.new_layers) == chains
    assert [layer.chain_id for layer in service.layers.chain(chains[-1])] == chains
    # The chain ids hull computed are the directory names of Docker's own layerdb, with the same diff files.
    dockers = docker_layerdb(docker)
    for chain, diff_id in zip(chains, diff_ids, strict=True):
        assert dockers[chain] == diff_id

    # Where the seeds say: layerdb/sha256/<chain id>/..., overlay2/<cache id>/..., overlay2/l/<link>.
    root = Path(service.root.path)
    for i, chain in enumerate(chains):
        record = root / "image" / "overlay2" / "layerdb" / "sha256" / chain[7:]
        assert (record / "diff").read_text() == diff_ids[i]
        if i:
            assert (record / "parent").read_text() == chains[i - 1]
        else:
            assert not (record / "parent").exists()
        assert {"cache-id", "diff", "size", "tar-split.json.gz"} <= set(os.listdir(record))
        theirs_size = docker.workdir / "data/image/overlay2/layerdb/sha256" / chain[7:] / "size"
        assert (record / "size").read_text() == theirs_size.read_text().strip()  # Docker's count: symlinks too
        layer_dir = root / "overlay2" / (record / "cache-id").read_text()
        assert {"diff", "link", "committed"} <= set(os.listdir(layer_dir))
        assert (layer_dir / "lower").exists() == (i > 0)
        assert os.readlink(root / "overlay2" / "l" / (layer_dir / "link").read_text()) == f"../{layer_dir.name}/diff"
    top_diff = root / "overlay2" / (root / "image/overlay2/layerdb/sha256" / chains[-1][7:] / "cache-id").read_text()
    assert (top_diff / "diff" / "greeting").read_text() == "hello\n"
    whiteout = os.stat(top_diff / "diff" / "etc" / "group")  # overlayfs' whiteout: a 0/0 character device
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0

    # tar-split: every layer rebuilds byte for byte, so its sha256 is its diff id again.
    for chain, diff_id in zip(chains, diff_ids, strict=True):
        digest = hashlib.sha256()
        sink = _Hashing(digest)
        service.layers.tar_stream(chain, cast(BinaryIO, sink))
        assert "sha256:" + digest.hexdigest() == diff_id

    assert run_in_hull(service, theirs["Id"], tmp_path) == EXPECTED


class _Hashing(io.RawIOBase):
    """A writable that only hashes (a rebuilt layer need not be held in memory)."""

    def __init__(self, digest: "hashlib._Hash") -> None:
        self.digest = digest

    def writable(self) -> bool:
        return True

    def write(self, data: "bytes | bytearray | memoryview") -> int:  # type: ignore[override]
        self.digest.update(data)
        return len(data)


def test_what_hull_saves_docker_loads_and_runs(
    docker: DockerDaemon, docker_saved: Path, service: ImageService, tmp_path: Path
) -> None:
    image_id = load_file(service, docker_saved).image_ids[0]
    archive = save_file(service, [BUILT], tmp_path / "hull-save.tar")
    docker.docker("rmi", BUILT)
    loaded = docker.docker("load", "-i", str(archive)).stdout
    assert f"Loaded image: {BUILT}" in loaded
    assert inspect(docker, BUILT)["Id"] == image_id
    assert docker.docker("run", "--rm", BUILT).stdout == EXPECTED
    skopeo = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{archive}"],
                                       capture_output=True, text=True, check=True).stdout)  # fmt: skip
    assert skopeo["Layers"] == list(service.config(image_id).diff_ids)


def test_an_image_hull_made_itself_goes_to_docker(
    docker: DockerDaemon, busybox_rootfs: Path, service: ImageService, tmp_path: Path
) -> None:
    base = subprocess.run(["tar", "-C", str(busybox_rootfs), "-c", "."], capture_output=True, check=True).stdout
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "made-by").write_text("hull\n")
    top = tmp_path / "top.tar"
    with tarfile.open(top, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(tmp_path / "top" / "made-by", "made-by")
    parent = None
    for blob in (base, top.read_bytes()):
        parent = service.layers.register(io.BytesIO(blob), parent).chain_id
    assert parent is not None
    diff_ids = [layer.diff_id for layer in service.layers.chain(parent)]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["cat", "/made-by"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "busybox"}, {"created_by": "made-by"}],
    }).encode()  # fmt: skip
    image_id = service.create_image(config)
    service.tag(image_id, MADE)
    archive = save_file(service, [MADE], tmp_path / "made.tar")

    assert f"Loaded image: {MADE}" in docker.docker("load", "-i", str(archive)).stdout
    assert inspect(docker, MADE)["Id"] == image_id
    assert inspect(docker, MADE)["RootFS"]["Layers"] == diff_ids
    assert docker.docker("run", "--rm", MADE).stdout == "hull\n"
    skopeo = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{archive}"],
                                       capture_output=True, text=True, check=True).stdout)  # fmt: skip
    assert skopeo["Layers"] == diff_ids
    docker.docker("rmi", MADE)


def test_an_oci_layout_written_by_skopeo_loads(
    docker: DockerDaemon, docker_saved: Path, service: ImageService, tmp_path: Path
) -> None:
    theirs = inspect(docker, BUILT)
    for ref, tags in (("localhost/hull/interop:oci", ("localhost/hull/interop:oci",)), ("v1", ())):
        layout = tmp_path / f"oci-{len(tags)}"
        subprocess.run(["skopeo", "copy", f"docker-archive:{docker_saved}", f"oci:{layout}:{ref}"],
                       capture_output=True, check=True, timeout=120)  # fmt: skip
        index = json.loads((layout / "index.json").read_text())
        manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
        # Streamed from a pipe, as `hull load < archive` would be: spooled, then read.
        packer = subprocess.Popen(["tar", "-C", str(layout), "-c", "."], stdout=subprocess.PIPE)
        assert packer.stdout is not None
        result = tarexport.load(service, packer.stdout)
        assert packer.wait() == 0
        packer.stdout.close()
        assert result.format == "oci-layout"
        assert result.image_ids == (manifest["config"]["digest"],)  # skopeo rewrote the config as an OCI one
        assert result.tags == tags
        assert list(service.config(result.image_ids[0]).diff_ids) == theirs["RootFS"]["Layers"]
        if not tags:
            assert any("'v1' is only a tag" in note for note in result.notes)
    # skopeo gzipped the layers: their blob digests are now known to hull's puller.
    for blob, diff_id in zip(manifest["layers"], theirs["RootFS"]["Layers"], strict=True):
        assert blob["mediaType"].endswith("+gzip")
        assert service.dist.get_diff_id(blob["digest"]) == diff_id
    assert run_in_hull(service, result.image_ids[0], tmp_path) == EXPECTED
