"""End-to-end tests of `hull` against real engines (conftest.py: every test runs against a
private hulld and against a private dockerd)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Engine  # tests/cli/conftest.py (type only: test directories are not packages)

pytestmark = pytest.mark.container


def _rm(engine: Engine, *names: str) -> None:
    engine.hull("rm", "-f", *names)


def test_run_prints_output_and_exits_with_status(engine: Engine) -> None:
    done = engine.hull("run", "--rm", "--network", "none", engine.image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert done.returncode == 3
    assert done.stdout == "out\n"
    assert done.stderr == "err\n"


def test_run_stdin_and_env(engine: Engine, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=yes\n")
    done = engine.hull(
        "run", "--rm", "-i", "-e", "A=1", "--env-file", str(env_file), "-w", "/tmp", engine.image,
        "sh", "-c", 'cat; echo "$A $FROM_FILE $(pwd)"', input=b"hello\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello\n1 yes /tmp\n"


def test_run_detached_logs_stop_rm(engine: Engine) -> None:
    name = "cli-detached"
    done = engine.hull("run", "-d", "--name", name, engine.image, "sh", "-c", "echo one; echo two; sleep 300")
    assert done.returncode == 0, done.stderr
    cid = done.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    try:
        for _ in range(50):
            if engine.hull("logs", name).stdout == "one\ntwo\n":
                break
            time.sleep(0.1)
        assert engine.hull("logs", name).stdout == "one\ntwo\n"
        assert engine.hull("logs", "--tail", "1", name).stdout == "two\n"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\S+ two\n", engine.hull("logs", "-n", "1", "-t", name).stdout)
        ps = engine.hull("ps").stdout.splitlines()
        assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
        row = next(line for line in ps if line.endswith(name))
        assert row.startswith(cid[:12] + "   ")
        assert " Up " in row
        assert engine.hull("ps", "-q", "--no-trunc").stdout.split().count(cid) == 1
        assert (
            engine.hull("ps", "--format", "{{.Names}} {{.State}}", "-f", f"name={name}").stdout == f"{name} running\n"
        )
        assert engine.hull("stop", "-t", "1", name).stdout == f"{name}\n"
        status = engine.hull("ps", "-a", "--format", "{{.Status}}", "--filter", f"name={name}").stdout
        assert re.fullmatch(r"Exited \(137\) .* ago\n", status), status
        assert engine.hull("rm", name).stdout == f"{name}\n"
        gone = engine.hull("rm", name)
        assert gone.returncode == 1
        assert gone.stderr.startswith("Error response from daemon: No such container: ")
    finally:
        _rm(engine, name)


def test_name_conflict(engine: Engine) -> None:
    name = "cli-conflict"
    try:
        assert engine.hull("create", "--name", name, engine.image, "true").returncode == 0
        done = engine.hull("run", "--name", name, engine.image, "true")
        assert done.returncode == 125
        assert (
            'Error response from daemon: Conflict. The container name "/cli-conflict" is already in use' in done.stderr
        )
    finally:
        _rm(engine, name)


def test_run_command_not_found_is_127(engine: Engine) -> None:
    done = engine.hull("run", "--rm", engine.image, "no-such-command")
    assert done.returncode == 127
    assert "Error response from daemon:" in done.stderr


def test_inspect_format(engine: Engine) -> None:
    name = "cli-inspect"
    try:
        engine.hull("create", "--name", name, "-e", "X=1", "-l", "k=v", "-m", "64m", "--cpus", "1.5", engine.image,
                    "echo", "hi", check=True)  # fmt: skip
        out = engine.hull(
            "inspect", "--format",
            '{{.Name}} {{.State.Status}} {{json .Config.Cmd}} {{index .Config.Labels "k"}} '
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}", name,
        ).stdout  # fmt: skip
        assert out == '/cli-inspect created ["echo","hi"] v 67108864 1500000000\n'
        assert "X=1" in engine.hull("container", "inspect", "-f", "{{range .Config.Env}}{{.}} {{end}}", name).stdout
        data = json.loads(engine.hull("inspect", name).stdout)
        assert data[0]["Name"] == "/cli-inspect"
        missing = engine.hull("inspect", "cli-no-such-thing")
        assert missing.returncode == 1
        assert "No such object: cli-no-such-thing" in missing.stderr
    finally:
        _rm(engine, name)


def test_images_table_tag_history_rmi(engine: Engine) -> None:
    engine.hull("tag", engine.image, "cli-tagged:v1", check=True)
    try:
        lines = engine.hull("images").stdout.splitlines()
        assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
        row = next(line for line in lines if line.startswith("cli-tagged "))
        assert re.fullmatch(r"cli-tagged\s{3,}v1\s{3,}[0-9a-f]{12}\s{3,}.+ ago\s{3,}\d+(\.\d+)?[kM]?B", row), row
        ids = engine.hull("images", "-q", "cli-tagged").stdout.split()
        assert len(ids) == 1 and len(ids[0]) == 12
        fmt = engine.hull("images", "--format", "table {{.Repository}}:{{.Tag}}\t{{.ID}}", "cli-tagged").stdout
        assert fmt.splitlines()[0].startswith("REPOSITORY:TAG   IMAGE ID")
        hist = engine.hull("history", "cli-tagged:v1").stdout.splitlines()
        assert hist[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
        assert engine.hull("history", "-q", "cli-tagged:v1").stdout.split()[0] == ids[0]
        raw = engine.hull("history", "-H=false", "--format", "{{.Size}}", "cli-tagged:v1").stdout.split()
        assert all(s.isdigit() for s in raw)
    finally:
        done = engine.hull("rmi", "cli-tagged:v1")
    assert done.stdout == "Untagged: cli-tagged:v1\n"


def test_commit_diff_save_load_export_import(engine: Engine, tmp_path: Path) -> None:
    name = "cli-commit"
    try:
        assert (
            engine.hull("run", "--name", name, engine.image, "sh", "-c", "echo x > /newfile; rm /bin/true").returncode
            == 0
        )
        diff = engine.hull("diff", name).stdout.splitlines()
        assert "A /newfile" in diff and "D /bin/true" in diff and "C /bin" in diff
        commit = engine.hull(
            "commit", "-m", "a message", "-a", "someone", "-c", "ENV FOO=bar", name, "cli-committed:v1"
        )
        assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", commit.stdout), commit.stderr
        out = engine.hull(
            "image", "inspect", "-f", "{{.Comment}}|{{.Author}}|{{.Config.Env}}", "cli-committed:v1"
        ).stdout
        assert out.startswith("a message|someone|[") and "FOO=bar" in out
        saved = tmp_path / "saved.tar"
        assert engine.hull("save", "-o", str(saved), "cli-committed:v1").returncode == 0
        assert saved.stat().st_size > 1024
        engine.hull("rmi", "cli-committed:v1", check=True)
        loaded = engine.hull("load", "-i", str(saved))
        assert loaded.stdout == "Loaded image: cli-committed:v1\n", loaded.stderr
        assert engine.hull("load", "-q", input=saved.read_bytes()).returncode == 0
        assert engine.hull("run", "--rm", "cli-committed:v1", "cat", "/newfile").stdout == "x\n"
        exported = engine.hull("export", name)
        assert exported.returncode == 0 and len(exported.stdout) > 1024
        tar = tmp_path / "fs.tar"
        assert engine.hull("export", "-o", str(tar), name).returncode == 0
        imported = engine.hull("import", "-c", 'CMD ["cat", "/newfile"]', "-m", "from tar", str(tar), "cli-imported:v1")
        assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", imported.stdout), imported.stderr
        assert engine.hull("run", "--rm", "cli-imported:v1").stdout == "x\n"
        hist = engine.hull("history", "--format", "{{.Comment}}", "cli-imported:v1").stdout
        assert hist == "from tar\n"
    finally:
        _rm(engine, name)
        engine.hull("rmi", "cli-committed:v1", "cli-imported:v1")


def test_events_since_until(engine: Engine) -> None:
    start = time.time()
    engine.hull("create", "--name", "cli-events", engine.image, "true", check=True)
    engine.hull("rm", "cli-events", check=True)
    time.sleep(1.1)
    done = engine.hull("events", "--since", str(int(start) - 1), "--until", str(int(time.time())),
                       "--filter", "container=cli-events")  # fmt: skip
    lines = done.stdout.splitlines()
    assert any(" container create " in line and "name=cli-events" in line for line in lines), done
    assert any(" container destroy " in line for line in lines)
    assert re.match(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) container create [0-9a-f]{64} \(", lines[0]
    )
    fmt = engine.hull("events", "--since", "1m", "--until", "0s", "--filter", "container=cli-events",
                      "--format", "{{.Type}} {{.Action}}").stdout  # fmt: skip
    assert "container create" in fmt.splitlines()


@pytest.mark.parametrize("network", ["none", "host"])
def test_run_events_in_order_with_the_network_connected(engine: Engine, network: str) -> None:
    start = time.time()
    name = f"cli-netev-{network}"
    engine.hull("run", "--rm", "--name", name, "--network", network, engine.image, "true", check=True)
    time.sleep(1.1)
    fmt = "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}"
    done = engine.hull("events", "--since", str(int(start) - 1), "--until", str(int(time.time())), "--format", fmt)
    lines = [line.split() for line in done.stdout.splitlines()]
    cid = next(f[2] for f in lines if f[:2] == ["container", "create"] and f[3] == name)
    ours = [f for f in lines if cid in (f[2], f[4])]
    assert [" ".join(f[:2]) for f in ours] == [
        "container create", "container attach", "network connect", "container start",
        "container die", "network disconnect", "container destroy",
    ], done.stdout  # fmt: skip
    assert {f[3] for f in ours if f[0] == "network"} == {network}


def test_system_df_and_prune(engine: Engine) -> None:
    engine.hull("create", "--name", "cli-prune", engine.image, "true", check=True)
    df = engine.hull("system", "df").stdout.splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split("  ")[0] for line in df[1:]] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    verbose = engine.hull("system", "df", "-v").stdout
    assert "Images space usage:" in verbose and "cli-prune" in verbose
    pruned = engine.hull("container", "prune", "-f")
    assert pruned.returncode == 0
    assert pruned.stdout.startswith("Deleted Containers:\n")
    assert pruned.stdout.rstrip().splitlines()[-1].startswith("Total reclaimed space: ")
    assert "cli-prune" not in engine.hull("ps", "-a").stdout
    images = engine.hull("image", "prune", "-f")
    assert images.returncode == 0 and "Total reclaimed space:" in images.stdout


def test_version_info_and_unreachable_host(engine: Engine) -> None:
    version = engine.hull("version").stdout
    assert version.startswith("Client:\n") and "\nServer:" in version
    assert engine.hull("version", "--format", "{{.Server.ApiVersion}}").stdout.strip()
    assert "Containers:" in engine.hull("info").stdout
    dead = engine.hull("-H", "unix:///tmp/hull-cli-no-such.sock", "ps")
    assert dead.returncode == 1
    assert dead.stderr == "Cannot connect to hulld at unix:///tmp/hull-cli-no-such.sock. Is hulld running?\n"


def test_start_attach_kill_restart_wait(engine: Engine) -> None:
    name = "cli-start"
    try:
        engine.hull("create", "--name", name, engine.image, "sh", "-c", "echo started; exit 4", check=True)
        done = engine.hull("start", "-a", name)
        assert (done.returncode, done.stdout) == (4, "started\n")
        assert engine.hull("wait", name).stdout == "4\n"
        engine.hull("rm", name, check=True)
        engine.hull("run", "-d", "--name", name, "--stop-signal", "SIGKILL", engine.image, "sleep", "300", check=True)
        assert engine.hull("restart", "-t", "1", name).stdout == f"{name}\n"
        assert engine.hull("kill", "-s", "KILL", name).stdout == f"{name}\n"
        assert engine.hull("wait", name).stdout == "137\n"
    finally:
        _rm(engine, name)


def test_resource_flags_reach_the_cgroup(engine: Engine) -> None:
    done = engine.hull(
        "run", "--rm", "--memory", "32m", "--cpus", "1.5", "--pids-limit", "33", engine.image, "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "/sys/fs/cgroup/pids/pids.max",
    )  # fmt: skip
    assert done.stdout.split() == [str(32 << 20), "150000", "33"], done.stderr


def test_rm_flag_leaves_no_container(engine: Engine) -> None:
    before = engine.hull("ps", "-aq").stdout
    assert engine.hull("run", "--rm", engine.image, "true").returncode == 0
    assert engine.hull("ps", "-aq").stdout == before


def test_bad_flags_and_unknown_objects(engine: Engine) -> None:
    for args in (["run", "--nosuch", engine.image, "true"], ["ps", "--nosuch"]):
        done = engine.hull(*args)
        assert done.returncode == 125
        assert done.stderr.startswith("unknown flag: --nosuch\n")
    done = engine.hull("stop", "nosuchcontainer")
    assert (done.returncode, done.stderr) == (1, "Error response from daemon: No such container: nosuchcontainer\n")
    done = engine.hull("run", "--rm", "nosuchimage:1")
    assert done.returncode == 125
    assert "Unable to find image 'nosuchimage:1' locally" in done.stderr
