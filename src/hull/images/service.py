"""The image service: one data root's images, layers and references, behind one object.

This is what the daemon (and the tests) hold: it opens the graph driver and every store of
`image/<driver>/`, recovers them after a crash, resolves what a user types (a name, a
name:tag, a name@digest, a full or short image id) to an image id, and creates images from
a config whose layers are already in the layer store. The operations users ask for (load,
save, import, export, commit, inspect, history, list, tag, remove, prune, diff) build on
these few functions, in the modules named for them.

Vocabulary: an image is its config (imagedb, id = sha256 of the bytes); its layers are named
by the chain ids of the config's `rootfs.diff_ids`; its top layer is the last of them.
"""

from dataclasses import dataclass

from hull.errors import Conflict, InvalidArgument, NotFound
from hull.images import ids, reference
from hull.images.distmeta import DistributionMetadata
from hull.images.imagedb import ImageConfig, ImageDB, ImageDBRecovery, parse_config
from hull.images.layerdb import LayerRecord
from hull.images.layerstore import LayerStore, Recovery
from hull.images.references import ReferenceStore
from hull.layout import DataRoot
from hull.storage.driver import open_driver


@dataclass
class ServiceRecovery:
    layers: Recovery
    images: ImageDBRecovery


class ImageService:
    """Images of one data root; `driver_name` None picks as Docker does (the one in use, else overlay2)."""

    def __init__(self, root: DataRoot, driver_name: str | None = None) -> None:
        self.driver = open_driver(root, driver_name)
        self.root = self.driver.root
        self.layers = LayerStore(self.driver)
        self.images = ImageDB(self.root)
        self.refs = ReferenceStore(self.root)
        self.dist = DistributionMetadata(self.root)

    def recover(self) -> ServiceRecovery:
        """After a crash: free half-made layers and scratch files (startup only)."""
        return ServiceRecovery(self.layers.recover(), self.images.recover())

    def close(self) -> None:
        """Unmount what this service mounted."""
        self.driver.cleanup()

    # --- names -> ids -----------------------------------------------------------------------------

    def lookup(self, name: str) -> str:
        """The image id (`sha256:...`) that `name` means, as Docker resolves it.

        A full id (with or without `sha256:`) first, then a reference (a bare name means
        name:latest), then a prefix of an id. NotFound names the image as dockerd does ("No
        such image: busybox:latest", a full id with its `sha256:`); a name that is neither an
        id nor a valid reference is InvalidArgument, as there.
        """
        if not name:
            raise InvalidArgument("image name cannot be empty")
        full = name.removeprefix("sha256:")
        if ids.is_hex_id(full):
            if self.images.exists("sha256:" + full):
                return "sha256:" + full
            raise NotFound(f"No such image: sha256:{full}")
        hexish = name.startswith("sha256:") or all(c in "0123456789abcdef" for c in name)
        try:
            ref = reference.parse_tagged(name)
        except InvalidArgument:
            if not hexish:
                raise
            ref = None
        if ref is not None:
            try:
                return self.refs.get(ref)
            except NotFound:
                pass
        if hexish:
            try:
                return self.images.search(name)
            except NotFound:
                pass
        raise NotFound(f"No such image: {ref.familiar() if ref is not None else name}")

    def config(self, image_id: str) -> ImageConfig:
        return self.images.get_config(image_id)

    def top_layer(self, image_id: str) -> str | None:
        """The chain id of the image's top layer (None for an image with no layers)."""
        diff_ids = self.config(image_id).diff_ids
        return ids.chain_id(list(diff_ids)) if diff_ids else None

    # --- making images ----------------------------------------------------------------------------

    def create_image(self, config: bytes, parent: str | None = None) -> str:
        """Store an image config whose layers are all in the layer store; returns its id."""
        parsed = parse_config(config)
        if parsed.diff_ids:
            top = ids.chain_id(list(parsed.diff_ids))
            if not self.layers.exists(top):
                raise NotFound(f"the layers of this image are not in the layer store (chain id {top})")
        image_id = self.images.put(config)
        self.images.set_last_updated(image_id)
        if parent is not None:
            self.images.set_parent(image_id, parent)
        return image_id

    def tag(self, image_id: str, name: str) -> reference.Reference:
        """Point `name` (name:latest when it has no tag) at the image, moving the tag if needed."""
        ref = reference.parse_new_tag(name)
        self.refs.add(ref, image_id, force=True)
        return ref

    def free_unused_layers(self, top: str | None) -> list[LayerRecord]:
        """Delete the layers of the chain `top` that nothing needs any more, top down; returns them.

        Stops at the first layer still needed: every layer below it is needed too.
        """
        usage = self.layers.db.usage(self.images)
        freed: list[LayerRecord] = []
        chain = top
        while chain is not None and chain in usage.layers and not usage.is_used(chain):
            record = usage.layers[chain]
            try:
                self.layers.delete(chain)
            except Conflict:
                break  # a layer nothing names is built on it (left by a crash): keep the chain
            freed.append(record)
            chain = record.parent
        return freed
