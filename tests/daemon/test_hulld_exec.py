"""`docker exec` against hulld: the official CLI, the SDK and the raw API, checked against what
the kernel reports (namespaces, cgroups, capabilities) and what dockerd 20.10 answers."""

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from hull.testing.hulld import HullDaemon
from hull.testing.terminal import PtySession

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def sleeper(hulld: HullDaemon) -> Iterator[str]:
    """A running container to exec in; its id."""
    r = hulld.cli("docker", "run", "-d", "-e", "FROM_CTR=1", "-w", "/etc", "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        yield cid
    finally:
        hulld.cli("docker", "rm", "-f", cid)


def _api(hulld: HullDaemon, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    status, answer = hulld.request(method, path, data, {"Content-Type": "application/json"})
    return status, (answer or None)


def test_exit_codes_through_the_cli(hulld: HullDaemon, sleeper: str) -> None:
    ok = hulld.cli("docker", "exec", sleeper, "sh", "-c", "echo out; echo err >&2")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "out\n", "err\n")
    assert hulld.cli("docker", "exec", sleeper, "sh", "-c", "exit 3").returncode == 3
    assert hulld.cli("docker", "exec", sleeper, "sh", "-c", "nosuch").returncode == 127  # the shell's
    # A program that cannot be started is 126 for dockerd's exec, missing or not executable alike.
    missing = hulld.cli("docker", "exec", sleeper, "nosuch")
    assert missing.returncode == 126
    assert 'exec: "nosuch": executable file not found in $PATH' in missing.stdout
    assert missing.stdout.startswith("OCI runtime exec failed: ")
    not_exec = hulld.cli("docker", "exec", sleeper, "/etc/passwd")
    assert not_exec.returncode == 126
    assert "permission denied" in not_exec.stdout


def test_sdk_exec_run(sdk: docker.DockerClient, sleeper: str) -> None:
    c = sdk.containers.get(sleeper)
    assert c.exec_run(["sh", "-c", "echo hi; exit 3"]) == (3, b"hi\n")
    code, (out, err) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (code, out, err) == (0, b"o\n", b"e\n")
    code, _ = c.exec_run(["nosuch"])
    assert code == 126


def test_env_workdir_user(hulld: HullDaemon, sleeper: str) -> None:
    r = hulld.cli("docker", "exec", sleeper, "sh", "-c", 'echo "$FROM_CTR $HOME"; pwd; id -u')
    assert r.stdout == "1 /root\n/etc\n0\n"  # the container's env and working directory
    r = hulld.cli(
        "docker", "exec", "-e", "A=b", "-e", "FROM_CTR=2", "-w", "/tmp", "-u", "nobody", sleeper,
        "sh", "-c", 'echo "$A $FROM_CTR $HOME"; pwd; id -u; id -g',
    )  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "b 2 /nonexistent\n/tmp\n65534\n65534\n"), r.stderr
    bad = hulld.cli("docker", "exec", "-u", "nosuchuser", sleeper, "true")
    assert bad.returncode != 0
    assert "unable to find user nosuchuser" in bad.stdout + bad.stderr


def test_stdin_and_detach(hulld: HullDaemon, sleeper: str) -> None:
    r = hulld.cli("docker", "exec", "-i", sleeper, "sh", "-c", "cat; echo done", input=b"abc\n")
    assert (r.returncode, r.stdout) == (0, "abc\ndone\n")
    r = hulld.cli("docker", "exec", "-d", sleeper, "sh", "-c", "echo bg > /tmp/detached")
    assert (r.returncode, r.stdout) == (0, "")
    deadline = time.monotonic() + 10
    while hulld.cli("docker", "exec", sleeper, "cat", "/tmp/detached").stdout != "bg\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_tty(hulld: HullDaemon, sleeper: str) -> None:
    session = PtySession(["docker", "exec", "-it", sleeper, "sh", "-c", "tty; stty size; exit 4"], hulld.env,
                         rows=31, cols=97)  # fmt: skip
    try:
        session.expect(rb"/dev/pts/\d+\r\n")
        session.expect(rb"31 97\r\n")  # the CLI's ConsoleSize at start, then its resize
        assert session.wait() == 4
    finally:
        session.close()
    r = hulld.cli("docker", "exec", "-t", sleeper, "tty")
    assert r.stdout.startswith("/dev/pts/") and r.stdout.endswith("\r\n")  # a pty: its \r\n
    r = hulld.cli("docker", "exec", sleeper, "tty")
    assert (r.returncode, r.stdout) == (1, "not a tty\n")


def test_detach_keys_leave_the_process_running(hulld: HullDaemon, sdk: docker.DockerClient, sleeper: str) -> None:
    session = PtySession(["docker", "exec", "-it", "--detach-keys", "ctrl-x", sleeper, "sh"], hulld.env)
    try:
        session.wait_raw()
        session.send(b"echo $((6*7))\r")
        session.expect(b"42")
        session.send(b"\x18")
        assert session.wait() == 1  # as the docker CLI ends a detached exec against dockerd too
        session.expect(b"read escape sequence")
    finally:
        session.close()
    (eid,) = sdk.api.inspect_container(sleeper)["ExecIDs"]
    assert sdk.api.exec_inspect(eid)["Running"] is True  # the shell runs on, detached
    os.kill(sdk.api.exec_inspect(eid)["Pid"], 9)
    deadline = time.monotonic() + 10
    while sdk.api.exec_inspect(eid)["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sdk.api.exec_inspect(eid)["ExitCode"] == 137


def _host_pid(hulld: HullDaemon, sleeper: str, marker: str) -> int:
    """The host pid of the exec'd `sleep <marker>` (found through /proc)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                if cmdline == f"sleep\0{marker}\0".encode():
                    return int(entry)
        time.sleep(0.05)
    raise AssertionError(f"no exec'd sleep {marker}")


def test_process_joins_namespaces_cgroup_and_capabilities(
    hulld: HullDaemon, sdk: docker.DockerClient, sleeper: str
) -> None:
    init = sdk.api.inspect_container(sleeper)["State"]["Pid"]
    r = hulld.cli("docker", "exec", "-d", sleeper, "sleep", "1234")
    assert r.returncode == 0, r.stderr
    pid = _host_pid(hulld, sleeper, "1234")
    try:
        for ns in ("pid", "mnt", "net", "uts", "ipc"):
            assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init}/ns/{ns}"), ns
        assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{init}/cgroup").read_text()

        def status(p: int, key: str) -> str:
            return next(line.split()[1] for line in Path(f"/proc/{p}/status").read_text().splitlines()
                        if line.startswith(key + ":"))  # fmt: skip

        assert status(pid, "CapEff") == status(init, "CapEff")
        assert status(pid, "Seccomp") == status(init, "Seccomp") == "2"
    finally:
        os.kill(pid, 9)
    # --privileged: every capability this host grants, the container's seccomp filter still on
    r = hulld.cli("docker", "exec", "--privileged", sleeper, "grep", "-E", "^(CapEff|Seccomp):", "/proc/self/status")
    fields = dict(line.split(":\t") for line in r.stdout.splitlines())
    host_bounding = next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                         if line.startswith("CapBnd:"))  # fmt: skip
    assert fields == {"CapEff": host_bounding, "Seccomp": "2"}
    # The pid namespace is the container's: pid 1 there is the container's init.
    assert hulld.cli("docker", "exec", sleeper, "cat", "/proc/1/cmdline").stdout == "sleep\x001000\x00"


def test_exec_inspect_and_events(hulld: HullDaemon, sdk: docker.DockerClient, sleeper: str) -> None:
    since = time.time()
    status, created = _api(hulld, "POST", f"/containers/{sleeper}/exec",
                           {"Cmd": ["sleep", "1"], "AttachStdout": True, "User": "nobody"})  # fmt: skip
    assert status == 201
    eid = created["Id"]
    status, info = _api(hulld, "GET", f"/exec/{eid}/json")
    assert status == 200
    assert info == {
        "ID": eid, "Running": False, "ExitCode": None,
        "ProcessConfig": {"tty": False, "entrypoint": "sleep", "arguments": ["1"], "privileged": False,
                          "user": "nobody"},
        "OpenStdin": False, "OpenStderr": False, "OpenStdout": True, "CanRemove": False,
        "ContainerID": sleeper, "DetachKeys": "", "Pid": 0,
    }  # fmt: skip
    assert sdk.api.inspect_container(sleeper)["ExecIDs"] == [eid]
    assert _api(hulld, "POST", f"/exec/{eid}/start", {"Detach": True})[0] == 200
    running = sdk.api.exec_inspect(eid)
    assert running["Running"] is True and running["ExitCode"] is None and running["Pid"] > 0
    # a non-TTY exec: resize changes nothing and is no error, as Docker answers it
    assert _api(hulld, "POST", f"/exec/{eid}/resize?h=10&w=20")[0] == 200
    status, again = _api(hulld, "POST", f"/exec/{eid}/start", {"Detach": True})
    assert status == 409 and "is already running" in again["message"]
    deadline = time.monotonic() + 10
    while sdk.api.exec_inspect(eid)["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    done = sdk.api.exec_inspect(eid)
    assert done["ExitCode"] == 0
    assert sdk.api.inspect_container(sleeper)["ExecIDs"] is None
    assert _api(hulld, "POST", f"/exec/{eid}/start", {"Detach": True})[0] == 409
    events = [json.loads(line) for line in sdk.api.events(since=since, until=time.time() + 0.1, decode=False)]
    actions = [(e["Action"], e["Actor"]["Attributes"].get("execID")) for e in events if "exec" in e["Action"]]
    assert ("exec_create: sleep 1", eid) in actions
    assert ("exec_start: sleep 1", eid) in actions
    die = next(e for e in events if e["Action"] == "exec_die" and e["Actor"]["Attributes"]["execID"] == eid)
    assert die["Actor"]["Attributes"]["exitCode"] == "0"
    assert die["Actor"]["ID"] == sleeper


def _exec_dirs(hulld: HullDaemon) -> set[str]:
    """The exec shims' directories: one per exec created and not yet ended."""
    path = hulld.exec_root / "execs"
    return set(os.listdir(path)) if path.exists() else set()


def test_bad_input_changes_nothing(hulld: HullDaemon, sdk: docker.DockerClient, sleeper: str) -> None:
    before = _exec_dirs(hulld)
    status, body = _api(hulld, "POST", "/containers/nosuch/exec", {"Cmd": ["true"]})
    assert (status, body["message"]) == (404, "No such container: nosuch")
    status, body = _api(hulld, "POST", f"/containers/{sleeper}/exec", {"Cmd": []})
    assert (status, body["message"]) == (400, "No exec command specified")
    status, body = _api(hulld, "POST", f"/containers/{sleeper}/exec", {"Cmd": "true"})
    assert status == 400
    status, body = _api(hulld, "POST", f"/containers/{sleeper}/exec", {"Cmd": ["true"], "WorkingDir": "tmp"})
    assert status == 400 and "absolute path" in body["message"]
    status, body = _api(hulld, "POST", f"/containers/{sleeper}/exec", {"Cmd": ["true"], "DetachKeys": "ctrl-"})
    assert (status, body["message"]) == (400, "Invalid detach keys (ctrl-) provided")
    for method, path in (("GET", "/exec/nosuch/json"), ("POST", "/exec/nosuch/start"),
                         ("POST", "/exec/nosuch/resize?h=1&w=1")):  # fmt: skip
        status, body = _api(hulld, method, path, {} if method == "POST" else None)
        assert (status, body["message"]) == (404, "No such exec instance: nosuch")
    assert _exec_dirs(hulld) == before
    eid = _api(hulld, "POST", f"/containers/{sleeper}/exec", {"Cmd": ["true"], "Tty": True})[1]["Id"]
    assert _api(hulld, "POST", f"/exec/{eid}/resize?h=x&w=1")[0] == 400
    assert _api(hulld, "POST", f"/exec/{eid}/resize?h=10&w=10")[0] == 409  # not started
    status, body = _api(hulld, "POST", f"/exec/{eid}/start", {"Detach": True, "ConsoleSize": [1]})
    assert status == 400
    assert sdk.api.exec_inspect(eid)["Running"] is False  # nothing ran: it can still start
    status, _ = _api(hulld, "POST", f"/exec/{eid}/start", {"Detach": True, "ConsoleSize": [10, 20]})
    assert status == 200
    deadline = time.monotonic() + 10
    while sdk.api.exec_inspect(eid)["ExitCode"] is None or _exec_dirs(hulld) != before:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sdk.api.exec_inspect(eid)["ExitCode"] == 0


def test_exec_in_a_stopped_container_is_a_conflict(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    c = sdk.containers.run("busybox", ["sleep", "1000"], detach=True)
    try:
        eid = sdk.api.exec_create(c.id, ["true"])["Id"]
        c.kill()
        c.wait()
        r = hulld.cli("docker", "exec", c.id, "true")
        assert r.returncode == 1
        assert r.stderr == f"Error response from daemon: Container {c.id} is not running\n"
        status, body = _api(hulld, "POST", f"/containers/{c.id}/exec", {"Cmd": ["true"]})
        assert (status, body["message"]) == (409, f"Container {c.id} is not running")
        # An exec created but never started goes with the container's run, as dockerd forgets it,
        # and so does the shim forked for it
        assert _api(hulld, "GET", f"/exec/{eid}/json")[0] == 404
        deadline = time.monotonic() + 10
        while eid in _exec_dirs(hulld):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        c.start()
        c.pause()
        try:
            status, body = _api(hulld, "POST", f"/containers/{c.id}/exec", {"Cmd": ["true"]})
            assert (status, body["message"]) == (409, f"Container {c.id} is paused, unpause the container before exec")
        finally:
            c.unpause()
    finally:
        c.remove(force=True)


def test_running_exec_ends_with_its_container(hulld: HullDaemon, sdk: docker.DockerClient) -> None:
    c = sdk.containers.run("busybox", ["sleep", "1000"], detach=True)
    try:
        eid = sdk.api.exec_create(c.id, ["sleep", "999"])["Id"]
        sdk.api.exec_start(eid, detach=True)
        c.stop(timeout=0)
        # its shim sees the process die with the container's pid namespace and goes
        deadline = time.monotonic() + 10
        while (hulld.exec_root / "execs" / eid).exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        c.remove(force=True)


def test_runc_exec(busybox_rootfs: Path) -> None:
    d = HullDaemon(extra_args=["--runtime", "runc"])
    try:
        d.import_busybox(busybox_rootfs)
        cid = d.cli("docker", "run", "-d", "busybox", "sleep", "1000").stdout.strip()
        r = d.cli("docker", "exec", "-u", "nobody", "-w", "/tmp", cid, "sh", "-c", "id -u; pwd; exit 3")
        assert (r.returncode, r.stdout) == (3, "65534\n/tmp\n")
        r = d.cli("docker", "exec", "-i", cid, "cat", input=b"via runc")
        assert (r.returncode, r.stdout) == (0, "via runc")
        assert d.cli("docker", "exec", "-t", cid, "tty").stdout.startswith("/dev/pts/")
        missing = d.cli("docker", "exec", cid, "nosuch")
        assert missing.returncode == 126 and "executable file not found" in missing.stdout
        d.cli("docker", "rm", "-f", cid)
    finally:
        d.stop()
