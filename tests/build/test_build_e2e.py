"""`hull build` through hulld: the issue's Must-show against Docker's legacy builder, the cache, errors."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.testing.dockerd import DockerDaemon
from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container

DOCKERFILE = """\
ARG BASE=busybox:latest
FROM ${BASE} AS tools
ARG GREETING=hello
RUN mkdir -p /out && printf '#!/bin/sh\\necho "%s from the build stage"\\n' "$GREETING" > /out/greet \\
 && chmod 755 /out/greet
FROM busybox:latest
ENV A=b C="d e"
LABEL x=y "z w"=q
COPY app /app/
COPY --from=tools /out/greet /usr/local/bin/greet
WORKDIR /app
USER 0
EXPOSE 80 90/udp
VOLUME /data
HEALTHCHECK --interval=5s CMD true
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["greet"]
"""
COMPARED = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "Healthcheck")


def _context(path: Path) -> Path:
    (path / "app").mkdir(parents=True)
    (path / "app" / "one.txt").write_text("one\n")
    (path / "app" / "two.txt").write_text("two\n")
    (path / "Dockerfile").write_text(DOCKERFILE)
    (path / "ignored.log").write_text("x")
    (path / ".dockerignore").write_text("*.log\n")
    return path


def _legacy(host: str, *args: str) -> "subprocess.CompletedProcess[str]":
    env = {**os.environ, "DOCKER_BUILDKIT": "0", "DOCKER_HOST": host}
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def _shape(host: str, image: str) -> tuple[list[str], int, dict[str, object]]:
    raw = json.loads(_legacy(host, "image", "inspect", image).stdout)[0]
    listed = _legacy(host, "history", "--no-trunc", "--format", "{{json .}}", image).stdout
    history = [json.loads(line) for line in listed.splitlines() if line]
    created_by = [h["CreatedBy"] for h in history]  # the COPY lines' file:/dir:/multi: hashes included
    return created_by, len(raw["RootFS"]["Layers"]), {k: raw["Config"].get(k) for k in COMPARED}


@pytest.fixture(scope="module")
def engines(busybox_rootfs: Path) -> Iterator[tuple[HullDaemon, DockerDaemon]]:
    hulld = HullDaemon()
    docker = DockerDaemon()
    try:
        hulld.import_busybox(busybox_rootfs, "busybox:latest")
        tar = subprocess.run(["tar", "-C", str(busybox_rootfs), "-c", "."], capture_output=True, check=True).stdout
        docker.docker("import", "-", "busybox:latest", input=tar)
        yield hulld, docker
    finally:
        hulld.stop()
        docker.stop()


def test_multi_stage_matches_docker_and_runs(engines: tuple[HullDaemon, DockerDaemon], tmp_path: Path) -> None:
    hulld, docker = engines
    ctx = _context(tmp_path / "ctx")
    built = hulld.cli("hull", "build", "-t", "app:1", str(ctx), timeout=300)
    assert built.returncode == 0, built.stderr
    assert "Step 1/16 : ARG BASE=busybox:latest" in built.stdout and "Successfully tagged app:1" in built.stdout
    assert _legacy(docker.host, "build", "-t", "app:1", str(ctx)).returncode == 0
    assert _shape(hulld.host, "app:1") == _shape(docker.host, "app:1")
    ran = hulld.cli("hull", "run", "--rm", "app:1", timeout=120)
    assert ran.returncode == 0 and ran.stdout == "hello from the build stage\n", ran.stderr
    assert hulld.cli("hull", "ps", "-aq").stdout == ""


SOURCES_DOCKERFILE = """\
FROM busybox:latest AS b
RUN mkdir -p /out/x && echo hi > /out/x/f && ln -s f /out/x/l
FROM busybox:latest
COPY a.txt /a
COPY dir /d
COPY a.txt dir/f1 /m/
COPY --chown=1:2 dir/link /l
ADD a.txt /b
COPY . /all
COPY --from=b /out /o
COPY --from=b /out/x/l /l2
"""


def test_source_hashes_and_symlinks_as_docker(engines: tuple[HullDaemon, DockerDaemon], tmp_path: Path) -> None:
    """The history's source hashes (tarsum of the client's tar headers; of the files' own headers
    for --from) and what is copied: a symlink source copies its target, symlinks below a
    directory stay links. Both daemons get the same context from the same docker CLI."""
    hulld, docker = engines
    ctx = tmp_path / "src"
    (ctx / "dir" / "sub").mkdir(parents=True)
    (ctx / "a.txt").write_text("hello\n")
    (ctx / "dir" / "f1").write_text("x")
    (ctx / "dir" / "f1").chmod(0o600)
    (ctx / "dir" / "sub" / "f2").write_text("yy\n")
    (ctx / "dir" / "link").symlink_to("f1")
    (ctx / "Dockerfile").write_text(SOURCES_DOCKERFILE)
    for host in (hulld.host, docker.host):
        built = _legacy(host, "build", "-q", "-t", "sources:1", str(ctx))
        assert built.returncode == 0, built.stderr
    assert _shape(hulld.host, "sources:1")[0] == _shape(docker.host, "sources:1")[0]
    listing = "ls -ln /l /l2 /d/link /o/x/l | cut -c1-10; cat /l /l2"
    seen = [_legacy(h, "run", "--rm", "--network", "none", "sources:1", "sh", "-c", listing).stdout
            for h in (hulld.host, docker.host)]  # fmt: skip
    assert seen[0] == seen[1] == "lrwxrwxrwx\n-rw-------\n-rw-r--r--\nlrwxrwxrwx\nxhi\n"


def test_cache_reuses_every_step_then_only_from_the_changed_copy(
    engines: tuple[HullDaemon, DockerDaemon], tmp_path: Path
) -> None:
    hulld, _ = engines
    ctx = _context(tmp_path / "ctx")
    first = hulld.cli("hull", "build", "-q", "-t", "cached", str(ctx), timeout=300)
    again = hulld.cli("hull", "build", "-t", "cached", str(ctx), timeout=300)
    assert again.returncode == 0
    assert again.stdout.count(" ---> Using cache") == 13  # every step but the meta ARG and the two FROMs
    assert "Running in" not in again.stdout
    assert first.stdout.strip().startswith("sha256:") and first.stdout.strip()[7:19] in again.stdout
    (ctx / "app" / "two.txt").write_text("changed\n")
    changed = hulld.cli("hull", "build", "-t", "cached", str(ctx), timeout=300)
    steps = changed.stdout.split("Step ")
    copy_at = next(i for i, s in enumerate(steps) if s.split(" : ")[-1].startswith("COPY app"))
    assert all("Using cache" in s for s in steps[2:copy_at] if not s.split(" : ")[-1].startswith("FROM"))
    assert not any("Using cache" in s for s in steps[copy_at:])


def test_docker_cli_and_sdk_build_against_hulld(engines: tuple[HullDaemon, DockerDaemon], tmp_path: Path) -> None:
    import docker as sdk_module

    hulld, _ = engines
    ctx = _context(tmp_path / "ctx")
    out = _legacy(hulld.host, "build", "-t", "bycli", str(ctx))
    assert out.returncode == 0, out.stderr
    client = sdk_module.DockerClient(base_url=hulld.host)
    try:
        image, _ = client.images.build(path=str(ctx), tag="bysdk")
        assert "bysdk:latest" in image.tags
    finally:
        client.close()


@pytest.mark.parametrize(
    ("dockerfile", "wanted"),
    [
        ("FROM busybox:latest\nFOO bar\n", "line 2 of Dockerfile: unknown instruction: FOO"),
        ("RUN true\n", "no build stage"),
        ('FROM busybox:latest\nCMD ["a",\n', "line 2 of Dockerfile: CMD: invalid JSON array form"),
        ("FROM busybox:latest\nCOPY ../x /x\n", "forbidden path outside the build context: ../x (Dockerfile line 2"),
        ("FROM busybox:latest\nCOPY --from=nope /a /b\n", "invalid from flag value nope"),
        ("FROM busybox:latest\nRUN echo partial > /f && exit 3\n", "returned a non-zero code: 3"),
    ],
)
def test_bad_dockerfiles_fail_cleanly(engines: tuple[HullDaemon, DockerDaemon], tmp_path: Path,
                                      dockerfile: str, wanted: str) -> None:  # fmt: skip
    hulld, _ = engines
    (tmp_path / "Dockerfile").write_text(dockerfile)
    images_before = hulld.cli("hull", "images", "-aq").stdout
    out = hulld.cli("hull", "build", str(tmp_path), timeout=120)
    assert out.returncode != 0
    assert wanted in out.stderr
    assert hulld.cli("hull", "ps", "-aq").stdout == ""
    assert hulld.cli("hull", "images", "-aq").stdout == images_before
