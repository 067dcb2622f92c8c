"""--init: tini as PID 1 (bound at /sbin/docker-init) reaps orphans and forwards signals."""

import time

import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container

# The orphan `sleep 0.2` ends while PID 1 is (tini, or else) a `sleep` that never reaps it; ps looks at 1 s.
ORPHAN = "(sleep 0.2 &) ; (sleep 1; ps -o pid,stat,comm) & exec sleep 2"


def test_init_is_pid_1_and_reaps_orphans(hulld: HullDaemon) -> None:
    out = hulld.cli("docker", "run", "--rm", "--init", "busybox", "sh", "-c", ORPHAN)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    assert rows[0][0] == "1" and rows[0][2] == "docker-init"
    assert not any(r[1].startswith("Z") for r in rows), out.stdout


def test_without_init_the_orphan_stays_a_zombie(hulld: HullDaemon) -> None:
    out = hulld.cli("docker", "run", "--rm", "busybox", "sh", "-c", ORPHAN)
    assert out.returncode == 0, out.stderr
    assert any(r[1].startswith("Z") and r[2] == "sleep" for r in (x.split() for x in out.stdout.splitlines()[1:]))


def test_stop_of_an_init_container_is_prompt(hulld: HullDaemon) -> None:
    cid = hulld.cli("docker", "run", "-d", "--init", "busybox", "sleep", "300").stdout.strip()
    started = time.monotonic()
    assert hulld.cli("docker", "stop", cid).returncode == 0
    assert time.monotonic() - started < 5  # tini passed SIGTERM on; no 10 s wait for SIGKILL
    status, info = hulld.request("GET", f"/containers/{cid}/json")
    assert status == 200 and info["State"]["ExitCode"] == 143
    hulld.cli("docker", "rm", cid)


def test_missing_init_binary_is_a_clear_error(busybox_rootfs) -> None:  # type: ignore[no-untyped-def]
    d = HullDaemon(extra_args=["--init-path", "/nonexistent/tini"])
    try:
        d.import_busybox(busybox_rootfs)
        out = d.cli("docker", "run", "--init", "busybox", "true")
        assert out.returncode != 0 and "/nonexistent/tini was not found" in out.stderr
        assert d.cli("docker", "run", "--rm", "busybox", "true").returncode == 0
    finally:
        d.stop()
