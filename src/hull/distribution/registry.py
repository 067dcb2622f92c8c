"""One registry over HTTP: where it is, how to authenticate, and the calls pull needs.

Vocabulary (Distribution spec): a *repository* ("library/busybox") on a *registry*
("registry-1.docker.io", "127.0.0.1:5000") holds manifests (by tag or digest) and blobs (by
digest). Authentication follows the registry's `WWW-Authenticate` challenge: `Basic` uses the
credentials as they are; `Bearer realm=...,service=...,scope=...` trades them (or nothing, for
anonymous access) for a token at the realm, once per scope.

Plain HTTP is used only for registries that are insecure by configuration or on loopback,
and even there HTTPS is tried first, as Docker does.
"""

import asyncio
import base64
import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from hull.errors import HullError, InvalidArgument, NotFound
from hull.images import ids
from hull.images import mediatypes as mt
from hull.images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN

DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
# A dropped download is resumed (HTTP Range) this many times, waiting longer each time.
BLOB_ATTEMPTS = 5
RETRY_BASE_DELAY = 0.2
CHUNK = 256 * 1024

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(HullError):
    """The registry refused or failed a request; the message is Docker's kind of wording."""


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""

    @property
    def basic(self) -> str | None:
        if not self.username:
            return None
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def endpoint_host(domain: str) -> str:
    return DOCKER_HUB_ENDPOINT if domain in (DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN) else domain


def is_loopback(domain: str) -> bool:
    host = domain.rsplit(":", 1)[0].strip("[]") if not domain.startswith("[") else domain[1:].split("]")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Registry:
    domain: str
    session: aiohttp.ClientSession
    insecure: bool = False
    credentials: Credentials = field(default_factory=Credentials)
    _scheme: str | None = None
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return endpoint_host(self.domain)

    def _schemes(self) -> list[str]:
        if self._scheme is not None:
            return [self._scheme]
        return ["https", "http"] if self.insecure or is_loopback(self.domain) else ["https"]

    async def _send(
        self, method: str, path: str, scope: str, headers: dict[str, str] | None = None, **kw: object
    ) -> aiohttp.ClientResponse:
        """One request with authentication (answering one challenge) and the scheme fallback."""
        last: Exception | None = None
        for scheme in self._schemes():
            url = f"{scheme}://{self.host}{path}"
            try:
                resp = await self._authorized(method, url, scope, dict(headers or {}), **kw)
            except (aiohttp.ClientSSLError, aiohttp.ClientConnectorSSLError, aiohttp.ServerDisconnectedError) as e:
                last = e  # HTTPS against a plain-HTTP registry: try the next scheme
                continue
            except aiohttp.ClientConnectionError as e:
                last = e
                continue
            self._scheme = scheme
            return resp
        raise RegistryError(f'Get "https://{self.host}/v2/": {last}')

    async def _authorized(
        self, method: str, url: str, scope: str, headers: dict[str, str], **kw: object
    ) -> aiohttp.ClientResponse:
        token = self._tokens.get(scope)
        if token:
            headers["Authorization"] = token
        resp = await self.session.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]
        if resp.status != 401 or (token is not None and token.startswith("Basic")):
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        resp.release()
        auth = await self._answer(challenge, scope)
        if auth is None:
            if not scope:
                return await self.session.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]
            raise RegistryError(
                f"pull access denied for {scope.split(':')[1] if ':' in scope else scope}, repository does not "
                "exist or may require 'docker login': denied: requested access to the resource is denied"
            )
        self._tokens[scope] = auth
        headers["Authorization"] = auth
        return await self.session.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]

    async def _answer(self, challenge: str, scope: str) -> str | None:
        kind, _, rest = challenge.partition(" ")
        if kind.lower() == "basic":
            return self.credentials.basic
        if kind.lower() != "bearer":
            return None
        params = dict(_CHALLENGE_PARAM.findall(rest))
        realm = params.get("realm")
        if not realm:
            return None
        query = {"service": params.get("service", "")}
        if scope:
            query["scope"] = scope
        headers = {}
        if self.credentials.basic:
            headers["Authorization"] = self.credentials.basic
        async with self.session.get(realm, params=query, headers=headers) as resp:
            if resp.status != 200:
                return None
            body = await resp.json(content_type=None)
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        return f"Bearer {token}" if token else None

    # --- the calls ---------------------------------------------------------------------------

    async def get_manifest(self, repo: str, reference: str) -> tuple[str, bytes, str]:
        """(media type, bytes, digest) of a manifest or index, by tag or digest."""
        scope = f"repository:{repo}:pull"
        resp = await self._send("GET", f"/v2/{repo}/manifests/{reference}", scope, {"Accept": mt.ACCEPT})
        async with resp:
            if resp.status == 404:
                raise NotFound(f"manifest for {repo}:{reference} not found: manifest unknown")
            if resp.status == 401:
                raise RegistryError(f"pull access denied for {repo}: unauthorized")
            if resp.status != 200:
                raise RegistryError(f"{repo}:{reference}: the registry answered {resp.status} for the manifest")
            raw = await resp.read()
            media_type = resp.headers.get("Content-Type", "")
        digest = ids.digest_bytes(raw)
        if reference.startswith("sha256:") and reference != digest:
            raise InvalidArgument(f"manifest verification failed for digest {reference}")
        return media_type, raw, digest

    async def fetch_blob(self, repo: str, digest: str, size: int, write: Callable[[bytes], Awaitable[None]]) -> None:
        """Stream a blob into `write`, resuming after dropped connections (bounded, with back-off).
        The caller verifies the digest of what it received."""
        scope = f"repository:{repo}:pull"
        received = 0
        for attempt in range(BLOB_ATTEMPTS):
            headers = {"Range": f"bytes={received}-"} if received else {}
            try:
                resp = await self._send("GET", f"/v2/{repo}/blobs/{digest}", scope, headers)
                async with resp:
                    if resp.status == 404:
                        raise NotFound(f"blob {digest} of {repo} not found: blob unknown to registry")
                    if resp.status not in (200, 206):
                        raise RegistryError(f"blob {digest}: the registry answered {resp.status}")
                    if received and resp.status == 200:
                        raise RegistryError(f"blob {digest}: the registry cannot resume a download")
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        received += len(chunk)
                        await write(chunk)
                if received >= size:
                    return
                raise aiohttp.ClientPayloadError(f"short read: {received} of {size} bytes")
            except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as e:
                if attempt == BLOB_ATTEMPTS - 1:
                    raise RegistryError(f"blob {digest}: download failed after {BLOB_ATTEMPTS} attempts: {e}") from None
                await asyncio.sleep(RETRY_BASE_DELAY * 2**attempt)

    # --- push ---------------------------------------------------------------------------------

    async def blob_size(self, repo: str, digest: str) -> int | None:
        """The size of a blob the repository has (HEAD); None when it has not."""
        resp = await self._send("HEAD", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull,push")
        async with resp:
            if resp.status != 200:
                return None
            return int(resp.headers.get("Content-Length", "0"))

    async def mount_blob(self, repo: str, digest: str, source_repo: str) -> bool:
        """Cross-repository mount: the registry links a blob it has in `source_repo`; False if it can't."""
        scope = f"repository:{repo}:pull,push repository:{source_repo}:pull"
        resp = await self._send("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source_repo}", scope, data=b"")
        async with resp:
            if resp.status == 201:
                return True
            if resp.status == 202:  # a plain upload session instead: not needed, close it
                await self._cancel_upload(resp.headers.get("Location", ""), repo)
            return False

    async def _cancel_upload(self, location: str, repo: str) -> None:
        if location:
            resp = await self._send("DELETE", self._path(location), f"repository:{repo}:pull,push")
            resp.release()

    def _path(self, location: str) -> str:
        """An upload URL as the registry gave it (absolute, or a path) → our request path."""
        if location.startswith(("http://", "https://")):
            return "/" + location.split("://", 1)[1].split("/", 1)[1]
        return location

    async def upload_blob(self, repo: str, digest: str, size: int, read: Callable[[int], bytes], chunk: int) -> None:
        """Upload a blob: in one PUT when it fits in `chunk` bytes (monolithic), else as PATCHed
        chunks then a closing PUT (chunked), as the Distribution spec describes both."""
        scope = f"repository:{repo}:pull,push"
        resp = await self._send("POST", f"/v2/{repo}/blobs/uploads/", scope, data=b"")
        async with resp:
            if resp.status != 202:
                raise RegistryError(f"blob upload to {repo}: the registry answered {resp.status}")
            location = self._path(resp.headers["Location"])
        sent = 0
        if size > chunk:
            while sent < size:
                data = read(chunk)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{sent}-{sent + len(data) - 1}",
                }
                resp = await self._send("PATCH", location, scope, headers, data=data)
                async with resp:
                    if resp.status != 202:
                        raise RegistryError(f"blob upload to {repo}: a chunk was answered {resp.status}")
                    location = self._path(resp.headers["Location"])
                sent += len(data)
            body = b""
        else:
            body = read(size)
        sep = "&" if "?" in location else "?"
        resp = await self._send(
            "PUT", f"{location}{sep}digest={digest}", scope, {"Content-Type": "application/octet-stream"}, data=body
        )
        async with resp:
            if resp.status != 201:
                text = (await resp.text())[:300]
                raise RegistryError(f"blob upload to {repo}: the registry answered {resp.status}: {text}")

    async def put_manifest(self, repo: str, reference: str, media_type: str, raw: bytes) -> None:
        resp = await self._send(
            "PUT", f"/v2/{repo}/manifests/{reference}", f"repository:{repo}:pull,push",
            {"Content-Type": media_type}, data=raw,
        )  # fmt: skip
        async with resp:
            if resp.status != 201:
                text = (await resp.text())[:300]
                raise RegistryError(f"manifest upload to {repo}: the registry answered {resp.status}: {text}")

    # --- login --------------------------------------------------------------------------------

    async def check_login(self) -> None:
        """GET /v2/ with the credentials (answering the challenge); RegistryError if refused."""
        resp = await self._send("GET", "/v2/", "")
        async with resp:
            if resp.status == 401:
                raise RegistryError(f'Get "https://{self.host}/v2/": unauthorized: incorrect username or password')
            if resp.status != 200:
                raise RegistryError(f"login to {self.host}: the registry answered {resp.status}")
