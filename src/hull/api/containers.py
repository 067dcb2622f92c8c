"""Container endpoints: create, list, inspect, start/stop/kill/restart/wait/remove, logs, attach,
export, changes, commit, prune, rename, pause."""

import asyncio
import calendar
import contextlib
import json
import re
import time
from typing import Any

from aiohttp import web

from hull import detachkeys, multiplex
from hull.api import bodies, params, routing, streams
from hull.containers import health
from hull.containers.jsonlog import LogOptions, read_logs
from hull.containers.manager import ContainerManager, parse_signal
from hull.containers.record import ZERO_TIME, Container
from hull.errors import Conflict, HullError, InvalidArgument, NotFound
from hull.humanize import human_duration
from hull.images import operations
from hull.images.filters import normalize as normalize_filters
from hull.network.ports import summary_ports

NO_CONTENT = 204


def _manager(request: web.Request) -> ContainerManager:
    return routing.daemon(request).containers


def _container(request: web.Request) -> Container:
    return _manager(request).get(request.match_info["id"])


def parse_time(value: str) -> float:
    """Docker's timestamps in query strings: unix seconds[.nanos] or RFC 3339."""
    try:
        return float(value)
    except ValueError:
        pass
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        raise InvalidArgument(f"invalid timestamp {value!r}: expected unix seconds or RFC 3339")
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = float(m.group(2) or 0)
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        hh, mm = m.group(3)[1:].split(":")
        secs -= sign * (int(hh) * 3600 + int(mm) * 60)
    return secs + frac


def rfc3339_to_unix(value: str) -> float:
    if not value or value == ZERO_TIME:
        return 0.0
    return parse_time(value)


# --- create, list, inspect ------------------------------------------------------------------------


async def create(request: web.Request) -> web.StreamResponse:
    body = await params.json_body(request, allow_empty=False)
    c, warnings = await _manager(request).create(params.query_str(request, "name"), body)
    return web.json_response({"Id": c.id, "Warnings": warnings}, status=201)


def status_text(c: Container, now: float) -> str:
    st = c.state
    if st.running:
        up = f"Up {human_duration(now - rfc3339_to_unix(st.started_at))}"
        return up + " (Paused)" if st.paused else up + health.status_suffix(st.health)
    if st.removal_in_progress:
        return "Removal In Progress"
    if st.dead:
        return "Dead"
    if st.started_at == ZERO_TIME:
        return "Created"
    return f"Exited ({st.exit_code}) {human_duration(now - rfc3339_to_unix(st.finished_at))} ago"


def command_text(c: Container) -> str:
    return " ".join([c.path, *c.args]).strip()


def summary(c: Container, now: float) -> dict[str, Any]:
    mode = c.host_config.get("NetworkMode", "default")
    return {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.image_name,
        "ImageID": c.image_id,
        "Command": command_text(c),
        "Created": int(rfc3339_to_unix(c.created)),
        "Ports": summary_ports(c.network_settings.get("Ports") or {}),
        "Labels": c.config.get("Labels") or {},
        "State": c.state.status,
        "Status": status_text(c, now),
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": c.network_settings.get("Networks", {})},
        "Mounts": [p.to_api() for p in c.mount_points],
    }


_LIST_FILTERS = ("id", "name", "status", "exited", "label", "ancestor", "before", "since", "volume")
_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _matches(request: web.Request, c: Container, filters: dict[str, list[str]]) -> bool:
    if "id" in filters and not any(c.id.startswith(v) for v in filters["id"]):
        return False
    if "name" in filters and not any(re.search(v, c.name) for v in filters["name"]):
        return False
    if "status" in filters and c.state.status not in filters["status"]:
        return False
    if "volume" in filters and not any({p.name, p.destination} & set(filters["volume"]) for p in c.mount_points):
        return False
    if "exited" in filters and (c.state.running or str(c.state.exit_code) not in filters["exited"]):
        return False
    if "label" in filters:
        labels = c.config.get("Labels") or {}
        for want in filters["label"]:
            key, eq, value = want.partition("=")
            if key not in labels or (eq and labels[key] != value):
                return False
    if "ancestor" in filters:
        images = routing.daemon(request).images
        wanted = set()
        for ref in filters["ancestor"]:
            with contextlib.suppress(Exception):
                wanted.add(images.lookup(ref))
        if c.image_id not in wanted and c.image_name not in filters["ancestor"]:
            return False
    return True


async def list_containers(request: web.Request) -> web.StreamResponse:
    filters = normalize_filters(params.query_filters(request))
    for key in filters:
        if key not in _LIST_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    for status in filters.get("status", []):
        if status not in _STATUSES:
            raise InvalidArgument(f"invalid filter 'status={status}'")
    manager = _manager(request)
    show_all = params.query_bool(request, "all")
    limit = params.query_int(request, "limit", -1) or -1
    found = sorted(manager.all(), key=lambda c: c.created, reverse=True)
    for key in ("before", "since"):
        if key in filters:
            pivot = manager.get(filters[key][0])
            if key == "before":
                found = [c for c in found if c.created < pivot.created]
            else:
                found = [c for c in found if c.created > pivot.created]
    if not show_all and limit <= 0 and "status" not in filters and "exited" not in filters:
        found = [c for c in found if c.state.running]
    found = [c for c in found if _matches(request, c, filters)]
    if limit > 0:
        found = found[:limit]
    now = time.time()
    out = [summary(c, now) for c in found]
    if params.query_bool(request, "size"):
        layers = routing.daemon(request).images.layers
        for item in out:
            item["SizeRw"] = await routing.daemon(request).blocking(layers.rw_size, item["Id"])
    return web.json_response(out)


def inspect_json(request: web.Request, c: Container, graph: dict[str, str]) -> dict[str, Any]:
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": c.state.to_json(),
        "Image": c.image_id,
        "ResolvConfPath": c.resolv_conf_path,
        "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path,
        "LogPath": c.log_path,
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": c.driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": _manager(request).execs.ids_of(c.id) or None,
        "HostConfig": c.host_config,
        "GraphDriver": {"Data": graph, "Name": c.driver},
        "Mounts": [p.to_api() for p in c.mount_points],
        "Config": c.config,
        "NetworkSettings": c.network_settings,
    }


async def inspect(request: web.Request) -> web.StreamResponse:
    c = _container(request)
    layers = routing.daemon(request).images.layers
    graph = layers.known_rw_graph_data(c.id)
    if graph is None:
        graph = await routing.daemon(request).blocking(layers.rw_graph_data, c.id)
    out = inspect_json(request, c, graph)
    if params.query_bool(request, "size"):
        out["SizeRw"] = await routing.daemon(request).blocking(routing.daemon(request).images.layers.rw_size, c.id)
    return web.json_response(out)


# --- lifecycle ------------------------------------------------------------------------------------


async def start(request: web.Request) -> web.StreamResponse:
    await _manager(request).start(_container(request))
    return web.Response(status=NO_CONTENT)


def _stop_args(request: web.Request) -> tuple[int | None, int | None]:
    timeout = params.query_int(request, "t")
    sig = params.query_str(request, "signal")
    return timeout, (parse_signal(sig) if sig else None)


async def stop(request: web.Request) -> web.StreamResponse:
    await _manager(request).stop(_container(request), *_stop_args(request))
    return web.Response(status=NO_CONTENT)


async def restart(request: web.Request) -> web.StreamResponse:
    await _manager(request).restart(_container(request), *_stop_args(request))
    return web.Response(status=NO_CONTENT)


async def kill(request: web.Request) -> web.StreamResponse:
    c = _container(request)
    await _manager(request).kill(c, parse_signal(params.query_str(request, "signal") or "SIGKILL"))
    return web.Response(status=NO_CONTENT)


async def pause(request: web.Request) -> web.StreamResponse:
    await _manager(request).pause(_container(request))
    return web.Response(status=NO_CONTENT)


async def unpause(request: web.Request) -> web.StreamResponse:
    await _manager(request).unpause(_container(request))
    return web.Response(status=NO_CONTENT)


async def wait(request: web.Request) -> web.StreamResponse:
    """Headers go out as soon as the waiter is registered: clients send `start` only after them."""
    manager = _manager(request)
    condition = params.query_str(request, "condition")
    try:
        c = _container(request)
    except NotFound:
        code = manager.removed_exit_code(request.match_info["id"]) if condition == "removed" else None
        if code is None:
            raise
        return web.json_response({"StatusCode": code, "Error": None})
    exit_code = manager.wait(c, condition)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):  # the client went away (a detached `run -it`)
        await response.write(json.dumps({"StatusCode": await exit_code, "Error": None}).encode() + b"\n")
        await response.write_eof()
    return response


async def remove(request: web.Request) -> web.StreamResponse:
    if params.query_bool(request, "link"):
        raise InvalidArgument("links are not supported by hull yet")
    await _manager(request).remove(
        _container(request), force=params.query_bool(request, "force"), volumes=params.query_bool(request, "v")
    )
    return web.Response(status=NO_CONTENT)


async def rename(request: web.Request) -> web.StreamResponse:
    name = params.query_str(request, "name")
    if not name:
        raise InvalidArgument("Neither old nor new names may be empty")
    await _manager(request).rename(_container(request), name)
    return web.Response(status=NO_CONTENT)


async def prune(request: web.Request) -> web.StreamResponse:
    filters = params.query_filters(request)
    for key in filters:
        if key not in ("label", "label!", "until"):
            raise InvalidArgument(f"invalid filter '{key}'")
    manager = _manager(request)
    daemon = routing.daemon(request)
    until = parse_time(filters["until"][0]) if "until" in filters else None
    deleted, reclaimed = [], 0
    for c in manager.all():
        if c.state.running or c.state.paused:
            continue
        if until is not None and rfc3339_to_unix(c.created) >= until:
            continue
        labels = c.config.get("Labels") or {}
        if not all(_label_ok(labels, f, True) for f in filters.get("label", [])):
            continue
        if not all(_label_ok(labels, f, False) for f in filters.get("label!", [])):
            continue
        size = await daemon.blocking(daemon.images.layers.rw_size, c.id)
        try:
            await manager.remove(c)
        except Conflict:
            continue
        deleted.append(c.id)
        reclaimed += size
    return web.json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def _label_ok(labels: dict[str, str], want: str, present: bool) -> bool:
    key, eq, value = want.partition("=")
    has = key in labels and (not eq or labels[key] == value)
    return has if present else not has


def _window_dimension(request: web.Request, name: str) -> int:
    value = params.query_int(request, name)
    if value is None or not 0 <= value <= 65535:
        raise InvalidArgument(
            f"invalid value for {name}: {params.query_str(request, name)!r}: an integer from 0 to 65535"
        )
    return value


async def resize(request: web.Request) -> web.StreamResponse:
    c = _container(request)
    h, w = _window_dimension(request, "h"), _window_dimension(request, "w")
    if c.config.get("Tty") or not c.state.running:
        await _manager(request).resize(c, h, w)  # 409 when not running
    # else: Docker answers 200 for a container without a terminal and changes nothing
    return web.Response(status=200)


# --- streams --------------------------------------------------------------------------------------


async def logs(request: web.Request) -> web.StreamResponse:
    c = _container(request)
    stdout = params.query_bool(request, "stdout")
    stderr = params.query_bool(request, "stderr")
    if not (stdout or stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    tail_text = params.query_str(request, "tail", "all")
    tail: int | None = None
    if tail_text not in ("", "all"):
        try:
            tail = max(0, int(tail_text))
        except ValueError:
            tail = None  # Docker treats an unparsable tail as "all"
    since = params.query_str(request, "since")
    until = params.query_str(request, "until")
    options = LogOptions(
        stdout=stdout,
        stderr=stderr,
        since=parse_time(since) if since and since != "0" else None,
        until=parse_time(until) if until and until != "0" else None,
        tail=tail,
        timestamps=params.query_bool(request, "timestamps"),
        follow=params.query_bool(request, "follow"),
    )
    tty = bool(c.config.get("Tty"))
    response = web.StreamResponse(headers={"Content-Type": streams.output_content_type(request, tty)})
    await response.prepare(request)
    manager = _manager(request)
    async for stream, payload in read_logs(c.log_path, options, running=lambda: manager.is_running(c.id)):
        await response.write(payload if tty else multiplex.frame(stream, payload))
    await response.write_eof()
    return response


def _detach_keys(request: web.Request) -> bytes:
    spec = params.query_str(request, "detachKeys")
    try:
        return detachkeys.parse(spec or detachkeys.DEFAULT)
    except ValueError:
        raise InvalidArgument(f"Invalid detach keys ({spec}) provided") from None


async def attach(request: web.Request) -> web.StreamResponse:
    c = _container(request)
    if not params.query_bool(request, "stream"):
        raise InvalidArgument("hull supports attach with stream=1 only")
    keys = _detach_keys(request)
    ref = request.match_info["id"]
    if c.state.paused:
        raise Conflict(f"container {ref} is paused, unpause the container before attach")
    if c.state.restarting:
        raise Conflict(f"container {ref} is restarting, wait until the container is running")
    want_stdin = params.query_bool(request, "stdin") and bool(c.config.get("OpenStdin"))
    tty = bool(c.config.get("Tty"))
    # Registered before the client sees the attach accepted: it may start the container at once.
    stream = _manager(request).attach(
        c, want_stdin, params.query_bool(request, "stdout"), params.query_bool(request, "stderr")
    )
    client = await streams.Hijacked.accept(request, tty)
    try:
        shim = await stream
    except HullError:
        client.close()
        return client.response
    # With a TTY the end of stdin ends the attach; without one, output goes on after stdin's EOF.
    try:
        await streams.relay(client, shim, tty, want_stdin, keys if tty else b"", stdin_end_ends=tty)
    finally:
        client.close()
    return client.response


async def export(request: web.Request) -> web.StreamResponse:
    c = _container(request)
    daemon = routing.daemon(request)
    writer = bodies.ResponseWriter(request, web.StreamResponse(headers={"Content-Type": "application/x-tar"}))
    await daemon.blocking(operations.export_container, daemon.images, c.id, writer)
    await writer.finish()
    return writer.response


async def changes(request: web.Request) -> web.StreamResponse:
    c = _container(request)
    daemon = routing.daemon(request)
    found = await daemon.blocking(operations.diff_container, daemon.images, c.id)
    return web.json_response([{"Path": ch.path, "Kind": int(ch.kind)} for ch in found])


async def commit(request: web.Request) -> web.StreamResponse:
    daemon = routing.daemon(request)
    c = daemon.containers.get(params.query_str(request, "container"))
    body = await params.json_body(request)
    repo = params.query_str(request, "repo")
    tag = params.query_str(request, "tag")
    repo_tag = None
    if repo:
        repo_tag = f"{repo}:{tag}" if tag else repo
    changes_list = request.query.getall("changes", [])
    changes_lines = [line for item in changes_list for line in item.split("\n") if line.strip()]
    thaw = await daemon.containers.pause_for_commit(c) if params.query_bool(request, "pause", True) else None
    try:
        image_id = await daemon.locked(
            operations.commit,
            daemon.images,
            c.id,
            parent_image=c.image_id,
            container_config=body or c.config,
            repo_tag=repo_tag,
            author=params.query_str(request, "author"),
            comment=params.query_str(request, "comment"),
            changes=changes_lines,
        )
    finally:
        if thaw is not None:
            result = thaw()
            if asyncio.iscoroutine(result):
                await result
    daemon.events.publish(
        "container",
        "commit",
        c.id,
        {"comment": params.query_str(request, "comment"), "image": c.image_name, "name": c.name},
    )
    return web.json_response({"Id": image_id}, status=201)


def add_routes(router: web.UrlDispatcher) -> None:
    add = routing.add
    add(router, "POST", "/containers/create", create)
    add(router, "GET", "/containers/json", list_containers)
    add(router, "POST", "/containers/prune", prune)
    add(router, "GET", "/containers/{id}/json", inspect)
    add(router, "POST", "/containers/{id}/start", start)
    add(router, "POST", "/containers/{id}/stop", stop)
    add(router, "POST", "/containers/{id}/restart", restart)
    add(router, "POST", "/containers/{id}/kill", kill)
    add(router, "POST", "/containers/{id}/pause", pause)
    add(router, "POST", "/containers/{id}/unpause", unpause)
    add(router, "POST", "/containers/{id}/wait", wait)
    add(router, "POST", "/containers/{id}/rename", rename)
    add(router, "POST", "/containers/{id}/resize", resize)
    add(router, "POST", "/containers/{id}/attach", attach)
    add(router, "GET", "/containers/{id}/logs", logs)
    add(router, "GET", "/containers/{id}/export", export)
    add(router, "GET", "/containers/{id}/changes", changes)
    add(router, "DELETE", "/containers/{id}", remove)
    add(router, "POST", "/commit", commit)
