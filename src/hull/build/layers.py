"""Images and layers of build steps: a child image of the previous step, with or without a new layer.

Contract:
- `child_image` stores the image of one step: the parent's history plus one entry (its
  created_by; `empty_layer` when the step added no layer or an empty one, as Docker's commit
  does), the parent's diff ids plus the new layer's, the stage's config, and the parent link
  in imagedb metadata that the cache follows. An empty layer is released, not stored.
- `layer_from_tree` makes the layer of COPY, ADD and WORKDIR the way a container's commit does:
  a read-write layer on the parent's top layer, mounted, filled by `fill(root)`, registered
  through layerstore.register_rw and dropped, whatever happens. The store lock is held around
  each store change, not while the tree is filled.
"""

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hull.images import containerconfig as cc
from hull.images import ids
from hull.images.commit import EMPTY_LAYER_DIFF_ID, history_entry, image_config_bytes, rootfs_field
from hull.images.imagedb import rfc3339_nano
from hull.images.layerdb import LayerRecord
from hull.images.platform import SUPPORTED_OS, host_platform
from hull.images.service import ImageService

if TYPE_CHECKING:
    from hull.daemon.daemon import Daemon


def child_image(
    service: ImageService, parent_id: str | None, config: dict[str, Any], created_by: str, layer: LayerRecord | None
) -> str:
    """Store the image of one step on `parent_id` (None: a first step on scratch); returns its id."""
    parent = json.loads(service.images.get(parent_id)) if parent_id is not None else {}
    empty = layer is None or layer.diff_id == EMPTY_LAYER_DIFF_ID
    created = rfc3339_nano()
    diff_ids = list((parent.get("rootfs") or {}).get("diff_ids") or [])
    if not empty:
        assert layer is not None
        diff_ids.append(layer.diff_id)
    raw = image_config_bytes(
        {
            "architecture": parent.get("architecture") or host_platform().architecture,
            "variant": parent.get("variant"),
            "os": parent.get("os") or SUPPORTED_OS,
            "config": cc.normalize(config),
            "created": created,
            "history": [*(parent.get("history") or []), history_entry(created, created_by=created_by, empty=empty)],
            "rootfs": rootfs_field(diff_ids),
        }
    )
    try:
        image_id = service.create_image(raw, parent=parent_id)
    except BaseException:
        if layer is not None:
            service.free_unused_layers(layer.chain_id)
        raise
    if layer is not None and empty:
        service.free_unused_layers(layer.chain_id)
    return image_id


def top_layer(service: ImageService, image_id: str | None) -> str | None:
    return service.top_layer(image_id) if image_id is not None else None


async def layer_from_tree(daemon: "Daemon", image_id: str | None, fill: Callable[[str], None]) -> LayerRecord:
    """A new layer on the image's top layer holding what `fill(root)` writes into the mounted tree."""
    service = daemon.images
    work_id = ids.new_id()
    parent = top_layer(service, image_id)

    def prepare() -> str:
        service.layers.create_rw(work_id, parent)
        return service.layers.mount(work_id)

    try:
        root = await daemon.locked(prepare)
        try:
            await daemon.blocking(fill, root)
        finally:
            await daemon.locked(service.layers.unmount, work_id)
        return await daemon.locked(service.layers.register_rw, work_id)
    finally:
        await daemon.locked(service.layers.delete_rw, work_id)
