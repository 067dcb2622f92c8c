"""A stand-in for hull.containers.jsonlog.JsonLogWriter, loaded only while that module is not written yet.

Same API and Docker's json-file line format; no rotation (the shim tests don't exercise it).
"""

import json
import time


class JsonLogWriter:
    def __init__(self, path: str, max_size: int = 0, max_file: int = 1) -> None:
        self._f = open(path, "ab")  # noqa: SIM115  # closed by close()
        self._partial = {"stdout": b"", "stderr": b""}

    def _line(self, stream: str, data: bytes) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        entry = {"log": data.decode(errors="replace"), "stream": stream, "time": stamp}
        self._f.write(json.dumps(entry).encode() + b"\n")

    def write(self, stream: str, data: bytes) -> None:
        *lines, rest = (self._partial[stream] + data).split(b"\n")
        for line in lines:
            self._line(stream, line + b"\n")
        self._partial[stream] = rest
        self._f.flush()

    def close(self) -> None:
        for stream, rest in self._partial.items():
            if rest:
                self._line(stream, rest)
        self._f.close()
