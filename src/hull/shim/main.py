"""Entry point of `hull-shim` (not built yet: see the open issues)."""

import sys


def main() -> int:
    print("hull-shim: not built yet; only hull-runtime works so far", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
