"""`docker pull`: a manifest, its config and its layers from a registry into the image store.

The order is Docker's: resolve the tag to a manifest (an index picks the platform's entry),
fetch and verify the config, then the layers, downloaded in parallel (each verified against
its digest before it is used, into an unnamed file beside the layers), registered bottom-up
(a layer needs its parent), each checked against the config's diff id. Layers already in the
store are skipped ("Already exists"). Only then is the image stored and tagged, with
`name@digest` too; `distribution/` records which blob made which diff id, and from where.

An interrupted pull leaves complete layers (they count once committed, and the next pull
reuses them) and no image. Concurrent pulls download each blob once (`Downloads`).
"""

import asyncio
import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, Any

import aiohttp

from hull.distribution import manifest as mf
from hull.distribution.registry import Credentials, Registry
from hull.errors import HullError, InvalidArgument, NotFound
from hull.images import ids
from hull.images.distmeta import V2Metadata
from hull.images.imagedb import parse_config
from hull.images.platform import Platform
from hull.images.reference import Reference
from hull.images.service import ImageService

# Docker's default: three layers at a time.
MAX_CONCURRENT_DOWNLOADS = 3

Progress = Callable[[dict[str, Any]], Awaitable[None]]
Blocking = Callable[..., Awaitable[Any]]


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


class DigestMismatch(InvalidArgument):
    pass


@dataclass
class Downloads:
    """Blobs being downloaded, by digest: a second pull of the same blob waits for the first, and
    takes the first one's file until that pull has registered the layer (after that, it finds
    the layer itself)."""

    running: dict[str, "asyncio.Future[IO[bytes]]"] = field(default_factory=dict)


@dataclass
class PullRequest:
    ref: Reference  # tagged or digested
    platform: Platform
    credentials: Credentials = field(default_factory=Credentials)
    insecure: bool = False


class Reporter:
    """Docker's JSON progress messages (`{"status", "id", "progressDetail"}`) for pull and push."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    async def _say(self, status: str, ident: str | None = None, **detail: Any) -> None:
        msg: dict[str, Any] = {"status": status}
        if ident is not None:
            msg["progressDetail"] = detail
            msg["id"] = ident
        await self.progress(msg)


class Puller(Reporter):
    def __init__(
        self, service: ImageService, locked: Blocking, blocking: Blocking, downloads: Downloads, progress: Progress
    ) -> None:
        super().__init__(progress)
        self.service = service
        self.locked = locked
        self.blocking = blocking
        self.downloads = downloads

    async def pull(self, req: PullRequest) -> str:
        """Pull `req.ref`; returns the image id."""
        ref = req.ref
        repo = ref.path
        reference = ref.digest or ref.tag or "latest"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)) as session:
            registry = Registry(ref.domain, session, req.insecure, req.credentials)
            media_type, raw, digest = await registry.get_manifest(repo, reference)
            # Only now: an unknown image or an unreachable registry is an error before any progress.
            await self._say(f"Pulling from {ref.familiar_name}", ref.tag or ref.digest or "latest")
            parsed = mf.parse(media_type, raw)
            if isinstance(parsed, mf.Index):
                entry = mf.select(parsed, req.platform)
                media_type, raw, _ = await registry.get_manifest(repo, entry.digest)
                parsed = mf.parse(media_type, raw)
                if not isinstance(parsed, mf.Manifest):
                    raise InvalidArgument(f"{entry.digest}: an index inside an index is not supported")
            config_bytes = await self._fetch_small(registry, repo, parsed.config)
            config = parse_config(config_bytes)
            if len(config.diff_ids) != len(parsed.layers):
                raise InvalidArgument(
                    f"the manifest lists {len(parsed.layers)} layers but the config {len(config.diff_ids)} diff ids"
                )
            await self._layers(registry, ref, parsed.layers, list(config.diff_ids))
        image_id = await self.locked(self.service.create_image, config_bytes)
        # Docker's "up to date": the name already meant this image, not merely that it was stored.
        up_to_date = await self.locked(self._tag, ref, image_id, digest)
        await self._say(f"Digest: {digest}")
        name = ref.familiar()
        if up_to_date:
            await self._say(f"Status: Image is up to date for {name}")
        else:
            await self._say(f"Status: Downloaded newer image for {name}")
        return image_id

    def _tag(self, ref: Reference, image_id: str, digest: str) -> bool:
        """Point the tag (and name@digest) at the image; whether the name meant it already."""
        refs = self.service.refs
        by_digest = ref.name_only().with_digest(digest)
        named = ref if ref.tag is not None else by_digest
        try:
            up_to_date = refs.get(named) == image_id
        except NotFound:
            up_to_date = False
        if ref.tag is not None:
            refs.add(ref, image_id, force=True)
        try:
            refs.get(by_digest)
        except NotFound:
            refs.add(by_digest, image_id)
        # else: as Docker, a digest keeps its first image (an index's digest names one platform's).
        return up_to_date

    async def _fetch_small(self, registry: Registry, repo: str, desc: mf.Descriptor) -> bytes:
        parts: list[bytes] = []

        async def write(chunk: bytes) -> None:
            parts.append(chunk)

        await registry.fetch_blob(repo, desc.digest, desc.size, write)
        data = b"".join(parts)
        if ids.digest_bytes(data) != desc.digest:
            raise DigestMismatch(f"filesystem layer verification failed for digest {desc.digest}")
        return data

    async def _layers(self, registry: Registry, ref: Reference, layers: tuple[mf.Descriptor, ...],
                      diff_ids: list[str]) -> None:  # fmt: skip
        chains = [ids.chain_id(diff_ids[: i + 1]) for i in range(len(diff_ids))]
        present = [await self.blocking(self.service.layers.exists, c) for c in chains]
        for desc, have in zip(layers, present, strict=True):
            await self._say("Already exists" if have else "Pulling fs layer", short(desc.digest))
        limit = asyncio.Semaphore(MAX_CONCURRENT_DOWNLOADS)
        owned: dict[str, asyncio.Future[IO[bytes]]] = {}  # the downloads this pull started
        files: dict[int, asyncio.Task[IO[bytes]]] = {
            i: asyncio.create_task(self._download(registry, ref.path, desc, limit, owned))
            for i, (desc, have) in enumerate(zip(layers, present, strict=True))
            if not have
        }
        try:
            parent: str | None = None
            for i, desc in enumerate(layers):
                if i in files:
                    blob = await files[i]
                    await self._say("Extracting", short(desc.digest), current=0, total=desc.size)
                    try:
                        record = await self.locked(self.service.layers.register, blob, parent)
                    finally:
                        blob.close()
                    if record.diff_id != diff_ids[i]:
                        raise InvalidArgument(
                            f"layer {desc.digest}: its content has diff id {record.diff_id}, "
                            f"the config says {diff_ids[i]}"
                        )
                    await self._say("Pull complete", short(desc.digest))
                await self.blocking(self._record, desc.digest, diff_ids[i], ref)
                parent = chains[i]
        finally:
            for task in files.values():
                task.cancel()
            for task in files.values():
                if task.done() and not task.cancelled() and task.exception() is None:
                    task.result().close()
            for digest, fut in owned.items():
                if self.downloads.running.get(digest) is fut:
                    del self.downloads.running[digest]
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    fut.result().close()

    def _record(self, blob_digest: str, diff_id: str, ref: Reference) -> None:
        dist = self.service.dist
        dist.set_diff_id(blob_digest, diff_id)
        dist.add(diff_id, V2Metadata(digest=blob_digest, source_repository=ref.name, hmac=""))

    async def _download(self, registry: Registry, repo: str, desc: mf.Descriptor, limit: asyncio.Semaphore,
                        owned: dict[str, "asyncio.Future[IO[bytes]]"]) -> IO[bytes]:  # fmt: skip
        """The verified blob in an unnamed file (read from its start); shared with a concurrent pull.
        A download this pull starts goes in `owned`: the pull ends its sharing (see Downloads)."""
        running = self.downloads.running.get(desc.digest)
        if running is not None:
            return _reopen(await asyncio.shield(running))
        fut: asyncio.Future[IO[bytes]] = asyncio.get_running_loop().create_future()
        self.downloads.running[desc.digest] = owned[desc.digest] = fut
        try:
            async with limit:
                blob = await self._fetch_to_file(registry, repo, desc)
            fut.set_result(blob)
            return _reopen(blob)
        except BaseException as e:
            fut.set_exception(e if isinstance(e, Exception) else HullError("pull cancelled"))
            fut.exception()  # retrieved: nobody else may be waiting
            raise

    async def _fetch_to_file(self, registry: Registry, repo: str, desc: mf.Descriptor) -> IO[bytes]:
        os.makedirs(self.service.root.layerdb_tmp, mode=0o700, exist_ok=True)
        spool = tempfile.TemporaryFile(dir=self.service.root.layerdb_tmp)  # noqa: SIM115  # returned open
        hasher = hashlib.sha256()
        done = 0
        ident = short(desc.digest)

        async def write(chunk: bytes) -> None:
            nonlocal done
            hasher.update(chunk)
            spool.write(chunk)
            done += len(chunk)
            await self._say("Downloading", ident, current=done, total=desc.size)

        try:
            await registry.fetch_blob(repo, desc.digest, desc.size, write)
            await self._say("Verifying Checksum", ident)
            if "sha256:" + hasher.hexdigest() != desc.digest:
                # Nothing of it is kept: the spool goes with this exception.
                raise DigestMismatch(f"filesystem layer verification failed for digest {desc.digest}")
            await self._say("Download complete", ident)
            spool.flush()
            spool.seek(0)
            return spool
        except BaseException:
            spool.close()
            raise


def _reopen(blob: IO[bytes]) -> IO[bytes]:
    """A handle of our own on the same (unnamed) file, with its own offset: a dup would share it."""
    return open(f"/proc/self/fd/{blob.fileno()}", "rb")  # the caller closes it


def parse_auth_header(value: str) -> Credentials:
    """X-Registry-Auth: base64url JSON {"username", "password", ...}; empty → anonymous. (An
    "identitytoken", OAuth's refresh token, is not used: hull has no OAuth token flow.)"""
    if not value:
        return Credentials()
    try:
        padded = value + "=" * (-len(value) % 4)
        obj = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        return Credentials()  # dockerd ignores an undecodable header too
    if not isinstance(obj, dict):
        return Credentials()
    return Credentials(str(obj.get("username") or ""), str(obj.get("password") or ""))
