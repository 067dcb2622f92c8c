"""Unit tests of the run/create flags → POST /containers/create body mapping."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from hull.cli.client import CLIError
from hull.cli.commands.runflags import add_flags, create_body

pytestmark = pytest.mark.unit


def body(*argv: str, detach: bool = False) -> dict[str, Any]:
    p = argparse.ArgumentParser(add_help=False)
    add_flags(p, run=True)
    a = p.parse_args(list(argv))
    return create_body(a, detach=detach or a.detach)


def test_defaults_attached() -> None:
    b = body("busybox", "echo", "-n", "hi")
    assert b["Image"] == "busybox"
    assert b["Cmd"] == ["echo", "-n", "hi"]
    assert (b["AttachStdin"], b["AttachStdout"], b["AttachStderr"], b["OpenStdin"], b["Tty"]) == (
        False, True, True, False, False)  # fmt: skip
    assert b["HostConfig"]["NetworkMode"] == "default"
    assert b["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}


def test_interactive_tty_detach() -> None:
    b = body("-it", "busybox")
    assert (b["AttachStdin"], b["OpenStdin"], b["StdinOnce"], b["Tty"], b["Cmd"]) == (True, True, True, True, None)
    d = body("-d", "-i", "busybox")
    assert (d["AttachStdin"], d["AttachStdout"], d["StdinOnce"], d["OpenStdin"]) == (False, False, False, True)


def test_resources() -> None:
    h = body("--cpus", "1.5", "-m", "64m", "--memory-swap", "-1", "--memory-reservation", "32m", "-c", "512",
             "--cpu-period", "100000", "--cpu-quota", "50000", "--cpuset-cpus", "0-1", "--pids-limit", "10",
             "--blkio-weight", "300", "busybox")["HostConfig"]  # fmt: skip
    assert h["NanoCpus"] == 1500000000
    assert h["Memory"] == 67108864
    assert h["MemorySwap"] == -1
    assert h["MemoryReservation"] == 33554432
    assert (h["CpuShares"], h["CpuPeriod"], h["CpuQuota"], h["CpusetCpus"]) == (512, 100000, 50000, "0-1")
    assert (h["PidsLimit"], h["BlkioWeight"]) == (10, 300)


def test_security_namespaces_and_misc() -> None:
    b = body("--name", "x", "-e", "A=1", "-u", "1000:1000", "-w", "/tmp", "--entrypoint", "/bin/sh", "-h", "box",
             "--stop-signal", "SIGUSR1", "--stop-timeout", "5", "--read-only", "--tmpfs", "/run:size=64m",
             "--ulimit", "nofile=10:20", "--privileged", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL",
             "--security-opt", "no-new-privileges", "--pid", "host", "--ipc", "private", "--uts", "host",
             "--network", "none", "--cgroup-parent", "/mine", "--log-opt", "max-size=1m", "-l", "a=b", "-l", "c",
             "--init", "--restart", "on-failure:2", "-v", "/data", "-v", "/host:/ctr:ro", "-p", "8080:80",
             "--rm", "busybox")  # fmt: skip
    h = b["HostConfig"]
    assert (b["Env"], b["User"], b["WorkingDir"], b["Entrypoint"], b["Hostname"]) == (
        ["A=1"], "1000:1000", "/tmp", ["/bin/sh"], "box")  # fmt: skip
    assert (b["StopSignal"], b["StopTimeout"], b["Labels"]) == ("SIGUSR1", 5, {"a": "b", "c": ""})
    assert h["ReadonlyRootfs"] and h["Privileged"] and h["Init"] and h["AutoRemove"]
    assert h["Tmpfs"] == {"/run": "size=64m"}
    assert h["Ulimits"] == [{"Name": "nofile", "Hard": 20, "Soft": 10}]
    assert (h["CapAdd"], h["CapDrop"], h["SecurityOpt"]) == (["NET_ADMIN"], ["ALL"], ["no-new-privileges"])
    assert (h["PidMode"], h["IpcMode"], h["UTSMode"], h["NetworkMode"]) == ("host", "private", "host", "none")
    assert h["CgroupParent"] == "/mine"
    assert h["LogConfig"] == {"Type": "", "Config": {"max-size": "1m"}}
    assert h["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert b["Volumes"] == {"/data": {}} and h["Binds"] == ["/host:/ctr:ro"]
    assert b["ExposedPorts"] == {"80/tcp": {}}
    assert h["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}


def test_empty_entrypoint_and_env_passthrough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    b = body("--entrypoint", "", "-e", "FROM_HOST", "-e", "UNSET_VAR", "busybox")
    assert b["Entrypoint"] == [""]
    assert b["Env"] == ["FROM_HOST=yes"]


@pytest.mark.parametrize("argv", [["-m", "lots", "busybox"], ["--restart", "sometimes", "busybox"],
                                  ["--ulimit", "nofile", "busybox"], ["-a", "stdbad", "busybox"]])  # fmt: skip
def test_bad_flags(argv: list[str]) -> None:
    with pytest.raises(CLIError):
        body(*argv)
