"""The issue's scenario for working with a running container, through the official docker CLI
against hulld, step by step as a user types it."""

import json
import subprocess
from pathlib import Path

import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container


def test_docker_cli_scenario(hulld: HullDaemon, tmp_path: Path) -> None:
    def docker(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        done = hulld.cli("docker", *args, input=input)
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
        return done

    # The issue writes `--name s`; Docker refuses one-character names ("Invalid container name (s)"), hull too.
    docker("run", "-dit", "--name", "s1", "busybox", "sh")
    try:
        pid = docker("exec", "s1", "sh", "-c", "echo $$").stdout.strip()
        assert pid.isdigit() and int(pid) > 1  # a new process in the container's pid namespace
        (tmp_path / "in.txt").write_text("copied in\n")
        docker("cp", str(tmp_path / "in.txt"), "s1:/tmp/in.txt")
        assert docker("exec", "s1", "cat", "/tmp/in.txt").stdout == "copied in\n"
        docker("exec", "s1", "sh", "-c", "echo made inside > /tmp/out.txt")
        docker("cp", "s1:/tmp/out.txt", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_text() == "made inside\n"
        top = docker("top", "s1").stdout.splitlines()
        assert top[0].split()[:2] == ["UID", "PID"] and any(line.endswith("sh") for line in top[1:])
        stats = docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "s1").stdout.split()
        assert stats == ["s1", "1"]
        docker("pause", "s1")
        assert docker("inspect", "--format", "{{.State.Status}}", "s1").stdout.strip() == "paused"
        docker("unpause", "s1")
        docker("update", "--memory", "64m", "--memory-swap", "128m", "s1")
        limit = docker("exec", "s1", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout.strip()
        assert limit == str(64 << 20)
        docker("restart", "-t", "1", "s1")
        state = json.loads(docker("inspect", "s1").stdout)[0]["State"]
        assert state["Running"] is True
        after = docker("exec", "s1", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout.strip()
        assert after == str(64 << 20)  # the update outlives the restart
    finally:
        docker("rm", "-f", "s1")
    assert hulld.cli("docker", "inspect", "s1").returncode != 0


def test_bad_input_changes_nothing(hulld: HullDaemon) -> None:
    assert hulld.cli("docker", "create", "--name", "stopped", "busybox", "true").returncode == 0
    try:
        r = hulld.cli("docker", "exec", "stopped", "true")
        assert r.returncode != 0 and "is not running" in r.stderr
        status, _ = hulld.request("POST", "/containers/stopped/exec", b'{"Cmd": ["true"]}',
                                     {"Content-Type": "application/json"})  # fmt: skip
        assert status == 409
        r = hulld.cli("docker", "cp", "/etc/hostname", "stopped:/no/such/dir/")
        assert (r.returncode != 0 and "no such" in r.stderr.lower()) or "could not find" in r.stderr.lower()
        assert json.loads(hulld.cli("docker", "inspect", "stopped").stdout)[0]["State"]["Status"] == "created"
    finally:
        hulld.cli("docker", "rm", "stopped")
