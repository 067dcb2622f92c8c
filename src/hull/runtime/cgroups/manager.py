"""CgroupManager: one container's cgroup, in every hierarchy it lives in.

Vocabulary: the manager's *paths* map each hierarchy name (`memory`, `cpu,cpuacct`,
`name=systemd`, `""` for cgroup2) to the container's cgroup directory there; the directories
it *created* are the ones `create()` made, parents first. Nothing else is state: a manager is
rebuilt from `to_json()` in a later process (`hull-runtime delete`), and `destroy()` then
removes exactly what `create()` made, never a directory that was already there.

Life of a container's cgroup: `create()` → `apply(resources)` → `add_current()` in init's
and each exec's child → `freeze()`/`thaw()`/`kill_all(sig)`/`stats()` while it runs → `kill_all(SIGKILL)`
→ `destroy()`. A failing `create()` removes what it made before raising; after any later
failure the caller destroys.

The version-specific managers (v1.py, v2.py) say how resources, the freezer and stats map to
their files; membership, signalling and directory lifetimes are the same for both and live here.
"""

import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from hull.errors import HullError
from hull.runtime import log
from hull.runtime.cgroups.files import (
    CGROUP_PROCS,
    TASKS,
    child_cgroups,
    make_cgroup_dirs,
    read_procs,
    remove_cgroup_dir,
    wait_until,
    write_cgroup_file,
)
from hull.runtime.cgroups.hierarchy import UNIFIED
from hull.runtime.cgroups.resources import LinuxResources

# How long freezing may take before we give up and thaw again: a task in uninterruptible sleep
# (a vfork parent, a hung NFS read) holds the freeze up until it wakes.
FREEZE_TIMEOUT = 5.0


class CgroupManager(ABC):
    version: ClassVar[int]

    def __init__(self, paths: Mapping[str, str], created: Sequence[str] = ()) -> None:
        self._paths = dict(paths)
        self._created = list(created)

    # --- what each version says -------------------------------------------------------------

    @abstractmethod
    def apply(self, resources: LinuxResources) -> list[str]:
        """Write every field that is set to the kernel's files; return (and log) warnings for
        fields this cgroup version can't enforce."""

    @abstractmethod
    def frozen(self) -> bool:
        """Whether the kernel reports the cgroup frozen (False once it is gone)."""

    @abstractmethod
    def oom_kill_count(self) -> int:
        """How many processes the OOM killer has killed in the cgroup so far."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """The `data` of runc's `events --stats`, with what this kernel's files give."""

    @abstractmethod
    def _membership_dir(self) -> str:
        """The directory whose cgroup.procs (and those below it) define the container's processes."""

    @abstractmethod
    def _can_freeze(self) -> bool:
        """Whether there is a freezer to hold the processes still while kill_all signals them."""

    @abstractmethod
    def _request_frozen(self, frozen: bool) -> None:
        """Ask the freezer to freeze or thaw; the kernel may take a while to get there."""

    # --- the same for both ------------------------------------------------------------------

    def paths(self) -> dict[str, str]:
        return dict(self._paths)

    def create(self) -> None:
        try:
            for directory in self._paths.values():
                self._created.extend(make_cgroup_dirs(directory))
        except BaseException:
            self.destroy()
            raise

    def cgroup2_dir(self) -> str | None:
        """The container's cgroup2 directory, if it has one (v2, or v1 beside a cgroup2 mount)."""
        return self._paths.get(UNIFIED)

    def add_current(self, *, born_in_cgroup2: bool = False) -> None:
        """Move the calling process in; it must have one thread (as a fresh fork has).

        In a v1 hierarchy by writing 0 (the caller) to `tasks`: that moves the one thread, so
        the process, and the kernel then skips the global lock that a write to cgroup.procs
        takes, whose first taker after a quiet spell waits out an RCU grace period (~5 ms, a
        fifth of a `docker exec`). cgroup2 has no such way; a child born there
        (`born_in_cgroup2`: clone3 with CLONE_INTO_CGROUP) needs no write at all."""
        for name, directory in self._paths.items():
            if name != UNIFIED:
                write_cgroup_file(directory, TASKS, 0)
            elif not born_in_cgroup2:
                write_cgroup_file(directory, CGROUP_PROCS, 0)

    def pids(self) -> list[int]:
        return sorted(set(read_procs(self._membership_dir())))

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        def settled() -> bool:
            # Asking again is harmless, and in v1 retries the tasks that could not stop yet.
            self._request_frozen(frozen)
            return self.frozen() == frozen

        if not wait_until(settled, FREEZE_TIMEOUT):
            if frozen:
                self._request_frozen(False)
            raise HullError(
                f"{'freeze' if frozen else 'thaw'} {self._membership_dir()}: "
                f"the kernel did not report it {'frozen' if frozen else 'thawed'} within {FREEZE_TIMEOUT}s"
            )

    def kill_all(self, sig: int) -> None:
        """Send `sig` to every process in the cgroup.

        The cgroup is frozen while the signals go out, so no process forks a child that
        would miss one. A cgroup that was frozen (paused) before stays so, unless the
        signal is SIGKILL: killed tasks must run to die.
        """
        if not self.pids():
            return
        if not self._can_freeze():
            self._signal_all(sig)
            return
        was_frozen = self.frozen()
        try:
            self.freeze()
        except HullError as e:
            # One task stuck in uninterruptible sleep must not spare all the others.
            log.warning(f"{e.message}; signalling without freezing")
        try:
            self._signal_all(sig)
        finally:
            if sig == signal.SIGKILL or not was_frozen:
                self.thaw()

    def _signal_all(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue

    def destroy(self) -> None:
        """Remove the directories create() made, deepest first; missing ones are fine.

        The container's own directories go with any cgroups it made below them. A created
        ancestor stays while it holds other cgroups (another container's, or a pre-existing
        sibling): it is shared now.
        """
        leaves = set(self._paths.values())
        failures = []
        for directory in sorted(self._created, key=lambda d: d.count("/"), reverse=True):
            if directory not in leaves and child_cgroups(directory):
                continue
            try:
                remove_cgroup_dir(directory)
            except HullError as e:
                failures.append(e.message)
                continue
            self._created.remove(directory)
        if failures:
            raise HullError("; ".join(failures))

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "paths": self.paths(), "created": list(self._created)}

    @staticmethod
    def _fields_from_json(d: Any) -> tuple[dict[str, str], list[str]]:
        """paths and created from a to_json() dict, checked so that a damaged state file can't
        make destroy() remove a directory the manager does not own."""
        if not isinstance(d, dict):
            raise HullError(f"cgroup state: expected an object, got {d!r}")
        paths, created = d.get("paths"), d.get("created", [])
        if not isinstance(paths, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and os.path.isabs(v) for k, v in paths.items()
        ):
            raise HullError(f"cgroup state: paths must map hierarchy names to absolute directories, got {paths!r}")
        if not isinstance(created, list) or not all(
            isinstance(c, str) and any(p == c or p.startswith(c.rstrip("/") + "/") for p in paths.values())
            for c in created
        ):
            raise HullError(f"cgroup state: created must list managed directories or their parents, got {created!r}")
        return paths, created
