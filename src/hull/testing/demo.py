"""`make demo`: make a busybox image and run `hull run --rm busybox echo hello`.

Usage: python -m hull.testing.demo [WORK_DIR]   (default build/demo)

The image is built offline from the host's busybox-static and imported with `hull import`
(once: an existing busybox:latest is kept). Every step goes through the `hull` command, as a
user would type it; when no hulld answers, `hull` itself starts one in the background and
says so. Expected last line: `hello`.
"""

import subprocess
import sys
from pathlib import Path

from hull.errors import HullError
from hull.testing import remove_tree
from hull.testing.busybox import build_busybox_rootfs

IMAGE = "busybox:latest"


def hull_command() -> list[str]:
    """`hull` as installed beside this interpreter (the venv's console script), else via -m."""
    script = Path(sys.executable).parent / "hull"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hull.cli.main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    work = Path(args[0] if args else "build/demo")
    hull = hull_command()
    # stderr passes through: it is where `hull` says that it started hulld.
    have = subprocess.run([*hull, "images", "-q", IMAGE], stdout=subprocess.PIPE, text=True, check=False)
    if have.returncode != 0:
        return have.returncode
    if not have.stdout.strip():
        try:
            remove_tree(work)
            rootfs = build_busybox_rootfs(work / "rootfs")
        except HullError as e:
            print(f"demo: {e.message}", file=sys.stderr)
            return 1
        print(f"$ tar -C {rootfs} -c . | hull import - {IMAGE}", flush=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([*hull, "import", "-", IMAGE], stdin=tar.stdout, check=False)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            print("demo: the import failed (above)", file=sys.stderr)
            return 1
    print(f"$ hull run --rm {IMAGE.partition(':')[0]} echo hello", flush=True)
    return subprocess.run([*hull, "run", "--rm", IMAGE.partition(":")[0], "echo", "hello"], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
