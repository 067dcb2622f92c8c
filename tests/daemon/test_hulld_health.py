"""Health checks against hulld: --health-* flags and an image's HEALTHCHECK, State.Health in
inspect, `docker ps`'s "(healthy)", and the health_status events, with short intervals."""

import json
import time
from typing import Any

import docker
import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container

FAST = ["--health-interval", "200ms", "--health-retries", "2"]


def _health(sdk: docker.DockerClient, cid: str) -> dict[str, Any]:
    health: dict[str, Any] = sdk.api.inspect_container(cid)["State"].get("Health")
    return health


def _wait_status(sdk: docker.DockerClient, cid: str, status: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (health := _health(sdk, cid))["Status"] != status:
        assert time.monotonic() < deadline, health
        time.sleep(0.05)
    return health


def _run(hulld: HullDaemon, *args: str) -> str:
    r = hulld.cli("docker", "run", "-d", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _ps_status(hulld: HullDaemon, cid: str) -> str:
    return hulld.cli("docker", "ps", "--filter", f"id={cid}", "--format", "{{.Status}}").stdout.strip()


def test_healthy(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    since = time.time()
    cid = _run(hulld, "--health-cmd", "echo fine", *FAST, "busybox", "sleep", "1000")
    try:
        config = sdk.api.inspect_container(cid)["Config"]["Healthcheck"]
        # as the docker CLI maps the flags
        assert config == {"Test": ["CMD-SHELL", "echo fine"], "Interval": 200_000_000, "Retries": 2}
        assert _health(sdk, cid) == {"Status": "starting", "FailingStreak": 0, "Log": []}
        assert _ps_status(hulld, cid).endswith("(health: starting)")
        health = _wait_status(sdk, cid, "healthy")
        assert health["FailingStreak"] == 0
        entry = health["Log"][0]
        assert (entry["ExitCode"], entry["Output"]) == (0, "fine\n")
        assert entry["Start"] <= entry["End"]
        assert _ps_status(hulld, cid).endswith("(healthy)")
        time.sleep(1.5)  # more checks: the log keeps the last five
        assert len(_health(sdk, cid)["Log"]) == 5
        events = [json.loads(e) for e in sdk.api.events(since=since, until=time.time(), decode=False)]
        actions = [e["Action"] for e in events if e["Actor"]["ID"] == cid]
        assert actions.count("health_status: healthy") == 1  # published on a change only
        assert "exec_create: /bin/sh -c echo fine" in actions  # a check is an exec, as dockerd's
        assert any(a == "exec_die" for a in actions)
        hulld.cli("docker", "stop", "-t", "0", cid)
        assert _health(sdk, cid)["Status"] == "healthy"  # the last health stays after the exit
    finally:
        hulld.cli("docker", "rm", "-f", cid)


def test_unhealthy_and_timeout(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    since = time.time()
    bad = _run(hulld, "--health-cmd", "echo bad; exit 1", *FAST, "busybox", "sleep", "1000")
    slow = _run(hulld, "--health-cmd", "sleep 10", "--health-timeout", "300ms", "--health-interval", "100ms",
                "--health-retries", "1", "busybox", "sleep", "1000")  # fmt: skip
    try:
        health = _wait_status(sdk, bad, "unhealthy")
        assert health["FailingStreak"] >= 2
        assert [(e["ExitCode"], e["Output"]) for e in health["Log"][:2]] == [(1, "bad\n"), (1, "bad\n")]
        assert _ps_status(hulld, bad).endswith("(unhealthy)")
        health = _wait_status(sdk, slow, "unhealthy")
        assert (health["Log"][0]["ExitCode"], health["Log"][0]["Output"]) == (
            -1, "Health check exceeded timeout (300ms)"
        )  # fmt: skip
        # checks that outlived their timeout were killed (the check's own process, as dockerd
        # kills it: a child it forked lives on): they do not pile up, one may be running now
        for _ in range(10):
            top = sdk.api.top(slow)
            assert sum(p[-1] == "sleep 10" for p in top["Processes"]) <= 1, top
            time.sleep(0.1)
        assert len(_health(sdk, slow)["Log"]) >= 3
        events = [json.loads(e) for e in sdk.api.events(since=since, until=time.time(), decode=False)]
        assert ("health_status: unhealthy", bad) in [(e["Action"], e["Actor"]["ID"]) for e in events]
    finally:
        hulld.cli("docker", "rm", "-f", bad, slow)


def test_start_period_and_image_healthcheck(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    cid = _run(hulld, "--health-cmd", "exit 1", "--health-start-period", "30s", *FAST, "busybox", "sleep", "1000")
    base = _run(hulld, "busybox", "sleep", "1000")
    image = "hull-health-test:latest"
    try:
        time.sleep(1)
        health = _health(sdk, cid)  # failures in the start period do not count
        assert (health["Status"], health["FailingStreak"]) == ("starting", 0)
        assert health["Log"] and all(e["ExitCode"] == 1 for e in health["Log"])

        change = 'HEALTHCHECK --interval=200ms --retries=1 CMD ["sh", "-c", "test -e /tmp/ok"]'
        assert hulld.cli("docker", "commit", "--change", change, base, image).returncode == 0
        from_image = _run(hulld, image, "sleep", "1000")
        _wait_status(sdk, from_image, "unhealthy")
        hulld.cli("docker", "exec", from_image, "touch", "/tmp/ok")
        _wait_status(sdk, from_image, "healthy")
        # --no-healthcheck turns the image's off; so does a container's own NONE
        off = _run(hulld, "--no-healthcheck", image, "sleep", "1000")
        time.sleep(0.5)
        assert _health(sdk, off) is None
        assert "(" not in _ps_status(hulld, off)
        hulld.cli("docker", "rm", "-f", from_image, off)
    finally:
        hulld.cli("docker", "rm", "-f", cid, base)
        hulld.cli("docker", "rmi", image)


def test_bad_healthcheck_is_refused(hulld: HullDaemon) -> None:
    before = hulld.cli("docker", "ps", "-aq").stdout
    for hc, message in (
        ({"Test": ["CMD", "true"], "Interval": 5}, "Interval in Healthcheck cannot be less than 1ms"),
        ({"Test": ["CMD", "true"], "Timeout": 999_999}, "Timeout in Healthcheck cannot be less than 1ms"),
        ({"Test": ["CMD", "true"], "StartPeriod": 1}, "StartPeriod in Healthcheck cannot be less than 1ms"),
        ({"Test": ["CMD", "true"], "Retries": -1}, "Retries in Healthcheck cannot be negative"),
    ):
        body = json.dumps({"Image": "busybox", "Cmd": ["true"], "Healthcheck": hc}).encode()
        status, answer = hulld.request("POST", "/containers/create", body, {"Content-Type": "application/json"})
        assert (status, answer["message"]) == (400, message)
    assert hulld.cli("docker", "ps", "-aq").stdout == before
