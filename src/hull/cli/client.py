"""The Engine API client of `hull`: HTTP/1.1 (cli/http.py) over a unix socket (or TCP).

Host resolution: `-H/--host`, then `HULL_HOST`, then the default `unix:///run/hull/hull.sock`.
Versions are negotiated as the docker CLI does (`HEAD /_ping`, falling back to `GET /_ping`;
the lower of ours and the daemon's `Api-Version`, 1.24 when the header is missing) and every
request goes to a versioned path `/v1.xx/...`.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Iterator

from hull.cli import http

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms of every start)
if TYPE_CHECKING:
    from typing import IO, Any

DEFAULT_HOST = "unix:///run/hull/hull.sock"
MAX_API_VERSION = "1.43"
FALLBACK_API_VERSION = "1.24"
USER_AGENT = "hull-cli/0.1.0"


class CLIError(Exception):
    """A failure to report to the user; `status` is the exit status of the command."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ConnectError(CLIError):
    """No daemon answers at the host."""

    def __init__(self, host: str) -> None:
        super().__init__(f"Cannot connect to hulld at {host}. Is hulld running?")
        self.host = host


class APIError(CLIError):
    """A non-2xx answer of the daemon: `Error response from daemon: <message>`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Error response from daemon: {message}")
        self.code = code
        self.detail = message


def version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)


def resolve_host(flag: str | None) -> tuple[str, bool]:
    """The host to use and whether it was given explicitly (flag or HULL_HOST)."""
    if flag:
        return flag, True
    env = os.environ.get("HULL_HOST")
    if env:
        return env, True
    return DEFAULT_HOST, False


def filters_json(pairs: Iterable[str]) -> str:
    """`--filter k=v` flags as the docker CLI sends them: {"k": {"v": true}}."""
    out: dict[str, dict[str, bool]] = {}
    for p in pairs:
        if "=" not in p:
            raise CLIError(f"bad format of filter (expected name=value): {p}")
        k, v = p.split("=", 1)
        out.setdefault(k.strip(), {})[v] = True
    return json.dumps(out)


class Hijacked:
    """The raw socket of an upgraded (hijacked) connection, plus bytes already read past the headers."""

    def __init__(self, sock: socket.socket, leftover: bytes, content_type: str) -> None:
        self.sock = sock
        self.leftover = leftover
        self.content_type = content_type

    def read(self, n: int = 65536) -> bytes:
        if self.leftover:
            data, self.leftover = self.leftover[:n], self.leftover[n:]
            return data
        try:
            return self.sock.recv(n)
        except OSError:
            return b""

    def close_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


class APIClient:
    """One daemon at `host`; requests negotiate the API version on first use."""

    def __init__(self, host: str = DEFAULT_HOST, version: str | None = None) -> None:
        self.host = host
        if host.startswith("unix://"):
            self.unix_path: str | None = host[len("unix://") :]
            self.tcp: tuple[str, int] | None = None
        elif host.startswith(("tcp://", "http://")):
            rest = host.split("://", 1)[1].rstrip("/")
            name, _, port = rest.rpartition(":")
            self.unix_path, self.tcp = None, (name or "localhost", int(port or 2375))
        elif host.startswith("/"):
            self.unix_path, self.tcp = host, None
        else:
            raise CLIError(f"unable to parse docker host `{host}`")
        self._version = version
        self.daemon_version: str | None = None
        self.ping_headers: dict[str, str] = {}

    # -- connections ---------------------------------------------------------------------
    def _connect(self, timeout: float | None = None) -> socket.socket:
        try:
            if self.unix_path is not None:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(timeout)
                try:
                    s.connect(self.unix_path)
                except OSError:
                    s.close()
                    raise
            else:
                assert self.tcp is not None
                s = socket.create_connection(self.tcp, timeout=timeout)
        except OSError:
            raise ConnectError(self.host) from None
        return s

    # -- version negotiation ---------------------------------------------------------------
    def ping(self, timeout: float | None = 10.0) -> dict[str, str]:
        """HEAD /_ping (GET when HEAD is refused); the response headers, lower-cased."""
        for method in ("HEAD", "GET"):
            sock = self._connect(timeout)
            try:
                resp = http.request(sock, method, "/_ping", {"User-Agent": USER_AGENT})
                resp.read()
            except OSError:
                raise ConnectError(self.host) from None
            finally:
                sock.close()
            if resp.status < 400 or "api-version" in resp.headers or method == "GET":
                self.ping_headers = resp.headers
                return resp.headers
        return {}

    @property
    def version(self) -> str:
        if self._version is None:
            headers = self.ping()
            daemon = headers.get("api-version") or FALLBACK_API_VERSION
            self.daemon_version = daemon
            ours = MAX_API_VERSION
            self._version = daemon if version_tuple(daemon) < version_tuple(ours) else ours
        return self._version

    def at_least(self, v: str) -> bool:
        return version_tuple(self.version) >= version_tuple(v)

    def url(self, path: str, params: dict[str, Any] | list[tuple[str, Any]] | None = None) -> str:
        url = f"/v{self.version}{path}"
        if params:
            items = params.items() if isinstance(params, dict) else params
            q = [(k, _param(v)) for k, v in items if v is not None]
            if q:
                url += "?" + "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in q)
        return url

    # -- requests ------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        body: Any = None,
        data: bytes | IO[bytes] | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> http.Response:
        """Send a request; the response (body unread) when 2xx, else APIError. `body` is sent as JSON."""
        url = self.url(path, params)
        hdrs = {"User-Agent": USER_AGENT}
        payload: Any = data
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif data is not None:
            hdrs.setdefault("Content-Type", "application/x-tar")
            fileno = getattr(data, "fileno", None)
            if fileno is not None:
                try:
                    st = os.fstat(fileno())
                    import stat

                    if stat.S_ISREG(st.st_mode):
                        hdrs["Content-Length"] = str(st.st_size - os.lseek(fileno(), 0, os.SEEK_CUR))
                except (OSError, ValueError):
                    pass
        if headers:
            hdrs.update(headers)
        return self._exchange(method, url, hdrs, payload, timeout, "error during connect")

    def _exchange(
        self, method: str, url: str, headers: dict[str, str], body: Any, timeout: float | None, what: str
    ) -> http.Response:
        """One request on a new connection: the response when below 400, else its APIError."""
        sock = self._connect(timeout)
        try:
            resp = http.request(sock, method, url, headers, body)
        except OSError as e:
            sock.close()
            raise CLIError(f"{what}: {e}") from None
        if resp.status >= 400:
            raw = resp.read()
            resp.close()
            raise APIError(resp.status, _error_message(raw, resp.reason))
        return resp

    def json(self, method: str, path: str, params: Any = None, body: Any = None, **kw: Any) -> Any:
        resp = self.request(method, path, params, body, **kw)
        raw = resp.read()
        resp.close()
        if not raw.strip():
            return None
        return json.loads(raw)

    def get(self, path: str, params: Any = None) -> Any:
        return self.json("GET", path, params)

    def post(self, path: str, params: Any = None, body: Any = None) -> Any:
        return self.json("POST", path, params, body)

    def delete(self, path: str, params: Any = None) -> Any:
        return self.json("DELETE", path, params)

    @staticmethod
    def json_lines(resp: http.Response) -> Iterator[dict[str, Any]]:
        """The JSON messages of a streamed body (pull, load, import, events), as they arrive.

        Messages may be newline-separated or simply concatenated; both are decoded.
        """
        decoder = json.JSONDecoder()
        buf = ""
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                break
            buf += chunk.decode(errors="replace")
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    obj, end = decoder.raw_decode(buf)
                except json.JSONDecodeError:
                    break
                buf = buf[end:]
                if isinstance(obj, dict):
                    yield obj
        resp.close()

    def hijack(self, path: str, params: Any = None, body: Any = None) -> Hijacked:
        """POST with `Connection: Upgrade, Upgrade: tcp`; expects 101 (200 accepted), then the raw socket."""
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json" if body is not None else "text/plain",
            "Connection": "Upgrade",
            "Upgrade": "tcp",
        }
        payload = json.dumps(body).encode() if body is not None else None
        resp = self._exchange("POST", self.url(path, params), headers, payload, None, "error attaching")
        raw_sock, rest = resp.detach()
        return Hijacked(raw_sock, rest, resp.headers.get("content-type", ""))


def _param(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def _error_message(raw: bytes, reason: str) -> str:
    try:
        obj = json.loads(raw)
    except ValueError:
        text = raw.decode(errors="replace").strip()
        return text or reason
    if isinstance(obj, dict) and "message" in obj:
        return str(obj["message"])
    return raw.decode(errors="replace").strip()


# RFC 3986's unreserved characters. Our own encoder because urllib.parse (with ipaddress) is
# ~2 ms of every command's start, for one loop over a few bytes.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def percent_encode(text: str, safe: str = "") -> str:
    """`text` percent-encoded as UTF-8, leaving unreserved characters and `safe` as they are."""
    keep = _UNRESERVED.union(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode())


def path_quote(name: str) -> str:
    """A name or id as a path segment (image references keep their '/' and ':')."""
    return percent_encode(name, safe="/:@")
