"""Where everything lives under hull's data root: the one place for the on-disk layout.

The shape is the seeds' /var/lib/docker with a graph driver named `driver` (DESIGN.md):

    image/<driver>/repositories.json
    image/<driver>/imagedb/content/sha256/<image id>       image config bytes
    image/<driver>/imagedb/metadata/sha256/<image id>/     lastUpdated, parent
    image/<driver>/layerdb/sha256/<chain id>/              cache-id, diff, parent, size, tar-split.json.gz
    image/<driver>/layerdb/mounts/<container id>/          init-id, mount-id, parent
    image/<driver>/layerdb/tmp/                            layers being written
    image/<driver>/distribution/diffid-by-digest/sha256/<blob digest>
    image/<driver>/distribution/v2metadata-by-diffid/sha256/<diff id>
    <driver>/<cache id>/...  and  <driver>/l/<short link>  (the driver's own tree)
    containers/<container id>/
    volumes/, network/

Ids are passed as bare hex (no "sha256:" prefix) where they name a file or directory.
"""

import os
from dataclasses import dataclass

DEFAULT_DATA_ROOT = "/var/lib/hull"


@dataclass(frozen=True)
class DataRoot:
    """The paths of one data root; nothing here touches the disk."""

    path: str = DEFAULT_DATA_ROOT
    driver: str = "overlay2"

    @property
    def image_dir(self) -> str:
        return os.path.join(self.path, "image", self.driver)

    @property
    def repositories_json(self) -> str:
        return os.path.join(self.image_dir, "repositories.json")

    @property
    def imagedb_content(self) -> str:
        return os.path.join(self.image_dir, "imagedb", "content", "sha256")

    @property
    def imagedb_metadata(self) -> str:
        return os.path.join(self.image_dir, "imagedb", "metadata", "sha256")

    @property
    def layerdb(self) -> str:
        return os.path.join(self.image_dir, "layerdb", "sha256")

    @property
    def layerdb_mounts(self) -> str:
        return os.path.join(self.image_dir, "layerdb", "mounts")

    @property
    def layerdb_tmp(self) -> str:
        return os.path.join(self.image_dir, "layerdb", "tmp")

    @property
    def diffid_by_digest(self) -> str:
        return os.path.join(self.image_dir, "distribution", "diffid-by-digest", "sha256")

    @property
    def v2metadata_by_diffid(self) -> str:
        return os.path.join(self.image_dir, "distribution", "v2metadata-by-diffid", "sha256")

    @property
    def driver_dir(self) -> str:
        """The graph driver's home: overlay2/<cache id>/..., overlay2/l/."""
        return os.path.join(self.path, self.driver)

    @property
    def containers(self) -> str:
        return os.path.join(self.path, "containers")

    @property
    def volumes(self) -> str:
        return os.path.join(self.path, "volumes")

    def volume_dir(self, name: str) -> str:
        """volumes/<name>/: the volume's metadata (volume.json) beside its data."""
        return os.path.join(self.volumes, name)

    def volume_data(self, name: str) -> str:
        """volumes/<name>/_data: what containers see (Docker's Mountpoint)."""
        return os.path.join(self.volumes, name, "_data")

    @property
    def network(self) -> str:
        return os.path.join(self.path, "network")
