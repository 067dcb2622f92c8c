"""Distribution metadata: blob digest -> diff id, diff id -> [{Digest, SourceRepository, HMAC}]."""

import json
import os
from pathlib import Path

import pytest

from hull.errors import InvalidArgument, NotFound
from hull.images.distmeta import MAX_METADATA, DistributionMetadata, V2Metadata
from hull.layout import DataRoot

pytestmark = pytest.mark.unit

# Seed 004: blob 5682af42... of openresty uncompresses to the layer 9c572ba8...
BLOB = "sha256:5682af42731d652bd98d2456ed3da4f0595ed5d9e5b13ac8bb9590bb74f72eb8"
DIFF = "sha256:9c572ba82b91e3ac35c7351bdacc6876c67f5d9bc69c5e51e8b2deeafae95e4f"
OTHER_BLOB = "sha256:" + "1" * 64


@pytest.fixture
def root(tmp_path: Path) -> DataRoot:
    return DataRoot(str(tmp_path / "data"))


@pytest.fixture
def dm(root: DataRoot) -> DistributionMetadata:
    return DistributionMetadata(root)


def test_diffid_by_digest(dm: DistributionMetadata, root: DataRoot) -> None:
    dm.set_diff_id(BLOB, DIFF)
    assert Path(root.diffid_by_digest, BLOB[7:]).read_bytes() == DIFF.encode()  # as `cat` shows in the seed
    assert dm.get_diff_id(BLOB) == DIFF
    with pytest.raises(NotFound):
        dm.get_diff_id(OTHER_BLOB)
    dm.delete_diff_id(BLOB)
    with pytest.raises(NotFound):
        dm.get_diff_id(BLOB)
    for bad in [("sha256:abc", DIFF), (BLOB, "nope"), ("../" + BLOB, DIFF)]:
        with pytest.raises(InvalidArgument):
            dm.set_diff_id(*bad)
    Path(root.diffid_by_digest, BLOB[7:]).write_text("garbage")
    with pytest.raises(InvalidArgument, match="corrupt"):
        dm.get_diff_id(BLOB)


def test_v2metadata_format_and_dedup(dm: DistributionMetadata, root: DataRoot) -> None:
    assert dm.v2metadata(DIFF) == []
    hub = V2Metadata(BLOB, "docker.io/russellgao/openresty")
    dm.add(DIFF, hub)
    path = Path(root.v2metadata_by_diffid, DIFF[7:])
    assert path.read_bytes() == (
        b'[{"Digest":"' + BLOB.encode() + b'","SourceRepository":"docker.io/russellgao/openresty","HMAC":""}]'
    )
    assert dm.get_diff_id(BLOB) == DIFF  # add also records the reverse mapping
    other = V2Metadata(BLOB, "docker.io/openresty/openresty")
    dm.add(DIFF, other)
    dm.add(DIFF, V2Metadata(BLOB, "docker.io/russellgao/openresty", "abc"))  # same digest+repo: replaced, moved last
    assert dm.v2metadata(DIFF) == [other, V2Metadata(BLOB, "docker.io/russellgao/openresty", "abc")]
    dm.remove(DIFF, hub)
    assert dm.v2metadata(DIFF) == [other]
    dm.remove(DIFF, other)
    assert not path.exists()


def test_v2metadata_keeps_the_newest(dm: DistributionMetadata) -> None:
    for i in range(MAX_METADATA + 5):
        dm.add(DIFF, V2Metadata(BLOB, f"example.com/repo{i}"))
    kept = dm.v2metadata(DIFF)
    assert len(kept) == MAX_METADATA
    assert kept[0].source_repository == "example.com/repo5"
    assert kept[-1].source_repository == f"example.com/repo{MAX_METADATA + 4}"


def test_corrupt_v2metadata(dm: DistributionMetadata, root: DataRoot) -> None:
    os.makedirs(root.v2metadata_by_diffid)
    path = Path(root.v2metadata_by_diffid, DIFF[7:])
    for content in [b"{", b"{}", b'[{"Digest": 1}]', b'[{"Digest":"sha256:x","SourceRepository":"r"}]', b"[1]"]:
        path.write_bytes(content)
        with pytest.raises(InvalidArgument, match=r"distribution metadata .* is corrupt"):
            dm.v2metadata(DIFF)
    # It is a cache: adding replaces a corrupt list instead of blocking pulls for ever.
    dm.add(DIFF, V2Metadata(BLOB, "docker.io/library/busybox"))
    assert json.loads(path.read_bytes()) == [
        {"Digest": BLOB, "SourceRepository": "docker.io/library/busybox", "HMAC": ""}
    ]


def test_bad_input_writes_nothing(dm: DistributionMetadata, root: DataRoot) -> None:
    with pytest.raises(InvalidArgument):
        dm.add("sha256:short", V2Metadata(BLOB, "r"))
    with pytest.raises(InvalidArgument):
        dm.add(DIFF, V2Metadata("sha256:short", "r"))
    with pytest.raises(InvalidArgument):
        dm.add(DIFF, V2Metadata(BLOB, 3))  # type: ignore[arg-type]
    assert not os.path.exists(root.v2metadata_by_diffid)
    assert not os.path.exists(root.diffid_by_digest)
