"""`hull cp` end to end, against hulld and the real dockerd (the `engine` fixture): the same results on both."""

from __future__ import annotations

import io
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Engine  # tests/cli/conftest.py (type only: test directories are not packages)

pytestmark = pytest.mark.container

SETUP = (
    "mkdir -p /d/sub && echo hi > /d/f && echo x > /d/sub/g && ln -s /etc /hostetc-link"
    " && ln -s ../../../../etc/passwd /d/pw"
)


@pytest.fixture(params=["running", "stopped"])
def ctr(request: pytest.FixtureRequest, engine: Engine) -> Iterator[str]:
    name = "cp-" + uuid.uuid4().hex[:8]
    if request.param == "running":
        engine.hull("run", "-d", "--name", name, engine.image, "sh", "-c", SETUP + " && sleep 600", check=True)
        while engine.hull("exec", name, "test", "-L", "/d/pw").returncode != 0:
            pass
    else:
        engine.hull("run", "--name", name, engine.image, "sh", "-c", SETUP, check=True)
    yield name
    engine.hull("rm", "-f", name, check=True)


def test_cp_out_file_dir_and_contents(engine: Engine, ctr: str, tmp_path: Path) -> None:
    r = engine.hull("cp", f"{ctr}:/d/f", str(tmp_path / "f"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "f").read_bytes() == b"hi\n"
    r = engine.hull("cp", f"{ctr}:/d/sub", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "sub" / "g").read_bytes() == b"x\n"
    r = engine.hull("cp", f"{ctr}:/d/sub/.", str(tmp_path / "new"))
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path / "new") == ["g"]
    # A relative symlink climbing out of the destination is refused on the host, as docker does.
    r = engine.hull("cp", f"{ctr}:/d", str(tmp_path / "dcopy"))
    assert r.returncode == 1 and "invalid symlink" in r.stderr
    r = engine.hull("cp", f"{ctr}:/d/f", "-")
    assert r.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(r.stdout.encode())) as t:
        assert t.getnames() == ["f"]


def test_cp_in_and_through_symlinks(engine: Engine, ctr: str, tmp_path: Path) -> None:
    src = tmp_path / "payload"
    src.write_bytes(b"data\n")
    name = "hull-cp-" + uuid.uuid4().hex[:8]
    r = engine.hull("cp", str(src), f"{ctr}:/hostetc-link/{name}")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(f"/etc/{name}")
    r = engine.hull("cp", f"{ctr}:/etc/{name}", str(tmp_path / "back"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back").read_bytes() == b"data\n"
    # -L follows /d/pw inside the container: the container's passwd, not the host's.
    r = engine.hull("cp", "-L", f"{ctr}:/d/pw", str(tmp_path / "pw"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "pw").read_bytes() != Path("/etc/passwd").read_bytes()
    assert b"root:" in (tmp_path / "pw").read_bytes()
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a").write_bytes(b"A")
    r = engine.hull("cp", str(tmp_path / "dir") + "/.", f"{ctr}:/d/sub")
    assert r.returncode == 0, r.stderr
    r = engine.hull("cp", f"{ctr}:/d/sub/a", "-")
    with tarfile.open(fileobj=io.BytesIO(r.stdout.encode())) as t:
        assert t.extractfile("a").read() == b"A"  # type: ignore[union-attr]


def test_cp_errors(engine: Engine, ctr: str, tmp_path: Path) -> None:
    src = tmp_path / "payload"
    src.write_bytes(b"data\n")
    r = engine.hull("cp", f"{ctr}:/nope", str(tmp_path))
    assert (r.returncode, r.stderr.strip()) == (
        1,
        f"Error response from daemon: Could not find the file /nope in container {ctr}",
    )
    r = engine.hull("cp", str(src), f"{ctr}:/nodir/x")
    assert (r.returncode, r.stderr.strip()) == (
        1,
        f"Error response from daemon: Could not find the file /nodir in container {ctr}",
    )
    r = engine.hull("cp", str(src), f"{ctr}:/d/f/x")
    assert (r.returncode, r.stderr.strip()) == (1, "Error response from daemon: extraction point is not a directory")
    r = engine.hull("cp", "a", "b")
    assert (r.returncode, r.stderr.strip()) == (1, "must specify at least one container source")
    r = engine.hull("cp", f"{ctr}:/a", f"{ctr}:/b")
    assert (r.returncode, r.stderr.strip()) == (1, "copying between containers is not supported")
    r = engine.hull("cp", f"{ctr}:/d/sub", str(src))
    assert (r.returncode, r.stderr.strip()) == (1, "cannot copy directory")
    r = engine.hull("cp", f"{ctr}:/d/f", str(tmp_path / "nodir" / "x"))
    assert r.returncode == 1 and "invalid output path: directory" in r.stderr
    assert not (tmp_path / "nodir").exists()
