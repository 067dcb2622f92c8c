"""A token server for a test registry: Docker's token authentication, for real, on 127.0.0.1.

The registry (configured with `auth: token`, see LocalRegistry) answers 401 with
`WWW-Authenticate: Bearer realm=<this server>,service=...,scope=...`; a client asks here with
its credentials (Basic, or none) and gets a JWT that grants the scope's actions. Tokens are
RS256, signed by the `openssl` command with a key whose self-signed certificate is the
registry's rootcertbundle and travels in the token's `x5c` header, as the Distribution
registry verifies it. `requests` records every token request (service, scope, user) so tests
can see the exchange happened; a wrong password gets 401.
"""

import base64
import json
import secrets
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SERVICE = "hull-test-registry"
ISSUER = "hull-test-token-issuer"
TOKEN_LIFETIME = 300


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    def __init__(self, workdir: Path, users: dict[str, str] | None = None) -> None:
        """`users`: name -> password; None lets anyone have any scope anonymously."""
        self.key, self.cert = workdir / "token.key", workdir / "token.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
             "-out", str(self.cert), "-subj", "/CN=hull-test-token", "-days", "1"],
            check=True, capture_output=True,
        )  # fmt: skip
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout  # fmt: skip
        self._x5c = base64.b64encode(der).decode()
        self.users = users
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                server._answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self._http.server_address[1]}/token"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def registry_auth_config(self) -> str:
        """The `auth:` section of a registry config that sends clients here."""
        return (
            f"auth:\n  token:\n    realm: {self.realm}\n    service: {SERVICE}\n"
            f"    issuer: {ISSUER}\n    rootcertbundle: {self.cert}\n"
        )

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(handler.path).query)
        user = self._user(handler.headers.get("Authorization", ""))
        self.requests.append({"service": ",".join(query.get("service", [])), "scope": " ".join(query.get("scope", [])),
                              "user": user or ""})  # fmt: skip
        if self.users is not None and user is None:
            handler.send_response(401)
            handler.end_headers()
            return
        access = []
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        token = self._sign({"iss": ISSUER, "sub": user or "", "aud": ",".join(query.get("service", [])),
                            "exp": int(time.time()) + TOKEN_LIFETIME, "nbf": int(time.time()) - 10,
                            "iat": int(time.time()), "jti": secrets.token_hex(8), "access": access})  # fmt: skip
        body = json.dumps({"token": token, "expires_in": TOKEN_LIFETIME}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _user(self, authorization: str) -> str | None:
        """The user that Basic credentials name, if the password is right (anonymous: None)."""
        kind, _, value = authorization.partition(" ")
        if kind.lower() != "basic" or self.users is None:
            return None
        name, _, password = base64.b64decode(value).decode().partition(":")
        return name if self.users.get(name) == password else None

    def _sign(self, claims: dict[str, object]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing_input.encode(),
                                   check=True, capture_output=True).stdout  # fmt: skip
        return f"{signing_input}.{_b64url(signature)}"

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
