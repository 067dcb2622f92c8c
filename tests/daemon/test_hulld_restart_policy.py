"""Restart policies through the Engine API: on-failure, always, unless-stopped, back-off, daemon start."""

import itertools
import json
import time
from pathlib import Path

import docker
import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container


def _inspect(hulld: HullDaemon, name: str) -> dict:
    status, info = hulld.request("GET", f"/containers/{name}/json")
    assert status == 200, info
    return dict(info)


def _until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _starts(hulld: HullDaemon, cid: str, since: float) -> list[int]:
    out = hulld.cli(
        "docker", "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
        "--filter", f"container={cid}", "--filter", "event=start", "--format", "{{json .}}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return [json.loads(line)["timeNano"] for line in out.stdout.splitlines()]


def test_on_failure_restarts_at_most_n_times(hulld: HullDaemon) -> None:
    run = hulld.cli("docker", "run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1")
    cid = run.stdout.strip()
    assert run.returncode == 0, run.stderr
    _until(lambda: _inspect(hulld, cid)["RestartCount"] == 2 and _inspect(hulld, cid)["State"]["Status"] == "exited")
    time.sleep(1.0)  # a third restart would have come after 400 ms
    info = _inspect(hulld, cid)
    assert (info["RestartCount"], info["State"]["Status"], info["State"]["ExitCode"]) == (2, "exited", 1)
    assert hulld.cli("docker", "rm", cid).returncode == 0


def test_on_failure_leaves_a_clean_exit_alone(hulld: HullDaemon) -> None:
    cid = hulld.cli("docker", "run", "-d", "--restart", "on-failure", "busybox", "true").stdout.strip()
    _until(lambda: _inspect(hulld, cid)["State"]["Status"] == "exited")
    time.sleep(0.5)
    assert _inspect(hulld, cid)["RestartCount"] == 0
    hulld.cli("docker", "rm", cid)


def test_always_restarts_with_growing_backoff_until_stop(hulld: HullDaemon) -> None:
    since = time.time()
    cid = hulld.cli("docker", "run", "-d", "--restart", "always", "busybox", "sh", "-c", "exit 0").stdout.strip()
    _until(lambda: _inspect(hulld, cid)["RestartCount"] >= 4)
    starts = _starts(hulld, cid, since)
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(starts)]
    assert len(gaps) >= 3
    # 100, 200, 400 ms back-off plus the run itself: each gap is longer than the last.
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4
    assert gaps[0] < gaps[1] < gaps[2]
    stop = hulld.cli("docker", "stop", cid)
    assert stop.returncode == 0, stop.stderr
    count = _inspect(hulld, cid)["RestartCount"]
    time.sleep(1.5)
    info = _inspect(hulld, cid)
    assert info["State"]["Status"] == "exited" and not info["State"]["Restarting"]
    assert info["RestartCount"] == count  # stop cancelled any pending restart
    hulld.cli("docker", "rm", cid)


def test_restarting_state_and_rm_force(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    c = sdk.containers.run("busybox", ["sh", "-c", "exit 3"], detach=True, restart_policy={"Name": "always"})
    # The back-off reaches seconds after a few quick exits: the container waits in "restarting".
    _until(lambda: _inspect(hulld, c.id)["RestartCount"] >= 5)
    _until(lambda: _inspect(hulld, c.id)["State"]["Restarting"])
    state = _inspect(hulld, c.id)["State"]
    assert (state["Status"], state["Running"], state["Pid"], state["ExitCode"]) == ("restarting", True, 0, 3)
    assert hulld.cli("docker", "rm", c.id).returncode != 0  # a restarting container counts as running
    rm = hulld.cli("docker", "rm", "-f", c.id)
    assert rm.returncode == 0, rm.stderr
    assert hulld.request("GET", f"/containers/{c.id}/json")[0] == 404


def test_kill_ends_the_policy_as_docker_does(hulld: HullDaemon) -> None:
    cid = hulld.cli("docker", "run", "-d", "--restart", "always", "busybox", "sleep", "300").stdout.strip()
    assert hulld.cli("docker", "kill", cid).returncode == 0
    _until(lambda: _inspect(hulld, cid)["State"]["Status"] == "exited")
    time.sleep(0.5)
    info = _inspect(hulld, cid)
    assert (info["State"]["Status"], info["State"]["ExitCode"], info["RestartCount"]) == ("exited", 137, 0)
    hulld.cli("docker", "rm", cid)


def test_bad_restart_policy_is_refused_and_creates_nothing(hulld: HullDaemon) -> None:
    before = hulld.request("GET", "/containers/json?all=1")[1]
    for policy, message in (
        ({"Name": "sometimes"}, "invalid restart policy 'sometimes'"),
        ({"Name": "always", "MaximumRetryCount": 2}, "maximum retry count cannot be used with restart policy"),
    ):
        body = json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"RestartPolicy": policy}}).encode()
        status, out = hulld.request("POST", "/containers/create", body, {"Content-Type": "application/json"})
        assert status == 400 and message in out["message"]
    assert hulld.request("GET", "/containers/json?all=1")[1] == before



def test_daemon_start_brings_back_always_but_not_stopped_unless_stopped(own_hulld: HullDaemon) -> None:
    d = own_hulld
    always = d.cli("docker", "run", "-d", "--restart", "always", "busybox", "sleep", "300").stdout.strip()
    unless = d.cli("docker", "run", "-d", "--restart", "unless-stopped", "busybox", "sleep", "300").stdout.strip()
    plain = d.cli("docker", "run", "-d", "busybox", "sleep", "300").stdout.strip()
    for cid in (always, unless, plain):
        assert d.cli("docker", "stop", "-t", "1", cid).returncode == 0
    d.terminate()
    d.start()
    info = _inspect(d, always)
    assert info["State"]["Running"] and info["State"]["Pid"] > 0
    assert Path(f"/proc/{info['State']['Pid']}").exists()
    assert not _inspect(d, unless)["State"]["Running"]
    assert not _inspect(d, plain)["State"]["Running"]


def test_unless_stopped_restarts_after_its_own_exit(hulld: HullDaemon) -> None:
    cid = hulld.cli("docker", "run", "-d", "--restart", "unless-stopped", "busybox", "sh", "-c", "sleep 0.3; exit 2")
    cid_s = cid.stdout.strip()
    _until(lambda: _inspect(hulld, cid_s)["RestartCount"] >= 2)
    assert hulld.cli("docker", "stop", cid_s).returncode == 0
    hulld.cli("docker", "rm", cid_s)
