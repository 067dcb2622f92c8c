"""Runtime logging in runc's shapes, so engines that drive runc read ours unchanged.

Text (logrus): `time="2026-01-02T03:04:05Z" level=error msg="container does not exist"`.
JSON (`--log-format json`): `{"level":"error","msg":"...","time":"..."}`, one per line, which
containerd parses to report the runtime's error. Without `--log`, entries go to stderr; with
it, to the file, and a fatal error is also printed plainly on stderr (runc does both).
"""

import json
import os
import sys
import time

_path: str | None = None
_json = False
_debug = False


def configure(path: str | None, fmt: str, debug: bool) -> None:
    global _path, _json, _debug
    _path, _json, _debug = path or None, fmt == "json", debug


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def log(level: str, msg: str) -> None:
    if level == "debug" and not _debug:
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _json:
        line = json.dumps({"level": level, "msg": msg, "time": stamp}, separators=(",", ":"))
    else:
        line = f"time={_quote(stamp)} level={level} msg={_quote(msg)}"
    data = (line + "\n").encode()
    if _path:
        fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    else:
        sys.stderr.buffer.write(data)
        sys.stderr.flush()


def warning(msg: str) -> None:
    log("warning", msg)


def debug(msg: str) -> None:
    log("debug", msg)


def fatal(msg: str) -> None:
    """Report the error that ends the command."""
    log("error", msg)
    if _path:
        print(msg, file=sys.stderr)
