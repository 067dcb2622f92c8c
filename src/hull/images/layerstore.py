"""The layer store: image layers by chain id, and containers' layers, kept on a graph driver.

Vocabulary (the seeds'): a layer's *diff id* is the sha256 of its uncompressed tar; its
*chain id* names it together with every layer below it; its *cache id* is the directory the
graph driver keeps it in. A container gets two driver layers above its image's top layer:
the *init layer* (`<mount id>-init`: /etc/hosts, /etc/resolv.conf and the other placeholders)
and its *read-write layer* (`<mount id>`), recorded in layerdb/mounts/<container id>.

Contract:
- `register` streams a layer blob (plain, gzip or zstd) onto a fresh driver layer, computing
  its diff id, size and tar-split on the way, and only then records it: the driver's
  `committed` marker first, layerdb's rename last. A crash at any point leaves a driver layer
  that no layerdb record names, which `recover` frees; never a half layer that counts.
  Registering a chain id that is already there keeps the existing one (layers are shared).
- `tar_stream` rebuilds a layer's original tar byte for byte from its tar-split, so a layer
  keeps the digest it was pulled or loaded with.
- `delete` removes one layer nothing is built on; callers (the image service) decide what is
  unused, from layerdb's usage view.
- Container layers: `create_rw`, `mount`/`unmount` (reference-counted by the driver),
  `diff_rw` (the read-write layer as a layer tar, for commit), `changes_rw`, `delete_rw`.
"""

import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from hull.errors import NotFound
from hull.images import ids
from hull.images.layerdb import LayerDB, LayerDBRecovery, LayerRecord, MountRecord
from hull.storage import archive
from hull.storage.driver import GraphDriver
from hull.storage.initlayer import init_layer_id, populate_init_layer
from hull.storage.tarsplit import rebuild


@dataclass
class Recovery:
    """What `recover` freed: layerdb's own report, and driver layers that nothing named."""

    layerdb: LayerDBRecovery
    driver_incomplete: list[str]
    driver_orphans: list[str]


class LayerStore:
    """Layers of one data root on one graph driver."""

    def __init__(self, driver: GraphDriver) -> None:
        self.root = driver.root  # the data root as the driver names it (image/<driver>/...)
        self.driver = driver
        self.db = LayerDB(driver.root)
        # Containers' GraphDriver.Data once read (see rw_graph_data): by container id.
        self._rw_graph: dict[str, dict[str, str]] = {}

    # --- startup --------------------------------------------------------------------------------

    def recover(self) -> Recovery:
        """Make the store consistent after a crash: layerdb first, then the driver's leftovers."""
        report = self.db.recover()
        incomplete = self.driver.cleanup_incomplete()
        named = {self.db.get(c).cache_id for c in self.db.list()}
        for container_id in self.db.list_mounts():
            m = self.db.get_mount(container_id)
            named |= {m.mount_id, m.init_id}
        orphans = [i for i in self.driver.layer_ids() if i not in named]
        for layer_id in orphans:
            self.driver.remove(layer_id)
        return Recovery(report, incomplete, orphans)

    # --- image layers ---------------------------------------------------------------------------

    def register(self, blob: BinaryIO, parent: str | None) -> LayerRecord:
        """Apply `blob` on top of layer `parent` (a chain id, or None for a base layer)."""
        return self._new_layer(parent, lambda dest: archive.apply_layer(blob, dest, whiteouts=self.driver.whiteouts))

    def register_rw(self, container_id: str) -> LayerRecord:
        """The container's changes as a new layer on its image's top layer (what commit stores).

        On overlay2 the read-write layer is copied straight into the new layer while its tar is
        made for the diff id and tar-split (never parsed back); elsewhere the tar is spooled to
        an unnamed file beside the layers and registered like any other.
        """
        m = self.db.get_mount(container_id)
        if self.driver.whiteouts == "overlay":
            upper = self.driver.diff_path(m.mount_id)
            return self._new_layer(m.parent, lambda dest: archive.copy_overlay_diff(upper, dest))
        os.makedirs(self.root.layerdb_tmp, mode=0o700, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.root.layerdb_tmp) as spool:
            self.diff_rw(container_id, spool)
            spool.seek(0)
            return self.register(spool, m.parent)

    def _new_layer(self, parent: str | None, fill: Callable[[str], archive.AppliedLayer]) -> LayerRecord:
        """A driver layer on `parent`, filled by `fill(its diff dir)`, then recorded: marker first,
        layerdb last; an existing chain id is kept and the new copy dropped."""
        parent_cache = self.db.get(parent).cache_id if parent is not None else None
        cache_id = ids.new_id()
        self.driver.create(cache_id, parent_cache)
        try:
            applied = fill(self.driver.diff_path(cache_id))
            chain_id = ids.chain_id_step(parent, applied.diff_id)
            if self.db.exists(chain_id):
                self.driver.remove(cache_id)
                return self.db.get(chain_id)
            self.driver.mark_committed(cache_id)
            return self.db.register(applied.diff_id, parent, cache_id, applied.size, applied.tar_split)
        except BaseException:
            self.driver.remove(cache_id)
            raise

    def get(self, chain_id: str) -> LayerRecord:
        return self.db.get(chain_id)

    def exists(self, chain_id: str) -> bool:
        return self.db.exists(chain_id)

    def chain(self, chain_id: str) -> list[LayerRecord]:
        """The layer and everything below it, base layer first."""
        out = [self.db.get(chain_id)]
        while out[-1].parent is not None:
            out.append(self.db.get(out[-1].parent))
        return out[::-1]

    def tar_stream(self, chain_id: str, out: BinaryIO) -> None:
        """Write the layer's original (uncompressed) tar, rebuilt from its tar-split."""
        layer = self.db.get(chain_id)
        rebuild(self.db.tar_split(chain_id), self.driver.diff_path(layer.cache_id), out)

    def delete(self, chain_id: str) -> None:
        """Remove one layer: its layerdb record first (so it stops counting), then its files."""
        layer = self.db.delete(chain_id)
        self.driver.remove(layer.cache_id)

    def graph_data(self, chain_id: str) -> dict[str, str]:
        """Docker's GraphDriver.Data of an image whose top layer is `chain_id`."""
        return self.driver.metadata(self.db.get(chain_id).cache_id)

    # --- container layers -----------------------------------------------------------------------

    def create_rw(self, container_id: str, parent: str | None) -> MountRecord:
        """The init layer and the read-write layer of a container on top of image layer `parent`."""
        parent_cache = self.db.get(parent).cache_id if parent is not None else None
        mount_id = ids.new_id()
        init_id = init_layer_id(mount_id)
        try:
            self.driver.create_readwrite(init_id, parent_cache)
            root = self.driver.get(init_id)
            try:
                populate_init_layer(root)
            finally:
                self.driver.put(init_id)
            self.driver.create_readwrite(mount_id, init_id)
            return self.db.create_mount(container_id, mount_id, parent, init_id)
        except BaseException:
            for layer_id in (mount_id, init_id):
                self.driver.remove(layer_id)
            raise

    def get_rw(self, container_id: str) -> MountRecord:
        return self.db.get_mount(container_id)

    def rw_graph_data(self, container_id: str) -> dict[str, str]:
        """Docker's GraphDriver.Data of a container: its read-write layer's, whose lowers are the
        init layer, then the image's. Kept once read (a container's layers never change): every
        `docker exec` inspects its container first."""
        graph = self._rw_graph.get(container_id)
        if graph is None:
            graph = self._rw_graph[container_id] = self.driver.metadata(self.db.get_mount(container_id).mount_id)
        return dict(graph)

    def known_rw_graph_data(self, container_id: str) -> dict[str, str] | None:
        """rw_graph_data if it needs no reading (none if not read yet)."""
        graph = self._rw_graph.get(container_id)
        return None if graph is None else dict(graph)

    def mount(self, container_id: str) -> str:
        """Mount the container's root filesystem (all its layers); returns the merged path."""
        return self.driver.get(self.db.get_mount(container_id).mount_id)

    def unmount(self, container_id: str) -> None:
        self.driver.put(self.db.get_mount(container_id).mount_id)

    def diff_rw(self, container_id: str, out: BinaryIO) -> str:
        """Write the container's changes as a layer tar; returns its diff id."""
        m = self.db.get_mount(container_id)
        if self.driver.whiteouts == "overlay":
            return archive.write_overlay_diff(self.driver.diff_path(m.mount_id), out)
        return archive.write_dir_diff(self.driver.diff_path(m.init_id), self.driver.diff_path(m.mount_id), out)

    def changes_rw(self, container_id: str) -> list[archive.Change]:
        """Docker's A/C/D list of what the container changed."""
        m = self.db.get_mount(container_id)
        if self.driver.whiteouts == "overlay":
            lowers = [self.driver.diff_path(m.init_id)]
            if m.parent is not None:
                lowers += [self.driver.diff_path(layer.cache_id) for layer in reversed(self.chain(m.parent))]
            return archive.overlay_changes(self.driver.diff_path(m.mount_id), lowers)
        return archive.dir_changes(self.driver.diff_path(m.init_id), self.driver.diff_path(m.mount_id))

    def rw_size(self, container_id: str) -> int:
        """Docker's SizeRw: bytes of the regular files the container added or changed."""
        m = self.db.get_mount(container_id)
        top = self.driver.diff_path(m.mount_id)
        paths = (ch.path.lstrip("/") for ch in self.changes_rw(container_id) if ch.kind != "D")
        total = 0
        for rel in paths:
            try:
                st = os.lstat(os.path.join(top, rel))
            except OSError:
                continue  # a directory's entry under overlay: only its own files count
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
        return total

    def delete_rw(self, container_id: str) -> None:
        """Remove a container's layers: the record first, then the driver's layers (unmounted)."""
        self._rw_graph.pop(container_id, None)
        try:
            m = self.db.delete_mount(container_id)
        except NotFound:
            return
        for layer_id in (m.mount_id, m.init_id):
            self.driver.remove(layer_id)
