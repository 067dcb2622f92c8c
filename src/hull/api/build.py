"""`POST /build` (the legacy builder's endpoint) and `POST /build/prune`.

The body is the build context as a tar (hull.build.context); query parameters are Docker's:
`dockerfile`, `t` (repeated), `q`, `nocache`, `pull`, `rm`/`forcerm` (intermediate containers
are always removed: a failed step leaves nothing), `buildargs` and `labels` (JSON objects),
`target`, `platform`. The answer is a JSON-line stream: `stream` lines, `aux` {"ID": ...} and,
on failure, `errorDetail` (with `code`, a failed RUN's exit status); the status is 200 whatever
happens once the stream started, as dockerd's. With `q` only the image id (and errors) is sent.
"""

import json
from typing import Any

from aiohttp import web

from hull.api import params, routing, streams
from hull.api.bodies import RequestBody
from hull.build.builder import Builder, BuildError, BuildOptions
from hull.build.context import BuildContext
from hull.errors import HullError, InvalidArgument
from hull.images import ids, reference
from hull.images.platform import host_platform, parse_platform


def add_routes(router: web.UrlDispatcher) -> None:
    routing.add(router, "POST", "/build", build)
    routing.add(router, "POST", "/build/prune", prune)


def _json_param(request: web.Request, name: str) -> dict[str, Any]:
    raw = params.query_str(request, name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name} parameter: not a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {name} parameter: not a JSON object")
    return value


def _options(request: web.Request) -> BuildOptions:
    tags = []
    for tag in request.query.getall("t", []):
        tags.append(reference.parse_new_tag(tag).familiar())  # refused before anything is built
    platform = params.query_str(request, "platform")
    if platform:
        wanted, host = parse_platform(platform), host_platform()
        if (wanted.os, wanted.architecture) != (host.os, host.architecture):
            raise InvalidArgument(f"hull builds for {host.os}/{host.architecture} only, not {platform}")
    return BuildOptions(
        dockerfile=params.query_str(request, "dockerfile") or "Dockerfile",
        tags=tags,
        build_args={str(k): (None if v is None else str(v)) for k, v in _json_param(request, "buildargs").items()},
        labels={str(k): str(v) for k, v in _json_param(request, "labels").items()},
        target=params.query_str(request, "target"),
        no_cache=params.query_bool(request, "nocache"),
        pull=params.query_bool(request, "pull"),
    )


def _error(message: str, code: int | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"message": message}
    if code is not None:
        detail["code"] = code
    return {"errorDetail": detail, "error": message}


async def build(request: web.Request) -> web.StreamResponse:
    daemon = routing.daemon(request)
    if params.query_str(request, "remote"):
        raise InvalidArgument("hull builds from a context sent in the request body only (remote is not supported)")
    options = _options(request)
    quiet = params.query_bool(request, "q")
    body = RequestBody(request)
    context = await daemon.blocking(BuildContext.receive, body, daemon.images.root.layerdb_tmp)
    response = await streams.json_lines(request)

    async def emit(message: dict[str, Any]) -> None:
        if not quiet or "stream" not in message:
            await streams.write_json_line(response, message)

    try:
        image_id = await Builder(daemon, context, options, emit).build()
        await emit({"aux": {"ID": image_id}})
        if quiet:
            await streams.write_json_line(response, {"stream": image_id + "\n"})
        await emit({"stream": f"Successfully built {ids.short_id(image_id)}\n"})
        for tag in options.tags:
            await daemon.locked(daemon.images.tag, image_id, tag)
            daemon.events.publish("image", "tag", image_id, {"name": tag})
            await emit({"stream": f"Successfully tagged {tag}\n"})
    except BuildError as e:
        await streams.write_json_line(response, _error(e.message, e.code))
    except HullError as e:
        await streams.write_json_line(response, _error(e.message))
    finally:
        await daemon.blocking(context.close)
    await response.write_eof()
    return response


async def prune(request: web.Request) -> web.StreamResponse:
    """The legacy builder keeps no cache besides images: nothing to reclaim (`docker image prune` does that)."""
    return web.json_response({"CachesDeleted": None, "SpaceReclaimed": 0})
