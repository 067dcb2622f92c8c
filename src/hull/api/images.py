"""The image endpoints of the Engine API: list, inspect, history, tag, remove, prune, import, save, load.

Each handler reads its parameters as dockerd does, runs the image store's operation in a worker
thread (`daemon.locked` for anything that changes the store, `daemon.blocking` for reads) and
answers with Docker's JSON, status codes and error wording. Events are published as Docker
publishes them (type "image"; the actor is the image id): tag (name: the new tag), untag and
delete (name: the image id, one per untagged reference and per deleted image), import, load and
save (name: the image id), prune (no actor; attribute `reclaimed`).

Bodies never sit whole in memory (bodies.py bridges them to the worker threads):
- import and load first spool the request body to an unnamed file beside the layers
  (layerdb/tmp), *without* the store lock, then run the store operation on that file holding
  it: a slow or stalled upload never blocks other changes to the store. (load would spool a
  streamed archive anyway; import pays one extra sequential copy for it.)
- save streams tarexport.save's archive into the response through a ResponseWriter. Until its
  first chunk is sent, a failure is an ordinary HTTP error ("No such image: x" is a 404);
  after it, the error is appended to the body as a JSON error message, as dockerd does.

Pull (`POST /images/create?fromImage=`) is hull.distribution's; importing from a URL
(`fromSrc=<url>`) and search (`GET /images/search`) are 400s that say they are not supported yet.
"""

import os
import shutil
import tempfile
from collections.abc import Awaitable, Mapping
from typing import IO, Any, cast

from aiohttp import web

from hull.api import params, routing, streams
from hull.api.bodies import CHUNK_SIZE, RequestBody, ResponseWriter
from hull.api.version import at_least
from hull.distribution.pull import Puller, PullRequest, parse_auth_header
from hull.distribution.push import Pusher
from hull.errors import HullError, InvalidArgument, NotFound
from hull.images import delete, inspect, reference, tarexport
from hull.images.commit import import_image
from hull.images.delete import DeleteItem
from hull.images.platform import host_platform, parse_platform
from hull.images.service import ImageService

TAR = "application/x-tar"
IMPORT_URL_NOT_SUPPORTED = "hull cannot fetch import URLs yet: send the archive in the request body (fromSrc=-)"
SEARCH_NOT_SUPPORTED = "search needs a registry: not supported yet"


def add_routes(router: web.UrlDispatcher) -> None:
    add = routing.add
    add(router, "GET", "/images/json", list_images)
    add(router, "GET", "/images/search", search)
    add(router, "GET", "/images/get", save_many)
    add(router, "POST", "/images/create", create)
    add(router, "POST", "/images/load", load)
    add(router, "POST", "/images/prune", prune)
    # Names may hold slashes (and a tag or digest): the pattern takes everything up to the last segment.
    add(router, "GET", "/images/{name:.+}/json", inspect_image)
    add(router, "GET", "/images/{name:.+}/history", history)
    add(router, "GET", "/images/{name:.+}/get", save_one)
    add(router, "POST", "/images/{name:.+}/tag", tag)
    add(router, "POST", "/images/{name:.+}/push", push)
    add(router, "DELETE", "/images/{name:.+}", remove)


# --- names and errors -----------------------------------------------------------------------------------


def _with_virtual_size(request: web.Request, obj: Mapping[str, Any]) -> dict[str, Any]:
    """API < 1.44 still has VirtualSize (equal to Size), as dockerd adds it for those clients."""
    out = dict(obj)
    if not at_least(routing.api_version(request), "1.44") and "Size" in out:
        out["VirtualSize"] = out["Size"]
    return out


# --- reading ----------------------------------------------------------------------------------------------


async def list_images(request: web.Request) -> web.Response:
    daemon = routing.daemon(request)
    filters = params.query_filters(request)
    legacy = params.query_str(request, "filter")
    if legacy and not at_least(routing.api_version(request), "1.28"):
        filters.setdefault("reference", []).append(legacy)  # the pre-1.28 `filter=name` parameter
    summaries = await daemon.blocking(
        inspect.list_images,
        daemon.images,
        all=params.query_bool(request, "all"),
        filters=filters,
        shared_size=params.query_bool(request, "shared-size"),
    )
    return web.json_response([_with_virtual_size(request, s) for s in summaries])


async def inspect_image(request: web.Request) -> web.Response:
    daemon = routing.daemon(request)
    name = request.match_info["name"]
    doc = await daemon.blocking(inspect.inspect, daemon.images, name)
    return web.json_response(_with_virtual_size(request, doc))


async def history(request: web.Request) -> web.Response:
    daemon = routing.daemon(request)
    name = request.match_info["name"]
    items = await daemon.blocking(inspect.history, daemon.images, name)
    return web.json_response(items)


async def search(request: web.Request) -> web.Response:
    raise InvalidArgument(SEARCH_NOT_SUPPORTED)


# --- tags and removal -------------------------------------------------------------------------------------


def _repo_tag(repo: str, tag: str) -> reference.Reference:
    """dockerd's RepoTagReference: `repo` (which may carry a tag) with `tag` if given, else its own or latest."""
    ref = reference.parse(repo)
    if ref.digest is not None:
        raise InvalidArgument("cannot import digest reference")
    return ref.with_tag(tag) if tag else ref.with_default_tag()


async def tag(request: web.Request) -> web.Response:
    daemon = routing.daemon(request)
    name = request.match_info["name"]
    repo = params.query_str(request, "repo")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    target = _repo_tag(repo, params.query_str(request, "tag")).familiar()

    def run() -> tuple[str, str]:
        image_id = daemon.images.lookup(name)
        return image_id, delete.tag(daemon.images, image_id, target)

    image_id, tagged = await daemon.locked(run)
    daemon.events.publish("image", "tag", image_id, {"name": tagged})
    return web.Response(status=201)


def _publish_removal(request: web.Request, records: list[DeleteItem], owners: Mapping[str, str],
                     images: set[str]) -> None:  # fmt: skip
    """untag and delete events for what a remove or prune did; `owners` maps the references it
    could untag to their images, `images` the ids that were images (the other Deleted are layers)."""
    events = routing.daemon(request).events
    for item in records:
        if "Untagged" in item:
            image_id = owners.get(item["Untagged"])
            if image_id is not None:
                events.publish("image", "untag", image_id, {"name": image_id})
        elif item.get("Deleted") in images:
            events.publish("image", "delete", item["Deleted"], {"name": item["Deleted"]})


def _snapshot(service: ImageService) -> tuple[dict[str, str], set[str]]:
    """Every reference's image (familiar form) and every image id: what events of a removal need."""
    owners = {ref.familiar(): image_id for ref, image_id in service.refs.all()}
    return owners, set(service.images.list())


async def remove(request: web.Request) -> web.Response:
    daemon = routing.daemon(request)
    name = request.match_info["name"]
    force = params.query_bool(request, "force")
    prune_parents = not params.query_bool(request, "noprune")
    running = daemon.containers.running_ids()

    def run() -> tuple[list[DeleteItem], dict[str, str], set[str]]:
        owners, images = _snapshot(daemon.images)
        records = delete.remove(daemon.images, name, force=force, prune_children=prune_parents, running=running)
        return records, owners, images

    records, owners, images = await daemon.locked(run)
    _publish_removal(request, records, owners, images)
    return web.json_response(records)


async def prune(request: web.Request) -> web.Response:
    daemon = routing.daemon(request)
    filters = params.query_filters(request)

    def run() -> tuple[delete.PruneReport, dict[str, str], set[str]]:
        owners, images = _snapshot(daemon.images)
        return delete.prune(daemon.images, filters=filters), owners, images

    report, owners, images = await daemon.locked(run)
    _publish_removal(request, report["ImagesDeleted"] or [], owners, images)
    daemon.events.publish("image", "prune", "", {"reclaimed": str(report["SpaceReclaimed"])})
    return web.json_response(report)


# --- import and pull ----------------------------------------------------------------------------------------


async def _spool_body(request: web.Request, service: ImageService) -> IO[bytes]:
    """The request body in an unnamed temp file beside the layers (read from its start); the caller closes it."""
    daemon = routing.daemon(request)
    body = RequestBody(request)

    def copy() -> IO[bytes]:
        os.makedirs(service.root.layerdb_tmp, mode=0o700, exist_ok=True)
        spool = tempfile.TemporaryFile(dir=service.root.layerdb_tmp)  # noqa: SIM115  # the caller closes it
        try:
            shutil.copyfileobj(body, spool, CHUNK_SIZE)
            spool.flush()
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return spool

    return await daemon.blocking(copy)


async def create(request: web.Request) -> web.StreamResponse:
    """`POST /images/create`: pull (fromImage) or import (fromSrc)."""
    from_image = params.query_str(request, "fromImage")
    if from_image:
        return await _pull(request, from_image)
    return await _import(request)


class _Progress:
    """JSON-line progress whose 200 goes out with the first message, as dockerd's pull and push
    answer: an unknown image or an unreachable registry is then still a plain HTTP error (the
    CLI prints it); failures after the first message go into the stream."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(headers={"Content-Type": streams.JSON_STREAM})

    async def send(self, message: dict[str, Any]) -> None:
        if not self.response.prepared:
            await self.response.prepare(self.request)
        await streams.write_json_line(self.response, message)

    async def run(self, work: Awaitable[object]) -> web.StreamResponse:
        try:
            await work
        except HullError as e:
            if not self.response.prepared:
                raise
            await streams.write_json_line(self.response, _error_line(e.message))
        if not self.response.prepared:
            await self.response.prepare(self.request)
        await self.response.write_eof()
        return self.response


def _distribution_request(request: web.Request, ref: reference.Reference) -> PullRequest:
    wanted = params.query_str(request, "platform")
    return PullRequest(
        ref,
        parse_platform(wanted) if wanted else host_platform(),
        parse_auth_header(request.headers.get("X-Registry-Auth", "")),
        insecure=routing.daemon(request).config.is_insecure(ref.domain),
    )


async def _pull(request: web.Request, from_image: str) -> web.StreamResponse:
    daemon = routing.daemon(request)
    ref = reference.parse(from_image)
    tag_or_digest = params.query_str(request, "tag")
    if tag_or_digest and ref.digest is None:
        ref = ref.with_digest(tag_or_digest) if ":" in tag_or_digest else ref.with_tag(tag_or_digest)
    ref = ref.with_default_tag()
    progress = _Progress(request)

    async def pull() -> None:
        puller = Puller(daemon.images, daemon.locked, daemon.blocking, daemon.downloads, progress.send)
        image_id = await puller.pull(_distribution_request(request, ref))
        daemon.events.publish("image", "pull", ref.familiar(), {"name": ref.familiar(), "id": image_id})

    return await progress.run(pull())


async def push(request: web.Request) -> web.StreamResponse:
    """`POST /images/{name}/push?tag=`: one tag of a repository to its registry."""
    daemon = routing.daemon(request)
    ref = reference.parse(request.match_info["name"])
    tag = params.query_str(request, "tag")
    if tag:
        ref = ref.with_tag(tag)
    ref = ref.with_default_tag()
    try:
        daemon.images.refs.get(ref)
    except NotFound:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}") from None
    progress = _Progress(request)

    async def run() -> None:
        await Pusher(daemon.images, daemon.blocking, progress.send).push(_distribution_request(request, ref))
        daemon.events.publish("image", "push", ref.familiar(), {"name": ref.familiar()})

    return await progress.run(run())


async def _import(request: web.Request) -> web.StreamResponse:
    daemon = routing.daemon(request)
    source = params.query_str(request, "fromSrc")
    if source != "-":
        if not source:
            raise InvalidArgument("fromImage or fromSrc is required: name an image to pull, or fromSrc=- to import")
        raise InvalidArgument(IMPORT_URL_NOT_SUPPORTED)
    repo = params.query_str(request, "repo")
    target = _repo_tag(repo, params.query_str(request, "tag")).familiar() if repo else None
    changes = request.query.getall("changes", [])
    message = params.query_str(request, "message")
    platform = params.query_str(request, "platform") or None
    service = daemon.images

    with await _spool_body(request, service) as spool:
        image_id = await daemon.locked(
            import_image,
            service,
            cast(Any, spool),
            repo_tag=target,
            changes=changes,
            message=message,
            platform=platform,
        )
    if target is not None:
        daemon.events.publish("image", "tag", image_id, {"name": target})
    daemon.events.publish("image", "import", image_id, {"name": image_id})
    response = await streams.json_lines(request)
    await streams.write_json_line(response, {"status": image_id})
    await response.write_eof()
    return response


# --- save and load ------------------------------------------------------------------------------------------


async def save_one(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def save_many(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.query.getall("names", []))


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    daemon = routing.daemon(request)
    service = daemon.images
    response = web.StreamResponse(headers={"Content-Type": TAR})
    out = ResponseWriter(request, response)

    def run() -> list[str]:
        saved = sorted(tarexport._select(service, names))  # what save will write, for the events
        tarexport.save(service, names, cast(Any, out))
        out.flush()
        return saved

    try:
        saved = await daemon.blocking(run)
    except (HullError, OSError) as e:
        if not out.started:
            raise
        message = e.message if isinstance(e, HullError) else f"writing the archive failed: {e}"
        try:
            await streams.write_json_line(response, _error_line(message))
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client is gone: nobody to tell
        return response
    for image_id in saved:
        daemon.events.publish("image", "save", image_id, {"name": image_id})
    return await out.finish()


def _error_line(message: str) -> dict[str, Any]:
    return {"errorDetail": {"message": message}, "error": message}


async def load(request: web.Request) -> web.StreamResponse:
    """`POST /images/load`: the archive in the body; answers with JSON lines, errors in the stream (as dockerd)."""
    daemon = routing.daemon(request)
    service = daemon.images
    # `quiet` only hides progress bars, which hull does not draw: the "Loaded image" lines come either way.
    result: tarexport.LoadResult | None = None
    error: str | None = None
    try:
        with await _spool_body(request, service) as spool:
            result = await daemon.locked(tarexport.load, service, cast(Any, spool))
    except HullError as e:
        error = e.message
    except OSError as e:
        error = f"loading the archive failed: {e.strerror or e}"
    response = await streams.json_lines(request)
    if result is not None:
        for image_id in result.image_ids:
            daemon.events.publish("image", "load", image_id, {"name": image_id})
        for line in result.messages():
            await streams.write_json_line(response, {"stream": line + "\n"})
    if error is not None:
        await streams.write_json_line(response, _error_line(error))
    await response.write_eof()
    return response
