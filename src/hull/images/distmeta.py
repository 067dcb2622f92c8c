"""Distribution metadata: which registry blobs a layer came from, so pushes and pulls reuse them.

On disk (layout.DataRoot), as Docker writes it (seed 004):

    distribution/diffid-by-digest/sha256/<blob digest hex>    "sha256:<diff id>", no newline
    distribution/v2metadata-by-diffid/sha256/<diff id hex>    [{"Digest":"sha256:<blob digest>",
                                                                "SourceRepository":"docker.io/library/busybox",
                                                                "HMAC":""}]

Vocabulary: a blob digest is the digest of the layer as the registry stores it (compressed);
the diff id is the digest of the uncompressed tar; a source repository is the full repository
name the blob was pulled from or pushed to; HMAC is empty unless the entry was made with
registry credentials (then it keys the entry to them).

Contract: this is a cache: losing it costs only a transfer. Adding an entry replaces any entry
for the same (digest, repository), keeps the newest 50 per diff id (Docker's limit) and also
records the blob digest -> diff id mapping; a corrupt list is replaced on add rather than
blocking pulls. Reads of a corrupt file raise InvalidArgument naming it. Every file is written
with atomic_write.
"""

import json
import os
from dataclasses import dataclass
from typing import Any

from hull.errors import InvalidArgument, NotFound
from hull.fsutil import atomic_write
from hull.images import ids
from hull.layout import DataRoot

MAX_METADATA = 50


@dataclass(frozen=True)
class V2Metadata:
    """One place a layer's blob is known to be: the blob digest in a source repository."""

    digest: str
    source_repository: str
    hmac: str = ""

    def to_json(self) -> dict[str, str]:
        # Go's field order: Digest, SourceRepository, HMAC.
        return {"Digest": self.digest, "SourceRepository": self.source_repository, "HMAC": self.hmac}


def _entry(item: Any) -> V2Metadata:
    if not isinstance(item, dict):
        raise ValueError("an entry is not an object")
    digest, repo, hmac = item.get("Digest"), item.get("SourceRepository"), item.get("HMAC", "")
    if not isinstance(digest, str) or not isinstance(repo, str) or not isinstance(hmac, str):
        raise ValueError("Digest, SourceRepository and HMAC must be strings")
    ids.check_digest(digest)
    return V2Metadata(digest, repo, hmac)


class DistributionMetadata:
    """diffid-by-digest and v2metadata-by-diffid of one data root."""

    def __init__(self, root: DataRoot) -> None:
        self.by_digest_dir = root.diffid_by_digest
        self.by_diffid_dir = root.v2metadata_by_diffid

    def _by_digest(self, blob_digest: str) -> str:
        return os.path.join(self.by_digest_dir, ids.hex_of(ids.check_sha256(blob_digest, "blob digest")))

    def _by_diffid(self, diff_id: str) -> str:
        return os.path.join(self.by_diffid_dir, ids.hex_of(ids.check_sha256(diff_id, "diff id")))

    # -- blob digest -> diff id ---------------------------------------------------------------

    def set_diff_id(self, blob_digest: str, diff_id: str) -> None:
        """Record that the blob `blob_digest` uncompresses to the layer `diff_id`."""
        path = self._by_digest(blob_digest)
        ids.check_sha256(diff_id, "diff id")
        os.makedirs(self.by_digest_dir, exist_ok=True)
        atomic_write(path, diff_id.encode())

    def get_diff_id(self, blob_digest: str) -> str:
        """The diff id a blob uncompresses to; NotFound if unknown."""
        path = self._by_digest(blob_digest)
        try:
            with open(path, "rb") as f:
                value = f.read().decode("ascii", "replace").strip()
        except FileNotFoundError:
            raise NotFound(f"no diff id known for blob {blob_digest}") from None
        try:
            return ids.check_sha256(value, "diff id")
        except InvalidArgument as e:
            raise InvalidArgument(f"distribution metadata {path} is corrupt: {e.message}") from None

    def delete_diff_id(self, blob_digest: str) -> None:
        try:
            os.unlink(self._by_digest(blob_digest))
        except FileNotFoundError:
            pass

    # -- diff id -> [V2Metadata] --------------------------------------------------------------

    def _read(self, path: str) -> list[V2Metadata]:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        try:
            doc = json.loads(data)
            if not isinstance(doc, list):
                raise ValueError("not a JSON list")
            return [_entry(item) for item in doc]
        except (ValueError, InvalidArgument) as e:
            detail = e.message if isinstance(e, InvalidArgument) else str(e)
            raise InvalidArgument(f"distribution metadata {path} is corrupt: {detail}") from None

    def _write(self, path: str, entries: list[V2Metadata]) -> None:
        if not entries:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, json.dumps([e.to_json() for e in entries], separators=(",", ":")).encode())

    def v2metadata(self, diff_id: str) -> list[V2Metadata]:
        """Where the layer `diff_id` is known to be, oldest first (empty if nowhere)."""
        return self._read(self._by_diffid(diff_id))

    def add(self, diff_id: str, meta: V2Metadata) -> None:
        """Record `meta` for `diff_id` (newest last), and its blob digest -> diff id mapping."""
        path = self._by_diffid(diff_id)
        ids.check_digest(meta.digest)
        if not isinstance(meta.source_repository, str) or not isinstance(meta.hmac, str):
            raise InvalidArgument("SourceRepository and HMAC must be strings")
        try:
            old = self._read(path)
        except InvalidArgument:
            old = []  # a cache: a corrupt list is replaced, as Docker does
        kept = [e for e in old if (e.digest, e.source_repository) != (meta.digest, meta.source_repository)]
        kept.append(meta)
        self._write(path, kept[-MAX_METADATA:])
        if meta.digest.startswith(f"{ids.SHA256}:"):
            self.set_diff_id(meta.digest, diff_id)

    def remove(self, diff_id: str, meta: V2Metadata) -> None:
        """Forget `meta` (matched by digest and repository) for `diff_id`; e.g. a blob gone from a registry."""
        path = self._by_diffid(diff_id)
        old = self._read(path)
        kept = [e for e in old if (e.digest, e.source_repository) != (meta.digest, meta.source_repository)]
        if len(kept) != len(old):
            self._write(path, kept)
