"""The image operations users ask for, as library functions over an ImageService: the daemon's entry point.

    import_image(service, source, *, repo_tag, changes, message, platform) -> image id   (docker import)
    export_container(service, container_id, out)                                         (docker export)
    commit(service, container_id, *, parent_image, container_config, repo_tag, author,
           comment, changes, pause) -> image id                                          (docker commit)
    diff_container(service, container_id) -> [Change]                                    (docker diff)
    history(service, name) -> [ImageHistoryResponseItem]                                 (docker history)
    inspect(service, name) -> ImageInspect                                               (docker image inspect)
    list_images(service, *, all, filters, shared_size) -> [ImageSummary]                 (docker images)
    tag(service, source, target) -> familiar reference                                   (docker tag)
    remove(service, name, *, force, prune_children, running) -> [ImageDeleteResponseItem] (docker rmi)
    prune(service, *, all, filters) -> ImagesPruneResponse                               (docker image prune)

Vocabulary and contract are those of the modules that implement them: commit.py (making
images, reading containers), inspect.py (the read-only views), delete.py (tags, deletion,
prune), changes.py (`--change` instructions), containerconfig.py (the container config's
shape and Docker's merge), filters.py (filters and time values). In short: results are the
Engine API's JSON objects with Docker's field names; every failure is a HullError with
Docker's wording (NotFound "No such image: X" / "No such container: X", Conflict for what a
reference, a child image or a container still needs, InvalidArgument for bad input), raised
before anything is changed. Containers are known here only by their layers (layerdb mounts):
the daemon, which owns container records, passes what layerdb cannot tell (a container's
config to commit, the running ones to remove). Mutating operations on one data root are to
be serialized by the caller.
"""

from hull.images.commit import commit, diff_container, export_container, import_image
from hull.images.delete import prune, remove, tag
from hull.images.inspect import history, inspect, list_images

__all__ = [
    "commit",
    "diff_container",
    "export_container",
    "history",
    "import_image",
    "inspect",
    "list_images",
    "prune",
    "remove",
    "tag",
]
