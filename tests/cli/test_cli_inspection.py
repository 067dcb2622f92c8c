"""`hull top`, `hull stats` and `hull update` against real engines (hulld and dockerd, conftest.py),
checked against what the kernel shows inside the container."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Engine  # tests/cli/conftest.py (type only: test directories are not packages)

pytestmark = pytest.mark.container

MiB = 1024 * 1024


@pytest.fixture
def limited(engine: Engine) -> Iterator[str]:
    name = "cli-insp"
    done = engine.hull("run", "-d", "--name", name, "--memory", "64m", engine.image, "sleep", "300")
    assert done.returncode == 0, done.stderr
    try:
        yield name
    finally:
        engine.hull("rm", "-f", name)


def _inside(engine: Engine, name: str, path: str) -> str:
    return engine.hull("exec", name, "cat", path, check=True).stdout.strip()


def test_top(engine: Engine, limited: str) -> None:
    pid = engine.hull("inspect", "-f", "{{.State.Pid}}", limited, check=True).stdout.strip()
    lines = engine.hull("top", limited, check=True).stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(lines) == 2 and lines[1].split()[1] == pid and lines[1].endswith("sleep 300")
    lines = engine.hull("container", "top", limited, "-o", "pid,comm", check=True).stdout.splitlines()
    assert [line.split() for line in lines] == [["PID", "COMMAND"], [pid, "sleep"]]


def test_top_of_a_created_container_fails(engine: Engine) -> None:
    cid = engine.hull("create", "--name", "cli-insp-created", engine.image, "true", check=True).stdout.strip()
    try:
        done = engine.hull("top", "cli-insp-created")
        assert done.returncode == 1
        assert done.stderr == f"Error response from daemon: Container {cid} is not running\n"
        row = json.loads(engine.hull("stats", "--no-stream", "--format", "{{json .}}", "cli-insp-created").stdout)
        assert (row["MemUsage"], row["PIDs"], row["Name"]) == ("0B / 0B", "0", "cli-insp-created")
    finally:
        engine.hull("rm", "-f", "cli-insp-created")


def test_stats_no_stream(engine: Engine, limited: str) -> None:
    row = json.loads(engine.hull("stats", "--no-stream", "--format", "{{json .}}", limited, check=True).stdout)
    assert row["Name"] == limited and row["Container"] == limited and len(row["ID"]) == 12
    used, limit = row["MemUsage"].split(" / ")
    assert limit == "64MiB" and used.endswith(("B", "KiB", "MiB"))
    assert row["PIDs"] == "1" and row["NetIO"] == "0B / 0B"
    assert 0.0 <= float(row["CPUPerc"].rstrip("%")) < 5.0  # sleep uses no CPU
    table = engine.hull("stats", "--no-stream", check=True).stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                                "NET", "I/O", "BLOCK", "I/O", "PIDS"]  # fmt: skip
    assert any(line.split()[1] == limited for line in table[1:])


def test_update(engine: Engine, limited: str) -> None:
    done = engine.hull("update", "--memory", "128m", "--memory-swap", "256m", "--cpus", "0.5", "--pids-limit", "40",
                       "--restart", "on-failure:2", limited)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, f"{limited}\n"), done.stderr
    assert _inside(engine, limited, "/sys/fs/cgroup/memory/memory.limit_in_bytes") == str(128 * MiB)
    assert _inside(engine, limited, "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") == str(256 * MiB)
    assert _inside(engine, limited, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us") == "50000"
    assert _inside(engine, limited, "/sys/fs/cgroup/pids/pids.max") == "40"
    hc = json.loads(engine.hull("inspect", "-f", "{{json .HostConfig}}", limited, check=True).stdout)
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"]) == (128 * MiB, 256 * MiB, 5 * 10**8, 40)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}


def test_update_bad_values_change_nothing(engine: Engine, limited: str) -> None:
    for args, message in (
        (["--memory", "4m"], "Minimum memory limit allowed is 6MB"),
        (["--cpu-quota", "500"], "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (
            ["--cpu-period", "500"],
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
    ):
        done = engine.hull("update", *args, limited)
        assert (done.returncode, done.stdout, done.stderr) == (1, "", f"Error response from daemon: {message}\n")
    # this kernel has no blkio weight files (no CFQ/BFQ): a warning, and the weight is dropped
    done = engine.hull("update", "--blkio-weight", "5", limited)
    assert (done.returncode, done.stdout) == (
        0,
        f"{limited}\nYour kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.\n",
    )
    done = engine.hull("update", "--memory", "32m", "nosuch")
    assert done.stderr == "Error response from daemon: No such container: nosuch\n"
    done = engine.hull("update", limited)
    assert done.returncode == 1 and "you must provide one or more flags" in done.stderr
    assert _inside(engine, limited, "/sys/fs/cgroup/memory/memory.limit_in_bytes") == str(64 * MiB)
