"""tar-split: the recorder's format is Docker's, and a recorded tar is rebuilt byte for byte.

The tars come from Python's tarfile in every format it writes (USTAR, GNU with long names and
links, PAX with records and non-ASCII names), from GNU tar itself, and from hypothesis; they are
recorded both as raw bytes fed in arbitrary chunks and through the structured events the layer
applier uses, then rebuilt from a directory holding their regular files. None of this needs
root: the directory is written with plain file writes.
"""

import base64
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hull.errors import HullError, InvalidArgument
from hull.storage import tarsplit
from hull.storage.tarsplit import FILE_TYPE, SEGMENT_TYPE, TarSplitRecorder, crc64_update, iter_entries, rebuild

pytestmark = pytest.mark.unit


def make_tar(entries: list[tuple[str, bytes | None, dict[str, object]]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar of (name, content or None for non-files, TarInfo attributes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        for name, data, attrs in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            for key, value in attrs.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def record(raw: bytes, chunk: int = 65536) -> bytes:
    recorder = TarSplitRecorder()
    for i in range(0, len(raw), chunk):
        recorder.feed(raw[i : i + chunk])
    return recorder.finish()


def unpack_files(raw: bytes, root: Path) -> None:
    """Just the regular files of a tar, which is all a rebuild reads (no root needed)."""
    with tarfile.open(fileobj=io.BytesIO(raw), encoding="utf-8", errors="surrogateescape") as tar:
        for member in tar:
            if not member.isreg():
                continue
            path = root / os.fsdecode(member.name.encode("utf-8", "surrogateescape"))
            path.parent.mkdir(parents=True, exist_ok=True)
            data = tar.extractfile(member)
            assert data is not None
            path.write_bytes(data.read())


def rebuilt(ts: bytes, root: Path) -> bytes:
    out = io.BytesIO()
    written = rebuild(ts, str(root), out)
    assert written == len(out.getvalue())
    return out.getvalue()


def lines(ts: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in gzip.decompress(ts).splitlines()]


# --- CRC-64 ------------------------------------------------------------------------------------------


def test_crc64_matches_go_crc64_iso() -> None:
    # The CRC-64/GO-ISO check value (Go's crc64.Checksum([]byte("123456789"), crc64.MakeTable(crc64.ISO))).
    assert crc64_update(0, b"123456789") == 0xB90956C775A41001
    assert tarsplit._python_crc64(0, b"123456789") == 0xB90956C775A41001
    assert crc64_update(0, b"") == 0


@given(st.binary(max_size=3000), st.integers(min_value=0, max_value=3000))
def test_crc64_chunked_equals_whole_and_the_table_version(data: bytes, cut: int) -> None:
    cut = min(cut, len(data))
    whole = crc64_update(0, data)
    assert crc64_update(crc64_update(0, data, 0, cut), data, cut) == whole
    assert tarsplit._python_crc64(0, data) == whole


# --- the format ----------------------------------------------------------------------------------------


def test_format_is_docker_tar_split(tmp_path: Path) -> None:
    raw = make_tar(
        [
            ("etc", None, {"type": tarfile.DIRTYPE, "mode": 0o755}),
            ("etc/hostname", b"box\n", {}),
            ("empty", b"", {}),
            ("link", None, {"type": tarfile.SYMTYPE, "linkname": "etc/hostname"}),
        ],
        fmt=tarfile.USTAR_FORMAT,
    )
    ts = record(raw)
    objs = lines(ts)
    assert [o["position"] for o in objs] == list(range(len(objs)))
    for o in objs:
        assert set(o) <= {"type", "name", "name_raw", "size", "payload", "position"}
        assert o["type"] in (FILE_TYPE, SEGMENT_TYPE)
    files = [o for o in objs if o["type"] == FILE_TYPE]
    assert [o["name"] for o in files] == ["etc", "etc/hostname", "empty", "link"]
    hostname = files[1]
    assert hostname["size"] == 4
    assert base64.b64decode(str(hostname["payload"])) == crc64_update(0, b"box\n").to_bytes(8, "big")
    # size 0: no size field and a null payload, as Go's omitempty and nil slice encode them
    assert "size" not in files[0] and files[0]["payload"] is None
    assert "size" not in files[2] and files[2]["payload"] is None
    # layout: header segment, file entry, padding segment; the trailer last
    kinds = [o["type"] for o in objs]
    assert kinds[:3] == [SEGMENT_TYPE, FILE_TYPE, SEGMENT_TYPE]
    segments = b"".join(base64.b64decode(str(o["payload"])) for o in objs if o["type"] == SEGMENT_TYPE)
    assert len(segments) + 4 == len(raw)
    assert base64.b64decode(str(objs[-1]["payload"])).strip(b"\0") == b""
    assert objs[-1]["type"] == SEGMENT_TYPE
    root = tmp_path / "layer"
    root.mkdir()
    unpack_files(raw, root)
    assert rebuilt(ts, root) == raw


def test_non_utf8_name_goes_to_name_raw(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9")  # latin-1: not valid UTF-8
    raw = make_tar([(name, b"x", {})], fmt=tarfile.GNU_FORMAT)
    files = [o for o in lines(record(raw)) if o["type"] == FILE_TYPE]
    assert "name" not in files[0]
    assert base64.b64decode(str(files[0]["name_raw"])) == b"caf\xe9"
    root = tmp_path / "layer"
    root.mkdir()
    unpack_files(raw, root)
    assert (root / name).exists()
    assert rebuilt(record(raw), root) == raw


def test_reads_docker_written_lines() -> None:
    # Lines as Docker's Go packer writes them (HTML-escaped '<', '&' in names, payload null).
    docker = (
        b'{"type":2,"payload":"YWJj","position":0}\n'
        b'{"type":1,"name":"a\\u003cb\\u0026c","size":3,"payload":"AAAAAAAAAAA=","position":1}\n'
        b'{"type":1,"name_raw":"Y2Fm6Q==","payload":null,"position":2}\n'
    )
    entries = list(iter_entries(gzip.compress(docker)))
    assert entries[0].type == SEGMENT_TYPE and entries[0].payload == b"abc"
    assert entries[1].name == b"a<b&c" and entries[1].size == 3 and entries[1].payload == bytes(8)
    assert entries[2].name == b"caf\xe9" and entries[2].size == 0 and entries[2].payload is None


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b'{"type":7,"position":0}',
        b'{"type":1,"size":-1,"position":0}',
        b'{"type":2,"payload":"@@"}',
        b"[1]",
    ],
)
def test_malformed_tar_split_is_invalid_argument(tmp_path: Path, line: bytes) -> None:
    with pytest.raises(InvalidArgument):
        rebuild(gzip.compress(line + b"\n"), str(tmp_path), io.BytesIO())


# --- rebuilding --------------------------------------------------------------------------------------


def varied_tar(fmt: int) -> bytes:
    entries: list[tuple[str, bytes | None, dict[str, object]]] = [
        ("dir", None, {"type": tarfile.DIRTYPE, "mode": 0o755}),
        ("dir/small", b"hello\n", {"mode": 0o644, "uid": 1000, "gid": 1000}),
        ("dir/block-sized", b"b" * 512, {}),
        ("dir/big", os.urandom(70_000), {}),
        ("dir/empty", b"", {}),
        ("dir/hardlink", None, {"type": tarfile.LNKTYPE, "linkname": "dir/small"}),
        ("dir/symlink", None, {"type": tarfile.SYMTYPE, "linkname": "small"}),
        ("dir/fifo", None, {"type": tarfile.FIFOTYPE}),
    ]
    if fmt != tarfile.USTAR_FORMAT:
        entries += [
            ("dir/" + "long-name-" * 20, b"long", {}),
            ("dir/long-link", None, {"type": tarfile.SYMTYPE, "linkname": "target-" * 30}),
            ("dir/naïve-ünïcode", b"utf8", {}),
        ]
    if fmt == tarfile.PAX_FORMAT:
        entries += [
            ("dir/with-xattrs", b"x", {"pax_headers": {"SCHILY.xattr.user.k": "v", "mtime": "1700000000.5"}}),
            ("dir/big-uid", b"u", {"uid": 10_000_000}),
        ]
    return make_tar(entries, fmt=fmt)


@pytest.mark.parametrize(
    "fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["ustar", "gnu", "pax"]
)
@pytest.mark.parametrize("chunk", [1, 511, 512, 1 << 20])
def test_rebuild_is_byte_for_byte(tmp_path: Path, fmt: int, chunk: int) -> None:
    raw = varied_tar(fmt)
    if chunk == 1:
        raw = raw[: 64 * 1024] if len(raw) > 200_000 else raw
    ts = record(raw, chunk)
    root = tmp_path / "layer"
    root.mkdir()
    unpack_files(raw, root)
    assert rebuilt(ts, root) == raw


@pytest.mark.parametrize("tail", [b"", b"\0" * 1024, b"\0" * 10240, b"\0" * 1024 + b"junk after the end" * 100_000])
def test_rebuild_keeps_whatever_follows_the_last_member(tmp_path: Path, tail: bytes) -> None:
    body = make_tar([("a", b"aaa", {})])
    body = body[: body.index(b"\0" * 1024, 1024)]  # just the member, no end-of-archive marker
    raw = body + tail
    ts = record(raw)
    for o in lines(ts):
        if o["type"] == SEGMENT_TYPE:
            assert len(base64.b64decode(str(o["payload"]))) <= tarsplit.TRAILER_CHUNK
    root = tmp_path / "layer"
    root.mkdir()
    (root / "a").write_bytes(b"aaa")
    assert rebuilt(ts, root) == raw


@pytest.mark.parametrize("fmt", ["gnu", "pax", "ustar", "v7"])
def test_rebuild_tar_written_by_gnu_tar(tmp_path: Path, fmt: str) -> None:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "file").write_bytes(os.urandom(3000))
    (src / "sub" / "empty").write_bytes(b"")
    os.link(src / "sub" / "file", src / "sub" / "hard")
    os.symlink("file", src / "sub" / "sym")
    if fmt in ("gnu", "pax"):
        (src / ("deep-" * 30)).write_bytes(b"long")
    out = subprocess.run(
        ["tar", f"--format={fmt}", "--sort=name", "-C", str(src), "-cf", "-", "."], capture_output=True, check=True
    )
    raw = out.stdout
    ts = record(raw, 4096)
    root = tmp_path / "layer"
    root.mkdir()
    unpack_files(raw, root)
    assert rebuilt(ts, root) == raw


def test_rebuild_refuses_a_changed_file(tmp_path: Path) -> None:
    raw = make_tar([("f", b"original", {})])
    ts = record(raw)
    root = tmp_path / "layer"
    root.mkdir()
    (root / "f").write_bytes(b"tampered")  # same size, other bytes
    with pytest.raises(HullError, match="checksum"):
        rebuilt(ts, root)
    (root / "f").write_bytes(b"short")
    with pytest.raises(HullError, match="shorter"):
        rebuilt(ts, root)
    (root / "f").write_bytes(b"original and more")
    with pytest.raises(HullError, match="longer"):
        rebuilt(ts, root)


def test_rebuild_never_follows_symlinks_in_the_layer(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"password")
    raw = make_tar([("d", None, {"type": tarfile.DIRTYPE}), ("d/f", b"password", {}), ("g", b"password", {})])
    ts = record(raw)
    root = tmp_path / "layer"
    root.mkdir()
    os.symlink(str(tmp_path), root / "d")  # a directory swapped for a symlink out of the layer
    os.symlink(str(secret), root / "g")
    with pytest.raises(HullError, match="cannot open"):
        rebuilt(ts, root)
    (root / "d").unlink()
    (root / "d").mkdir()
    (root / "d" / "f").write_bytes(b"password")
    with pytest.raises(HullError, match="cannot open"):
        rebuilt(ts, root)


def test_rebuild_refuses_names_outside_the_layer(tmp_path: Path) -> None:
    line = b'{"type":1,"name":"../../etc/passwd","size":3,"payload":null,"position":0}\n'
    with pytest.raises(InvalidArgument, match="outside the layer"):
        rebuild(gzip.compress(line), str(tmp_path), io.BytesIO())


# --- refusals ----------------------------------------------------------------------------------------


def test_duplicate_paths_are_refused() -> None:
    raw = make_tar([("a/b", b"1", {}), ("./a//b", b"2", {})])
    with pytest.raises(InvalidArgument, match="twice"):
        record(raw)


def test_truncated_tar_is_refused() -> None:
    raw = make_tar([("a", b"x" * 2000, {})])
    with pytest.raises(InvalidArgument, match="middle"):
        record(raw[:1000])
    with pytest.raises(InvalidArgument, match="middle"):
        record(raw[:700] if len(raw) > 700 else raw[:100])


def test_bad_header_checksum_is_refused() -> None:
    raw = bytearray(make_tar([("a", b"x", {}), ("b", b"y", {})]))
    raw[1024 + 10] ^= 0xFF  # inside the second header's name
    with pytest.raises(InvalidArgument, match="invalid header"):
        record(bytes(raw))


def test_sparse_members_are_refused(tmp_path: Path) -> None:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.seek(1 << 20)
        f.write(b"end")
    raw = subprocess.run(
        ["tar", "--format=gnu", "--sparse", "-C", str(tmp_path), "-cf", "-", "sparse"], capture_output=True, check=True
    ).stdout
    with pytest.raises(InvalidArgument, match="sparse"):
        record(raw)


def test_structured_events_give_the_same_tar_split_as_the_raw_bytes() -> None:
    raw = varied_tar(tarfile.PAX_FORMAT)
    by_bytes = gzip.decompress(record(raw, 1000))
    recorder = TarSplitRecorder()
    # Replay the entries as events: what the layer applier does while tarfile parses.
    for entry in iter_entries(gzip.compress(by_bytes)):
        if entry.type == SEGMENT_TYPE:
            recorder.add_segment(entry.payload or b"")
        else:
            crc = int.from_bytes(entry.payload, "big") if entry.payload else None
            recorder.add_file(entry.name, entry.size, crc)
    assert gzip.decompress(recorder.finish()) == by_bytes


# --- property ----------------------------------------------------------------------------------------

names = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=120).filter(
    lambda s: "/" not in s and s not in (".", "..")
)


@settings(max_examples=40)
@given(
    files=st.dictionaries(names, st.binary(max_size=2000), min_size=1, max_size=8),
    fmt=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    chunks=st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=20),
)
def test_any_tar_in_any_chunking_rebuilds(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], fmt: int, chunks: list[int]
) -> None:
    raw = make_tar([(name, data, {}) for name, data in sorted(files.items())], fmt=fmt)
    recorder = TarSplitRecorder()
    pos, i = 0, 0
    while pos < len(raw):
        step = chunks[i % len(chunks)]
        recorder.feed(raw[pos : pos + step])
        pos += step
        i += 1
    ts = recorder.finish()
    assert ts == record(raw)  # the chunking changes nothing
    root = tmp_path_factory.mktemp("layer")
    try:
        unpack_files(raw, root)
        assert rebuilt(ts, root) == raw
    finally:
        shutil.rmtree(root)
