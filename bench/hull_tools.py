"""The hull side of the image benchmarks: one library operation per process, as a command.

There is no `hull` command for images yet (the daemon comes next), so each timed run starts
this script, which pays the interpreter's start and hull's imports like a real command would.

    hull_tools.py apply LAYER DEST              apply a layer tar onto an empty directory (overlay whiteouts)
    hull_tools.py commit ROOT CONTAINER IMAGE TAG   commit a container's layer as image TAG on IMAGE
    hull_tools.py load ROOT ARCHIVE             load a docker-archive into the data root ROOT
"""

import sys

from hull.layout import DataRoot
from hull.storage.archive import apply_layer


def main(argv: list[str]) -> int:
    verb, *args = argv
    if verb == "apply":
        layer, dest = args
        with open(layer, "rb") as f:
            apply_layer(f, dest, whiteouts="overlay")
        return 0
    if verb == "commit":
        from hull.images.operations import commit
        from hull.images.service import ImageService

        root, container, image, tag = args
        service = ImageService(DataRoot(root))
        try:
            print(commit(service, container, parent_image=image, container_config={}, repo_tag=tag))
        finally:
            service.close()
        return 0
    if verb == "load":
        from hull.images.service import ImageService
        from hull.images.tarexport import load

        root, path = args
        service = ImageService(DataRoot(root))
        try:
            with open(path, "rb") as f:
                print(*load(service, f).messages(), sep="\n")
        finally:
            service.close()
        return 0
    raise SystemExit(f"unknown verb {verb!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
