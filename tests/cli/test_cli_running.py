"""`hull` on running containers, for what the docker-CLI scenario does not cover: pause,
rename, wait, kill -s, restart policies, --init, health checks and lxcfs's /proc (hulld only:
the reference dockerd here has no lxcfs and no docker-init)."""

import json
import time

import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container


def _hull(d: HullDaemon, *args: str) -> str:
    done = d.cli("hull", *args)
    assert done.returncode == 0, f"hull {' '.join(args)}: {done.stderr}"
    return done.stdout


def _state(d: HullDaemon, name: str) -> dict[str, object]:
    return dict(json.loads(_hull(d, "inspect", name))[0]["State"])


def test_pause_rename_kill_wait(hulld: HullDaemon) -> None:
    script = "trap 'exit 42' USR1; while true; do sleep 0.1; done"
    _hull(hulld, "run", "-d", "--name", "runner", "busybox", "sh", "-c", script)
    try:
        _hull(hulld, "pause", "runner")
        assert _state(hulld, "runner")["Paused"] is True
        _hull(hulld, "unpause", "runner")
        _hull(hulld, "rename", "runner", "renamed")
        assert json.loads(_hull(hulld, "inspect", "renamed"))[0]["Name"] == "/renamed"
        _hull(hulld, "kill", "-s", "USR1", "renamed")
        assert _hull(hulld, "wait", "renamed").strip() == "42"
    finally:
        hulld.cli("hull", "rm", "-f", "runner", "renamed")


def test_restart_policy_init_and_health(hulld: HullDaemon) -> None:
    _hull(hulld, "run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
    _hull(hulld, "run", "-d", "--name", "inited", "--init", "busybox", "sleep", "300")
    _hull(hulld, "run", "-d", "--name", "checked", "--health-cmd", "true", "--health-interval", "1s",
          "busybox", "sleep", "300")  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (
            _state(hulld, "flaky")["Status"] == "exited"
            and "(healthy)" in _hull(hulld, "ps", "--filter", "name=checked")
        ):
            time.sleep(0.2)
        assert json.loads(_hull(hulld, "inspect", "flaky"))[0]["RestartCount"] == 2
        assert _state(hulld, "flaky")["ExitCode"] == 3
        assert "(healthy)" in _hull(hulld, "ps", "--filter", "name=checked")
        assert _hull(hulld, "exec", "inited", "cat", "/proc/1/comm").strip() == "docker-init"
    finally:
        hulld.cli("hull", "rm", "-f", "flaky", "inited", "checked")


def test_proc_tells_the_truth_inside_a_limited_container(hulld: HullDaemon) -> None:
    meminfo = _hull(hulld, "run", "--rm", "--memory", "256m", "busybox", "head", "-1", "/proc/meminfo")
    assert meminfo.split()[:3] == ["MemTotal:", str(256 * 1024), "kB"]
    cpus = _hull(hulld, "run", "--rm", "--cpuset-cpus", "0", "busybox", "grep", "-c", "^processor", "/proc/cpuinfo")
    assert cpus.strip() == "1"
