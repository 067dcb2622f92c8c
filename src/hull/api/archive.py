"""The `docker cp` endpoints: HEAD, GET and PUT /containers/{id}/archive?path=.

The container's root filesystem is mounted through the layer store for the length of the
request (mounts are counted, so a running container's stays as it is) and unmounted after;
the work itself is containers/archive.py's, in a worker thread. GET and PUT log Docker's
`archive-path` and `extract-to-dir` container events.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from hull.api import bodies, params, routing
from hull.containers import archive
from hull.containers.record import Container
from hull.containers.users import resolve_user
from hull.errors import InvalidArgument


def _path(request: web.Request) -> str:
    path = params.query_str(request, "path")
    if not path:
        # Docker's wording, missing space included.
        raise InvalidArgument("bad parameter: pathcannot be empty")
    return path


@asynccontextmanager
async def _rootfs(request: web.Request, c: Container) -> AsyncIterator[str]:
    daemon = routing.daemon(request)
    root = await daemon.locked(daemon.images.layers.mount, c.id)
    try:
        yield root
    finally:
        await daemon.locked(daemon.images.layers.unmount, c.id)


async def stat_path(request: web.Request) -> web.StreamResponse:
    daemon = routing.daemon(request)
    ident = request.match_info["id"]
    c = daemon.containers.get(ident)
    path = _path(request)
    async with _rootfs(request, c) as root:
        found = await daemon.blocking(archive.stat_path, root, path, ident)
    return web.Response(headers={archive.STAT_HEADER: found.header_value(), "Content-Type": "application/json"})


async def get_archive(request: web.Request) -> web.StreamResponse:
    daemon = routing.daemon(request)
    ident = request.match_info["id"]
    c = daemon.containers.get(ident)
    path = _path(request)
    async with _rootfs(request, c) as root:
        found = await daemon.blocking(archive.stat_path, root, path, ident)
        headers = {archive.STAT_HEADER: found.header_value(), "Content-Type": "application/x-tar"}
        writer = bodies.ResponseWriter(request, web.StreamResponse(headers=headers))
        await daemon.blocking(archive.write_path, root, path, ident, writer)
        await writer.finish()
    daemon.containers.publish_event(c, "archive-path")
    return writer.response


async def put_archive(request: web.Request) -> web.StreamResponse:
    daemon = routing.daemon(request)
    ident = request.match_info["id"]
    c = daemon.containers.get(ident)
    path = _path(request)
    no_overwrite = params.query_bool(request, "noOverwriteDirNonDir")
    user = c.config.get("User") or ""
    async with _rootfs(request, c) as root:
        owner = None
        if params.query_bool(request, "copyUIDGID") and user:
            # Docker: archive mode gives the copied files the container user's uid and gid.
            found = await daemon.blocking(resolve_user, root, user)
            owner = (found.uid, found.gid)
        await daemon.blocking(
            archive.extract_to_dir, root, path, ident, bodies.RequestBody(request),
            no_overwrite_dir_non_dir=no_overwrite, owner=owner,
        )  # fmt: skip
    daemon.containers.publish_event(c, "extract-to-dir")
    return web.Response(status=200)


def add_routes(router: web.UrlDispatcher) -> None:
    add = routing.add
    add(router, "HEAD", "/containers/{id}/archive", stat_path)
    add(router, "GET", "/containers/{id}/archive", get_archive)
    add(router, "PUT", "/containers/{id}/archive", put_archive)
