"""The hull side of the layer-apply benchmarks: one library call per process, as a command.

Layer apply has no command of its own (hulld applies layers inside load and pull), so each
timed run starts this script, which pays the interpreter's start and hull's imports as a
real command would, against GNU tar doing the same extraction.

    hull_tools.py apply LAYER DEST              apply a layer tar onto an empty directory (overlay whiteouts)
"""

import sys

from hull.storage.archive import apply_layer


def main(argv: list[str]) -> int:
    verb, *args = argv
    if verb == "apply":
        layer, dest = args
        with open(layer, "rb") as f:
            apply_layer(f, dest, whiteouts="overlay")
        return 0
    raise SystemExit(f"unknown verb {verb!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
