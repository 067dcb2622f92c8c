"""What `make bench` measures: every scenario, registered in SCENARIOS.

A scenario is the same piece of work done by hull and by its peer (runc, docker, ...), timed
as a whole command from the caller. To add one, subclass Scenario here, decorate it with
@register, and give it a name, the peer's program and `command`; `setup`, `after` and
`teardown` are untimed.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from hull.testing.busybox import build_busybox_rootfs

Side = Literal["hull", "peer"]


class Scenario:
    """One comparison between hull and a peer program."""

    name = ""
    peer = ""  # the peer's executable, looked up on PATH; if absent only hull is timed

    def setup(self, work: Path) -> None:
        """Once before the runs, untimed: build inputs under `work` (a fresh temp dir, removed afterwards)."""

    def command(self, side: Side, run_id: str) -> list[str]:
        """The argv of one timed run. `run_id` is unique per run (a container id, a name)."""
        raise NotImplementedError

    def after(self, side: Side, run_id: str) -> None:
        """After each run, failed ones too, untimed: remove what the run left (a container, say)."""

    def teardown(self) -> None:
        """Once after the last run, untimed."""


SCENARIOS: list[Scenario] = []


def register(cls: type[Scenario]) -> type[Scenario]:
    """Class decorator: add a scenario to SCENARIOS, in the order they appear here."""
    SCENARIOS.append(cls())
    return cls


def hull_program(name: str) -> str:
    """A hull console script as installed beside this interpreter (the venv's), else on PATH."""
    script = Path(sys.executable).parent / name
    return str(script) if script.exists() else shutil.which(name) or name


def quiet(argv: list[str]) -> None:
    """Run a cleanup command, ignoring its output and status."""
    subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=60)


@register
class RuntimeStartup(Scenario):
    """`--version`: the interpreter's start-up and the imports of the runtime's CLI, nothing else."""

    name = "runtime-startup"
    peer = "runc"

    def command(self, side: Side, run_id: str) -> list[str]:
        return [hull_program("hull-runtime") if side == "hull" else "runc", "--version"]


@register
class RuntimeRunTrue(Scenario):
    """`run` of a busybox bundle whose process is `true`: the runtime's whole create-start-wait-delete path."""

    name = "runtime-run-true"
    peer = "runc"

    def setup(self, work: Path) -> None:
        from hull.runtime.spec import default_spec

        self.bundle = work / "bundle"
        build_busybox_rootfs(self.bundle / "rootfs")
        config = default_spec()
        config["process"]["args"] = ["true"]
        config["process"]["terminal"] = False
        (self.bundle / "config.json").write_text(json.dumps(config))
        self.roots = {"hull": work / "state-hull", "peer": work / "state-runc"}

    def _runtime(self, side: Side) -> list[str]:
        program = hull_program("hull-runtime") if side == "hull" else "runc"
        return [program, "--root", str(self.roots[side])]

    def command(self, side: Side, run_id: str) -> list[str]:
        return [*self._runtime(side), "run", "--bundle", str(self.bundle), run_id]

    def after(self, side: Side, run_id: str) -> None:
        # `run` deletes the container when it exits; this catches a run that failed half way.
        quiet([*self._runtime(side), "delete", "--force", run_id])
