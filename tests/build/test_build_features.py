"""`hull build` through hulld: ADD (archives, URLs), --chown by name, heredocs, ONBUILD, the cache
across a restart, and the CLI's --target, --iidfile, -q and several -t."""

import http.server
import io
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container


def _build(hulld: HullDaemon, ctx: Path, dockerfile: str, *flags: str, program: str = "hull") -> str:
    """Build `dockerfile` in `ctx` with `hull build` or the docker CLI's legacy builder; returns the
    CLI's stdout (the test fails on a failed build)."""
    (ctx / "Dockerfile").write_text(dockerfile)
    if program == "hull":
        out = hulld.cli("hull", "build", *flags, str(ctx), timeout=300)
    else:
        argv = ["docker", "build", *flags, str(ctx)]
        env = {**hulld.env, "DOCKER_BUILDKIT": "0"}
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _run(hulld: HullDaemon, image: str, script: str) -> str:
    out = hulld.cli("hull", "run", "--rm", image, "sh", "-c", script, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _inspect(hulld: HullDaemon, image: str) -> dict[str, object]:
    out = hulld.cli("hull", "image", "inspect", image)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout)[0])


def _tar(files: dict[str, bytes], mode: str, owner: int = 0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o640, owner, owner
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    path = tmp_path / "ctx"
    path.mkdir()
    return path


def test_add_unpacks_a_local_archive_but_not_a_plain_file(hulld: HullDaemon, ctx: Path) -> None:
    (ctx / "bundle.tar.gz").write_bytes(_tar({"inner/hello.txt": b"hi\n"}, "w:gz", owner=1234))
    (ctx / "plain.tar").write_bytes(b"not really a tar\n")
    _build(hulld, ctx, "FROM busybox:latest\nADD bundle.tar.gz plain.tar /opt/\n", "-t", "add-tar")
    listed = _run(hulld, "add-tar", "cd /opt; cat inner/hello.txt; stat -c '%u %a' inner/hello.txt; cat plain.tar")
    assert listed == "hi\n1234 640\nnot really a tar\n"  # unpacked entries keep their owner
    assert "bundle.tar.gz" not in _run(hulld, "add-tar", "ls /opt")


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A tiny HTTP server on 127.0.0.1 serving a directory: (base URL, the directory)."""
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(served), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_add_of_a_url_is_fetched_by_the_daemon_and_never_unpacked(
    hulld: HullDaemon, ctx: Path, http_files: tuple[str, Path]
) -> None:
    base, served = http_files
    (served / "notes.txt").write_text("from the web\n")
    (served / "pack.tar").write_bytes(_tar({"x": b"x"}, "w"))
    dockerfile = f"FROM busybox:latest\nADD {base}/notes.txt /web/named.txt\nADD {base}/pack.tar /web/\n"
    _build(hulld, ctx, dockerfile, "-t", "add-url")
    out = _run(hulld, "add-url", "cat /web/named.txt; stat -c '%a %u' /web/named.txt; tar -tf /web/pack.tar")
    assert out == "from the web\n600 0\nx\n"
    # Changed content at the same URL is a new checksum: the step misses the cache.
    (served / "notes.txt").write_text("changed\n")
    again = _build(hulld, ctx, dockerfile, "-t", "add-url")
    assert again.split("Step 3/3")[0].count("Using cache") == 0
    assert _run(hulld, "add-url", "cat /web/named.txt") == "changed\n"


def test_add_of_a_missing_url_fails_cleanly(hulld: HullDaemon, ctx: Path, http_files: tuple[str, Path]) -> None:
    base, _ = http_files
    (ctx / "Dockerfile").write_text(f"FROM busybox:latest\nADD {base}/nothing /x\n")
    out = hulld.cli("hull", "build", str(ctx), timeout=120)
    assert out.returncode != 0 and "404" in out.stderr and "line 2" in out.stderr


def test_copy_chown_resolves_names_in_the_image(hulld: HullDaemon, ctx: Path) -> None:
    (ctx / "f").write_text("owned\n")
    (ctx / "d").mkdir()
    (ctx / "d" / "g").write_text("g\n")
    dockerfile = """\
FROM busybox:latest
RUN echo 'app:x:1234:9999::/:/bin/sh' >> /etc/passwd && echo 'app:x:2345:' >> /etc/group \\
 && echo 'other:x:3456:' >> /etc/group
COPY --chown=app f /by-user
COPY --chown=app:other f /by-user-group
COPY --chown=1000:100 d /new/dir/
COPY --chown=1000:100 f /new2/sub/file
COPY --chmod=600 f /by-chmod
"""
    _build(hulld, ctx, dockerfile, "-t", "chown")
    paths = "/by-user /by-user-group /new /new/dir /new/dir/g /new2 /new2/sub /new2/sub/file /by-chmod"
    out = _run(hulld, "chown", f"stat -c '%n %u:%g %a' {paths}")
    # What Docker's legacy builder gives (--chmod aside: it needs BuildKit there).
    assert out.splitlines() == [
        "/by-user 1234:2345 644",  # a name alone names the group too
        "/by-user-group 1234:3456 644",
        "/new 0:0 755",  # a directory source: the parents made for its destination stay root's
        "/new/dir 1000:100 755",
        "/new/dir/g 1000:100 644",
        "/new2 1000:100 755",  # a file source: they get the owner
        "/new2/sub 1000:100 755",
        "/new2/sub/file 1000:100 644",
        "/by-chmod 0:0 600",
    ]
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY --chown=nosuchuser f /f\n")
    bad = hulld.cli("hull", "build", str(ctx), timeout=120)
    assert bad.returncode != 0 and "nosuchuser" in bad.stderr and "line 2" in bad.stderr


def test_copy_heredoc(hulld: HullDaemon, ctx: Path) -> None:
    dockerfile = """\
FROM busybox:latest
ENV NAME=world
COPY <<EOF /greeting
hello $NAME
EOF
COPY <<"EOT" /literal
keep $NAME
EOT
RUN <<EOF
echo ran > /from-run
EOF
"""
    _build(hulld, ctx, dockerfile, "-t", "heredoc")
    assert _run(hulld, "heredoc", "cat /greeting /literal /from-run") == "hello world\nkeep $NAME\nran\n"


def test_onbuild_triggers_run_in_the_child_build(hulld: HullDaemon, ctx: Path) -> None:
    (ctx / "payload").write_text("payload\n")
    base = """\
FROM busybox:latest
ONBUILD COPY payload /payload
ONBUILD RUN echo triggered > /t
"""
    out = _build(hulld, ctx, base, "-t", "onbuild-base")
    assert "triggered" not in _run(hulld, "onbuild-base", "cat /t 2>/dev/null || true")
    assert _inspect(hulld, "onbuild-base")["Config"]["OnBuild"] == [  # type: ignore[index]
        "COPY payload /payload",
        "RUN echo triggered > /t",
    ]
    out = _build(hulld, ctx, 'FROM onbuild-base\nCMD ["true"]\n', "-t", "onbuild-child")
    assert "Step 1/2 : FROM onbuild-base\n# Executing 2 build triggers\n" in out
    assert _run(hulld, "onbuild-child", "cat /payload /t") == "payload\ntriggered\n"
    assert not _inspect(hulld, "onbuild-child")["Config"]["OnBuild"]  # type: ignore[index]


def test_target_builds_up_to_that_stage(hulld: HullDaemon, ctx: Path) -> None:
    dockerfile = """\
FROM busybox:latest AS first
RUN echo first > /stage
FROM busybox:latest AS second
RUN echo second > /stage
"""
    out = _build(hulld, ctx, dockerfile, "--target", "first", "-t", "target")
    assert "echo second" not in out and "Step 2/2" in out
    assert _run(hulld, "target", "cat /stage") == "first\n"
    (ctx / "Dockerfile").write_text(dockerfile)
    bad = hulld.cli("hull", "build", "--target", "third", str(ctx))
    assert bad.returncode != 0 and "failed to reach build target third" in bad.stderr


@pytest.mark.parametrize("program", ["hull", "docker"])
def test_quiet_iidfile_and_several_tags(hulld: HullDaemon, ctx: Path, tmp_path: Path, program: str) -> None:
    iidfile = tmp_path / "iid"
    out = _build(hulld, ctx, f"FROM busybox:latest\nENV Q={program}\n", "-q", "--iidfile", str(iidfile),
                 "-t", f"{program}:one", "-t", f"{program}:two", "--tag", f"{program}-other",
                 program=program)  # fmt: skip
    image_id = out.strip()
    assert out == image_id + "\n" and image_id.startswith("sha256:") and len(image_id) == 71
    assert iidfile.read_text().rstrip("\n") == image_id  # docker -q writes the id as the daemon's stream had it
    for name in (f"{program}:one", f"{program}:two", f"{program}-other:latest"):
        assert _inspect(hulld, name)["Id"] == image_id


def test_the_cache_survives_a_daemon_restart(own_hulld: HullDaemon, ctx: Path) -> None:
    (ctx / "f").write_text("f\n")
    dockerfile = "FROM busybox:latest\nCOPY f /f\nRUN echo x > /x\nENV A=1\n"
    first = _build(own_hulld, ctx, dockerfile, "-q")
    own_hulld.restart()
    again = _build(own_hulld, ctx, dockerfile)
    assert again.count(" ---> Using cache") == 3 and "Running in" not in again
    assert again.rstrip().endswith(f"Successfully built {first.strip()[7:19]}")
