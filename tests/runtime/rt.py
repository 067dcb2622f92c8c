"""Helpers for driving `hull-runtime` as a user would: a subprocess per command."""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


class Runtime:
    """`hull-runtime --root <tmp>`; every container a test makes is force-deleted at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ids: list[str] = []

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hull.runtime.cli", "--root", str(self.root), *args]

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 30, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        kw.setdefault("capture_output", True)
        done = subprocess.run(self.cmd(*args), text=True, timeout=timeout, check=False, **kw)
        if check and done.returncode != 0:
            raise AssertionError(f"hull-runtime {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def new_id(self) -> str:
        cid = "hull-test-" + uuid.uuid4().hex[:12]
        self.ids.append(cid)
        return cid

    def state(self, cid: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self("state", cid).stdout)
        return out

    def detached(self, *args: str) -> None:
        """Run a command whose container process outlives it (create, exec --detach).

        That process inherits our stdio: a pipe would stay open (and subprocess.run wait for
        its end) as long as the process lives, so stdio is /dev/null and errors go to a file.
        """
        with tempfile.TemporaryFile("w+") as err:
            done = subprocess.run(
                self.cmd(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=30,
                check=False,
            )  # fmt: skip
            err.seek(0)
            assert done.returncode == 0, err.read()

    def create_detached(self, bundle: Path, cid: str | None = None) -> str:
        cid = cid or self.new_id()
        self.detached("create", "--bundle", str(bundle), cid)
        return cid

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "--force", cid, check=False)


def configure(bundle: Path, args: list[str], **changes: Any) -> dict[str, Any]:
    """Rewrite the bundle's config.json: the process args, no terminal, a hull-named cgroup, plus `changes`."""
    cfg: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    cfg["process"]["args"] = args
    cfg["process"]["terminal"] = False
    cfg["linux"]["cgroupsPath"] = f"/hull-test-{uuid.uuid4().hex[:12]}"
    for key, value in changes.items():
        cfg[key] = value
    (bundle / "config.json").write_text(json.dumps(cfg))
    return cfg


def cgroup_dir(pid: int, controller: str) -> Path:
    """The v1 directory of `controller` that process `pid` is in, as the kernel reports it."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
    raise AssertionError(f"{controller} not in /proc/{pid}/cgroup")


def wait_for(pred: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def host_ns(name: str) -> str:
    return os.readlink(f"/proc/self/ns/{name}")
