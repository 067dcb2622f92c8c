"""OCI lifecycle hooks: run each one with the container's state JSON on its stdin.

Where each kind runs (runtime-spec "POSIX-platform Hooks"): createRuntime and prestart in
the runtime's namespaces after the container's namespaces exist and before pivot_root;
createContainer inside the container's mount namespace before pivot_root; startContainer
inside the container just before the user process; poststart after `start`; poststop after
`delete`. `args[0]` is the hook's argv[0], as in execve.
"""

import json
from typing import Any

from hull.errors import HullError
from hull.runtime import log
from hull.runtime.spec import Hook


def run_hooks(hooks: list[Hook], state: dict[str, Any], kind: str) -> None:
    """Run `hooks` in order; the first failure raises, naming the hook."""
    import subprocess  # only paid for by containers that have hooks

    stdin = json.dumps(state).encode()
    for i, hook in enumerate(hooks):
        argv = hook.args or [hook.path]
        try:
            done = subprocess.run(
                argv,
                executable=hook.path,
                input=stdin,
                env=dict(e.split("=", 1) for e in hook.env if "=" in e),
                capture_output=True,
                timeout=hook.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HullError(f"error running {kind} hook #{i}: timeout after {hook.timeout}s") from None
        except OSError as e:
            raise HullError(f"error running {kind} hook #{i}: {hook.path}: {e.strerror}") from None
        if done.returncode != 0:
            status = f"exit status {done.returncode}" if done.returncode > 0 else f"signal {-done.returncode}"
            raise HullError(
                f"error running {kind} hook #{i}: {status}, stdout: {done.stdout.decode(errors='replace').strip()}, "
                f"stderr: {done.stderr.decode(errors='replace').strip()}"
            )


def run_hooks_warn(hooks: list[Hook], state: dict[str, Any], kind: str) -> None:
    """poststart and poststop failures only warn: the spec says the lifecycle goes on."""
    try:
        run_hooks(hooks, state, kind)
    except HullError as e:
        log.warning(e.message)
