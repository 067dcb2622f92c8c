"""`docker push`: an image's layers, config and manifest from the image store into a registry.

Per layer, bottom-up, the cheapest way that works, as Docker does: a blob the target
repository already has (HEAD, for every digest `distribution/v2metadata-by-diffid` knows for
this diff id) is skipped; one that another repository of the same registry has is mounted
across (no bytes move); else the layer's original tar is rebuilt from its tar-split, gzipped
deterministically (mtime 0, so the same layer gives the same digest every time) into an
unnamed file, and uploaded — in one PUT when small, in PATCHed chunks when large. The
manifest (Docker schema 2) goes last, so the registry never names a layer it doesn't have.
"""

import json
import os
import tempfile
from typing import IO

import aiohttp

from hull.distribution.pull import Blocking, Progress, PullRequest, Reporter, short
from hull.distribution.registry import Registry
from hull.errors import InvalidArgument, NotFound
from hull.images import ids
from hull.images import mediatypes as mt
from hull.images.distmeta import V2Metadata
from hull.images.reference import Reference
from hull.images.service import ImageService
from hull.storage.compression import gzip_writer

# Blobs up to this size go up in one request; larger ones in chunks of this size.
UPLOAD_CHUNK = 8 << 20


class Pusher(Reporter):
    def __init__(self, service: ImageService, blocking: Blocking, progress: Progress) -> None:
        super().__init__(progress)
        self.service = service
        self.blocking = blocking

    async def push(self, req: PullRequest) -> tuple[str, int]:
        """Push the image `req.ref` names (a tag); returns (manifest digest, manifest size)."""
        ref = req.ref
        if ref.tag is None:
            raise InvalidArgument("push needs a tag (or pushes every tag of a repository, which hull does not yet)")
        image_id = await self.blocking(self.service.lookup, ref.familiar())
        config_bytes = await self.blocking(self.service.images.get, image_id)
        config = self.service.config(image_id)
        chains = ids.chain_ids(config.diff_ids)
        await self._say(
            f"The push refers to repository [{ref.name if ref.domain != 'docker.io' else ref.familiar_name}]"
        )
        for diff_id in config.diff_ids:
            await self._say("Preparing", short(diff_id))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)) as session:
            registry = Registry(ref.domain, session, req.insecure, req.credentials)
            layers = []
            for diff_id, chain in zip(config.diff_ids, chains, strict=True):
                layers.append(await self._layer(registry, ref, diff_id, chain))
            config_digest = ids.digest_bytes(config_bytes)
            if await registry.blob_size(ref.path, config_digest) is None:
                pos = 0

                def read_config(n: int) -> bytes:
                    nonlocal pos
                    pos += n
                    return config_bytes[pos - n : pos]

                await registry.upload_blob(ref.path, config_digest, len(config_bytes), read_config, UPLOAD_CHUNK)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": mt.DOCKER_MANIFEST,
                    "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(config_bytes), "digest": config_digest},
                    "layers": [{"mediaType": mt.DOCKER_LAYER_GZIP, "size": size, "digest": d} for d, size in layers],
                },
                indent=3,
            ).encode()
            await registry.put_manifest(ref.path, ref.tag, mt.DOCKER_MANIFEST, manifest)
        digest = ids.digest_bytes(manifest)
        await self.blocking(self._record_digest, ref, image_id, digest)
        await self._say(f"{ref.tag}: digest: {digest} size: {len(manifest)}")
        await self.progress({"progressDetail": {}, "aux": {"Tag": ref.tag, "Digest": digest, "Size": len(manifest)}})
        return digest, len(manifest)

    def _record_digest(self, ref: Reference, image_id: str, digest: str) -> None:
        by_digest = ref.name_only().with_digest(digest)
        try:
            self.service.refs.get(by_digest)
        except NotFound:
            self.service.refs.add(by_digest, image_id)

    async def _layer(self, registry: Registry, ref: Reference, diff_id: str, chain: str) -> tuple[str, int]:
        """The (digest, size) of the layer's blob in the target repository, uploading only if needed."""
        ident = short(diff_id)
        known = await self.blocking(self.service.dist.v2metadata, diff_id)
        same_registry = [m for m in known if m.source_repository.split("/", 1)[0] == ref.domain]
        for meta in same_registry:
            size = await registry.blob_size(ref.path, meta.digest)
            if size is not None:
                await self._say("Layer already exists", ident)
                return meta.digest, size
        for meta in same_registry:
            source = meta.source_repository.split("/", 1)[1]
            if source != ref.path and await registry.mount_blob(ref.path, meta.digest, source):
                size = await registry.blob_size(ref.path, meta.digest)
                if size is not None:
                    await self._say(f"Mounted from {source}", ident)
                    await self.blocking(self._record, meta.digest, diff_id, ref)
                    return meta.digest, size
        spool, digest, size = await self.blocking(self._compress, chain)
        try:
            await self._say("Pushing", ident, current=0, total=size)
            if await registry.blob_size(ref.path, digest) is None:  # gzip is deterministic: maybe pushed before
                await registry.upload_blob(ref.path, digest, size, spool.read, UPLOAD_CHUNK)
        finally:
            spool.close()
        await self._say("Pushed", ident)
        await self.blocking(self._record, digest, diff_id, ref)
        return digest, size

    def _record(self, blob_digest: str, diff_id: str, ref: Reference) -> None:
        self.service.dist.set_diff_id(blob_digest, diff_id)
        self.service.dist.add(diff_id, V2Metadata(digest=blob_digest, source_repository=ref.name))

    def _compress(self, chain: str) -> tuple[IO[bytes], str, int]:
        os.makedirs(self.service.root.layerdb_tmp, mode=0o700, exist_ok=True)
        spool = tempfile.TemporaryFile(dir=self.service.root.layerdb_tmp)  # noqa: SIM115  # the caller closes it
        try:
            with gzip_writer(spool) as gz:
                self.service.layers.tar_stream(chain, gz)
            size = spool.tell()
            spool.seek(0)
            digest = ids.digest_reader(spool)
            spool.seek(0)
            return spool, digest, size
        except BaseException:
            spool.close()
            raise
