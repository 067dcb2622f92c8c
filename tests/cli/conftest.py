"""Fixtures of the `hull` command's tests.

`engine` (session): the daemon the end-to-end tests drive, as an `Engine` with `.host`
(a unix:// URL), `.image` (a busybox image present in it) and `.hull(*args)` (runs
`python -m hull.cli.main` with HULL_HOST set to the host). By default it is a private
Docker daemon (`hull.testing.dockerd.DockerDaemon`) into which busybox is imported with
`hull import`, and which is stopped at the end of the session. To run the same tests
against another engine (hulld), set HULL_TEST_HOST=unix:///run/hull/hull.sock; busybox is
then imported into that engine under HULL_TEST_IMAGE (default `hull-cli-test-busybox:latest`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


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


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if os.geteuid() != 0 and not os.environ.get("HULL_TEST_HOST"):
        pytest.skip("the private dockerd needs root")
    tar = _busybox_tar(tmp_path_factory.mktemp("cli-busybox"))
    host = os.environ.get("HULL_TEST_HOST")
    if host:
        eng = Engine(host, os.environ.get("HULL_TEST_IMAGE", "hull-cli-test-busybox:latest"))
        eng.hull("import", "-", eng.image, input=tar, check=True)
        yield eng
        return
    from hull.testing.dockerd import DockerDaemon

    daemon = DockerDaemon()
    try:
        eng = Engine(daemon.host, "busybox:latest")
        eng.hull("import", "-", eng.image, input=tar, check=True)
        yield eng
    finally:
        daemon.stop()
