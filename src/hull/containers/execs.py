"""Exec instances: `docker exec`'s records and processes, kept in memory as Docker keeps them.

An exec is created (a record, nothing runs; the daemon has the forkserver start its exec shim,
shim/execshim.py, meanwhile), then started once: the shim attaches the client's streams if it
wants them and starts the process after, in one request, so no output is lost. The process
is the container's own (its bundle's config.json: capabilities, rlimits, no-new-privileges,
seccomp through the container's state) with the exec's command, environment (the
container's, then the exec's), working directory, user and terminal, as dockerd builds it.
A task per started exec waits for its exit, records the code, publishes exec_die and
releases the shim.

Records live until their container stops (Docker unregisters a container's execs at its
exit) or the daemon does: there is nothing on disk.
"""

import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hull import detachkeys
from hull.containers.ocispec import host_capabilities, merge_env, process_env
from hull.containers.record import Container
from hull.containers.users import ExecUser, resolve_user
from hull.errors import Conflict, HullError, InvalidArgument, NotFound
from hull.runtime.spec import CONFIG_FILE
from hull.shim.client import ShimClient
from hull.shim.config import ShimConfig

if TYPE_CHECKING:
    from hull.daemon.daemon import Daemon

log = logging.getLogger("hulld.execs")

# What dockerd records for an exec whose process could not be started, whatever the reason
# (a missing program too, unlike `docker run`'s 127): the CLI exits with it.
START_FAILED = 126
# How long a resize waits for the exec it resizes to be started, as dockerd waits.
LAUNCH_WAIT = 10.0


@dataclass
class ExecRecord:
    id: str
    container_id: str
    entrypoint: str
    args: list[str]
    env: list[str]
    working_dir: str
    user: str
    tty: bool
    privileged: bool
    open_stdin: bool
    open_stdout: bool
    open_stderr: bool
    detach_keys: str
    started: bool = False
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    shim: ShimClient | None = None  # once running
    prepared: "asyncio.Task[ShimClient] | None" = None  # the exec shim, forked at create
    launched: asyncio.Event = field(default_factory=asyncio.Event)  # start has run (or failed)
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def command(self) -> str:
        """As dockerd's events show it: the entrypoint, a space, the arguments (so "true " alone)."""
        return f"{self.entrypoint} {' '.join(self.args)}"

    def to_json(self) -> dict[str, Any]:
        """GET /exec/{id}/json."""
        process: dict[str, Any] = {
            "tty": self.tty,
            "entrypoint": self.entrypoint,
            "arguments": self.args,
            "privileged": self.privileged,
        }
        if self.user:
            process["user"] = self.user
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": process,
            "OpenStdin": self.open_stdin,
            "OpenStderr": self.open_stderr,
            "OpenStdout": self.open_stdout,
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": self.detach_keys,
            "Pid": self.pid,
        }


def _str_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{key} must be a list of strings")
    return list(value)


def _console_size(value: Any) -> tuple[int, int] | None:
    """ExecStartConfig.ConsoleSize: [height, width], or null."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 65536 for v in value)
    ):
        raise InvalidArgument(f"ConsoleSize must be [height, width] of integers from 0 to 65535, got {value!r}")
    return value[0], value[1]


class ExecManager:
    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self._by_id: dict[str, ExecRecord] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Per running container: (its StartedAt, its bundle's process, its root path).
        self._bundles: dict[str, tuple[str, dict[str, Any], str]] = {}

    def get(self, exec_id: str) -> ExecRecord:
        rec = self._by_id.get(exec_id)
        if rec is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return rec

    def _running_container(self, cid: str) -> Container:
        c = self.daemon.containers.get(cid)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.paused:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if c.state.restarting:
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        return c

    def create(self, c: Container, body: dict[str, Any]) -> ExecRecord:
        """POST /containers/{id}/exec: a record; nothing runs until start."""
        self._running_container(c.id)
        cmd = _str_list(body, "Cmd")
        if not cmd:
            raise InvalidArgument("No exec command specified")
        env = _str_list(body, "Env")
        for entry in env:
            if not entry or entry.startswith("="):
                raise InvalidArgument(f"invalid environment variable: {entry}")
        workdir = body.get("WorkingDir") or ""
        if not isinstance(workdir, str) or (workdir and not workdir.startswith("/")):
            raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
        keys = body.get("DetachKeys") or ""
        try:
            detachkeys.parse(keys or detachkeys.DEFAULT)
        except ValueError:
            raise InvalidArgument(f"Invalid detach keys ({keys}) provided") from None
        user = body.get("User") or ""
        if not isinstance(user, str):
            raise InvalidArgument("User must be a string")
        rec = ExecRecord(
            id=secrets.token_hex(32),
            container_id=c.id,
            entrypoint=cmd[0],
            args=cmd[1:],
            env=env,
            working_dir=workdir,
            user=user,
            tty=bool(body.get("Tty")),
            privileged=bool(body.get("Privileged")),
            open_stdin=bool(body.get("AttachStdin")),
            open_stdout=bool(body.get("AttachStdout")),
            open_stderr=bool(body.get("AttachStderr")),
            detach_keys=str(keys),
        )
        self._by_id[rec.id] = rec
        self.daemon.containers.publish_event(c, f"exec_create: {rec.command}", execID=rec.id)
        # The exec shim is forked now, while the client reads this answer and sends its start:
        # that start then waits for less. Its errors (an unknown user, say) are the start's.
        rec.prepared = asyncio.create_task(self._prepare(c, rec))
        rec.prepared.add_done_callback(lambda t: t.cancelled() or t.exception())  # raised at start, if ever
        return rec

    def _exec_dir(self, rec: ExecRecord) -> str:
        return os.path.join(self.daemon.config.exec_root, "execs", rec.id)

    async def _prepare(self, c: Container, rec: ExecRecord) -> ShimClient:
        exec_dir = self._exec_dir(rec)
        try:
            # Files to read (the bundle the first time, /etc/passwd for -u) in a worker thread; else at once.
            if rec.user or self._bundle(c) is None:
                process = await self.daemon.blocking(self._process, c, rec)
            else:
                process = self._process(c, rec)
            os.makedirs(exec_dir, mode=0o700)
            assert self.daemon.forkserver is not None
            await self.daemon.forkserver.spawn_exec(self._shim_config(c, rec, exec_dir), process)
        except BaseException:
            shutil.rmtree(exec_dir, ignore_errors=True)
            raise
        return ShimClient(exec_dir)

    def check_startable(self, rec: ExecRecord) -> Container:
        """What refuses a start before the client's connection is taken over (409s)."""
        if rec.running:
            raise Conflict(f"Error: Exec command {rec.id} is already running")
        if rec.started:
            raise Conflict(f"Error: Exec command {rec.id} has already run")
        return self._running_container(rec.container_id)

    async def start(
        self, rec: ExecRecord, console_size: Any, attach: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Run the exec's process; with `attach`, the stream of its output (frames, stdin in), else None.
        A process that cannot start raises, with its exit code recorded as Docker records it."""
        c = self.check_startable(rec)
        size = _console_size(console_size)
        rec.started = True
        try:
            return await self._launch(c, rec, size, attach)
        finally:
            rec.launched.set()

    async def _launch(
        self, c: Container, rec: ExecRecord, size: tuple[int, int] | None, attach: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        self.daemon.containers.publish_event(c, f"exec_start: {rec.command}", execID=rec.id)
        assert rec.prepared is not None
        exec_dir = self._exec_dir(rec)
        try:
            # Shielded: the shim comes up whatever becomes of this start, and must then be let go.
            shim = await asyncio.shield(rec.prepared)
        except HullError:
            rec.exit_code = START_FAILED
            raise
        except asyncio.CancelledError:  # the caller went (a health check of a container that ended)
            self._track(self._discard(rec))
            raise
        stream = None
        try:
            if attach:
                started, reader, writer = await shim.start_attached(
                    rec.open_stdin, rec.open_stdout, rec.open_stderr, size if rec.tty else None
                )
                stream = reader, writer
            else:
                started = await shim.start(size if rec.tty else None)
        except HullError:
            rec.exit_code = START_FAILED
            await self._release(shim, exec_dir)
            raise
        except asyncio.CancelledError:
            self._track(self._release(shim, exec_dir))
            raise
        rec.shim, rec.pid, rec.running = shim, int(started.get("pid") or 0), True
        self._track(self._watch(c, rec, exec_dir))
        return stream

    def _shim_config(self, c: Container, rec: ExecRecord, exec_dir: str) -> ShimConfig:
        config = self.daemon.config
        return ShimConfig(
            id=c.id,
            bundle=os.path.join(self.daemon.containers.exec_root, c.id),
            exec_dir=exec_dir,
            runtime=config.runtime_path(c.host_config.get("Runtime") or config.default_runtime),
            runtime_root=self.daemon.containers.runtime_root,
            terminal=rec.tty,
            open_stdin=rec.open_stdin,
            stdin_once=True,  # the end of the client's stdin is the end of the process's
        )

    def _bundle(self, c: Container) -> tuple[dict[str, Any], str] | None:
        """The container's process and root path from its bundle, if read already in this run."""
        hit = self._bundles.get(c.id)
        return hit[1:] if hit is not None and hit[0] == c.state.started_at else None

    def _process(self, c: Container, rec: ExecRecord) -> dict[str, Any]:
        """The OCI process: the container's (from its bundle) with the exec's own settings."""
        bundle = self._bundle(c)
        if bundle is None:
            with open(os.path.join(self.daemon.containers.exec_root, c.id, CONFIG_FILE)) as f:
                spec = json.load(f)
            bundle = spec["process"], spec["root"]["path"]
            self._bundles[c.id] = (c.state.started_at, *bundle)
        process = dict(bundle[0])
        if rec.user:
            user = resolve_user(bundle[1], rec.user, c.host_config.get("GroupAdd") or [])
            process["user"] = {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids}
        else:  # the container's user, as its bundle has it resolved already
            home = next((e[5:] for e in process["env"] if e.startswith("HOME=")), "/")
            user = ExecUser(process["user"]["uid"], process["user"]["gid"], home=home)
        process["args"] = [rec.entrypoint, *rec.args]
        base = process_env({"Env": c.config.get("Env"), "Tty": rec.tty}, c.config.get("Hostname") or "", user)
        process["env"] = merge_env(base, rec.env)
        process["cwd"] = rec.working_dir or c.config.get("WorkingDir") or "/"
        process["terminal"] = rec.tty
        process.pop("consoleSize", None)  # the start's, if any, comes with the shim's `start`
        if rec.privileged:
            caps = host_capabilities()
            process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted", "inheritable")}
        return process

    async def _watch(self, c: Container, rec: ExecRecord, exec_dir: str) -> None:
        assert rec.shim is not None
        try:
            info = await rec.shim.wait()
            code = info.get("exit_code")
            rec.exit_code = 255 if code is None else int(code)
        except HullError as e:
            log.warning("exec %s: lost its shim: %s", rec.id, e.message)
            rec.exit_code = 255
        rec.running = False
        self.daemon.containers.publish_event(c, "exec_die", execID=rec.id, exitCode=str(rec.exit_code))
        rec.exited.set()
        await self._release(rec.shim, exec_dir)

    async def _release(self, shim: ShimClient, exec_dir: str) -> None:
        try:
            await shim.delete()
        except HullError as e:
            log.warning("exec shim %s: delete: %s", exec_dir, e.message)
        shutil.rmtree(exec_dir, ignore_errors=True)

    async def resize(self, rec: ExecRecord, height: int, width: int) -> None:
        self._running_container(rec.container_id)
        if rec.started:  # the client resizes as soon as its stream is up, which is before the process is
            try:
                await asyncio.wait_for(rec.launched.wait(), LAUNCH_WAIT)
            except TimeoutError:
                raise HullError("timeout waiting for exec session ready") from None
        if not rec.started or (rec.exit_code is not None and not rec.exited.is_set()):
            raise Conflict(f"Exec {rec.id} is not running")  # never started, or failed to
        # Docker answers 200 for an exec without a terminal and changes nothing; one that ended
        # during the client's first resize (a quick `exec -t`) is not worth the client's warning.
        if rec.tty and rec.running and rec.shim is not None:
            try:
                await rec.shim.resize(height, width)
            except HullError:
                if rec.running:
                    raise

    def forget(self, container_id: str) -> None:
        """The container stopped: dockerd unregisters its execs that have not finished (those that
        ended stay inspectable); the shims of those never started go."""
        self._bundles.pop(container_id, None)
        for rec in [self._by_id[i] for i in self.ids_of(container_id)]:
            del self._by_id[rec.id]
            if not rec.started:
                self._track(self._discard(rec))

    async def _discard(self, rec: ExecRecord) -> None:
        assert rec.prepared is not None
        try:
            shim = await asyncio.shield(rec.prepared)
        except HullError:
            return
        await self._release(shim, self._exec_dir(rec))

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def ids_of(self, container_id: str) -> list[str]:
        """A container's execs that have not ended (inspect's ExecIDs, as dockerd lists them)."""
        return [r.id for r in self._by_id.values() if r.container_id == container_id and r.exit_code is None]

    def remove(self, rec: ExecRecord) -> None:
        """Drop a record nobody will ask about (a health check's, started or failed to)."""
        self._by_id.pop(rec.id, None)

    async def shutdown(self) -> None:
        """The daemon stops and its records with it: no exec may run on unwatched (its shim would wait forever)."""
        for rec in self._by_id.values():
            if not rec.started:
                self._track(self._discard(rec))
            elif rec.running and rec.shim is not None:
                try:
                    await rec.shim.kill(signal.SIGKILL)
                except HullError:
                    pass  # it ended meanwhile
        await asyncio.gather(*self._tasks, return_exceptions=True)
