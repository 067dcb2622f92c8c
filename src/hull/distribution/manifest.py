"""Manifests and indexes as the registry serves them, parsed and checked; the platform's entry of an index.

Vocabulary (OCI image spec): a *descriptor* names content by media type, digest and size; a
*manifest* lists an image's config and layers; an *index* (Docker: manifest list) lists
manifests, one per platform. The digest of a manifest is the sha256 of its bytes as served.
"""

import json
from dataclasses import dataclass
from typing import Any

from hull.errors import InvalidArgument
from hull.images import ids
from hull.images import mediatypes as mt
from hull.images.platform import Platform


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def _descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{where}: not a descriptor")
    media_type, digest, size = obj.get("mediaType", ""), str(obj.get("digest")), obj.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{where}: bad size {size!r}")
    platform = None
    p = obj.get("platform")
    if isinstance(p, dict):
        platform = Platform(str(p.get("os", "")), str(p.get("architecture", "")), str(p.get("variant", "") or ""))
    # sha256 only: it is what hull verifies blobs with.
    return Descriptor(str(media_type), ids.check_sha256(digest, f"{where} digest"), size, platform)


def parse(media_type: str, raw: bytes) -> Manifest | Index:
    """A manifest or an index; its media type from the body when present, else the response's."""
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"manifest: not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise InvalidArgument("manifest: not a JSON object")
    kind = obj.get("mediaType") or media_type.split(";")[0].strip()
    if kind in mt.INDEXES or (not kind and "manifests" in obj):
        entries = obj.get("manifests")
        if not isinstance(entries, list):
            raise InvalidArgument("manifest list: no manifests")
        return Index(kind or mt.OCI_INDEX, tuple(_descriptor(m, f"manifests[{i}]") for i, m in enumerate(entries)))
    if kind in mt.MANIFESTS or (not kind and "layers" in obj):
        if obj.get("schemaVersion") != 2:
            raise InvalidArgument(f"manifest: schemaVersion {obj.get('schemaVersion')!r} is not supported")
        layers = obj.get("layers")
        if not isinstance(layers, list):
            raise InvalidArgument("manifest: no layers")
        parsed = tuple(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers))
        for i, layer in enumerate(parsed):
            if layer.media_type not in mt.LAYERS:
                raise InvalidArgument(f"layers[{i}]: unsupported layer media type {layer.media_type!r}")
        return Manifest(kind or mt.OCI_MANIFEST, _descriptor(obj.get("config"), "config"), parsed)
    raise InvalidArgument(f"unsupported manifest media type {kind!r}")


def select(index: Index, want: Platform) -> Descriptor:
    """The index's manifest for `want` (an empty variant matches any), as Docker picks it."""
    for d in index.manifests:
        p = d.platform
        if p is None or d.media_type not in (*mt.MANIFESTS, ""):
            continue
        if p.os == want.os and p.architecture == want.architecture and (not want.variant or p.variant == want.variant):
            return d
    offered = ", ".join(str(d.platform) for d in index.manifests if d.platform) or "none"
    raise InvalidArgument(f"no matching manifest for {want} in the manifest list entries (offered: {offered})")
