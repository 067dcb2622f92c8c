"""Fixtures of the `hull` command's tests.

`engine` (session, two params): the daemon the end-to-end tests drive, as an `Engine` with
`.host` (a unix:// URL), `.image` (a busybox image present in it) and `.hull(*args)` (runs
`python -m hull.cli.main` with HULL_HOST set to the host). Every test runs against a private
hulld (`hull.testing.hulld.HullDaemon`) and against a private Docker daemon
(`hull.testing.dockerd.DockerDaemon`), each with busybox imported by `hull import` and
stopped at the end of the session: the same command must behave the same on both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hull.testing.dockerd import DockerDaemon
from hull.testing.hulld import HullDaemon


@dataclass
class Engine:
    host: str
    image: str

    def hull(
        self, *args: str, input: bytes | None = None, check: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HULL_HOST": self.host}
        raw = subprocess.run(
            [sys.executable, "-m", "hull.cli.main", *args],
            input=input, capture_output=True, timeout=timeout, env=env, check=False,
        )  # fmt: skip
        done = subprocess.CompletedProcess(
            raw.args, raw.returncode, raw.stdout.decode(errors="replace"), raw.stderr.decode(errors="replace")
        )
        if check and done.returncode != 0:
            raise AssertionError(f"hull {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done


def _busybox_tar(path: Path) -> bytes:
    from hull.testing.busybox import build_busybox_rootfs

    rootfs = build_busybox_rootfs(path / "rootfs")
    return subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True).stdout


@pytest.fixture(scope="session", params=["hulld", "dockerd"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """hulld first (the contract), then the real dockerd (the oracle the behaviour was checked against)."""
    tar = _busybox_tar(tmp_path_factory.mktemp("cli-busybox"))
    daemon: HullDaemon | DockerDaemon = HullDaemon() if request.param == "hulld" else DockerDaemon()
    try:
        eng = Engine(daemon.host, "busybox:latest")
        eng.hull("import", "-", eng.image, input=tar, check=True)
        yield eng
    finally:
        daemon.stop()
