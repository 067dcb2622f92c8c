"""Container resource endpoints: top (processes), stats (usage), update (limits).

stats follows dockerd's loop: stream=1 sends one object a second (each carrying the one
before it as precpu_stats) until the client goes or the container is removed, with empty
stats while the container is not running; stream=0 answers with the second of two samples
a second apart, so that clients get a CPU % (one-shot=1: the first sample alone).
"""

import asyncio
from typing import Any

from aiohttp import web

from hull.api import params, routing, streams
from hull.containers import stats as container_stats
from hull.containers.cgroup import container_cgroup
from hull.containers.manager import ContainerManager
from hull.containers.record import Container
from hull.containers.top import top as container_top
from hull.errors import Conflict, HullError, InvalidArgument, NotFound
from hull.runtime.cgroups import CgroupManager

# dockerd's stats collector samples once a second.
STATS_INTERVAL = 1.0


def _container(request: web.Request) -> Container:
    return routing.daemon(request).containers.get(request.match_info["id"])


async def top(request: web.Request) -> web.StreamResponse:
    daemon = routing.daemon(request)
    c = _container(request)
    if not c.state.running:
        raise Conflict(f"Container {c.id} is not running")
    if c.state.restarting:
        raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
    cgroup = await daemon.blocking(container_cgroup, daemon.containers.runtime_root, c.id)
    pids = await daemon.blocking(cgroup.pids)
    return web.json_response(await container_top(pids, params.query_str(request, "ps_args")))


class _Sampler:
    """Samples of one container for one request; the cgroup is looked up once per run."""

    def __init__(self, request: web.Request, c: Container) -> None:
        self.daemon = routing.daemon(request)
        self.c = c
        self._cgroup: CgroupManager | None = None
        self._pid = 0

    async def sample(self) -> dict[str, Any]:
        c = self.c
        if not c.state.running or c.state.restarting:
            return container_stats.empty(c.name, c.id)
        try:
            if self._cgroup is None or self._pid != c.state.pid:
                self._cgroup = await self.daemon.blocking(container_cgroup, self.daemon.containers.runtime_root, c.id)
                self._pid = c.state.pid
            return await self.daemon.blocking(container_stats.sample, self._cgroup, c.name, c.id)
        except HullError:
            # Stopped between the check and the reading: its cgroup went with it.
            return container_stats.empty(c.name, c.id)


def _exists(manager: ContainerManager, cid: str) -> bool:
    try:
        manager.get(cid)
    except NotFound:
        return False
    return True


async def stats(request: web.Request) -> web.StreamResponse:
    daemon = routing.daemon(request)
    c = _container(request)
    stream = params.query_bool(request, "stream", True)
    one_shot = params.query_bool(request, "one-shot")
    if stream and one_shot:
        raise InvalidArgument("cannot have stream=true and one-shot=true")
    sampler = _Sampler(request, c)
    if not stream:
        first = await sampler.sample()
        if one_shot or not c.state.running:
            return web.json_response(first)
        await asyncio.sleep(STATS_INTERVAL)
        return web.json_response(container_stats.with_previous(await sampler.sample(), first))
    response = await streams.json_lines(request)
    previous: dict[str, Any] | None = None
    try:
        while _exists(daemon.containers, c.id):
            current = container_stats.with_previous(await sampler.sample(), previous)
            await streams.write_json_line(response, current)
            previous = current
            await asyncio.sleep(STATS_INTERVAL)
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away
    return response


async def update(request: web.Request) -> web.StreamResponse:
    c = _container(request)
    body = await params.json_body(request, allow_empty=False)
    warnings = await routing.daemon(request).containers.update(c, body)
    return web.json_response({"Warnings": warnings})


def add_routes(router: web.UrlDispatcher) -> None:
    add = routing.add
    add(router, "GET", "/containers/{id}/top", top)
    add(router, "GET", "/containers/{id}/stats", stats)
    add(router, "POST", "/containers/{id}/update", update)
