"""The issue's scenario through the official docker CLI (DOCKER_HOST=unix://…hulld's socket)."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from hull.testing.hulld import HullDaemon

pytestmark = pytest.mark.container


def docker(hulld: HullDaemon, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return hulld.cli("docker", *args, input=input)


def test_run_with_output_and_status(hulld: HullDaemon) -> None:
    r = docker(hulld, "run", "--rm", "busybox", "sh", "-c", "echo hello; echo err >&2; exit 4")
    assert (r.returncode, r.stdout, r.stderr) == (4, "hello\n", "err\n")


def test_detached_logs_stop_rm(hulld: HullDaemon) -> None:
    r = docker(hulld, "run", "-d", "--name", "cli-d", "busybox", "sh", "-c", "echo one; echo two; sleep 60")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64
    deadline = time.monotonic() + 10
    while docker(hulld, "logs", "cli-d").stdout != "one\ntwo\n" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert docker(hulld, "logs", "--tail", "1", "cli-d").stdout == "two\n"
    ts = docker(hulld, "logs", "-t", "cli-d").stdout.splitlines()
    assert ts[0].endswith("Z one") and ts[0][:4].isdigit()
    follow = subprocess.Popen(["docker", "logs", "-f", "cli-d"], stdout=subprocess.PIPE, env=hulld.env)
    ps = docker(hulld, "ps")
    assert "cli-d" in ps.stdout and "Up " in ps.stdout
    assert docker(hulld, "stop", "-t", "1", "cli-d").stdout.strip() == "cli-d"
    out, _ = follow.communicate(timeout=15)
    assert out == b"one\ntwo\n"  # -f ends when the container does
    assert "Exited (137)" in docker(hulld, "ps", "-a", "--filter", "name=cli-d").stdout
    assert docker(hulld, "rm", "cli-d").returncode == 0
    assert cid[:12] not in docker(hulld, "ps", "-a").stdout


def test_name_conflict(hulld: HullDaemon) -> None:
    assert docker(hulld, "create", "--name", "cli-twice", "busybox", "true").returncode == 0
    r = docker(hulld, "create", "--name", "cli-twice", "busybox", "true")
    assert r.returncode != 0
    assert 'Conflict. The container name "/cli-twice" is already in use' in r.stderr
    docker(hulld, "rm", "cli-twice")


def test_inspect_format(hulld: HullDaemon) -> None:
    docker(hulld, "run", "-d", "--name", "cli-insp", "busybox", "sleep", "30")
    try:
        r = docker(hulld, "inspect", "--format", "{{.State.Status}} {{.Name}} {{.Config.Image}}", "cli-insp")
        assert r.stdout.strip() == "running /cli-insp busybox"
        full = json.loads(docker(hulld, "inspect", "cli-insp").stdout)[0]
        assert full["State"]["Running"] is True and full["HostConfig"]["NetworkMode"] == "default"
    finally:
        docker(hulld, "rm", "-f", "cli-insp")


def test_resource_flags(hulld: HullDaemon) -> None:
    r = docker(
        hulld, "run", "--rm", "--memory", "32m", "--cpus", "1.5", "--pids-limit", "33", "busybox", "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "/sys/fs/cgroup/pids/pids.max",
    )  # fmt: skip
    assert r.stdout.split() == [str(32 << 20), "150000", "33"], r.stderr


def test_rm_flag_leaves_nothing(hulld: HullDaemon) -> None:
    before = sorted(os.listdir(hulld.data_root / "containers"))
    assert docker(hulld, "run", "--rm", "busybox", "true").returncode == 0
    assert sorted(os.listdir(hulld.data_root / "containers")) == before


def test_save_load_commit(hulld: HullDaemon, tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    assert docker(hulld, "save", "-o", str(archive), "busybox").returncode == 0
    image_id = docker(hulld, "inspect", "--format", "{{.Id}}", "busybox").stdout.strip()
    assert docker(hulld, "rmi", "-f", "busybox").returncode == 0
    r = docker(hulld, "load", "-i", str(archive))
    assert "Loaded image: busybox:latest" in r.stdout, r.stderr
    assert docker(hulld, "inspect", "--format", "{{.Id}}", "busybox").stdout.strip() == image_id
    docker(hulld, "run", "--name", "cli-commit", "busybox", "sh", "-c", "echo saved > /f")
    assert docker(hulld, "commit", "-c", "CMD cat /f", "cli-commit", "cli-committed:1").returncode == 0
    assert docker(hulld, "run", "--rm", "cli-committed:1").stdout == "saved\n"
    docker(hulld, "rm", "cli-commit")
    docker(hulld, "rmi", "cli-committed:1")


def test_bad_input(hulld: HullDaemon) -> None:
    r = docker(hulld, "run", "--rm", "nosuchimage")
    assert r.returncode == 125
    assert "nosuchimage" in r.stderr
    r = docker(hulld, "inspect", "nosuchcontainer")
    assert r.returncode == 1 and "No such object: nosuchcontainer" in r.stderr
    r = docker(hulld, "run", "--rm", "busybox", "/nosuch")
    assert r.returncode == 127, r.stderr
    r = docker(hulld, "stop", "nosuchcontainer")
    assert r.returncode == 1 and "No such container: nosuchcontainer" in r.stderr
