"""Entry point of `hulld`: flags, the pid file, the API sockets, and a clean stop on SIGTERM/SIGINT.

A stop leaves containers running (live restore); a second hulld on the same pid file is
refused while the first one lives.
"""

import argparse
import asyncio
import fcntl
import grp
import logging
import os
import signal
import sys

from aiohttp import web

from hull.daemon import config as cfg
from hull.errors import HullError

log = logging.getLogger("hulld")

SOCKET_MODE = 0o660
SOCKET_GROUP = "hull"


def parse_args(argv: list[str]) -> tuple[dict[str, object], str | None]:
    p = argparse.ArgumentParser(prog="hulld", description="hull's daemon: the Docker Engine API over a unix socket")
    p.add_argument("--data-root", dest="data_root", help=f"root of persistent state (default {cfg.DEFAULT_DATA_ROOT})")
    p.add_argument("--exec-root", dest="exec_root", help=f"root of runtime state (default {cfg.DEFAULT_EXEC_ROOT})")
    p.add_argument(
        "-H", "--host", dest="hosts", action="append", help=f"socket to listen on (default {cfg.DEFAULT_HOST})"
    )
    p.add_argument("-s", "--storage-driver", dest="storage_driver", choices=("overlay2", "vfs"))
    p.add_argument("--runtime", dest="default_runtime", help="OCI runtime: hull (built in), runc, or a path")
    p.add_argument("-p", "--pidfile", dest="pidfile")
    p.add_argument("-l", "--log-level", dest="log_level", choices=cfg.LOG_LEVELS)
    p.add_argument("--cgroup-parent", dest="cgroup_parent")
    p.add_argument(
        "-b", "--bridge", dest="bridge",
        help=f"the default bridge network's device (default {cfg.DEFAULT_BRIDGE}; none: no default bridge)",
    )  # fmt: skip
    p.add_argument("--init-path", dest="init_path", help=f"the --init binary (default {cfg.DEFAULT_INIT_PATH})")
    p.add_argument(
        "--insecure-registry", dest="insecure_registries", action="append",
        help="a registry (host:port or CIDR) that may be reached over plain HTTP",
    )  # fmt: skip
    p.add_argument(
        "--lxcfs", dest="lxcfs", type=_parse_bool, nargs="?", const=True,
        help="serve containers' /proc files from lxcfs (default true; --lxcfs=false turns it off)",
    )  # fmt: skip
    p.add_argument(
        "--config-file", dest="config_file", help=f"daemon.json-style file (default {cfg.DEFAULT_CONFIG_FILE})"
    )
    ns = vars(p.parse_args(argv))
    config_file = ns.pop("config_file")
    return ns, config_file


def _parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool words, as dockerd's boolean flags take them."""
    words = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}
    value = words.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")
    return value


def lock_pidfile(path: str) -> int:
    """Hold an exclusive lock on the pid file for our lifetime: the proof no other hulld runs."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise HullError(f"hulld is already running (pid file {path} is locked)") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _socket_group() -> int | None:
    try:
        return grp.getgrnam(SOCKET_GROUP).gr_gid
    except KeyError:
        return None


async def serve(config: cfg.DaemonConfig) -> None:
    from hull.api.server import make_app
    from hull.daemon.daemon import Daemon

    daemon = Daemon(config)
    await daemon.start()
    app = make_app(daemon)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    gid = _socket_group()
    for path in config.unix_socket_paths():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)  # stale: the pid file lock says no other hulld owns it
        site = web.UnixSite(runner, path)
        await site.start()
        os.chmod(path, SOCKET_MODE)
        if gid is not None:
            os.chown(path, 0, gid)
        log.info("API listening on unix://%s", path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("stopping: containers keep running")
        await runner.cleanup()
        await daemon.stop()
        for path in config.unix_socket_paths():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def main(argv: list[str] | None = None) -> int:
    flags, config_file = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = cfg.build(flags, config_file)
    except HullError as e:
        print(f"hulld: {e.message}", file=sys.stderr)
        return 1
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(config.log_level, config.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("hulld: must run as root", file=sys.stderr)
        return 1
    try:
        pid_fd = lock_pidfile(config.pidfile_path)
    except HullError as e:
        print(f"hulld: {e.message}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(config))
    except HullError as e:
        print(f"hulld: {e.message}", file=sys.stderr)
        return 1
    finally:
        os.unlink(config.pidfile_path)
        os.close(pid_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
