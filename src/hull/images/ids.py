"""The identities of images and layers: the one place for their formulas.

Vocabulary (the seeds' names, as Docker computes them):

- digest: `<algorithm>:<lowercase hex>`, e.g. `sha256:9c57...`; hull's own ids are sha256.
- diff id: the digest of a layer's *uncompressed* tar (`rootfs.diff_ids` of an image config).
- chain id: names a stack of layers, bottom-up. `ChainID(L1) = DiffID(L1)` and
  `ChainID(L1..Ln) = sha256(ChainID(L1..Ln-1) + " " + DiffID(Ln))`; layerdb is keyed by it.
- image id: the digest of the image config bytes, exactly as stored in imagedb.
- cache id, mount id, container id: 64 random hex digits, not derived from content.
- hex: the 64 digits of a sha256 id without `sha256:`; files and directories are named by it.
- short id: the first 12 hex digits, as `docker images` and `docker ps` print them.

Contract: functions that take an id accept exactly the form they document and raise
InvalidArgument (with go-digest's wording where it has one) for anything else, so a bad string
never reaches a path on disk.
"""

import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from typing import BinaryIO

from hull.errors import InvalidArgument

SHA256 = "sha256"
SHORT_ID_LENGTH = 12

# Hex length of each algorithm go-digest knows; others are refused as unsupported.
_ALGORITHM_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
# The general digest grammar (distribution/reference): an algorithm, ":", at least 32 hex digits.
_DIGEST_GRAMMAR = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX_PREFIX = re.compile(r"[0-9a-f]{1,64}")
_CHUNK = 1 << 20


def digest_bytes(data: bytes) -> str:
    """`sha256:<hex>` of `data`."""
    return f"{SHA256}:{hashlib.sha256(data).hexdigest()}"


def digest_reader(reader: BinaryIO) -> str:
    """`sha256:<hex>` of everything left in a binary stream (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    while chunk := reader.read(_CHUNK):
        h.update(chunk)
    return f"{SHA256}:{h.hexdigest()}"


def parse_digest(value: str) -> tuple[str, str]:
    """Split a digest into (algorithm, hex), validating it as go-digest does.

    Accepts sha256, sha384 and sha512 with lowercase hex of the right length.
    """
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid checksum digest format: {value!r}")
    algorithm, sep, encoded = value.partition(":")
    if not sep or not algorithm or not encoded:
        raise InvalidArgument(f"invalid checksum digest format: {value!r}")
    length = _ALGORITHM_HEX_LENGTH.get(algorithm)
    if length is None:
        if _DIGEST_GRAMMAR.fullmatch(value) is None:
            raise InvalidArgument(f"invalid checksum digest format: {value!r}")
        raise InvalidArgument(f"unsupported digest algorithm: {value!r}")
    if len(encoded) != length:
        raise InvalidArgument(f"invalid checksum digest length: {value!r}")
    if re.fullmatch(r"[0-9a-f]+", encoded) is None:
        raise InvalidArgument(f"invalid checksum digest format: {value!r}")
    return algorithm, encoded


def check_digest(value: str) -> str:
    """Return `value` if it is a valid digest of any supported algorithm (see parse_digest)."""
    parse_digest(value)
    return value


def check_sha256(value: str, what: str = "id") -> str:
    """Return `value` if it is exactly `sha256:<64 lowercase hex>`; `what` names it in the error."""
    if not isinstance(value, str) or not value.startswith(f"{SHA256}:") or not is_hex_id(value[7:]):
        raise InvalidArgument(f"invalid {what}: {value!r} is not sha256:<64 lowercase hex digits>")
    return value


def is_hex_id(value: str) -> bool:
    """True for exactly 64 lowercase hex digits (a bare sha256, cache id or container id)."""
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def check_hex_id(value: str, what: str = "id") -> str:
    """Return `value` if it is 64 lowercase hex digits (a cache id, mount id or container id)."""
    if not is_hex_id(value):
        raise InvalidArgument(f"invalid {what}: {value!r} is not 64 lowercase hex digits")
    return value


def hex_of(value: str) -> str:
    """The 64 hex digits of a sha256 id given as `sha256:<hex>` or bare `<hex>`."""
    bare = value[7:] if isinstance(value, str) and value.startswith(f"{SHA256}:") else value
    return check_hex_id(bare)


def with_algorithm(value: str) -> str:
    """`sha256:<hex>` from either form (the inverse of hex_of)."""
    return f"{SHA256}:{hex_of(value)}"


def diff_id(uncompressed_tar: bytes) -> str:
    """The diff id of a layer: the digest of its uncompressed tar."""
    return digest_bytes(uncompressed_tar)


def image_id(config: bytes) -> str:
    """The image id: the digest of the config bytes exactly as stored (never re-serialized)."""
    return digest_bytes(config)


def chain_id_step(parent_chain_id: str | None, layer_diff_id: str) -> str:
    """The chain id of a layer on top of the stack named `parent_chain_id` (None: a base layer)."""
    check_sha256(layer_diff_id, "diff id")
    if parent_chain_id is None:
        return layer_diff_id
    check_sha256(parent_chain_id, "chain id")
    return digest_bytes(f"{parent_chain_id} {layer_diff_id}".encode())


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The chain id of every prefix of a bottom-up list of diff ids: [ChainID(L1), ChainID(L1L2), ...]."""
    out: list[str] = []
    parent: str | None = None
    for d in diff_ids:
        parent = chain_id_step(parent, d)
        out.append(parent)
    return out


def chain_id(diff_ids: Sequence[str]) -> str:
    """The chain id of a whole stack of layers (bottom-up diff ids, at least one)."""
    ids = chain_ids(diff_ids)
    if not ids:
        raise InvalidArgument("a chain id needs at least one diff id")
    return ids[-1]


def new_id() -> str:
    """64 random hex digits: a new cache id, mount id or container id.

    Like Docker, never one whose 12-digit short form is all decimal digits: such a short id
    parses as a number, which breaks its use as a hostname.
    """
    while True:
        value = secrets.token_hex(32)
        if not value[:SHORT_ID_LENGTH].isdigit():
            return value


def short_id(value: str) -> str:
    """The 12-digit short form of an id: drops any `algorithm:` prefix, then truncates."""
    _, _, bare = value.rpartition(":")
    return bare[:SHORT_ID_LENGTH]


def normalize_prefix(prefix: str) -> str:
    """The bare hex of an id prefix given as `<hex>` or `sha256:<hex>` (1 to 64 lowercase digits)."""
    bare = prefix[7:] if isinstance(prefix, str) and prefix.startswith(f"{SHA256}:") else prefix
    if not isinstance(bare, str) or _HEX_PREFIX.fullmatch(bare) is None:
        raise InvalidArgument(f"invalid id prefix: {prefix!r} is not 1 to 64 lowercase hex digits")
    return bare


def match_prefix(prefix: str, hex_ids: Iterable[str]) -> list[str]:
    """The ids among `hex_ids` (bare hex) that start with `prefix` (see normalize_prefix); sorted."""
    bare = normalize_prefix(prefix)
    return sorted(i for i in hex_ids if i.startswith(bare))
