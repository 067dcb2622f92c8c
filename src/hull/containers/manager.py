"""Containers of one daemon: create, start, stop, kill, restart, wait, remove, and restore after a restart.

Vocabulary: a container's *record* is its containers/<id>/ directory (record.py); its
*exec dir* is <exec-root>/containers/<id>/, on tmpfs, holding the OCI bundle's config.json
and its shim's socket. A running container is watched by a *monitor* task that waits on
the shim; when the init exits the monitor records the exit, tells `wait`ers, releases the
shim and the rootfs mount, and removes the container if it was started with --rm.

Attach before start: `docker run` attaches before it starts. Attachers of a container that
is not running yet wait in `_pending_attach`; `start` connects them to the new shim before
it lets the container's process run, so they see all of its output.
"""

import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hull.containers import files, names
from hull.containers.cgroup import update_resources
from hull.containers.execs import ExecManager
from hull.containers.health import HealthMonitors
from hull.containers.health import check_config as check_health_config
from hull.containers.jsonlog import parse_log_opts
from hull.containers.ocispec import SpecInputs, build_spec, check_request, resolve_command
from hull.containers.record import Container, State
from hull.containers.restart import RestartManager, RestartPolicy, run_seconds
from hull.containers.update import plan as update_plan
from hull.errors import Conflict, HullError, InvalidArgument, NotFound, NotModified
from hull.fsutil import atomic_write
from hull.images import containerconfig as cc
from hull.runtime.spec import CONFIG_FILE
from hull.shim import sysinfo
from hull.shim.client import ShimClient
from hull.shim.config import SECCOMP_SOCKET_NAME, ShimConfig
from hull.volumes.mounts import check_bind_sources, oci_mounts, rootfs_propagation
from hull.volumes.mounts import plan as plan_mounts

if TYPE_CHECKING:
    from hull.daemon.daemon import Daemon

log = logging.getLogger("hulld.containers")

DEFAULT_STOP_TIMEOUT = 10
# How long a removed container's exit code is kept for a `wait?condition=removed` that comes late.
RECENTLY_REMOVED_TTL = 60.0


def rfc3339_now() -> str:
    t = time.time_ns()
    secs, nanos = divmod(t, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


def parse_signal(value: str | int | None, default: int = signal.SIGKILL) -> int:
    """ "SIGTERM", "TERM", "15" or 15 -> 15; InvalidArgument for anything else."""
    if value is None or value == "":
        return default
    if isinstance(value, int) or str(value).isdigit():
        num = int(value)
        if 0 < num < signal.NSIG:
            return num
    else:
        name = str(value).upper()
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise InvalidArgument(f"Invalid signal: {value}")


@dataclass
class _Live:
    """What the daemon holds for a container between start and the end of its monitor."""

    shim: ShimClient
    exited: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Attacher:
    stdin: bool
    stdout: bool
    stderr: bool
    connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]


class ContainerManager:
    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.root = daemon.root
        self._by_id: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        self._live: dict[str, _Live] = {}
        self._pending_attach: dict[str, list[_Attacher]] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._remove_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._recently_removed: dict[str, tuple[float, int]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._monitors: set[asyncio.Task[None]] = set()
        # Restart policy state per container (reset by a user's start) and the pending restarts.
        self._restarts: dict[str, RestartManager] = {}
        self._restart_waits: dict[str, asyncio.Task[None]] = {}
        self.exec_root = os.path.join(daemon.config.exec_root, "containers")
        self.runtime_root = os.path.join(daemon.config.exec_root, "runtime")
        self.execs = ExecManager(daemon)
        self.health = HealthMonitors(self)

    # --- lookup -----------------------------------------------------------------------------

    def all(self) -> list[Container]:
        return list(self._by_id.values())

    def running_ids(self) -> set[str]:
        return {c.id for c in self._by_id.values() if c.state.running}

    def get(self, ref: str) -> Container:
        """By full id, name (with or without "/"), or unique id prefix, as Docker resolves them."""
        c = self._by_id.get(ref)
        if c is not None:
            return c
        cid = self._names.get(ref.lstrip("/"))
        if cid is not None:
            return self._by_id[cid]
        if ref and all(ch in "0123456789abcdef" for ch in ref):
            found = [c for c in self._by_id.values() if c.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def publish_event(self, c: Container, action: str, **extra: str) -> None:
        """A container event as Docker publishes them: image, name and labels as attributes, plus `extra`."""
        attrs = {"image": c.image_name, "name": c.name}
        attrs.update({k: str(v) for k, v in (c.config.get("Labels") or {}).items()})
        attrs.update(extra)
        self.daemon.events.publish("container", action, c.id, attrs)

    # --- load and restore ---------------------------------------------------------------------

    def load(self) -> None:
        os.makedirs(self.root.containers, mode=0o710, exist_ok=True)
        for cid in os.listdir(self.root.containers):
            directory = os.path.join(self.root.containers, cid)
            try:
                c = Container.load(directory)
            except (OSError, ValueError, KeyError) as e:
                # No config.v2.json: a create that crashed before its record was complete.
                log.warning("removing incomplete container record %s: %s", cid, e)
                self._remove_incomplete(cid, directory)
                continue
            self._by_id[c.id] = c
            self._names[c.name] = c.id
            self.daemon.volumes.adopt(c.mount_points, c.id, c.state.running)

    def _remove_incomplete(self, cid: str, directory: str) -> None:
        try:
            self.daemon.images.layers.delete_rw(cid)
        except HullError:
            pass
        shutil.rmtree(directory, ignore_errors=True)

    async def restore(self) -> None:
        """Find running containers through their shims; record those that died while we were away."""
        await self.daemon.blocking(self.load)
        for c in list(self._by_id.values()):
            if c.state.restarting:
                # Its pending restart died with the last daemon: it is stopped; the pass below decides.
                c.state.running = c.state.restarting = False
                await self.daemon.blocking(c.save)
            if not c.state.running:
                continue
            shim = ShimClient(self._exec_dir(c.id))
            state: dict[str, Any] | None = None
            if shim.alive():
                try:
                    state = await shim.state()
                except HullError as e:
                    log.warning("container %s: shim does not answer: %s", c.id, e)
            if state is not None and state.get("status") in ("running", "paused", "created"):
                live = _Live(shim)
                self._live[c.id] = live
                c.state.paused = state.get("status") == "paused"
                self._watch(c, live)
                self.health.start(c)
                continue
            exit_info = state if state is not None else self._read_exit_file(c)
            await self._finish(c, shim if state is not None else None, exit_info)
        await self._start_by_policy()

    async def _start_by_policy(self) -> None:
        """At daemon start, as dockerd: start the stopped containers their restart policy would
        restart (`always` even after a user's stop; `unless-stopped` unless the user stopped it)."""
        for c in list(self._by_id.values()):
            if c.state.running or not c.has_been_started_before:
                continue
            fresh = RestartManager(RestartPolicy.from_host_config(c.host_config), c.restart_count)
            ran_for = run_seconds(c.state.started_at, c.state.finished_at)
            if fresh.should_restart(c.state.exit_code, c.has_been_manually_stopped, ran_for) is None:
                continue
            try:
                await self.start(c)
            except HullError as e:
                log.warning("container %s: restart policy start failed: %s", c.id, e.message)

    def _read_exit_file(self, c: Container) -> dict[str, Any]:
        try:
            with open(c.exit_file, "rb") as f:
                return dict(json.load(f))
        except (OSError, ValueError):
            # The shim itself died: nobody saw the exit status. Docker reports 255 then.
            return {"exit_code": 255, "exited_at": rfc3339_now(), "oom_killed": False}

    async def shutdown(self) -> None:
        """Stop watching; containers keep running under their shims (live restore). A monitor
        cancelled halfway through a container's end leaves it to the next daemon's restore."""
        await self.health.shutdown()
        await self.execs.shutdown()
        waits = list(self._restart_waits.values())
        for task in [*self._monitors, *waits]:
            task.cancel()
        await asyncio.gather(*self._monitors, *waits, return_exceptions=True)

    def _watch(self, c: Container, live: _Live) -> None:
        task = asyncio.create_task(self._monitor(c, live))
        self._monitors.add(task)
        task.add_done_callback(self._monitors.discard)

    # --- create -------------------------------------------------------------------------------

    async def create(self, name: str, body: dict[str, Any]) -> tuple[Container, list[str]]:
        """POST /containers/create: the record, the init and read-write layers; nothing runs yet."""
        host_config = body.pop("HostConfig", None) or {}
        networking = body.pop("NetworkingConfig", None)
        if not isinstance(host_config, dict):
            raise InvalidArgument("invalid HostConfig: must be a JSON object")
        image_ref = body.get("Image") or ""
        if not image_ref:
            raise InvalidArgument("No image specified")  # Docker: "config cannot be empty ..." varies
        config = cc.normalize(body, "container config")
        check_health_config(config)
        warnings = self._check_host_config(host_config)
        network_settings = self.daemon.networks.settings_at_create(host_config, networking)
        image_id = await self.daemon.blocking(self.daemon.images.lookup, image_ref)
        raw = await self.daemon.blocking(self.daemon.images.images.get, image_id)
        merged = cc.merge(config, cc.normalize(json.loads(raw).get("config"), "image config"))
        merged["Image"] = image_ref
        check_request(merged, host_config)
        mount_points = plan_mounts(merged, host_config, lambda ref: self.get(ref).mount_points)
        check_bind_sources(mount_points)
        command = resolve_command(merged)
        if name:
            if not names.valid_name(name):
                raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            name = name.lstrip("/")
        cid = secrets.token_hex(32)
        name = self._reserve_name(name, cid)
        c = Container(
            id=cid,
            name=name,
            created=rfc3339_now(),
            image_id=image_id,
            config=merged,
            host_config=self._complete_host_config(host_config),
            path=command[0],
            args=command[1:],
            driver=self.root.driver,
            directory=os.path.join(self.root.containers, cid),
            mount_points=mount_points,
        )
        if not c.config.get("Hostname"):
            c.config["Hostname"] = cid[:12]
        c.network_settings = network_settings
        try:
            await self.daemon.volumes.attach(c.mount_points, cid)
            top = self.daemon.images.top_layer(image_id)
            await self.daemon.locked(self.daemon.images.layers.create_rw, cid, top)
            await self.daemon.blocking(self._write_record, c)
        except BaseException:
            self._names.pop(name, None)
            await self.daemon.volumes.detach(c.mount_points, cid, remove_anonymous=True)
            await self.daemon.locked(self._remove_incomplete, cid, c.directory)
            raise
        self._by_id[cid] = c
        self.publish_event(c, "create")
        return c, warnings

    def _reserve_name(self, name: str, cid: str) -> str:
        if name:
            other = self._names.get(name)
            if other is not None:
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container "{other}". '
                    "You have to remove (or rename) that container to be able to reuse that name."
                )
        else:
            for attempt in range(10):
                name = names.random_name(attempt)
                if name not in self._names:
                    break
        self._names[name] = cid
        return name

    def _write_record(self, c: Container) -> None:
        os.makedirs(c.directory, mode=0o710)
        host_network = c.host_config.get("NetworkMode") == "host"
        hostname = os.uname().nodename if host_network else c.config["Hostname"]
        self._write_network_files(c, hostname, host_network)
        c.save()

    def _write_network_files(self, c: Container, hostname: str, host_network: bool) -> None:
        """/etc/hostname, /etc/hosts and /etc/resolv.conf: at create, and again at each start once
        the container has its addresses (its own, its links', its network's DNS server)."""
        files.write_container_files(
            c.directory,
            hostname,
            files.hosts_content(self.daemon.networks.hosts_entries(c)),
            files.resolv_conf_content(
                host_network,
                self.daemon.networks.dns_servers(c),
                list(c.host_config.get("DnsSearch") or []),
                list(c.host_config.get("DnsOptions") or []),
            ),
        )

    def _check_host_config(self, hc: dict[str, Any]) -> list[str]:
        """Refuse what hull cannot do yet, clearly, before anything is written."""
        warnings: list[str] = []
        policy = RestartPolicy.from_host_config(hc)
        if hc.get("AutoRemove") and not policy.is_none:
            raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
        log_config = hc.get("LogConfig") or {}
        if log_config.get("Type") not in (None, "", "json-file"):
            raise InvalidArgument(f"logging driver {log_config.get('Type')!r} is not supported: hull writes json-file")
        parse_log_opts(log_config.get("Config") or {})
        return warnings

    def _complete_host_config(self, hc: dict[str, Any]) -> dict[str, Any]:
        out = dict(hc)
        out.setdefault("NetworkMode", "default")
        if not out["NetworkMode"]:
            out["NetworkMode"] = "default"
        out.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
        if not (out.get("LogConfig") or {}).get("Type"):
            out["LogConfig"] = {"Type": "json-file", "Config": (out.get("LogConfig") or {}).get("Config") or {}}
        out.setdefault("Privileged", False)
        out.setdefault("AutoRemove", False)
        return out

    # --- start --------------------------------------------------------------------------------

    def _exec_dir(self, cid: str) -> str:
        return os.path.join(self.exec_root, cid)

    async def start(self, c: Container) -> None:
        try:
            async with self.lock(c.id):
                if c.state.running:
                    raise NotModified("container already started")
                if c.state.removal_in_progress or c.id not in self._by_id:
                    raise Conflict(f"container {c.id} is marked for removal and cannot be started")
                self._restarts.pop(c.id, None)  # a user's start: a fresh policy, back-off and count
                await self._start_locked(c)
        except HullError as e:
            # As Docker: a --rm container that could not start is removed (its `wait removed` ends).
            if not isinstance(e, NotModified) and c.host_config.get("AutoRemove") and c.id in self._by_id:
                await self.remove(c, force=True, volumes=True)
            raise

    async def _start_locked(self, c: Container) -> None:
        exec_dir = self._exec_dir(c.id)
        rootfs = await self.daemon.locked(self.daemon.images.layers.mount, c.id)
        try:
            netns_path = await self.daemon.networks.attach(c)
            if netns_path is not None:
                await self.daemon.blocking(self._write_network_files, c, c.config["Hostname"], False)
            spec = await self.daemon.blocking(self._write_bundle, c, exec_dir, rootfs, netns_path)
            max_size, max_file = parse_log_opts((c.host_config.get("LogConfig") or {}).get("Config") or {})
            shim_config = ShimConfig(
                id=c.id,
                bundle=exec_dir,
                exec_dir=exec_dir,
                exit_file=c.exit_file,
                runtime=self.daemon.config.runtime_path(
                    c.host_config.get("Runtime") or self.daemon.config.default_runtime
                ),
                runtime_root=self.runtime_root,
                log_path=c.log_path,
                log_max_size=max_size,
                log_max_file=max_file,
                terminal=bool(c.config.get("Tty")),
                open_stdin=bool(c.config.get("OpenStdin")),
                # Docker closes the container's stdin when an attach ends only without a TTY: with one,
                # the end of an attach (a detach, a client gone) leaves the shell running.
                stdin_once=bool(c.config.get("StdinOnce")) and not c.config.get("Tty"),
                memory_cgroup=spec["linux"].get("cgroupsPath", ""),
                answer_sysinfo="listenerPath" in (spec["linux"].get("seccomp") or {}),
            )
            try:
                os.unlink(c.exit_file)
            except FileNotFoundError:
                pass
            assert self.daemon.forkserver is not None
            await self.daemon.forkserver.spawn(shim_config)
        except HullError as e:
            await self._failed_start(c, exec_dir, e)
            raise
        shim = ShimClient(exec_dir)
        live = _Live(shim)
        self._live[c.id] = live
        try:
            await self._connect_attachers(c, shim)
            started = await shim.start()
        except HullError as e:
            self._live.pop(c.id, None)
            await self._release(c, shim)
            await self._failed_start(c, exec_dir, e, released=True)
            raise
        c.state = State(
            running=True,
            pid=int(started.get("pid") or 0),
            started_at=started.get("started_at") or rfc3339_now(),
            health=c.state.health,  # its Log carries over, as Docker's (health.py resets the rest)
        )
        c.has_been_started_before = True
        c.has_been_manually_stopped = False
        await self.daemon.blocking(c.save)
        self.publish_event(c, "start")
        self._watch(c, live)
        self.health.start(c)

    def _write_bundle(self, c: Container, exec_dir: str, rootfs: str, netns_path: str | None) -> dict[str, Any]:
        self.daemon.volumes.mount(c.mount_points, c.id, rootfs)
        spec = build_spec(
            SpecInputs(
                container_id=c.id,
                config=c.config,
                host_config=c.host_config,
                rootfs=rootfs,
                volume_mounts=oci_mounts(c.mount_points),
                rootfs_propagation=rootfs_propagation(c.mount_points),
                hostname_path=c.hostname_path,
                hosts_path=c.hosts_path,
                resolv_conf_path=c.resolv_conf_path,
                namespace_paths=self._namespace_paths(c),
                sandbox_key=netns_path,
                cgroup_parent_default=self.daemon.config.cgroup_parent,
                init_path=self.daemon.config.init_path,
                lxcfs_root=self.daemon.lxcfs.mount_point if self.daemon.lxcfs is not None else None,
                # With lxcfs on, sysinfo(2) tells the truth too: the shim answers it (hull.shim.sysinfo).
                sysinfo_listener=(
                    os.path.join(exec_dir, SECCOMP_SOCKET_NAME)
                    if self.daemon.lxcfs is not None and sysinfo.supported()
                    else ""
                ),
            )
        )
        os.makedirs(exec_dir, mode=0o700, exist_ok=True)
        atomic_write(os.path.join(exec_dir, CONFIG_FILE), json.dumps(spec).encode(), mode=0o600, fsync=False)
        return spec

    def _namespace_paths(self, c: Container) -> dict[str, str]:
        """container:<x> modes: the other container's namespace files (it must be running)."""
        out = {}
        for key, ns in (("PidMode", "pid"), ("IpcMode", "ipc"), ("UTSMode", "uts"), ("NetworkMode", "net")):
            mode = c.host_config.get(key) or ""
            if mode.startswith("container:"):
                other = self.get(mode.partition(":")[2])
                if not other.state.running:
                    raise Conflict(f"cannot join namespaces of container {other.id}: it is not running")
                out["network" if ns == "net" else ns] = f"/proc/{other.state.pid}/ns/{ns}"
        return out

    async def _failed_start(self, c: Container, exec_dir: str, error: HullError, released: bool = False) -> None:
        if not released:
            await self.daemon.locked(self._unmount_quietly, c.id)
            await self.daemon.networks.detach(c)
        shutil.rmtree(exec_dir, ignore_errors=True)
        message = error.message
        c.state.error = message
        # What Docker records for a process that could not be started (the CLI maps these too).
        if "executable file not found" in message or "no such file or directory" in message:
            c.state.exit_code = 127
        elif "permission denied" in message:
            c.state.exit_code = 126
        else:
            c.state.exit_code = 128
        await self.daemon.blocking(c.save)
        self._fail_pending_attach(c.id, error)

    def _unmount_quietly(self, cid: str) -> None:
        c = self._by_id.get(cid)
        if c is not None:
            self.daemon.volumes.unmount(c.mount_points, cid)
        try:
            self.daemon.images.layers.unmount(cid)
        except HullError as e:
            log.warning("container %s: %s", cid, e.message)

    # --- attach -------------------------------------------------------------------------------

    def attach(
        self, c: Container, stdin: bool, stdout: bool, stderr: bool
    ) -> Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        """The container's output stream (frames as its shim sends them), decided at once, with no
        await: clients act as soon as they see the attach accepted (`docker run` then starts the
        container), so the attacher must be registered before that. A running container's shim
        is asked directly; otherwise the attacher waits for the next start, or for the
        container's removal, which ends it with NotFound."""
        self.publish_event(c, "attach")
        live = self._live.get(c.id)
        if live is not None and c.state.running:
            return live.shim.attach(stdin, stdout, stderr)
        fut: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending_attach.setdefault(c.id, []).append(_Attacher(stdin, stdout, stderr, fut))
        return fut

    async def _connect_attachers(self, c: Container, shim: ShimClient) -> None:
        for a in self._pending_attach.pop(c.id, []):
            if a.connected.done():
                continue
            try:
                a.connected.set_result(await shim.attach(a.stdin, a.stdout, a.stderr))
            except HullError as e:
                a.connected.set_exception(e)

    def _fail_pending_attach(self, cid: str, error: HullError) -> None:
        for a in self._pending_attach.pop(cid, []):
            if not a.connected.done():
                a.connected.set_exception(error)

    # --- the end of a run -----------------------------------------------------------------------

    async def _monitor(self, c: Container, live: _Live) -> None:
        try:
            info = await live.shim.wait()
        except asyncio.CancelledError:
            raise
        except HullError as e:
            log.warning("container %s: lost its shim: %s", c.id, e.message)
            info = self._read_exit_file(c)
        await self._finish(c, live.shim, info)

    async def _finish(self, c: Container, shim: ShimClient | None, info: dict[str, Any]) -> None:
        """Record the exit, release the shim and the mount, wake waiters, auto-remove."""
        async with self.lock(c.id):
            raw_code = info.get("exit_code")
            code = 255 if raw_code is None else int(raw_code)
            oom = bool(info.get("oom_killed"))
            finished_at = info.get("exited_at") or rfc3339_now()
            delay = None
            if c.id in self._by_id:
                ran_for = run_seconds(c.state.started_at, finished_at)
                delay = self._restart_manager(c).should_restart(code, c.has_been_manually_stopped, ran_for)
            c.state = State(
                # Restarting counts as running, as in Docker: stop, kill and rm -f apply to it.
                running=delay is not None,
                restarting=delay is not None,
                exit_code=code,
                oom_killed=oom,
                started_at=c.state.started_at,
                finished_at=finished_at,
                health=c.state.health,  # as Docker: the last health stays visible after the exit
            )
            if delay is not None:
                c.restart_count += 1
            live = self._live.pop(c.id, None)
            self.health.stop(c.id)
            self.execs.forget(c.id)
            if oom:
                self.publish_event(c, "oom")
            self.publish_event(c, "die", exitCode=str(code))  # before the release's network disconnects, as dockerd
            await self._release(c, shim)
            # An auto-removed container's exit needs no record: its removal follows at once (and
            # a crash before it leaves a record saying "running", which restore finishes the same way).
            auto_remove = bool(c.host_config.get("AutoRemove")) and delay is None
            if c.id in self._by_id and not auto_remove:
                await self.daemon.blocking(c.save)
            if live is not None:
                live.exited.set()
            for fut in self._exit_waiters.pop(c.id, []):
                if not fut.done():
                    fut.set_result(code)
            if delay is not None:
                self._restart_waits[c.id] = asyncio.create_task(self._restart_after(c, delay))
        if c.host_config.get("AutoRemove") and c.id in self._by_id:
            try:
                await self.remove(c, force=True, volumes=True)  # --rm takes the anonymous volumes too, as Docker
            except HullError as e:
                log.warning("container %s: auto-remove failed: %s", c.id, e.message)
                await self.daemon.blocking(c.save)

    def _restart_manager(self, c: Container) -> RestartManager:
        rm = self._restarts.get(c.id)
        if rm is None:
            rm = RestartManager(RestartPolicy.from_host_config(c.host_config), c.restart_count)
            self._restarts[c.id] = rm
        return rm

    async def _restart_after(self, c: Container, delay: float) -> None:
        """A restart policy's restart, after its back-off (stop, kill and rm cancel this task)."""
        await asyncio.sleep(delay)
        async with self.lock(c.id):
            self._restart_waits.pop(c.id, None)
            if not c.state.restarting or c.id not in self._by_id:
                return
            try:
                await self._start_locked(c)
            except HullError as e:
                log.warning("container %s: restart failed: %s", c.id, e.message)
                c.state.running = c.state.restarting = False
                await self.daemon.blocking(c.save)

    async def _end_restarting(self, c: Container) -> bool:
        """A user's stop or kill of a container waiting to restart: it stays stopped. False if the
        restart won the race (the container runs: stop or kill it as usual)."""
        async with self.lock(c.id):  # the restart task starts the container holding it
            if not c.state.restarting:
                return False
            self._restart_manager(c).cancel()
            task = self._restart_waits.pop(c.id, None)
            if task is not None:
                task.cancel()
            c.has_been_manually_stopped = True
            c.state.running = c.state.restarting = False
            await self.daemon.blocking(c.save)
            for fut in self._exit_waiters.pop(c.id, []):
                if not fut.done():
                    fut.set_result(c.state.exit_code)
            return True

    def _kill_ends_policy(self, c: Container, sig: int) -> bool:
        """Docker's ExitOnNext rule: a kill with the stop signal (any, without a StopSignal, or
        SIGKILL) means the user wants the container down: its restart policy stops."""
        stop_signal = c.config.get("StopSignal")
        return not stop_signal or sig == signal.SIGKILL or sig == parse_signal(stop_signal, signal.SIGTERM)

    async def _release(self, c: Container, shim: ShimClient | None) -> None:
        if shim is not None:
            try:
                await shim.delete()
            except HullError as e:
                # A shim that died (killed, say) left the container's processes and cgroup behind.
                log.warning("container %s: shim delete: %s", c.id, e.message)
                shim = None
        if shim is None:
            await self._force_delete_runtime_state(c)
        await self.daemon.locked(self._unmount_quietly, c.id)
        await self.daemon.networks.detach(c)
        shutil.rmtree(self._exec_dir(c.id), ignore_errors=True)

    async def _force_delete_runtime_state(self, c: Container) -> None:
        """The shim is gone: have the runtime clean its state (processes, cgroup) itself."""
        runtime = self.daemon.config.runtime_path(c.host_config.get("Runtime") or self.daemon.config.default_runtime)
        import sys

        argv = [runtime] if runtime else [sys.executable, "-m", "hull.runtime.cli"]
        proc = await asyncio.create_subprocess_exec(
            *argv, "--root", self.runtime_root, "delete", "--force", c.id,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await proc.wait()

    # --- stop, kill, restart ------------------------------------------------------------------

    async def kill(self, c: Container, sig: int) -> None:
        # A kill that does not end the policy leaves a restarting container as it is, as in Docker.
        if c.state.restarting and (not self._kill_ends_policy(c, sig) or await self._end_restarting(c)):
            return
        shim = self._running_shim(c)
        c.has_been_manually_stopped = True
        if self._kill_ends_policy(c, sig):
            self._restart_manager(c).cancel()
        await shim.kill(sig)
        self.publish_event(c, "kill", signal=str(sig))

    async def stop(self, c: Container, timeout: int | None = None, sig: int | None = None) -> None:
        if c.state.restarting and await self._end_restarting(c):
            self.publish_event(c, "stop")
            return
        live = self._live.get(c.id)
        if live is None or not c.state.running:
            raise NotModified("container already stopped")
        c.has_been_manually_stopped = True
        self._restart_manager(c).cancel()
        if sig is None:
            sig = parse_signal(c.config.get("StopSignal"), signal.SIGTERM)
        if timeout is None:
            configured = c.config.get("StopTimeout")
            timeout = DEFAULT_STOP_TIMEOUT if configured is None else int(configured)
        try:
            await live.shim.kill(sig)
            self.publish_event(c, "kill", signal=str(sig))
        except HullError:
            pass  # it may have exited meanwhile
        if timeout < 0 or not await self._wait_exited(live, timeout):
            if timeout >= 0:
                try:
                    await live.shim.kill(signal.SIGKILL, all=True)
                    self.publish_event(c, "kill", signal=str(int(signal.SIGKILL)))
                except HullError:
                    pass
            await live.exited.wait()
        self.publish_event(c, "stop")

    async def _wait_exited(self, live: _Live, timeout: float) -> bool:
        try:
            await asyncio.wait_for(live.exited.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def restart(self, c: Container, timeout: int | None = None, sig: int | None = None) -> None:
        if c.state.running:
            await self.stop(c, timeout, sig)
        await self.start(c)
        self.publish_event(c, "restart")

    def is_running(self, cid: str) -> bool:
        c = self._by_id.get(cid)
        return c is not None and c.state.running

    def _running_shim(self, c: Container) -> ShimClient:
        live = self._live.get(c.id)
        if live is None or not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        return live.shim

    async def pause(self, c: Container) -> None:
        shim = self._running_shim(c)
        if c.state.paused:
            raise Conflict(f"Container {c.id} is already paused")
        await shim.pause()
        c.state.paused = True
        await self.daemon.blocking(c.save)
        self.publish_event(c, "pause")

    async def unpause(self, c: Container) -> None:
        shim = self._running_shim(c)
        if not c.state.paused:
            raise Conflict(f"Container {c.id} is not paused")
        await shim.resume()
        c.state.paused = False
        await self.daemon.blocking(c.save)
        self.publish_event(c, "unpause")

    async def resize(self, c: Container, height: int, width: int) -> None:
        await self._running_shim(c).resize(height, width)

    async def pause_for_commit(self, c: Container) -> Callable[[], Any]:
        """Freeze a running container; returns the function that thaws it (no-op if not running)."""
        live = self._live.get(c.id)
        if live is None or not c.state.running or c.state.paused:
            return lambda: None
        await live.shim.pause()
        return live.shim.resume

    # --- wait ---------------------------------------------------------------------------------

    def wait(self, c: Container, condition: str) -> "asyncio.Future[int]":
        """`not-running` (default), `next-exit`, or `removed`: a future of the exit code when it
        holds. Registered at once (no await), so a start that follows cannot be missed."""
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if condition == "removed":
            self._remove_waiters.setdefault(c.id, []).append(fut)
        elif condition in ("", "not-running") and not c.state.running:
            fut.set_result(c.state.exit_code)
        else:
            self._exit_waiters.setdefault(c.id, []).append(fut)
        return fut

    def removed_exit_code(self, ref: str) -> int | None:
        """For a `wait?condition=removed` that arrives after the removal (--rm of a fast container)."""
        now = time.monotonic()
        for cid, (when, _) in list(self._recently_removed.items()):
            if now - when > RECENTLY_REMOVED_TTL:
                del self._recently_removed[cid]
        hit = self._recently_removed.get(ref)
        return hit[1] if hit is not None else None

    # --- remove -------------------------------------------------------------------------------

    async def remove(self, c: Container, force: bool = False, volumes: bool = False) -> None:
        """DELETE /containers/{id}; `volumes` (rm -v) removes its anonymous volumes as well."""
        if c.state.running:
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {c.id}. "
                    "Stop the container before attempting removal or force remove"
                )
            await self.stop(c, timeout=0, sig=signal.SIGKILL)
        async with self.lock(c.id):
            if c.id not in self._by_id:
                return
            if c.state.removal_in_progress:
                raise Conflict(f"removal of container {c.id} is already in progress")
            c.state.removal_in_progress = True
            try:
                await self.daemon.locked(self.daemon.images.layers.delete_rw, c.id)
            except NotFound:
                pass
            except HullError:
                c.state.removal_in_progress = False
                raise
            await self.daemon.blocking(shutil.rmtree, c.directory, True)
            del self._by_id[c.id]
            await self.daemon.volumes.detach(c.mount_points, c.id, remove_anonymous=volumes)
            self._restarts.pop(c.id, None)
            if self._names.get(c.name) == c.id:
                del self._names[c.name]
            self._locks.pop(c.id, None)
            self._fail_pending_attach(c.id, NotFound(f"No such container: {c.id}"))
            self._recently_removed[c.id] = (time.monotonic(), c.state.exit_code)
            self.publish_event(c, "destroy")
            for fut in self._remove_waiters.pop(c.id, []):
                if not fut.done():
                    fut.set_result(c.state.exit_code)
            for fut in self._exit_waiters.pop(c.id, []):
                if not fut.done():
                    fut.set_result(c.state.exit_code)

    async def rename(self, c: Container, new_name: str) -> None:
        new_name = new_name.lstrip("/")
        if not names.valid_name(new_name):
            raise InvalidArgument(f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        self._reserve_name(new_name, c.id)
        old = c.name
        c.name = new_name
        del self._names[old]
        await self.daemon.blocking(c.save)
        self.publish_event(c, "rename", oldName="/" + old)

    async def update(self, c: Container, body: dict[str, Any]) -> list[str]:
        """POST /containers/{id}/update: new limits and restart policy into the HostConfig, written
        live into the cgroup of a running container (a stopped one gets them at its next start)."""
        async with self.lock(c.id):
            if c.state.removal_in_progress or c.state.dead or c.id not in self._by_id:
                raise Conflict(
                    f'Cannot update container {c.id}: container is marked for removal and cannot be "update"'
                )
            plan = update_plan(c.id, c.host_config, body)
            warnings = list(plan.warnings)
            if c.state.running and not c.state.restarting:
                runtime = self.daemon.config.runtime_path(
                    c.host_config.get("Runtime") or self.daemon.config.default_runtime
                )
                try:
                    warnings += await self.daemon.blocking(
                        update_resources, runtime, self.runtime_root, c.id, plan.resources
                    )
                except HullError as e:
                    raise HullError(f"Cannot update container {c.id}: {e.message}") from e
            c.host_config = plan.host_config
            if c.id in self._restarts:
                self._restarts[c.id].policy = RestartPolicy.from_host_config(c.host_config)
            await self.daemon.blocking(c.save)
        self.publish_event(c, "update")
        return warnings
