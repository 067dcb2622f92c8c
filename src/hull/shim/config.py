"""ShimConfig: everything a shim needs to know about its one container, as the daemon sends it.

The daemon writes it (to the forkserver as one JSON line, or to a file for a standalone
`hull-shim --config`); the shim never looks anywhere else (no image store, no daemon state).

A NamedTuple and nothing imported from hull.runtime at module level: the shim's lean monitor
(monitor.py) imports this module, and dataclasses or hull.runtime.state would cost it over a
megabyte of memory per container.
"""

import json
import os
from typing import Any, NamedTuple

from hull.errors import InvalidArgument

SOCKET_NAME = "shim.sock"
# Where the runtime sends a seccomp listener (the spec's linux.seccomp.listenerPath); sysinfo.py.
# No longer than SOCKET_NAME: from_json's length check of socket_path then covers it too.
SECCOMP_SOCKET_NAME = "seccomp"
PID_NAME = "shim.pid"
# The shim's own stderr (and the built-in runtime's log): kept for the daemon to read or remove.
LOG_NAME = "shim.log"


class ShimConfig(NamedTuple):
    id: str
    bundle: str
    exec_dir: str
    exit_file: str = ""  # the exit record, for a daemon that restarts; "" = none (an exec's)
    runtime: str = ""  # "" = the built-in hull-runtime, in-process; else an OCI runtime binary (runc)
    runtime_root: str = ""  # the runtime's state directory; "" = the runtime's default
    log_path: str = ""  # json-file log; "" = no log
    log_max_size: int = 0  # bytes; 0 = unlimited
    log_max_file: int = 1
    terminal: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    memory_cgroup: str = ""  # the spec's linux.cgroupsPath: where the OOM kill counter is read
    answer_sysinfo: bool = False  # listen on seccomp_socket_path and answer sysinfo(2) (sysinfo.py)

    @property
    def socket_path(self) -> str:
        return os.path.join(self.exec_dir, SOCKET_NAME)

    @property
    def seccomp_socket_path(self) -> str:
        return os.path.join(self.exec_dir, SECCOMP_SOCKET_NAME)

    @property
    def pid_path(self) -> str:
        return os.path.join(self.exec_dir, PID_NAME)

    @property
    def log_file(self) -> str:
        return os.path.join(self.exec_dir, LOG_NAME)

    def to_json(self) -> str:
        return json.dumps(self._asdict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "ShimConfig":
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise InvalidArgument(f"shim config: malformed JSON: {e}") from None
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: Any) -> "ShimConfig":
        from hull.runtime.state import check_id  # only the daemon's side validates (see the module docstring)

        if not isinstance(obj, dict):
            raise InvalidArgument("shim config: expected a JSON object")
        unknown = sorted(set(obj) - set(cls._fields))
        if unknown:
            raise InvalidArgument(f"shim config: unknown field {unknown[0]!r}")
        for name, value in obj.items():
            want = cls.__annotations__[name]
            assert isinstance(want, type)  # plain str/int/bool fields (no postponed annotations)
            # bool is an int in Python: keep `"log_max_file": true` out.
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                raise InvalidArgument(f"shim config: {name} must be a {want.__name__}, got {value!r}")
        for name in ("id", "bundle", "exec_dir"):
            if name not in obj or not obj[name]:
                raise InvalidArgument(f"shim config: {name} is required")
        cfg = cls(**obj)
        check_id(cfg.id)
        if cfg.log_max_size < 0 or cfg.log_max_file < 1:
            raise InvalidArgument("shim config: log_max_size must be >= 0 and log_max_file >= 1")
        # sockaddr_un holds 108 bytes with the NUL: say so now rather than fail in bind().
        if len(cfg.socket_path.encode()) > 107:
            raise InvalidArgument(f"shim config: exec_dir {cfg.exec_dir!r} is too long for a unix socket path")
        return cfg
