"""`make demo`: build a busybox bundle and run it with hull-runtime.

Usage: python -m hull.testing.demo [BUNDLE_DIR]   (default build/demo)
Expected output: `inside the container: pid=1 hostname=hull-demo`.
"""

import json
import secrets
import subprocess
import sys
from pathlib import Path

from hull.errors import HullError
from hull.testing import remove_tree
from hull.testing.busybox import build_busybox_rootfs

SCRIPT = 'echo "inside the container: pid=$$ hostname=$(hostname)"'


def runtime_command() -> list[str]:
    """hull-runtime as installed beside this interpreter (the venv's console script), else via -m."""
    script = Path(sys.executable).parent / "hull-runtime"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hull.runtime.cli"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    bundle = Path(args[0] if args else "build/demo")
    runtime = runtime_command()
    try:
        remove_tree(bundle)  # a fresh bundle each time; refused if a broken run left mounts in it
        build_busybox_rootfs(bundle / "rootfs")
    except HullError as e:
        print(f"demo: {e.message}", file=sys.stderr)
        return 1
    if subprocess.run([*runtime, "spec", "--bundle", str(bundle)], check=False).returncode != 0:
        print("demo: `hull-runtime spec` failed (above)", file=sys.stderr)
        return 1
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["hostname"] = "hull-demo"
    config["process"]["args"] = ["sh", "-c", SCRIPT]
    config["process"]["terminal"] = False
    config_path.write_text(json.dumps(config, indent="\t"))

    cid = f"demo-{secrets.token_hex(4)}"
    print(f"$ hull-runtime run --bundle {bundle} {cid}", flush=True)
    status = subprocess.run([*runtime, "run", "--bundle", str(bundle), cid], stdin=subprocess.DEVNULL, check=False)
    if status.returncode != 0:
        print(f"demo: hull-runtime run exited {status.returncode}", file=sys.stderr)
    return status.returncode


if __name__ == "__main__":
    sys.exit(main())
