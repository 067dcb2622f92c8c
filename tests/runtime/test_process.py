"""The spec's process settings, hooks and the runtime's other commands, seen from inside and outside."""

import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rt import Runtime, configure

from hull.shim import sysinfo

pytestmark = pytest.mark.container


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    r = Runtime(tmp_path / "hull-state")
    yield r
    r.cleanup()


def _run(rt: Runtime, bundle: Path, cfg: dict, check: bool = True) -> str:  # type: ignore[type-arg]
    (bundle / "config.json").write_text(json.dumps(cfg))
    done = rt("run", "--bundle", str(bundle), rt.new_id(), check=check)
    return done.stdout


def _status_field(text: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name + ":"))


def test_capabilities_user_rlimits_and_no_new_privs(rt: Runtime, bundle: Path) -> None:
    cfg = configure(bundle, ["sh", "-c", "cat /proc/self/status; echo nofile=$(ulimit -n); id"])
    caps = ["CAP_CHOWN", "CAP_KILL"]  # bits 0 and 5
    cfg["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps,
                                      "inheritable": caps}  # fmt: skip
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5]}
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 456}]
    cfg["process"]["noNewPrivileges"] = True
    out = _run(rt, bundle, cfg)
    for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
        assert int(_status_field(out, field), 16) == (1 << 0) | (1 << 5), field
    assert _status_field(out, "NoNewPrivs") == "1"
    assert _status_field(out, "Uid").split()[:2] == ["1000", "1000"]
    assert _status_field(out, "Groups").split() == ["5"]
    assert "nofile=321" in out


def test_seccomp_filter_from_the_spec(rt: Runtime, bundle: Path) -> None:
    cfg = configure(bundle, ["sh", "-c", "mkdir /tmp/x && echo made; echo after"])
    cfg["root"]["readonly"] = False
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    out = _run(rt, bundle, cfg)
    assert "made" not in out and "after" in out


def test_seccomp_notify_sends_the_listener_to_listener_path(rt: Runtime, bundle: Path, tmp_path: Path) -> None:
    """SCMP_ACT_NOTIFY: the runtime sends the listener's fd and the process state to listenerPath,
    and the sysinfo calls it hands there are answered (by hull.shim.sysinfo, from a fake cgroup)."""
    fake_memory = tmp_path / "memory"
    fake_memory.mkdir()
    (fake_memory / "memory.limit_in_bytes").write_text(str(128 << 20))
    (fake_memory / "memory.usage_in_bytes").write_text(str(4 << 20))
    path = tmp_path / "seccomp"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    got: dict[str, Any] = {}

    def serve() -> None:
        conn, _ = server.accept()
        message, fds, _, _ = socket.recv_fds(conn, 65536, 1)
        got["state"], got["fds"] = json.loads(message), fds
        conn.close()
        sysinfo.answer(fds[0], sysinfo.Cgroups(str(fake_memory), "", False), got["state"]["pid"])
        os.close(fds[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    cfg = configure(bundle, ["free"])
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(path),
        "listenerMetadata": "hello",
        "syscalls": [{"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"}],
    }
    try:
        out = _run(rt, bundle, cfg)
    finally:
        thread.join(10)
        server.close()
    # Only the total is ours: busybox takes "cached" from the host's /proc/meminfo here (no lxcfs),
    # which makes "used" overflow into the next column.
    assert next(line for line in out.splitlines() if line.startswith("Mem:")).split()[1].startswith(str(128 << 10))
    state = got["state"]
    assert state["fds"] == ["seccompFd"] and state["metadata"] == "hello" and state["pid"] > 0
    assert state["state"]["id"] == rt.ids[-1] and state["state"]["status"] == "creating"


def test_readonly_root_and_readonly_bind(rt: Runtime, bundle: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "f").write_text("from the host")
    cfg = configure(bundle, ["sh", "-c", "touch /x 2>&1; cat /data/f; { echo > /data/g; } 2>&1; echo end"])
    cfg["root"]["readonly"] = True
    cfg["mounts"].append({"destination": "/data", "type": "bind", "source": str(shared), "options": ["rbind", "ro"]})
    out = _run(rt, bundle, cfg)
    assert out.count("Read-only file system") == 2
    assert "from the host" in out
    assert not (shared / "g").exists()


def test_devices_and_tmpfs(rt: Runtime, bundle: Path) -> None:
    cfg = configure(bundle, ["sh", "-c", "ls -l /dev/null /dev/zero /dev/fd/; grep ' /dev/shm ' /proc/self/mountinfo"])
    out = _run(rt, bundle, cfg)
    assert "1,   3" in out and "1,   5" in out
    assert "size=65536k" in out and "nosuid" in out


def test_no_pivot(rt: Runtime, bundle: Path) -> None:
    cfg = configure(bundle, ["sh", "-c", "echo pid=$$; ls /"])
    (bundle / "config.json").write_text(json.dumps(cfg))
    done = rt("run", "--no-pivot", "--bundle", str(bundle), rt.new_id())
    assert "pid=1" in done.stdout and "bin" in done.stdout


def test_hooks_run_at_their_points(rt: Runtime, bundle: Path, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    script = tmp_path / "hook.sh"
    # Each hook appends its name and the status it was handed on stdin.
    script.write_text(f'#!/bin/sh\nread state\necho "$1 $state" >> {log}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    cfg = configure(bundle, ["true"])
    cfg["hooks"] = {
        kind: [{"path": str(script), "args": ["hook.sh", kind]}]
        for kind in ("createRuntime", "createContainer", "poststart", "poststop")
    }
    _run(rt, bundle, cfg)
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["createRuntime", "createContainer", "poststart", "poststop"]
    assert json.loads(lines[0].split(" ", 1)[1])["status"] == "creating"
    assert json.loads(lines[2].split(" ", 1)[1])["status"] == "running"
    assert json.loads(lines[3].split(" ", 1)[1])["status"] == "stopped"


def test_failing_hook_fails_create(rt: Runtime, bundle: Path) -> None:
    cfg = configure(bundle, ["true"])
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    (bundle / "config.json").write_text(json.dumps(cfg))
    done = rt("create", "--bundle", str(bundle), rt.new_id(), check=False)
    assert done.returncode == 1
    assert "error running createRuntime hook #0: exit status 1" in done.stderr
    assert not any(rt.root.iterdir())


def test_events_stats_and_ps(rt: Runtime, bundle: Path) -> None:
    cfg = configure(bundle, ["sleep", "30"])
    cfg["linux"]["resources"] = {"memory": {"limit": 100 * 1024 * 1024}, "pids": {"limit": 20}}
    (bundle / "config.json").write_text(json.dumps(cfg))
    cid = rt.create_detached(bundle)
    rt("start", cid)
    event = json.loads(rt("events", "--stats", cid).stdout)
    assert event["type"] == "stats" and event["id"] == cid
    assert event["data"]["memory"]["usage"]["limit"] == 100 * 1024 * 1024
    assert event["data"]["pids"]["current"] == 1 and event["data"]["pids"]["limit"] == 20
    assert event["data"]["cpu"]["usage"]["total"] > 0
    table = rt("ps", cid).stdout.splitlines()
    assert "PID" in table[0] and len(table) == 2 and "sleep 30" in table[1]
