"""Tagging and deleting images: `docker tag`, `docker rmi`, `docker image prune`, as Docker's graph-driver store.

Vocabulary:
- a *reference* is a tag (`name:tag`) or digest (`name@sha256:...`) reference in the reference
  store; an image *untagged* loses references, an image *deleted* loses its config, and then
  its layers that nothing else needs are *freed* (layerdb usage: images' rootfs chains and
  container mounts);
- a container *uses* an image when its mount (layerdb/mounts) sits on the image's top layer.
  layerdb knows no more than that, so every such container counts as a stopped one unless
  the caller names it in `running`;
- *conflicts* are Docker's: hard ones (a child image, a running container) refuse deletion
  even with force; soft ones (another reference, a stopped container) only without force;
- *dangling*: an image with no reference and no child image.

Contract: every refusal is a Conflict with Docker's message ("conflict: unable to delete
<short id> (must be forced) - image is being used by stopped container <short id>") raised
before anything is changed; an unknown image is NotFound ("No such image: X"); a bad
reference is an InvalidArgument. Results are Docker's JSON shapes: ImageDeleteResponseItem
lists ({"Untagged": ...} / {"Deleted": ...}, in the order things happened) and the prune
report ({"ImagesDeleted": [...] or null, "SpaceReclaimed": bytes}). A layer a container's
mount needs is never freed, force or not. Callers serialize these with other changes to the
same data root (the daemon holds one lock for image changes).
"""

import enum
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TypedDict

from hull.errors import Conflict, HullError, InvalidArgument, NotFound
from hull.images import filters as flt
from hull.images import ids, reference
from hull.images.layerdb import LayerRecord
from hull.images.reference import Reference
from hull.images.service import ImageService

PRUNE_FILTERS = ("dangling", "label", "label!", "until")


class DeleteItem(TypedDict, total=False):
    """Docker's ImageDeleteResponseItem: exactly one of the two keys is set."""

    Untagged: str
    Deleted: str


class PruneReport(TypedDict):
    ImagesDeleted: list[DeleteItem] | None
    SpaceReclaimed: int


def tag(service: ImageService, source: str, target: str) -> str:
    """Point the tag `target` at the image `source` names (moving it if it names another); returns it familiar."""
    ref = reference.parse_new_tag(target)
    image_id = service.lookup(source)
    service.tag(image_id, ref.familiar())
    service.images.set_last_updated(image_id)  # Docker's LastTagTime
    return ref.familiar()


class _Kind(enum.Flag):
    CHILD = enum.auto()
    RUNNING = enum.auto()
    REFERENCE = enum.auto()
    STOPPED = enum.auto()
    HARD = CHILD | RUNNING
    SOFT = REFERENCE | STOPPED


@dataclass(frozen=True)
class _Conflict:
    """Why an image cannot be deleted; `used` when a container is the reason."""

    image_id: str
    message: str
    hard: bool
    used: bool = False

    def error(self) -> Conflict:
        force = "cannot be forced" if self.hard else "must be forced"
        return Conflict(f"conflict: unable to delete {ids.short_id(self.image_id)} ({force}) - {self.message}")


def _familiar_sorted(refs: list[Reference]) -> list[Reference]:
    return sorted(refs, key=lambda r: r.familiar())


def _is_single_reference(refs: list[Reference]) -> bool:
    """At most one tag, and all references in one repository (Docker's isSingleReference)."""
    if len(refs) <= 1:
        return len(refs) == 1
    tags = [r for r in refs if r.digest is None]
    digest_repos = {r.name for r in refs if r.digest is not None}
    if len(tags) > 1:
        return False
    single = tags[0] if tags else refs[0]
    return digest_repos == {single.name}


def _is_id_prefix(image_id: str, name: str) -> bool:
    return image_id.startswith(name) or image_id.removeprefix(f"{ids.SHA256}:").startswith(name)


@dataclass
class _Deleter:
    """One `remove`: its records, and what it knows of containers."""

    service: ImageService
    running: frozenset[str]
    records: list[DeleteItem] = field(default_factory=list)
    freed: list[LayerRecord] = field(default_factory=list)

    def untagged(self, ref: Reference) -> None:
        self.records.append({"Untagged": ref.familiar()})

    def containers_using(self, image_id: str) -> list[str]:
        top = self.service.top_layer(image_id)
        db = self.service.layers.db
        users = []
        for container_id in db.list_mounts():
            try:
                if db.get_mount(container_id).parent == top:
                    users.append(container_id)
            except (NotFound, InvalidArgument):
                continue  # removed meanwhile, or corrupt: recover() deals with it
        return users

    def has_children(self, image_id: str) -> bool:
        return bool(self.service.images.children(image_id))

    def dangling(self, image_id: str) -> bool:
        return not self.service.refs.references(image_id) and not self.has_children(image_id)

    def conflict(self, image_id: str, kinds: _Kind) -> _Conflict | None:
        if _Kind.CHILD in kinds and self.has_children(image_id):
            return _Conflict(image_id, "image has dependent child images", hard=True)
        users = self.containers_using(image_id) if kinds & (_Kind.RUNNING | _Kind.STOPPED) else []
        running = [c for c in users if c in self.running]
        if _Kind.RUNNING in kinds and running:
            return _Conflict(
                image_id, f"image is being used by running container {ids.short_id(running[0])}", hard=True, used=True
            )
        if _Kind.REFERENCE in kinds and self.service.refs.references(image_id):
            return _Conflict(image_id, "image is referenced in multiple repositories", hard=False)
        stopped = [c for c in users if c not in self.running]
        if _Kind.STOPPED in kinds and stopped:
            return _Conflict(
                image_id, f"image is being used by stopped container {ids.short_id(stopped[0])}", hard=False, used=True
            )
        return None

    def delete(self, image_id: str, force: bool, prune: bool, quiet: bool) -> None:
        """Docker's imageDeleteHelper: delete one image (and, with `prune`, its untagged parents)."""
        kinds = _Kind.HARD if force else _Kind.HARD | _Kind.SOFT
        conflict = self.conflict(image_id, kinds)
        if conflict is not None:
            if quiet and (not self.dangling(image_id) or conflict.used):
                return
            raise conflict.error()
        try:
            parent = self.service.images.get_parent(image_id)
        except InvalidArgument:
            parent = None
        top = self.service.top_layer(image_id)
        for ref in _familiar_sorted(self.service.refs.delete_image(image_id)):
            self.untagged(ref)
        self.service.images.delete(image_id)
        self.records.append({"Deleted": image_id})
        for layer in self.service.free_unused_layers(top):
            self.records.append({"Deleted": layer.chain_id})
            self.freed.append(layer)
        if prune and parent is not None and self.service.images.exists(parent):
            self.delete(parent, force=False, prune=True, quiet=True)


def remove(
    service: ImageService,
    name: str,
    *,
    force: bool = False,
    prune_children: bool = True,
    running: Collection[str] = (),
) -> list[DeleteItem]:
    """`docker rmi name`: untag a reference, or delete the image and free its unused layers.

    Given a reference, only that reference goes if the image has others; given the image's
    last reference, or its id, the image is deleted too. `prune_children` (Docker's
    `noprune=false`) then also deletes the parent images that are left untagged and childless.
    `running` lists the ids of running containers (a hard conflict); other containers whose
    mount uses the image block its deletion unless `force`, and keep their layers even then.
    """
    return _remove(_Deleter(service, frozenset(running)), name, force, prune_children).records


def _remove(d: _Deleter, name: str, force: bool, prune: bool) -> _Deleter:
    service = d.service
    image_id = service.lookup(name)
    refs = service.refs.references(image_id)
    removed_last_reference = False
    if not _is_id_prefix(image_id, name):
        if not force and _is_single_reference(refs):
            users = d.containers_using(image_id)
            if users:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - container '
                    f"{ids.short_id(users[0])} is using its referenced image {ids.short_id(image_id)}"
                )
        ref = reference.parse(name).with_default_tag()
        ref = ref.favor_digest()
        service.refs.delete(ref)
        d.untagged(ref)
        refs = service.refs.references(image_id)
        if ref.digest is None and not any(r.digest is None and r.name == ref.name for r in refs):
            # The repository's last tag went: its digest references go with it, as in Docker.
            for r in _familiar_sorted([r for r in refs if r.digest is not None and r.name == ref.name]):
                service.refs.delete(r)
                d.untagged(r)
            refs = service.refs.references(image_id)
        if refs:
            return d
        removed_last_reference = True
    elif _is_single_reference(refs):
        kinds = _Kind.HARD if force else _Kind.HARD | _Kind.STOPPED
        conflict = d.conflict(image_id, kinds)
        if conflict is not None:
            raise conflict.error()
        for r in _familiar_sorted(refs):
            service.refs.delete(r)
            d.untagged(r)
    d.delete(image_id, force=force, prune=prune, quiet=removed_last_reference)
    return d


def prune(service: ImageService, *, all: bool = False, filters: flt.Filters | None = None) -> PruneReport:
    """`docker image prune`: delete dangling images (with `all`, every image no container uses).

    Filters: dangling (true/false), label / label! (`key` or `key=value`), until (a timestamp).
    Conflicts skip an image quietly, as in Docker.
    """
    f = flt.normalize(filters)
    flt.validate(f, PRUNE_FILTERS)
    if all and "dangling" not in f:
        f["dangling"] = ["false"]
    dangling_only = flt.get_bool(f, "dangling", True)
    until: int | None = None
    if "until" in f:
        if len(f["until"]) > 1:
            raise InvalidArgument("more than one until filter specified")
        until = flt.parse_timestamp(f["until"][0])
    sizes = {c: layer.size for c, layer in service.layers.db.usage(service.images).layers.items()}
    parents: dict[str, str | None] = {}
    for image_id in service.images.list():
        try:
            parents[image_id] = service.images.get_parent(image_id)
        except InvalidArgument:
            parents[image_id] = None
    with_children = {p for p in parents.values() if p is not None}

    chosen: list[str] = []
    for image_id in sorted(parents):
        if dangling_only and image_id in with_children:
            continue  # only heads can be dangling
        refs = service.refs.references(image_id)
        if not refs and image_id in with_children:
            continue  # an intermediate image goes with its child
        try:
            config = service.config(image_id)
        except (NotFound, InvalidArgument):
            continue
        if until is not None:
            created = flt.parse_rfc3339(config.created)
            if created is None or created > until:
                continue
        labels = dict(config.config.labels)
        # An image with no config at all is never filtered by label (Docker checks only a present one).
        has_config = json.loads(config.raw).get("config") is not None
        excluded = not flt.match_kv(f, "label", labels) or ("label!" in f and flt.match_kv(f, "label!", labels))
        if has_config and excluded:
            continue
        chosen.append(image_id)

    deleted: list[DeleteItem] = []
    for image_id in chosen:
        refs = service.refs.references(image_id) if service.images.exists(image_id) else []
        if refs:
            if dangling_only and any(r.tag is not None for r in refs):
                continue
            names = [str(r) for r in refs]
        elif service.images.exists(image_id):
            names = [ids.hex_of(image_id)]
        else:
            continue  # deleted already, as the parent of an image pruned before it
        for name in names:
            try:
                deleted += _remove(_Deleter(service, frozenset()), name, force=False, prune=True).records
            except HullError:
                continue  # a conflict, or gone meanwhile: Docker skips the image and goes on
    reclaimed = sum(sizes.get(item.get("Deleted", ""), 0) for item in deleted)
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
