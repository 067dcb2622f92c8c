"""What `make bench` measures: every scenario, registered in SCENARIOS.

A scenario is the same piece of work done by hull and by its peer (runc, docker, ...), timed
as a whole command from the caller. To add one, subclass Scenario here, decorate it with
@register, and give it a name, the peer's program and `command`; `setup`, `after` and
`teardown` are untimed.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from hull.testing.busybox import build_busybox_rootfs

Side = Literal["hull", "peer"]


class Scenario:
    """One comparison between hull and a peer program."""

    name = ""
    peer = ""  # the peer's executable, looked up on PATH; if absent only hull is timed

    def setup(self, work: Path) -> None:
        """Once before the runs, untimed: build inputs under `work` (a fresh temp dir, removed afterwards)."""

    # (bytes, files) that one run moves, for scenarios whose throughput is worth printing.
    payload: tuple[int, int] | None = None

    def prepare(self, side: Side, run_id: str) -> None:
        """Before each run, untimed: make what the run consumes (a container to commit, say)."""

    def command(self, side: Side, run_id: str) -> list[str]:
        """The argv of one timed run. `run_id` is unique per run (a container id, a name)."""
        raise NotImplementedError

    def after(self, side: Side, run_id: str) -> None:
        """After each run, failed ones too, untimed: remove what the run left (a container, say)."""

    def teardown(self) -> None:
        """Once after the last run, untimed."""


SCENARIOS: list[Scenario] = []


def register(cls: type[Scenario]) -> type[Scenario]:
    """Class decorator: add a scenario to SCENARIOS, in the order they appear here."""
    SCENARIOS.append(cls())
    return cls


def hull_program(name: str) -> str:
    """A hull console script as installed beside this interpreter (the venv's), else on PATH."""
    script = Path(sys.executable).parent / name
    return str(script) if script.exists() else shutil.which(name) or name


def quiet(argv: list[str]) -> None:
    """Run a cleanup command, ignoring its output and status."""
    subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=60)


@register
class RuntimeStartup(Scenario):
    """`--version`: the interpreter's start-up and the imports of the runtime's CLI, nothing else."""

    name = "runtime-startup"
    peer = "runc"

    def command(self, side: Side, run_id: str) -> list[str]:
        return [hull_program("hull-runtime") if side == "hull" else "runc", "--version"]


@register
class RuntimeRunTrue(Scenario):
    """`run` of a busybox bundle whose process is `true`: the runtime's whole create-start-wait-delete path."""

    name = "runtime-run-true"
    peer = "runc"

    def setup(self, work: Path) -> None:
        from hull.runtime.spec import default_spec

        self.bundle = work / "bundle"
        build_busybox_rootfs(self.bundle / "rootfs")
        config = default_spec()
        config["process"]["args"] = ["true"]
        config["process"]["terminal"] = False
        (self.bundle / "config.json").write_text(json.dumps(config))
        self.roots = {"hull": work / "state-hull", "peer": work / "state-runc"}

    def _runtime(self, side: Side) -> list[str]:
        program = hull_program("hull-runtime") if side == "hull" else "runc"
        return [program, "--root", str(self.roots[side])]

    def command(self, side: Side, run_id: str) -> list[str]:
        return [*self._runtime(side), "run", "--bundle", str(self.bundle), run_id]

    def after(self, side: Side, run_id: str) -> None:
        # `run` deletes the container when it exits; this catches a run that failed half way.
        quiet([*self._runtime(side), "delete", "--force", run_id])


def write_layer_tar(path: Path, files: int, size: int, big: int = 0) -> tuple[int, int]:
    """A layer tar of `files` files of `size` random bytes in 50 directories, plus one `big`-byte
    file if asked; returns (content bytes, entries) for throughput."""
    import io
    import os
    import tarfile

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in range(50):
            info = tarfile.TarInfo(f"d{d:02d}")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for i in range(files):
            info = tarfile.TarInfo(f"d{i % 50:02d}/f{i:05d}")
            info.size, info.mode = size, 0o644
            tar.addfile(info, io.BytesIO(os.urandom(size)))
        if big:
            info = tarfile.TarInfo("big.bin")
            info.size, info.mode = big, 0o644
            tar.addfile(info, io.BytesIO(os.urandom(big)))
    return files * size + big, files + 50 + (1 if big else 0)


class _LayerApply(Scenario):
    """Apply one layer tar onto an empty directory: hull's streaming apply against GNU tar -x."""

    peer = "tar"
    files, size, big = 0, 0, 0

    def setup(self, work: Path) -> None:
        self.layer = work / "layer.tar"
        self.payload = write_layer_tar(self.layer, self.files, self.size, self.big)
        self.dests = work / "dests"
        self.dests.mkdir()

    def command(self, side: Side, run_id: str) -> list[str]:
        dest = self.dests / run_id
        dest.mkdir()
        if side == "hull":
            return [sys.executable, str(Path(__file__).parent / "hull_tools.py"), "apply", str(self.layer), str(dest)]
        return ["tar", "--same-owner", "--xattrs", "-xpf", str(self.layer), "-C", str(dest)]

    def after(self, side: Side, run_id: str) -> None:
        shutil.rmtree(self.dests / run_id, ignore_errors=True)


@register
class LayerApplySmallFiles(_LayerApply):
    """Apply a layer of 5,000 files of 2 KiB (throughput printed)."""

    name = "layer-apply-5000-files"
    files, size = 5000, 2048


@register
class LayerApplyBigFile(_LayerApply):
    """Apply a layer holding one 60 MB file (throughput printed)."""

    name = "layer-apply-60mb-file"
    big = 60_000_000


class _Engines(Scenario):
    """A private hulld and a private dockerd, each with the same busybox image (busybox:bench)."""

    peer = "dockerd"
    image = "busybox:bench"
    networking = False  # dockerd with its default bridge and iptables rules (hulld always has its bridge)

    def setup(self, work: Path) -> None:
        import subprocess as sp

        from hull.testing.dockerd import DockerDaemon
        from hull.testing.hulld import HullDaemon

        rootfs = work / "rootfs"
        build_busybox_rootfs(rootfs)
        self.hulld = HullDaemon()
        self.docker = DockerDaemon(networking=self.networking)
        self.hulld.import_busybox(rootfs, self.image)
        archive = sp.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True).stdout
        self.docker.docker("import", "-", self.image, input=archive)

    def host(self, side: Side) -> str:
        return self.hulld.host if side == "hull" else self.docker.host

    def teardown(self) -> None:
        self.hulld.stop()
        self.docker.stop()


FILES_IN_COMMIT = 10_000


@register
class CommitTenThousandFiles(_Engines):
    """`docker commit` of a container that created 10,000 small files, against hulld and against dockerd."""

    name = "commit-10000-files"

    def prepare(self, side: Side, run_id: str) -> None:
        script = f"mkdir /d && cd /d && i=0; while [ $i -lt {FILES_IN_COMMIT} ]; do echo $i > f$i; i=$((i+1)); done"
        subprocess.run(
            ["docker", "--host", self.host(side), "run", "--name", run_id, self.image, "sh", "-c", script],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        os.sync()  # what the container wrote is on disk before the timed commit, on both sides

    def command(self, side: Side, run_id: str) -> list[str]:
        return ["docker", "--host", self.host(side), "commit", run_id, f"bench-out:{run_id}"]

    def after(self, side: Side, run_id: str) -> None:
        quiet(["docker", "--host", self.host(side), "rm", "-f", run_id])
        quiet(["docker", "--host", self.host(side), "rmi", f"bench-out:{run_id}"])


def write_docker_archive(path: Path, layers: list[Path], tag: str) -> None:
    """A legacy docker-archive (`docker save` before 25) of one image made of these layer tars."""
    import hashlib
    import io
    import tarfile

    diff_ids = []
    for layer in layers:
        with open(layer, "rb") as f:
            diff_ids.append("sha256:" + hashlib.file_digest(f, "sha256").hexdigest())
    created = "2024-01-01T00:00:00Z"
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": created, "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": f"layer {i}"} for i in range(len(layers))],
    }, separators=(",", ":")).encode()  # fmt: skip
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    with tarfile.open(path, "w") as out:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            out.addfile(info, io.BytesIO(data))

        names = []
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            names.append(f"{diff_id[7:]}/layer.tar")
            out.add(str(layer), arcname=names[-1])
        add(config_name, config)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode())


def write_hundred_megabyte_image(work: Path, tag: str) -> Path:
    """A docker-archive of ~100 MB in 3 layers: 5,000 small files; one 60 MB file; three tiny ones."""
    small, big, tiny = work / "small.tar", work / "big.tar", work / "tiny.tar"
    write_layer_tar(small, 5000, 7000)
    write_layer_tar(big, 0, 0, 60_000_000)
    write_layer_tar(tiny, 3, 100)
    archive = work / "image.tar"
    write_docker_archive(archive, [small, big, tiny], tag)
    return archive


@register
class LoadHundredMegabytes(_Engines):
    """`docker load` of a ~100 MB, 3-layer archive (5,000 files; one 60 MB file; one small), into hulld and dockerd."""

    name = "load-100mb-3-layers"

    def setup(self, work: Path) -> None:
        super().setup(work)
        self.archive = write_hundred_megabyte_image(work, "bench:load")
        self.payload = (self.archive.stat().st_size, 5000 + 1 + 3)

    def prepare(self, side: Side, run_id: str) -> None:
        os.sync()  # the previous run's writeback must not land in this run's time

    def command(self, side: Side, run_id: str) -> list[str]:
        return ["docker", "--host", self.host(side), "load", "-i", str(self.archive)]

    def after(self, side: Side, run_id: str) -> None:
        quiet(["docker", "--host", self.host(side), "rmi", "bench:load"])


@register
class HullRunRmTrue(_Engines):
    """`hull run --rm busybox true` (hull's CLI and hulld) against `docker run --rm busybox true` on dockerd,
    both with `--network none`: what the engines cost without their networks (bridge-* scenarios: with)."""

    name = "hull-run-rm-true"
    flags: tuple[str, ...] = ("--network", "none")

    def command(self, side: Side, run_id: str) -> list[str]:
        if side == "hull":
            return [hull_program("hull"), "-H", self.hulld.host, "run", "--rm", *self.flags, self.image, "true"]
        return ["docker", "--host", self.docker.host, "run", "--rm", *self.flags, self.image, "true"]


@register
class HullRunRmTrueBridge(HullRunRmTrue):
    """`hull run --rm busybox true` against `docker run --rm busybox true`, each on its default bridge."""

    name = "hull-run-rm-true-bridge"
    networking = True
    flags = ()


@register
class DockerCliRunRmTrue(_Engines):
    """The official `docker run --rm --network none busybox true`, against hulld and against dockerd."""

    name = "docker-run-rm-true"

    def command(self, side: Side, run_id: str) -> list[str]:
        return ["docker", "--host", self.host(side), "run", "--rm", "--network", "none", self.image, "true"]


@register
class BridgeRunRmTrue(_Engines):
    """`docker run --rm busybox true` on the default bridge network: hulld's against dockerd's (with iptables)."""

    name = "bridge-run-rm-true"
    networking = True

    def command(self, side: Side, run_id: str) -> list[str]:
        return ["docker", "--host", self.host(side), "run", "--rm", self.image, "true"]


BRIDGE_MEGABYTES = 500


@register
class BridgeThroughput(_Engines):
    """500 MB from one container to another over the default bridge (busybox dd | nc, timed with the exec)."""

    name = "bridge-throughput-500mb"
    networking = True
    payload = (BRIDGE_MEGABYTES * 1024 * 1024, 0)

    def prepare(self, side: Side, run_id: str) -> None:
        import time

        def docker(*args: str) -> str:
            done = subprocess.run(["docker", "--host", self.host(side), *args], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"docker {args[0]}: {done.stderr.strip()}")
            return done.stdout.strip()

        # The listener's stdin must stay open (a pipe from sleep), or nc ends its side at once.
        docker("run", "-d", "--name", f"{run_id}-s", self.image, "sh", "-c", "sleep 600 | nc -l -p 5001 > /dev/null")
        docker("run", "-d", "--name", f"{run_id}-c", self.image, "sleep", "600")
        self.server_ip = docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", f"{run_id}-s")
        time.sleep(0.5)  # the listener is up

    def command(self, side: Side, run_id: str) -> list[str]:
        send = f"dd if=/dev/zero bs=1M count={BRIDGE_MEGABYTES} 2>/dev/null | nc {self.server_ip} 5001"
        return ["docker", "--host", self.host(side), "exec", f"{run_id}-c", "sh", "-c", send]

    def after(self, side: Side, run_id: str) -> None:
        quiet(["docker", "--host", self.host(side), "rm", "-f", f"{run_id}-s", f"{run_id}-c"])


CONCURRENT_RUNS = 20


@register
class ConcurrentRuns(_Engines):
    """20 `docker run --rm --network none busybox true` at once (all must succeed), against hulld and dockerd."""

    name = "run-20-concurrent"

    def command(self, side: Side, run_id: str) -> list[str]:
        one = f"docker --host {self.host(side)} run --rm --network none {self.image} true"
        # Every run's status counts: the script fails if any one of them failed.
        script = (
            f"for i in $(seq {CONCURRENT_RUNS}); do {one} & done; "
            "s=0; for j in $(jobs -p); do wait $j || s=1; done; exit $s"
        )
        return ["bash", "-c", script]


LOG_LINES = 1_000_000


@register
class LogsMillionLines(_Engines):
    """`docker logs` of a container whose json-file log holds 1,000,000 lines, from hulld and from dockerd."""

    name = "logs-1m-lines"

    def setup(self, work: Path) -> None:
        super().setup(work)
        self.container = "hull-bench-logs"
        for side in ("hull", "peer"):
            done = subprocess.run(
                ["docker", "--host", self.host(side), "run", "--name", self.container, self.image,
                 "seq", str(LOG_LINES)],
                capture_output=True, check=True, timeout=300,
            )  # fmt: skip
            lines = done.stdout.count(b"\n")
            if lines != LOG_LINES:
                raise RuntimeError(f"{side}: the logged container printed {lines} lines, not {LOG_LINES}")

    def command(self, side: Side, run_id: str) -> list[str]:
        # Output to a file, not a pipe the runner reads: both sides pay the same writes.
        return ["bash", "-c", f"docker --host {self.host(side)} logs {self.container} > /dev/null"]


class _Registry(_Engines):
    """The engines, the 100 MB image loaded into both, and a local registry (docker-registry)."""

    image = "busybox:bench"
    big = "bench:big"

    def setup(self, work: Path) -> None:
        from hull.testing.registry import LocalRegistry

        super().setup(work)
        archive = write_hundred_megabyte_image(work, self.big)
        for side in ("hull", "peer"):
            subprocess.run(["docker", "--host", self.host(side), "load", "-i", str(archive)], capture_output=True,
                           check=True, timeout=300)  # fmt: skip
        self.registry = LocalRegistry()

    def teardown(self) -> None:
        self.registry.stop()
        super().teardown()


@register
class PullHundredMegabytes(_Registry):
    """`docker pull` of the ~100 MB, 3-layer image from a local registry, into hulld and into dockerd."""

    name = "pull-100mb-3-layers"

    def setup(self, work: Path) -> None:
        super().setup(work)
        self.remote = f"{self.registry.domain}/bench/pull:1"
        docker = ["docker", "--host", self.host("peer")]
        subprocess.run([*docker, "tag", self.big, self.remote], capture_output=True, check=True)
        subprocess.run([*docker, "push", self.remote], capture_output=True, check=True, timeout=300)
        quiet([*docker, "rmi", self.remote])
        for side in ("hull", "peer"):  # the pull must fetch and unpack every layer on both sides
            quiet(["docker", "--host", self.host(side), "rmi", self.big])

    def prepare(self, side: Side, run_id: str) -> None:
        os.sync()

    def command(self, side: Side, run_id: str) -> list[str]:
        return ["docker", "--host", self.host(side), "pull", self.remote]

    def after(self, side: Side, run_id: str) -> None:
        quiet(["docker", "--host", self.host(side), "rmi", self.remote])


@register
class PushHundredMegabytes(_Registry):
    """`docker push` of the ~100 MB, 3-layer image to a new repository of an empty local registry."""

    name = "push-100mb-3-layers"

    def prepare(self, side: Side, run_id: str) -> None:
        from hull.testing.registry import LocalRegistry

        # A registry of its own per run: every layer is uploaded (nothing to skip or mount).
        self.registry.stop()
        self.registry = LocalRegistry()
        self.remote = f"{self.registry.domain}/bench/{run_id}:1"
        subprocess.run(["docker", "--host", self.host(side), "tag", self.big, self.remote], capture_output=True,
                       check=True)  # fmt: skip

    def command(self, side: Side, run_id: str) -> list[str]:
        return ["docker", "--host", self.host(side), "push", self.remote]

    def after(self, side: Side, run_id: str) -> None:
        quiet(["docker", "--host", self.host(side), "rmi", self.remote])


STATS_CONTAINERS = 10


@register
class StatsTenContainers(_Engines):
    """`docker stats --no-stream` of 10 running `sleep` containers, against hulld and against dockerd."""

    name = "stats-10-containers"

    def setup(self, work: Path) -> None:
        super().setup(work)
        for side in ("hull", "peer"):
            for i in range(STATS_CONTAINERS):
                subprocess.run(["docker", "--host", self.host(side), "run", "-d", "--name", f"stats-{i}", self.image,
                                "sleep", "3600"], capture_output=True, check=True, timeout=60)  # fmt: skip

    def command(self, side: Side, run_id: str) -> list[str]:
        return ["docker", "--host", self.host(side), "stats", "--no-stream"]

    def teardown(self) -> None:
        names = [f"stats-{i}" for i in range(STATS_CONTAINERS)]
        quiet(["docker", "--host", self.host("hull"), "rm", "-f", *names])
        super().teardown()


@register
class ExecTrue(_Engines):
    """`docker exec <ctr> true` into a running `sleep` container, against hulld and against dockerd."""

    name = "exec-true"
    container = "exec-bench"

    def setup(self, work: Path) -> None:
        super().setup(work)
        for side in ("hull", "peer"):
            subprocess.run(["docker", "--host", self.host(side), "run", "-d", "--name", self.container, self.image,
                            "sleep", "3600"], capture_output=True, check=True, timeout=60)  # fmt: skip

    def command(self, side: Side, run_id: str) -> list[str]:
        return ["docker", "--host", self.host(side), "exec", self.container, "true"]

    def teardown(self) -> None:
        quiet(["docker", "--host", self.host("hull"), "rm", "-f", self.container])
        super().teardown()


BUILD_FILES, BUILD_FILE_SIZE = 2000, 10_000
BUILD_DOCKERFILE = """\
FROM busybox:bench
COPY files /files
RUN sh -c 'mkdir /out && for i in $(seq 1000); do echo $i > /out/f$i; done'
ENV BENCH=1
CMD ["sh"]
"""


class _Build(_Engines):
    """The issue's 5-step build, by the official docker CLI's legacy builder against each daemon."""

    tag = "bench-build:1"

    def setup(self, work: Path) -> None:
        super().setup(work)
        self.context = work / "context"
        files = self.context / "files"
        for i in range(BUILD_FILES):
            path = files / f"d{i % 20:02d}" / f"f{i:04d}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(BUILD_FILE_SIZE))
        (self.context / "Dockerfile").write_text(BUILD_DOCKERFILE)

    def build(self, side: Side, *flags: str) -> list[str]:
        return ["env", "DOCKER_BUILDKIT=0", "docker", "--host", self.host(side), "build", "-q", *flags,
                "-t", self.tag, str(self.context)]  # fmt: skip


@register
class BuildCold(_Build):
    """`docker build --no-cache` of the 5-step build (COPY of 2,000 files, 20 MB; RUN writing 1,000 files)."""

    name = "build-cold"

    def prepare(self, side: Side, run_id: str) -> None:
        os.sync()

    def command(self, side: Side, run_id: str) -> list[str]:
        return self.build(side, "--no-cache")

    def after(self, side: Side, run_id: str) -> None:
        # Removes the intermediate images too (they are the tagged image's untagged parents).
        quiet(["docker", "--host", self.host(side), "rmi", self.tag])


@register
class BuildCached(_Build):
    """`docker build` of the 5-step build again, every step cached (the context is still sent and summed)."""

    name = "build-cached"

    def setup(self, work: Path) -> None:
        super().setup(work)
        for side in ("hull", "peer"):
            subprocess.run(self.build(side), capture_output=True, check=True, timeout=300)

    def command(self, side: Side, run_id: str) -> list[str]:
        return self.build(side)
