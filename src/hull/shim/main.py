"""`hull-shim --config FILE`: start one shim without the forkserver, for a daemon that execs it directly.

The same handshake as the forkserver's, through the process's exit: it starts the shim in the
background (double fork, own session), waits until the shim has run runtime create and
listens on `<exec_dir>/shim.sock`, prints the shim's answer line on stdout
(`{"ok": true, "pid": N}` or `{"ok": false, "error": ..., "kind": ...}`) and exits 0 if the
shim runs, 1 if not (the error also goes to stderr). The shim stays in the caller's cgroups.
"""

import argparse
import sys

from hull.errors import HullError
from hull.shim import protocol
from hull.shim.config import ShimConfig
from hull.shim.server import fork_shim, read_handshake


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hull-shim", description="start the monitor of one container")
    p.add_argument("--config", required=True, help="the ShimConfig JSON file ('-' for stdin)")
    a = p.parse_args(argv)
    try:
        if a.config == "-":
            text = sys.stdin.read()
        else:
            with open(a.config) as f:
                text = f.read()
        cfg = ShimConfig.from_json(text)
        fd = fork_shim(cfg)
    except OSError as e:
        line = protocol.error(HullError(f"{a.config}: {e.strerror}"))
    except HullError as e:
        line = protocol.error(e)
    else:
        line = read_handshake(fd)
    sys.stdout.buffer.write(line)
    sys.stdout.flush()
    try:
        protocol.decode_answer(line)
    except HullError as e:
        print(f"hull-shim: {e.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
