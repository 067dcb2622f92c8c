"""Looking at images: `docker image inspect`, `docker history`, `docker images`, in Docker's JSON shapes.

Vocabulary: an image's *size* is the sum of its layers' sizes (layerdb `size`, the bytes of
regular files each layer adds); a layer's own size is its *diff size*. An image's *parent* is
the image it was committed or built on (imagedb metadata; none for pulled or imported
images); an *intermediate* image is one with children and no reference; *dangling*: no tag.

Contract: the results are the Engine API's objects with Docker's field names and types, as
the API versions the docker CLI 28 speaks (1.48-1.51) return them: ImageInspect (without the
deprecated Container, ContainerConfig and VirtualSize), ImageHistoryResponseItem (newest
first; `<missing>` for steps whose image is not stored here), ImageSummary (newest first;
empty RepoTags/RepoDigests as [], Containers -1 as Docker leaves it unless asked, SharedSize
-1 unless `shared_size`). Times: Created of inspect is RFC 3339 with nanoseconds; those of
history and summaries are unix seconds. An unknown name is NotFound "No such image: X"; bad
filters are an InvalidArgument ("invalid filter 'x'").
"""

import json
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, cast

from hull.errors import InvalidArgument, NotFound
from hull.images import containerconfig as cc
from hull.images import filters as flt
from hull.images import ids
from hull.images.imagedb import ImageConfig, rfc3339_nano
from hull.images.reference import Reference
from hull.images.service import ImageService

MISSING_ID = "<missing>"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what Docker shows for a never-tagged image
NOT_COUNTED = -1  # Docker's "not calculated" for Containers and SharedSize
LIST_FILTERS = ("dangling", "label", "before", "since", "reference", "until")


class GraphDriver(TypedDict):
    Data: dict[str, str] | None
    Name: str


class RootFS(TypedDict):
    Type: str
    Layers: NotRequired[list[str]]


class Metadata(TypedDict):
    LastTagTime: str


class ImageInspect(TypedDict):
    Id: str
    RepoTags: list[str]
    RepoDigests: list[str]
    Parent: str
    Comment: str
    Created: NotRequired[str]
    DockerVersion: str
    Author: str
    Config: dict[str, Any] | None
    Architecture: str
    Variant: NotRequired[str]
    Os: str
    OsVersion: NotRequired[str]
    Size: int
    GraphDriver: GraphDriver
    RootFS: RootFS
    Metadata: Metadata


class HistoryItem(TypedDict):
    Comment: str
    Created: int
    CreatedBy: str
    Id: str
    Size: int
    Tags: list[str] | None


class ImageSummary(TypedDict):
    Containers: int
    Created: int
    Id: str
    Labels: dict[str, str] | None
    ParentId: str
    RepoDigests: list[str]
    RepoTags: list[str]
    SharedSize: int
    Size: int


def _references(service: ImageService, image_id: str) -> tuple[list[str], list[str]]:
    """(tags, digests) of an image, familiar and sorted."""
    refs: list[Reference] = service.refs.references(image_id)
    tags = sorted(r.familiar() for r in refs if r.digest is None)
    digests = sorted(r.familiar() for r in refs if r.digest is not None)
    return tags, digests


def _layer_sizes(service: ImageService, config: ImageConfig) -> list[int]:
    """The diff size of each layer of the image, bottom-up."""
    return [service.layers.get(chain).size for chain in ids.chain_ids(config.diff_ids)]


def _parent(service: ImageService, image_id: str) -> str:
    try:
        return service.images.get_parent(image_id) or ""
    except InvalidArgument:
        return ""


def _created_rfc3339(stamp: str) -> str | None:
    """The created time as Go's RFC3339Nano prints it after parsing (UTC stamps lose trailing zeros)."""
    ns = flt.parse_rfc3339(stamp)
    if ns is None:
        return None
    return rfc3339_nano(ns) if stamp.endswith(("Z", "z", "+00:00")) else stamp


def inspect(service: ImageService, name: str) -> ImageInspect:
    """`GET /images/{name}/json`: Docker's ImageInspect of the image `name` means."""
    image_id = service.lookup(name)
    config = service.config(image_id)
    doc = json.loads(config.raw)
    tags, digests = _references(service, image_id)
    top = service.top_layer(image_id)
    comment = config.comment or (config.history[-1].comment if config.history else "")
    raw_config = doc.get("config")
    created = _created_rfc3339(config.created)
    rootfs: RootFS = {"Type": doc["rootfs"].get("type") or ""}
    if config.diff_ids:
        rootfs["Layers"] = list(config.diff_ids)  # omitempty
    # Built in the order of Docker's struct, so that printed JSON reads like Docker's.
    out: dict[str, Any] = {
        "Id": image_id,
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": _parent(service, image_id),
        "Comment": comment,
        **({"Created": created} if created is not None else {}),
        "DockerVersion": config.docker_version,
        "Author": config.author,
        "Config": cc.normalize(raw_config, "image config") if raw_config is not None else None,
        "Architecture": config.architecture,
        **({"Variant": config.variant} if config.variant else {}),
        "Os": config.os or "linux",
        **({"OsVersion": config.os_version} if config.os_version else {}),
        "Size": sum(_layer_sizes(service, config)),
        "GraphDriver": {
            "Data": service.layers.graph_data(top) if top is not None else None,
            "Name": service.driver.name,
        },
        "RootFS": rootfs,
        "Metadata": {"LastTagTime": service.images.get_last_updated(image_id) or ZERO_TIME},
    }
    return cast(ImageInspect, out)


def history(service: ImageService, name: str) -> list[HistoryItem]:
    """`GET /images/{name}/history`: one item per history step, newest first.

    Ids are filled walking the parent chain (one image per step, as classic builds and
    commits make them); steps above the oldest stored ancestor stay `<missing>`.
    """
    image_id = service.lookup(name)
    config = service.config(image_id)
    sizes = _layer_sizes(service, config)
    items: list[HistoryItem] = []
    layer = 0
    for step in config.history:
        size = 0
        if not step.empty_layer:
            if layer >= len(sizes):
                raise InvalidArgument(f"image {image_id}: too many non-empty layers in History section")
            size = sizes[layer]
            layer += 1
        items.append(
            {
                "Comment": step.comment,
                "Created": flt.unix_seconds(step.created),
                "CreatedBy": step.created_by,
                "Id": MISSING_ID,
                "Size": size,
                "Tags": None,
            }
        )
    items.reverse()
    current: str | None = image_id
    for item in items:
        if current is None:
            break
        item["Id"] = current
        tags, _ = _references(service, current)
        item["Tags"] = tags or None  # Docker leaves an untagged step's Tags null
        parent = _parent(service, current)
        current = parent if parent and service.images.exists(parent) else None
    return items


@dataclass(frozen=True)
class _Listed:
    """What list_images knows of one image."""

    id: str
    config: ImageConfig
    labels: dict[str, str] | None
    created_ns: int | None
    parent: str


def _load(service: ImageService, image_id: str) -> _Listed | None:
    try:
        config = service.config(image_id)
    except (NotFound, InvalidArgument):
        return None  # removed meanwhile, or corrupt (imagedb.recover reports it)
    raw_config = json.loads(config.raw).get("config")
    labels = raw_config.get("Labels") if isinstance(raw_config, dict) else None
    return _Listed(image_id, config, labels, flt.parse_rfc3339(config.created), _parent(service, image_id))


def list_images(
    service: ImageService,
    *,
    all: bool = False,
    filters: flt.Filters | None = None,
    shared_size: bool = False,
) -> list[ImageSummary]:
    """`GET /images/json`: Docker's ImageSummary of each image, newest first.

    Without `all`, intermediate images (untagged, with children) are left out. Filters:
    dangling, label (`key` or `key=value`), reference (a glob on `name:tag`), before and
    since (an image name), until (a timestamp).
    """
    f = flt.normalize(filters)
    flt.validate(f, LIST_FILTERS)
    dangling_only = flt.get_bool(f, "dangling", False)
    before: int | None = None
    since: int | None = None
    for value in f.get("before", ()):
        created = flt.parse_rfc3339(service.config(service.lookup(value)).created)
        if created is not None and (before is None or created < before):
            before = created  # several values: the oldest, as if ANDed
    for value in f.get("until", ()):
        stamp = flt.parse_timestamp(value)
        if before is None or stamp < before:
            before = stamp
    for value in f.get("since", ()):
        created = flt.parse_rfc3339(service.config(service.lookup(value)).created)
        if created is not None and (since is None or created > since):
            since = created

    images = [x for x in (_load(service, i) for i in service.images.list()) if x is not None]
    with_children = {x.parent for x in images if x.parent}
    out: list[tuple[int, ImageSummary]] = []
    for image in images:
        if dangling_only and image.id in with_children:
            continue  # only heads can be dangling
        if before is not None and (image.created_ns is None or image.created_ns >= before):
            continue
        if since is not None and (image.created_ns is None or image.created_ns <= since):
            continue
        if "label" in f and not flt.match_kv(f, "label", image.labels):
            continue
        tags: list[str] = []
        digests: list[str] = []
        for ref in sorted(service.refs.references(image.id), key=lambda r: r.familiar()):
            if "reference" in f and not any(flt.familiar_match(p, ref) for p in f["reference"]):
                continue
            (tags if ref.digest is None else digests).append(ref.familiar())
        if not tags and not digests:
            if not all and image.id in with_children:
                continue  # an intermediate image
            if "dangling" in f and not dangling_only:
                continue
            if "reference" in f:
                continue
        elif dangling_only and tags:
            continue
        summary: ImageSummary = {
            "Containers": NOT_COUNTED,
            "Created": (image.created_ns or 0) // flt.NS,
            "Id": image.id,
            "Labels": image.labels,
            "ParentId": image.parent,
            "RepoDigests": digests,
            "RepoTags": tags,
            "SharedSize": NOT_COUNTED,
            "Size": sum(_layer_sizes(service, image.config)),
        }
        out.append((image.created_ns or 0, summary))
    if shared_size:
        _fill_shared_sizes(service, images, [s for _, s in out])
    out.sort(key=lambda pair: pair[0], reverse=True)
    return [s for _, s in out]


def _fill_shared_sizes(service: ImageService, images: list[_Listed], summaries: list[ImageSummary]) -> None:
    """SharedSize: the bytes of an image's layers that other images use too."""
    users: dict[str, int] = {}
    for image in images:
        for chain in ids.chain_ids(image.config.diff_ids):
            users[chain] = users.get(chain, 0) + 1
    by_id = {image.id: image for image in images}
    for summary in summaries:
        chains = ids.chain_ids(by_id[summary["Id"]].config.diff_ids)
        summary["SharedSize"] = sum(service.layers.get(c).size for c in chains if users.get(c, 0) > 1)
