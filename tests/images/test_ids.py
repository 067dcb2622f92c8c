"""ids: digests, diff ids, chain ids (checked against seed 004's own numbers), image ids, random ids."""

import hashlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hull.errors import InvalidArgument
from hull.images import ids

pytestmark = pytest.mark.unit

# Seed 004: rootfs.diff_ids of openresty:1.17.8.2-5-alpine and the layerdb directories Docker made.
SEED_DIFF_IDS = [
    "sha256:50644c29ef5a27c9a40c393a73ece2479de78325cae7d762ef3cdc19bf42dd0a",
    "sha256:9c572ba82b91e3ac35c7351bdacc6876c67f5d9bc69c5e51e8b2deeafae95e4f",
    "sha256:1680a9f16b18732726d0656b6d6ff9611a3c4460ca870827b537a87bbe10cc22",
    "sha256:8521b614863046bf4bb604e3586feeca8b7ce1372f1d6664a5545e85ad9ca472",
]
SEED_CHAIN_IDS = [
    "sha256:50644c29ef5a27c9a40c393a73ece2479de78325cae7d762ef3cdc19bf42dd0a",
    "sha256:fe267088885017d5e9a4621e68617a7f35e58dc2d0d747927882da21059854e3",
    "sha256:5f72760956a669e4c9b33aa3f2f04baa84b0f4cf1e11676049981bafcbba74da",
    "sha256:228fb92e31891f472e9857ee11d13c404ff7c88e808b05ce4ebdc80d785d71f3",
]


def test_chain_ids_match_seed_004() -> None:
    assert ids.chain_ids(SEED_DIFF_IDS) == SEED_CHAIN_IDS
    assert ids.chain_id(SEED_DIFF_IDS) == SEED_CHAIN_IDS[-1]
    assert ids.chain_id(SEED_DIFF_IDS[:1]) == SEED_DIFF_IDS[0]  # ChainID(L1) = DiffID(L1)
    assert ids.chain_id_step(SEED_CHAIN_IDS[1], SEED_DIFF_IDS[2]) == SEED_CHAIN_IDS[2]


def test_worked_example_computed_independently() -> None:
    layers = [b"first layer tar", b"second layer tar", b""]
    diff_ids = [ids.diff_id(t) for t in layers]
    expected_diffs = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]
    assert diff_ids == expected_diffs
    # Compute the chain by hand, the way the seed does with `echo -n ... | sha256sum`.
    c1 = expected_diffs[0]
    c2 = "sha256:" + hashlib.sha256(f"{c1} {expected_diffs[1]}".encode()).hexdigest()
    c3 = "sha256:" + hashlib.sha256(f"{c2} {expected_diffs[2]}".encode()).hexdigest()
    assert ids.chain_ids(diff_ids) == [c1, c2, c3]
    # The empty layer tar's digest is the well-known sha256 of no bytes.
    assert diff_ids[2] == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    config = b'{"rootfs":{"type":"layers","diff_ids":[]}}'
    assert ids.image_id(config) == "sha256:" + hashlib.sha256(config).hexdigest()
    assert ids.digest_reader(io.BytesIO(config * 100000)) == ids.digest_bytes(config * 100000)


def test_chain_id_refuses_bad_input() -> None:
    with pytest.raises(InvalidArgument, match="at least one"):
        ids.chain_id([])
    with pytest.raises(InvalidArgument, match="diff id"):
        ids.chain_ids(["sha256:abc"])
    with pytest.raises(InvalidArgument, match="diff id"):
        ids.chain_ids([SEED_DIFF_IDS[0][7:]])  # bare hex is not a diff id
    with pytest.raises(InvalidArgument, match="chain id"):
        ids.chain_id_step("nonsense", SEED_DIFF_IDS[0])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sha256:" + "a" * 64, None),
        ("sha512:" + "b" * 128, None),
        ("sha384:" + "c" * 96, None),
        ("sha256:" + "A" * 64, "invalid checksum digest format"),
        ("sha256:" + "a" * 63, "invalid checksum digest length"),
        ("md5:" + "a" * 32, "unsupported digest algorithm"),
        ("sha256", "invalid checksum digest format"),
        (":" + "a" * 64, "invalid checksum digest format"),
        ("sha256:", "invalid checksum digest format"),
        ("sha256:" + "g" * 64, "invalid checksum digest format"),
        ("", "invalid checksum digest format"),
    ],
)
def test_parse_digest(value: str, message: str | None) -> None:
    if message is None:
        assert ids.check_digest(value) == value
    else:
        with pytest.raises(InvalidArgument, match=message):
            ids.parse_digest(value)


def test_hex_helpers() -> None:
    h = "0123456789abcdef" * 4
    assert ids.hex_of(h) == h
    assert ids.hex_of("sha256:" + h) == h
    assert ids.with_algorithm(h) == "sha256:" + h
    assert ids.with_algorithm("sha256:" + h) == "sha256:" + h
    assert ids.short_id("sha256:" + h) == "0123456789ab"
    assert ids.short_id(h) == "0123456789ab"
    for bad in ["", "sha256:", h.upper(), h[:-1], h + "0", "../" + h[3:], "sha512:" + h]:
        with pytest.raises(InvalidArgument):
            ids.hex_of(bad)
    assert ids.check_sha256("sha256:" + h) == "sha256:" + h
    with pytest.raises(InvalidArgument, match="image id"):
        ids.check_sha256(h, "image id")


def test_prefix_helpers() -> None:
    a, b, c = "ab" + "0" * 62, "ab" + "1" * 62, "cd" + "0" * 62
    assert ids.match_prefix("ab", [c, b, a]) == [a, b]
    assert ids.match_prefix("sha256:ab1", [a, b, c]) == [b]
    assert ids.match_prefix("ef", [a, b, c]) == []
    for bad in ["", "AB", "sha256:", "x", "a" * 65, "ab/"]:
        with pytest.raises(InvalidArgument):
            ids.normalize_prefix(bad)


def test_new_id() -> None:
    made = {ids.new_id() for _ in range(200)}
    assert len(made) == 200
    for i in made:
        assert ids.is_hex_id(i)
        assert not ids.short_id(i).isdigit()


@given(st.lists(st.binary(max_size=64), min_size=1, max_size=6))
def test_chain_id_property(tars: list[bytes]) -> None:
    diffs = [ids.diff_id(t) for t in tars]
    chain = ids.chain_ids(diffs)
    assert chain[0] == diffs[0]
    for i in range(1, len(diffs)):
        assert chain[i] == ids.digest_bytes(f"{chain[i - 1]} {diffs[i]}".encode())
        assert chain[i] == ids.chain_id(diffs[: i + 1])
