"""A private Distribution registry for tests and benchmarks: Debian's docker-registry on 127.0.0.1.

`LocalRegistry` writes a config (filesystem storage in a scratch directory, a free loopback
port, optionally htpasswd or token auth) and runs `docker-registry serve` on it; `stop` ends it and
removes the directory. `put_blob` / `put_manifest` speak the Registry HTTP API directly (for
tests that need content no client would push: manifest lists, corrupted blobs), and
`blob_path` is where the registry keeps a blob on disk.
"""

import hashlib
import http.client
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hull.errors import HullError
from hull.testing.tokenserver import TokenServer

INSTALL_HINT = "install it with `apt-get install docker-registry` (or `make setup`)"
START_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRegistry:
    def __init__(self, htpasswd: str | None = None, token_users: dict[str, str] | None = None,
                 token: bool = False) -> None:  # fmt: skip
        """`htpasswd`: basic auth with these users; `token` (or `token_users`): Docker's token auth
        through a TokenServer of its own (`self.token`) that knows these users (None: anonymous)."""
        program = shutil.which("docker-registry")
        if program is None:
            raise HullError(f"docker-registry not found: {INSTALL_HINT}")
        self.workdir = Path(tempfile.mkdtemp(prefix="reg-", dir="/tmp"))
        self.port = _free_port()
        self.domain = f"127.0.0.1:{self.port}"
        auth = ""
        if htpasswd is not None:
            (self.workdir / "htpasswd").write_text(htpasswd)
            auth = f"auth:\n  htpasswd:\n    realm: test-realm\n    path: {self.workdir / 'htpasswd'}\n"
        self.token: TokenServer | None = None
        if token or token_users is not None:
            self.token = TokenServer(self.workdir, token_users)
            auth = self.token.registry_auth_config()
        (self.workdir / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.workdir / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n" + auth
        )
        self._log = open(self.workdir / "registry.log", "wb")  # noqa: SIM115  # closed by stop
        self._proc = subprocess.Popen(
            [program, "serve", str(self.workdir / "config.yml")], stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.request("GET", "/v2/")
                return
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise HullError(f"docker-registry did not start on {self.domain}") from None
                time.sleep(0.05)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def put_blob(self, repo: str, data: bytes) -> str:
        """Upload `data` monolithically; returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        if status != 202:
            raise HullError(f"registry: starting an upload answered {status}")
        location = headers["location"]
        path = location.split(str(self.port), 1)[1] if location.startswith("http") else location
        sep = "&" if "?" in path else "?"
        status, _, body = self.request("PUT", f"{path}{sep}digest={digest}", data,
                                       {"Content-Type": "application/octet-stream"})  # fmt: skip
        if status != 201:
            raise HullError(f"registry: finishing an upload answered {status}: {body!r}")
        return digest

    def put_manifest(self, repo: str, reference: str, media_type: str, manifest: dict[str, object]) -> str:
        raw = json.dumps(manifest).encode()
        status, _, body = self.request("PUT", f"/v2/{repo}/manifests/{reference}", raw, {"Content-Type": media_type})
        if status != 201:
            raise HullError(f"registry: putting a manifest answered {status}: {body!r}")
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def blob_path(self, digest: str) -> Path:
        hexpart = digest.removeprefix("sha256:")
        return (
            self.workdir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexpart[:2] / hexpart / "data"
        )

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        if self.token is not None:
            self.token.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
