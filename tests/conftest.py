"""Session-wide rules and fixtures of hull's test suite.

Rules:
- A run that collects no test fails (status 1), never passes as pytest's "no tests collected" (5).
- Tests marked `container` need root. Without root they FAIL, so that a suite which silently
  tested nothing cannot pass. Set HULL_SKIP_CONTAINER_TESTS=1 to skip them instead (say, on a
  laptop without root); CI never sets it.
- After the session, `../shared/tools/leakcheck` (beside the repo) must find nothing left
  behind (mounts, cgroups, devices, processes); if it finds anything the run fails and its
  findings are printed.

Fixtures:
- `busybox_rootfs` (session): a busybox root filesystem, built once; never modify it.
- `bundle` (function): a fresh OCI bundle `<tmp_path>/bundle` with its own copy of that rootfs
  in `rootfs/` and the default config.json of `hull-runtime spec`.
- `hulld` (module): a private hulld (hull.testing.hulld) with busybox:latest imported, shared by
  a test module; `own_hulld` (function): one a test may take down (kill, restart) itself.
- `sdk` (function): a Docker SDK client on the module's `hulld`.
- `registry` (module): a private docker-registry on 127.0.0.1 (hull.testing.registry).
"""

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from hull.testing.busybox import build_busybox_rootfs

if TYPE_CHECKING:
    import docker

    from hull.testing.hulld import HullDaemon
    from hull.testing.registry import LocalRegistry

# Property tests share two cores with container tests: time limits would make them flaky.
settings.register_profile("hull", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hull")

SKIP_CONTAINER_ENV = "HULL_SKIP_CONTAINER_TESTS"
LEAKCHECK = Path(__file__).resolve().parents[2] / "shared" / "tools" / "leakcheck"


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox root filesystem shared by the session (read-only by convention: copy it to change it)."""
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def bundle(tmp_path: Path, busybox_rootfs: Path) -> Path:
    """A fresh OCI bundle directory: `rootfs/` (a private copy of busybox_rootfs) and config.json."""
    from hull.runtime.spec import CONFIG_FILE, default_spec  # imported here so unit tests don't need the runtime

    path = tmp_path / "bundle"
    path.mkdir()
    shutil.copytree(busybox_rootfs, path / "rootfs", symlinks=True)
    (path / CONFIG_FILE).write_text(json.dumps(default_spec(), indent="\t"))
    return path


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get(SKIP_CONTAINER_ENV):
        return f"container tests: skipped ({SKIP_CONTAINER_ENV} is set)"
    return f"container tests: run (as uid {os.geteuid()})"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("container") is None:
        return
    if os.environ.get(SKIP_CONTAINER_ENV):
        pytest.skip(f"container test skipped: {SKIP_CONTAINER_ENV} is set")
    if os.geteuid() != 0:
        pytest.fail(
            f"container tests need root (this is uid {os.geteuid()}): run as root, "
            f"or set {SKIP_CONTAINER_ENV}=1 to skip them",
            pytrace=False,
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    # Collection errors already fail the run (status 2); this catches a run that found nothing to test,
    # which pytest would end with status 5 and a CI script might take for success.
    if not session.items and not session.testsfailed:
        raise pytest.UsageError(
            "no tests collected: a run that tests nothing fails here (check the paths and the -k/-m filters)"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not LEAKCHECK.exists() or session.testscollected == 0:
        return
    cmd = [str(LEAKCHECK)]
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        # Anything still mounted under the tests' temp dirs counts, whatever the test's name.
        cmd += ["--root", str(factory.getbasetemp())]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        found, status = f"could not run {LEAKCHECK}: {e}", 2
    else:
        found, status = (done.stdout + done.stderr).strip(), done.returncode
    if status == 0:
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    header = f"leakcheck: the tests left something behind, so the run fails ({LEAKCHECK})"
    if tr is not None:
        tr.ensure_newline()
        tr.section(header, sep="!", red=True, bold=True)
        tr.write_line(found)
    else:
        print(f"{header}\n{found}")
    if session.exitstatus == 0:
        session.exitstatus = 1


def _hulld_with_busybox(rootfs: Path) -> "Iterator[HullDaemon]":
    from hull.testing.hulld import HullDaemon

    d = HullDaemon()
    try:
        d.import_busybox(rootfs)
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def hulld(busybox_rootfs: Path) -> "Iterator[HullDaemon]":
    yield from _hulld_with_busybox(busybox_rootfs)


@pytest.fixture
def own_hulld(busybox_rootfs: Path) -> "Iterator[HullDaemon]":
    yield from _hulld_with_busybox(busybox_rootfs)


@pytest.fixture
def sdk(hulld: "HullDaemon") -> "Iterator[docker.DockerClient]":
    import docker

    client = docker.DockerClient(base_url=hulld.host, version="auto", timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def registry() -> "Iterator[LocalRegistry]":
    from hull.testing.registry import LocalRegistry

    r = LocalRegistry()
    try:
        yield r
    finally:
        r.stop()
