"""Helpers of the shim tests: containers from the `bundle` fixture, run under shims of a real forkserver.

`ShimEnv` writes a ShimConfig and the bundle's config.json per container, starts shims through
a ForkServer, and at the end deletes every shim it made; `cleanup` is the backstop that kills
what a failed test left (shim processes, runtime state).
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from hull.shim.client import ForkServer, ShimClient
from hull.shim.config import ShimConfig

RUNC = "/usr/sbin/runc"


class ShimEnv:
    def __init__(self, tmp: Path, bundle: Path) -> None:
        self.tmp = tmp
        self.bundle = bundle
        self.configs: list[ShimConfig] = []
        self.forkserver: ForkServer | None = None

    def config(
        self,
        args: list[str],
        *,
        runtime: str = "",
        terminal: bool = False,
        open_stdin: bool = False,
        stdin_once: bool = False,
        memory_limit: int | None = None,
        pid_namespace: bool = True,
        log: bool = True,
    ) -> ShimConfig:
        """A new container: its own bundle config (a copy of the fixture's, sharing the rootfs) and ShimConfig."""
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        n = len(self.configs)
        bundle = self.tmp / f"b{n}"
        bundle.mkdir()
        spec: dict[str, Any] = json.loads((self.bundle / "config.json").read_text())
        spec["root"]["path"] = str(self.bundle / "rootfs")
        spec["process"]["args"] = args
        spec["process"]["terminal"] = terminal
        # "hull" in the name: leakcheck finds it if a test leaves it behind.
        spec["linux"]["cgroupsPath"] = f"/hull-shimtest-{cid[:16]}"
        if memory_limit is not None:
            spec["linux"]["resources"]["memory"] = {"limit": memory_limit}
        if not pid_namespace:
            spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "pid"]
        (bundle / "config.json").write_text(json.dumps(spec))
        cfg = ShimConfig(
            id=cid,
            bundle=str(bundle),
            exec_dir=str(self.tmp / f"x{n}"),
            exit_file=str(self.tmp / f"c{n}" / "exit.json"),
            runtime=runtime,
            runtime_root=str(self.tmp / "rt"),
            log_path=str(self.tmp / f"c{n}.log") if log else "",
            terminal=terminal,
            open_stdin=open_stdin,
            stdin_once=stdin_once,
            memory_cgroup=spec["linux"]["cgroupsPath"],
        )
        self.configs.append(cfg)
        return cfg

    async def __aenter__(self) -> "ShimEnv":
        self.forkserver = await ForkServer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for cfg in self.configs:
            client = ShimClient(cfg.exec_dir)
            if client.alive():
                await client.delete()
        if self.forkserver is not None:
            await self.forkserver.close()

    async def spawn(self, cfg: ShimConfig) -> ShimClient:
        assert self.forkserver is not None
        await self.forkserver.spawn(cfg)
        return ShimClient(cfg.exec_dir)

    def cleanup(self) -> None:
        """Backstop after the test: kill shims still running, force-delete runtime state."""
        for cfg in self.configs:
            try:
                pid = int(Path(cfg.pid_path).read_text())
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
            runtime = [cfg.runtime] if cfg.runtime else [sys.executable, "-m", "hull.runtime.cli"]
            subprocess.run(
                [*runtime, "--root", cfg.runtime_root, "delete", "--force", cfg.id],
                capture_output=True,
                check=False,
            )


def _alive(pid: int) -> bool:
    """Running, or at least not a zombie (a shim's parent is whatever reaper adopted it, maybe a slow one)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(b")") + 2 :][:1] != b"Z"


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def log_text(cfg: ShimConfig, stream: str) -> str:
    lines = [json.loads(line) for line in Path(cfg.log_path).read_text().splitlines()]
    return "".join(e["log"] for e in lines if e["stream"] == stream)


async def read_frames(reader: asyncio.StreamReader) -> dict[int, bytes]:
    """Every frame until EOF, joined per stream."""
    out: dict[int, bytes] = {1: b"", 2: b""}
    while True:
        try:
            header = await asyncio.wait_for(reader.readexactly(8), 20)
        except asyncio.IncompleteReadError as e:
            assert e.partial == b"", f"a torn frame header: {e.partial!r}"
            return out
        size = int.from_bytes(header[4:], "big")
        out[header[0]] += await reader.readexactly(size)
