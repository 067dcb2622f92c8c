"""Layer archives on the real kernel: apply, whiteouts, refusals, and the tars hull writes.

Tars are made by hand (tarfile, or raw header blocks where tarfile would not write the case).
Every malicious archive is applied next to an `outside` directory with a sentinel in it, and the
test asserts that nothing outside the target changed. Applying needs root (ownership, device
nodes, trusted.* xattrs), so those tests are `container`; header encoding, compression and the
change algorithm on plain files are `unit`.
"""

import bz2
import errno
import gzip
import hashlib
import io
import lzma
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from hull.errors import HullError, InvalidArgument
from hull.storage import archive, compression, tarsplit
from hull.storage.archive import Change, ChangeKind, TarHeader, apply_layer, encode_header

CAP_NET_RAW = b"\x01\x00\x00\x02" + (1 << 13).to_bytes(4, "little") + bytes(12)  # v2, effective, cap_net_raw
MTIME = 1_600_000_000


# --- helpers -----------------------------------------------------------------------------------------


class Tar:
    """A hand-made layer tar."""

    def __init__(self, fmt: int = tarfile.PAX_FORMAT) -> None:
        self.buf = io.BytesIO()
        # Closed by bytes(): the builder is used as a chain of add() calls.
        self.tar = tarfile.open(  # noqa: SIM115
            fileobj=self.buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape"
        )

    def add(self, name: str, data: bytes | None = None, **attrs: object) -> "Tar":
        info = tarfile.TarInfo(name)
        info.mtime = MTIME
        info.mode = 0o755 if attrs.get("type") == tarfile.DIRTYPE else 0o644
        for key, value in attrs.items():
            setattr(info, key, value)
        if data is not None:
            info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data) if data else None)
        return self

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def apply(raw: bytes, dest: Path, whiteouts: archive.WhiteoutMode = "overlay") -> archive.AppliedLayer:
    dest.mkdir(exist_ok=True)
    return apply_layer(io.BytesIO(raw), str(dest), whiteouts=whiteouts)


def snapshot(root: Path, *, mtimes: bool = True, seconds: bool = False) -> dict[str, tuple[object, ...]]:
    """Everything a layer can hold, per relative path (hardlinks named by their first path)."""
    seen: dict[tuple[int, int], str] = {}
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            mtime = (st.st_mtime_ns // 1_000_000_000 if seconds else st.st_mtime_ns) if mtimes else None
            xattrs = tuple(
                sorted(
                    (k, os.getxattr(path, k, follow_symlinks=False)) for k in os.listxattr(path, follow_symlinks=False)
                )
            )
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    extra = ("hardlink", seen[key])
                else:
                    seen[key] = rel
                    extra = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, mtime, xattrs, extra)
    return out


@pytest.fixture
def arena(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(dest, outside, sentinel): an empty target and a directory beside it that must stay untouched."""
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    sentinel = outside / "secret"
    sentinel.write_bytes(b"secret")
    return dest, outside, sentinel


def everything_but(tmp_path: Path, dest: Path) -> dict[str, tuple[object, ...]]:
    snap = snapshot(tmp_path)
    return {k: v for k, v in snap.items() if k != "dest" and not k.startswith("dest/")}


# --- compression (unit) ------------------------------------------------------------------------------


@pytest.mark.unit
def test_detect_by_magic() -> None:
    assert compression.detect(gzip.compress(b"x")) is compression.Compression.GZIP
    assert compression.detect(zstandard.ZstdCompressor().compress(b"x")) is compression.Compression.ZSTD
    assert compression.detect(bz2.compress(b"x")) is compression.Compression.BZIP2
    assert compression.detect(lzma.compress(b"x")) is compression.Compression.XZ
    assert compression.detect(b"ustar") is compression.Compression.NONE
    assert compression.detect(b"") is compression.Compression.NONE


@pytest.mark.unit
@pytest.mark.parametrize(
    "compress",
    [
        lambda d: d,
        gzip.compress,
        lambda d: gzip.compress(d[:1000]) + gzip.compress(d[1000:]),  # multi-member gzip
        lambda d: zstandard.ZstdCompressor().compress(d),
        lambda d: zstandard.ZstdCompressor().compress(d[:500]) + zstandard.ZstdCompressor().compress(d[500:]),
        bz2.compress,
        lzma.compress,
    ],
    ids=["plain", "gzip", "gzip-members", "zstd", "zstd-frames", "bzip2", "xz"],
)
def test_open_decompressed_round_trip(compress: object) -> None:
    data = os.urandom(5000) + bytes(100_000)
    stream = compression.open_decompressed(io.BytesIO(compress(data)))  # type: ignore[operator]
    got = b""
    while chunk := stream.read(7777):
        got += chunk
    assert got == data


@pytest.mark.unit
@pytest.mark.parametrize(
    "compress", [gzip.compress, lambda d: zstandard.ZstdCompressor().compress(d), bz2.compress, lzma.compress]
)
def test_corrupt_or_truncated_blob_is_invalid_argument(compress: object) -> None:
    blob = compress(os.urandom(20000))  # type: ignore[operator]
    for bad in (blob[: len(blob) // 2], blob[:8] + bytes(len(blob) - 8)):
        stream = compression.open_decompressed(io.BytesIO(bad))
        with pytest.raises(InvalidArgument, match="not valid"):
            while stream.read(4096):
                pass


@pytest.mark.unit
def test_gzip_writer_is_deterministic() -> None:
    outs = []
    for _ in range(2):
        buf = io.BytesIO()
        with compression.gzip_writer(buf) as w:
            w.write(b"layer" * 1000)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1]
    assert outs[0][4:8] == bytes(4)  # gzip header mtime 0
    assert outs[0][3] & 0x08 == 0  # no file name
    assert gzip.decompress(outs[0]) == b"layer" * 1000


# --- header encoding (unit) --------------------------------------------------------------------------


def parse(raw: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(raw), encoding="utf-8", errors="surrogateescape") as tar:
        return tar.getmembers()


@pytest.mark.unit
def test_ustar_header_as_go_writes_it() -> None:
    block = encode_header(TarHeader(name="etc/", typeflag=tarfile.DIRTYPE, mode=0o40755, mtime=MTIME))
    assert len(block) == 512
    assert block[100:108] == b"0040755\0"  # Docker keeps the type bits
    assert block[257:265] == b"ustar\x0000"
    assert block[265:329] == bytes(64)  # uname, gname empty
    assert block[329:345] == b"0000000\0" * 2
    assert block[148:156].endswith(b"\0 ")
    (info,) = parse(block + bytes(1024))
    assert info.name == "etc" and info.isdir() and info.mtime == MTIME and info.mode == 0o40755


@pytest.mark.unit
def test_long_names_split_like_go_or_go_to_pax() -> None:
    # Go splits at the last slash that leaves a prefix of at most 155 (Python's tarfile at the first).
    name = "a" * 60 + "/" + "b" * 60 + "/" + "c" * 30
    block = encode_header(TarHeader(name=name, typeflag=tarfile.REGTYPE, mode=0o100644))
    assert len(block) == 512
    assert block[345:500].rstrip(b"\0") == ("a" * 60 + "/" + "b" * 60).encode()
    assert block[:100].rstrip(b"\0") == b"c" * 30
    (info,) = parse(block + bytes(1024))
    assert info.name == name
    # no split leaves a name of at most 100: PAX
    unsplittable = "a" * 120 + "/" + "b" * 90 + "/" + "c" * 30
    (info,) = parse(encode_header(TarHeader(name=unsplittable, typeflag=tarfile.REGTYPE)) + bytes(1024))
    assert info.name == unsplittable and info.pax_headers["path"] == unsplittable
    long_name = "x" * 300
    raw = encode_header(TarHeader(name=long_name, typeflag=tarfile.REGTYPE, mode=0o100644))
    assert raw[156:157] == tarfile.XHDTYPE and raw[:100].rstrip(b"\0") == b"PaxHeaders.0/" + b"x" * 87
    (info,) = parse(raw + bytes(1024))
    assert info.name == long_name
    (info,) = parse(encode_header(TarHeader(name="dir/ünï", typeflag=tarfile.REGTYPE)) + bytes(1024))
    assert info.name == "dir/ünï"


@pytest.mark.unit
def test_binary_xattr_and_big_numbers_go_to_pax() -> None:
    cap = bytes(range(256))[:20]
    raw = encode_header(
        TarHeader(name="f", typeflag=tarfile.REGTYPE, mode=0o100644, uid=3_000_000, xattrs={"security.capability": cap})
    )
    (info,) = parse(raw + bytes(1024))
    assert info.uid == 3_000_000
    assert info.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == cap


# --- applying: every file type (root) ----------------------------------------------------------------


def every_type_tar() -> bytes:
    t = Tar()
    t.add("./", type=tarfile.DIRTYPE, mode=0o755, mtime=MTIME - 1)
    t.add("dir", type=tarfile.DIRTYPE, mode=0o1777, uid=1000, gid=1001, mtime=MTIME + 1)
    t.add("dir/setuid", b"#!/bin/sh\n", mode=0o4755, uid=1, gid=2, mtime=MTIME + 2)
    t.add("dir/setgid", b"g", mode=0o2711)
    t.add("dir/empty", b"")
    t.add("dir/hard", type=tarfile.LNKTYPE, linkname="dir/setuid")
    t.add("dir/sym", type=tarfile.SYMTYPE, linkname="setuid", uid=5, gid=6, mtime=MTIME + 3)
    t.add("dir/dangling", type=tarfile.SYMTYPE, linkname="/does/not/exist")
    t.add("dev", type=tarfile.DIRTYPE)
    t.add("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
    t.add("dev/loop9", type=tarfile.BLKTYPE, devmajor=7, devminor=9, mode=0o660, gid=6)
    t.add("dev/fifo", type=tarfile.FIFOTYPE, mode=0o620)
    t.add("bin", type=tarfile.DIRTYPE)
    t.add("bin/ping", b"\x7fELF", pax_headers={"SCHILY.xattr.security.capability": CAP_NET_RAW.decode("latin-1")})
    t.add(
        "dir/xattr",
        b"x",
        pax_headers={"SCHILY.xattr.user.comment": "hello", "SCHILY.xattr.trusted.overlay.opaque": "y"},
    )
    t.add("dir/" + "long" * 40, b"long name")
    t.add("dir/ünïcödé", b"utf8", mtime=MTIME + 4)
    t.add("dir/nanos", b"n", pax_headers={"mtime": "1600000000.123456789", "atime": "1600000001.5"})
    return t.bytes()


@pytest.mark.container
@pytest.mark.parametrize("whiteouts", ["overlay", "delete"])
def test_every_file_type_is_applied_with_its_metadata(tmp_path: Path, whiteouts: archive.WhiteoutMode) -> None:
    raw = every_type_tar()
    dest = tmp_path / "dest"
    # A capability whose bytes are all ASCII survives tarfile's UTF-8 encoding of PAX values.
    assert CAP_NET_RAW.isascii()
    result = apply(raw, dest, whiteouts)
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    # Docker's layer size: regular files (a hardlink counted once) and symlinks (their targets' lengths).
    symlinks = len("setuid") + len("/does/not/exist")
    assert result.size == len(b"#!/bin/sh\n") + 1 + 4 + 1 + len(b"long name") + 4 + 1 + symlinks
    assert result.compression is compression.Compression.NONE
    assert result.entries == 18

    def lst(rel: str) -> os.stat_result:
        return os.lstat(dest / rel)

    assert stat.S_IMODE(lst(".").st_mode) == 0o755 and lst(".").st_mtime == MTIME - 1
    d = lst("dir")
    assert stat.S_ISDIR(d.st_mode) and stat.S_IMODE(d.st_mode) == 0o1777 and (d.st_uid, d.st_gid) == (1000, 1001)
    assert d.st_mtime == MTIME + 1  # set after its entries were written
    s = lst("dir/setuid")
    assert stat.S_IMODE(s.st_mode) == 0o4755 and (s.st_uid, s.st_gid) == (1, 2) and s.st_mtime == MTIME + 2
    assert (dest / "dir/setuid").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(lst("dir/setgid").st_mode) == 0o2711
    assert lst("dir/empty").st_size == 0
    assert lst("dir/hard").st_ino == s.st_ino and s.st_nlink == 2
    sym = lst("dir/sym")
    assert stat.S_ISLNK(sym.st_mode) and os.readlink(dest / "dir/sym") == "setuid"
    assert (sym.st_uid, sym.st_gid) == (5, 6) and sym.st_mtime == MTIME + 3
    assert os.readlink(dest / "dir/dangling") == "/does/not/exist"
    null = lst("dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = lst("dev/loop9")
    assert (
        stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 9) and loop.st_gid == 6
    )
    assert stat.S_ISFIFO(lst("dev/fifo").st_mode) and stat.S_IMODE(lst("dev/fifo").st_mode) == 0o620
    assert os.getxattr(dest / "bin/ping", "security.capability") == CAP_NET_RAW
    assert os.getxattr(dest / "dir/xattr", "user.comment") == b"hello"
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "dir/xattr")  # a layer cannot forge overlay's xattrs
    assert (dest / ("dir/" + "long" * 40)).read_bytes() == b"long name"
    assert lst("dir/ünïcödé").st_mtime == MTIME + 4
    nanos = lst("dir/nanos")
    assert nanos.st_mtime_ns == 1_600_000_000_123_456_789 and nanos.st_atime_ns == 1_600_000_001_500_000_000
    # tar-split rebuilds the original byte for byte from what was extracted
    out = io.BytesIO()
    tarsplit.rebuild(result.tar_split, str(dest), out)
    assert out.getvalue() == raw


@pytest.mark.container
@pytest.mark.parametrize(
    "compress",
    [lambda d: d, gzip.compress, lambda d: zstandard.ZstdCompressor().compress(d), bz2.compress, lzma.compress],
    ids=["plain", "gzip", "zstd", "bzip2", "xz"],
)
def test_compressed_blobs_give_the_same_layer(tmp_path: Path, compress: object) -> None:
    raw = every_type_tar()
    result = apply(compress(raw), tmp_path / "dest")  # type: ignore[operator]
    plain = apply(raw, tmp_path / "plain")
    assert result.diff_id == plain.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert snapshot(tmp_path / "dest") == snapshot(tmp_path / "plain")
    assert gzip.decompress(result.tar_split) == gzip.decompress(plain.tar_split)


@pytest.mark.container
def test_empty_layers(tmp_path: Path) -> None:
    for i, raw in enumerate([b"", bytes(1024), bytes(10240)]):
        result = apply(raw, tmp_path / f"d{i}")
        assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
        assert result.size == 0 and os.listdir(tmp_path / f"d{i}") == []
        out = io.BytesIO()
        tarsplit.rebuild(result.tar_split, str(tmp_path / f"d{i}"), out)
        assert out.getvalue() == raw


@pytest.mark.container
def test_later_entries_replace_earlier_ones_without_following_them(
    arena: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    dest, outside, sentinel = arena
    before = everything_but(tmp_path, dest)
    t = Tar()
    t.add("f", type=tarfile.SYMTYPE, linkname=str(sentinel))
    t.add("d", type=tarfile.SYMTYPE, linkname=str(outside))
    t.add("x", b"file first")
    raw = t.bytes()
    apply(raw, dest, "delete")
    # Another layer puts a file over the symlink to a file, a directory over the one to a directory.
    t = Tar().add("f", b"replaced").add("d", type=tarfile.DIRTYPE).add("d/inside", b"in").add("x", type=tarfile.DIRTYPE)
    apply(t.bytes(), dest, "delete")
    assert (dest / "f").read_bytes() == b"replaced" and not (dest / "f").is_symlink()
    assert (dest / "d").is_dir() and not (dest / "d").is_symlink() and (dest / "d/inside").read_bytes() == b"in"
    assert (dest / "x").is_dir()
    assert everything_but(tmp_path, dest) == before


@pytest.mark.container
def test_symlinks_inside_the_layer_are_followed(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    t = Tar().add("usr/lib", type=tarfile.DIRTYPE).add("lib", type=tarfile.SYMTYPE, linkname="usr/lib")
    t.add("lib/libc.so", b"libc")
    t.add("usr/bin", type=tarfile.DIRTYPE).add("usr/sbin", type=tarfile.SYMTYPE, linkname="../usr/bin")
    t.add("usr/sbin/init", b"init")
    apply(t.bytes(), dest)
    assert (dest / "usr/lib/libc.so").read_bytes() == b"libc"
    assert (dest / "usr/bin/init").read_bytes() == b"init"


# --- whiteouts ---------------------------------------------------------------------------------------


def whiteout_tar() -> bytes:
    t = Tar()
    t.add(".wh.gone", b"", uid=7, gid=8)
    t.add("dir", type=tarfile.DIRTYPE, mode=0o750)
    t.add("dir/.wh..wh..opq", b"")
    t.add("dir/new", b"new")
    t.add("keep", type=tarfile.DIRTYPE)
    t.add("keep/.wh.old", b"")
    t.add("keep/.wh.never-existed", b"")
    t.add("fresh/.wh..wh..opq", b"")  # opaque marker for a directory the tar does not list
    return t.bytes()


def lower_tree(root: Path) -> None:
    (root / "dir/sub").mkdir(parents=True)
    (root / "dir/old").write_bytes(b"old")
    (root / "dir/sub/deep").write_bytes(b"deep")
    (root / "keep").mkdir()
    (root / "keep/old").write_bytes(b"old")
    (root / "keep/stays").write_bytes(b"stays")
    (root / "gone").mkdir()
    (root / "gone/content").write_bytes(b"x")


@pytest.mark.container
def test_overlay_whiteouts_become_devices_and_opaque_xattrs(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    result = apply(whiteout_tar(), dest, "overlay")
    gone = os.lstat(dest / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0 and (gone.st_uid, gone.st_gid) == (7, 8)
    assert stat.S_ISCHR(os.lstat(dest / "keep/old").st_mode)
    assert os.getxattr(dest / "dir", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(dest / "fresh", "trusted.overlay.opaque") == b"y"
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "keep")
    assert sorted(os.listdir(dest)) == ["dir", "fresh", "gone", "keep"]
    assert not any(name.startswith(".wh.") for _, _, files in os.walk(dest) for name in files)
    out = io.BytesIO()
    tarsplit.rebuild(result.tar_split, str(dest), out)
    assert out.getvalue() == whiteout_tar()


@pytest.mark.container
def test_delete_whiteouts_remove_lower_content(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    lower_tree(dest)
    apply(whiteout_tar(), dest, "delete")
    assert not os.path.lexists(dest / "gone")
    assert sorted(os.listdir(dest / "dir")) == ["new"]  # opaque: the lower entries are gone
    assert stat.S_IMODE(os.stat(dest / "dir").st_mode) == 0o750
    assert sorted(os.listdir(dest / "keep")) == ["stays"]
    assert os.listdir(dest / "fresh") == []


@pytest.mark.container
def test_overlay_diff_round_trips_to_the_vfs_form(tmp_path: Path) -> None:
    """overlay upper -> layer tar -> applied with deletions on a copy of the lower = the merged view."""
    upper = tmp_path / "upper"
    apply(whiteout_tar(), upper, "overlay")
    out = io.BytesIO()
    diff_id = archive.write_overlay_diff(str(upper), out)
    tar = out.getvalue()
    assert diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    names = [m.name for m in parse(tar)]
    assert ".wh.gone" in names and "dir/.wh..wh..opq" in names and "keep/.wh.old" in names
    assert names.index("dir/.wh..wh..opq") == names.index("dir") + 1
    merged = tmp_path / "merged"
    merged.mkdir()
    lower_tree(merged)
    apply(tar, merged, "delete")
    direct = tmp_path / "direct"
    direct.mkdir()
    lower_tree(direct)
    apply(whiteout_tar(), direct, "delete")
    assert snapshot(merged, mtimes=False) == snapshot(direct, mtimes=False)
    # the same upper gives the same bytes
    again = io.BytesIO()
    assert archive.write_overlay_diff(str(upper), again) == diff_id


@pytest.mark.container
def test_copy_overlay_diff_is_the_tar_round_trip_without_the_tar(tmp_path: Path) -> None:
    """commit's overlay2 path: the same layer, diff id, size and tar-split as writing the upper's
    tar and applying it, for every file type, whiteouts, an opaque directory and a large file."""
    upper = tmp_path / "upper"
    apply(every_type_tar(), upper, "overlay")
    apply(whiteout_tar(), upper, "overlay")
    (upper / "large").write_bytes(os.urandom(archive._KEEP_CONTENT_MAX + 4096))  # read twice, not kept
    out = io.BytesIO()
    diff_id = archive.write_overlay_diff(str(upper), out)
    round_trip = apply(out.getvalue(), tmp_path / "round-trip")
    copied_dir = tmp_path / "copied"
    copied_dir.mkdir()
    copied = archive.copy_overlay_diff(str(upper), str(copied_dir))
    assert copied.diff_id == diff_id == round_trip.diff_id
    assert (copied.size, copied.entries) == (round_trip.size, round_trip.entries)
    assert copied.tar_split == round_trip.tar_split

    def layer(root: Path) -> dict[str, tuple[object, ...]]:  # a whiteout's mtime is its creation's: not compared
        out = {}
        for k, v in snapshot(root).items():
            whiteout = stat.S_ISCHR(int(str(v[0]))) and v[5] == (0, 0)
            out[k] = (*v[:3], None, *v[4:]) if whiteout else v
        return out

    assert layer(copied_dir) == layer(tmp_path / "round-trip")
    rebuilt = io.BytesIO()
    tarsplit.rebuild(copied.tar_split, str(copied_dir), rebuilt)
    assert rebuilt.getvalue() == out.getvalue()


# --- refusals: nothing is written outside the target ---------------------------------------------------


def malicious(outside: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (tar, the entry the error must name)."""
    o = str(outside)
    return {
        "dotdot": (Tar().add("../outside/pwned", b"x").bytes(), "../outside/pwned"),
        "dotdot-deep": (Tar().add("a/b/../../../outside/pwned", b"x").bytes(), "a/b/../../../outside/pwned"),
        "absolute": (Tar().add(o + "/pwned", b"x").bytes(), o + "/pwned"),
        "absolute-dir": (Tar().add(o + "/newdir", type=tarfile.DIRTYPE).bytes(), o + "/newdir"),
        "symlink-absolute-then-file": (
            Tar().add("link", type=tarfile.SYMTYPE, linkname=o).add("link/pwned", b"x").bytes(),
            "link/pwned",
        ),
        "symlink-relative-out-then-file": (
            Tar().add("link", type=tarfile.SYMTYPE, linkname="../outside").add("link/pwned", b"x").bytes(),
            "link/pwned",
        ),
        "symlink-chain-out": (
            Tar()
            .add("a", type=tarfile.SYMTYPE, linkname="b")
            .add("b", type=tarfile.SYMTYPE, linkname="c/../..")
            .add("c", type=tarfile.DIRTYPE)
            .add("a/outside/pwned", b"x")
            .bytes(),
            "a/outside/pwned",
        ),
        "symlink-then-dir": (
            Tar().add("link", type=tarfile.SYMTYPE, linkname=o).add("link/sub", type=tarfile.DIRTYPE).bytes(),
            "link/sub",
        ),
        "symlink-then-symlink": (
            Tar()
            .add("link", type=tarfile.SYMTYPE, linkname=o)
            .add("link/evil", type=tarfile.SYMTYPE, linkname="/")
            .bytes(),
            "link/evil",
        ),
        "symlink-then-device": (
            Tar()
            .add("link", type=tarfile.SYMTYPE, linkname=o)
            .add("link/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
            .bytes(),
            "link/null",
        ),
        "symlink-loop": (
            Tar()
            .add("a", type=tarfile.SYMTYPE, linkname="b")
            .add("b", type=tarfile.SYMTYPE, linkname="a")
            .add("a/x", b"x")
            .bytes(),
            "a/x",
        ),
        "hardlink-dotdot": (Tar().add("h", type=tarfile.LNKTYPE, linkname="../outside/secret").bytes(), "h"),
        "hardlink-absolute": (Tar().add("h", type=tarfile.LNKTYPE, linkname=o + "/secret").bytes(), "h"),
        "hardlink-through-symlink": (
            Tar()
            .add("l", type=tarfile.SYMTYPE, linkname=o)
            .add("h", type=tarfile.LNKTYPE, linkname="l/secret")
            .bytes(),
            "h",
        ),
        "whiteout-through-symlink": (
            Tar().add("l", type=tarfile.SYMTYPE, linkname=o).add("l/.wh.secret", b"").bytes(),
            "l/.wh.secret",
        ),
        "opaque-through-symlink": (
            Tar().add("l", type=tarfile.SYMTYPE, linkname=o).add("l/.wh..wh..opq", b"").bytes(),
            "l/.wh..wh..opq",
        ),
        "whiteout-of-parent": (Tar().add("d", type=tarfile.DIRTYPE).add("d/.wh..", b"").bytes(), "d/.wh.."),
    }


CASES = list(malicious(Path("/x")))


@pytest.mark.container
@pytest.mark.parametrize("whiteouts", ["overlay", "delete"])
@pytest.mark.parametrize("case", CASES)
def test_malicious_archive_is_refused_and_nothing_escapes(
    arena: tuple[Path, Path, Path], tmp_path: Path, case: str, whiteouts: archive.WhiteoutMode
) -> None:
    dest, outside, sentinel = arena
    raw, entry = malicious(outside)[case]
    before = everything_but(tmp_path, dest)
    with pytest.raises(InvalidArgument) as info:
        apply(raw, dest, whiteouts)
    assert repr(entry) in info.value.message
    assert everything_but(tmp_path, dest) == before
    assert sentinel.read_bytes() == b"secret" and os.stat(sentinel).st_nlink == 1


@pytest.mark.container
def test_a_lower_layer_symlink_out_is_not_followed_either(arena: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """vfs: dest is a copy of lower layers, one of which planted `etc -> /outside`."""
    dest, outside, _ = arena
    os.symlink(str(outside), dest / "etc")
    before = everything_but(tmp_path, dest)
    for raw in (
        Tar().add("etc/secret", b"overwritten").bytes(),
        Tar().add("etc/.wh.secret", b"").bytes(),
        Tar().add("etc/.wh..wh..opq", b"").bytes(),
    ):
        with pytest.raises(InvalidArgument, match="points outside the layer"):
            apply(raw, dest, "delete")
    assert everything_but(tmp_path, dest) == before


def raw_header(
    name: bytes, typeflag: bytes = b"0", size: int = 0, checksum_ok: bool = True, linkname: bytes = b""
) -> bytes:
    """A USTAR header block made field by field (for cases tarfile will not write)."""
    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = b"0000644\0"
    block[108:124] = b"0000000\0" * 2
    block[124:136] = b"%011o\0" % size
    block[136:148] = b"%011o\0" % MTIME
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = b"ustar\x0000"
    block[148:156] = b"%06o\0 " % (sum(block) + (0 if checksum_ok else 1))
    return bytes(block)


@pytest.mark.container
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"this is not a tar archive at all" * 40, "not valid"),
        (raw_header(b"a", size=5) + b"abc", "cut short"),
        (
            raw_header(b"a", size=5) + b"abcde" + bytes(507) + raw_header(b"b", checksum_ok=False) + bytes(1024),
            "invalid",
        ),
        (raw_header(b"a") + b"\x01" * 100, "cut"),
        (raw_header(b"a") + raw_header(b"./a") + bytes(1024), "twice"),
        (raw_header(b"weird", typeflag=b"V") + bytes(1024), "unsupported"),
        (
            raw_header(b"d", typeflag=b"5") + raw_header(b"d/f", typeflag=b"1", linkname=b"d/missing") + bytes(1024),
            "not in the layer",
        ),
    ],
    ids=["garbage", "truncated-content", "bad-checksum", "cut-header", "duplicate", "unknown-type", "hardlink-missing"],
)
def test_broken_archives_are_invalid_argument(tmp_path: Path, raw: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        apply(raw, tmp_path / "dest")


@pytest.mark.container
def test_sparse_file_is_refused(tmp_path: Path) -> None:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    import subprocess

    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.seek(1 << 20)
        f.write(b"end")
    raw = subprocess.run(
        ["tar", "--format=pax", "--sparse", "-C", str(tmp_path), "-cf", "-", "sparse"], capture_output=True, check=True
    ).stdout
    with pytest.raises(InvalidArgument, match="sparse"):
        apply(raw, tmp_path / "dest")


# --- writing diffs and trees; changes ------------------------------------------------------------------


def make_parent(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts").write_bytes(b"127.0.0.1 localhost\n")
    (root / "etc/motd").write_bytes(b"hello\n")
    (root / "var/log").mkdir(parents=True)
    (root / "var/log/old.log").write_bytes(b"old\n")
    (root / "bin").mkdir()
    (root / "bin/sh").write_bytes(b"\x7fELF sh")
    (root / "bin/ping").write_bytes(b"\x7fELF ping")
    (root / "gone-dir/sub").mkdir(parents=True)
    (root / "gone-dir/sub/file").write_bytes(b"x")
    (root / "becomes-dir").write_bytes(b"file")
    for path in [root, *root.rglob("*")]:
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)


def change_child(root: Path) -> None:
    (root / "etc/hosts").write_bytes(b"127.0.0.1 localhost\n10.0.0.2 db\n")  # modified
    os.chmod(root / "etc/motd", 0o600)  # metadata only
    (root / "var/log/old.log").unlink()  # deleted
    shutil.rmtree(root / "gone-dir")  # deleted directory
    (root / "becomes-dir").unlink()
    (root / "becomes-dir").mkdir()
    (root / "becomes-dir/inner").write_bytes(b"inner")
    (root / "new/deep").mkdir(parents=True)  # added with parents
    (root / "new/deep/file").write_bytes(b"new")
    os.link(root / "new/deep/file", root / "new/hardlink")
    os.symlink("deep/file", root / "new/symlink")
    os.setxattr(root / "bin/ping", "security.capability", CAP_NET_RAW)  # capability only


EXPECTED_CHANGES = [
    "C /becomes-dir",
    "A /becomes-dir/inner",
    "C /bin",
    "C /bin/ping",
    "C /etc",
    "C /etc/hosts",
    "C /etc/motd",
    "D /gone-dir",
    "A /new",
    "A /new/deep",
    "A /new/deep/file",
    "A /new/hardlink",
    "A /new/symlink",
    "C /var",
    "C /var/log",
    "D /var/log/old.log",
]


@pytest.mark.container
def test_dir_changes_and_dir_diff(tmp_path: Path) -> None:
    parent, child = tmp_path / "parent", tmp_path / "child"
    parent.mkdir()
    make_parent(parent)
    shutil.copytree(parent, child, symlinks=True)
    for path in [child, *child.rglob("*")]:
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    change_child(child)
    changes = archive.dir_changes(str(parent), str(child))
    assert [str(c) for c in changes] == EXPECTED_CHANGES
    assert changes[0] == Change("/becomes-dir", ChangeKind.MODIFY) and ChangeKind.DELETE.letter == "D"
    out = io.BytesIO()
    diff_id = archive.write_dir_diff(str(parent), str(child), out)
    tar = out.getvalue()
    assert diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    members = {m.name: m for m in parse(tar)}
    assert members[".wh.gone-dir"].size == 0 and members[".wh.gone-dir"].mtime == 0
    assert "var/log/.wh.old.log" in members and members["new/hardlink"].islnk()
    assert members["new/hardlink"].linkname == "new/deep/file"
    assert members["bin/ping"].pax_headers["SCHILY.xattr.security.capability"].encode("latin-1") == CAP_NET_RAW
    # the diff applied on a copy of the parent (vfs) gives the child
    applied = tmp_path / "applied"
    shutil.copytree(parent, applied, symlinks=True)
    apply(tar, applied, "delete")
    assert snapshot(applied, seconds=True) == snapshot(child, seconds=True)
    again = io.BytesIO()
    assert archive.write_dir_diff(str(parent), str(child), again) == diff_id


@pytest.mark.container
def test_overlay_changes(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    make_parent(lower)
    upper.mkdir()
    (upper / "etc").mkdir()
    (upper / "etc/hosts").write_bytes(b"changed")  # copied up and modified
    (upper / "var/log").mkdir(parents=True)
    os.mknod(upper / "var/log/old.log", stat.S_IFCHR, 0)  # deleted
    (upper / "gone-dir").mkdir()
    os.setxattr(upper / "gone-dir", "trusted.overlay.opaque", b"y")  # replaced by an empty dir
    (upper / "new").mkdir()
    (upper / "new/file").write_bytes(b"new")
    for rel in ("etc", "var", "var/log"):  # copied-up directories keep the lower one's metadata
        shutil.copystat(lower / rel, upper / rel)
    changes = [str(c) for c in archive.overlay_changes(str(upper), [str(lower)])]
    assert changes == [
        "C /etc/hosts",
        "D /gone-dir",
        "A /new",
        "A /new/file",
        "C /var/log",
        "D /var/log/old.log",
    ]
    assert [str(c) for c in archive.overlay_changes(str(upper))][:2] == ["A /etc", "A /etc/hosts"]


@pytest.mark.container
def test_write_tree_exports_a_whole_filesystem(tmp_path: Path) -> None:
    src = tmp_path / "src"
    apply(every_type_tar(), src)
    out = io.BytesIO()
    digest = archive.write_tree(str(src), out)
    tar = out.getvalue()
    assert digest == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert tar.endswith(bytes(1024)) and len(tar) % 512 == 0
    names = [m.name for m in parse(tar)]
    assert names == sorted(names, key=lambda n: [os.fsencode(p) for p in n.split("/")])  # parents first, byte order
    copy = tmp_path / "copy"
    apply(tar, copy)
    # the root's own metadata is not exported (as in Docker); user xattrs neither
    src_snap = {k: v for k, v in snapshot(src, seconds=True).items()}
    copy_snap = snapshot(copy, seconds=True)
    assert set(src_snap) == set(copy_snap)
    for rel, (mode, uid, gid, mtime, xattrs, extra) in src_snap.items():
        assert copy_snap[rel][:4] == (mode, uid, gid, mtime), rel
        assert copy_snap[rel][5] == extra, rel
        assert dict(copy_snap[rel][4]).get("security.capability") == dict(xattrs).get("security.capability")


@pytest.mark.container
def test_tar_split_of_a_written_diff_rebuilds_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    apply(every_type_tar(), src)
    recorder = tarsplit.TarSplitRecorder()
    out = io.BytesIO()
    archive.write_tree(str(src), out, tar_split=recorder)
    rebuilt = io.BytesIO()
    tarsplit.rebuild(recorder.finish(), str(src), rebuilt)
    assert rebuilt.getvalue() == out.getvalue()


# --- property: any tree survives write -> apply -> rebuild ----------------------------------------------

segment = st.text(alphabet="abcdefgh.-_ü", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..") and not s.startswith(".wh.")
)
node = st.one_of(
    st.tuples(st.just("file"), st.binary(max_size=1500), st.sampled_from([0o644, 0o600, 0o4755, 0o2750, 0o777])),
    st.tuples(st.just("dir"), st.just(b""), st.sampled_from([0o755, 0o700, 0o1777])),
    st.tuples(st.just("symlink"), st.sampled_from([b"a", b"../x", b"/etc/passwd", b"."]), st.just(0o777)),
    st.tuples(st.just("hardlink"), st.just(b""), st.just(0)),
)


@pytest.mark.container
@settings(max_examples=25)
@given(tree=st.lists(st.tuples(st.lists(segment, min_size=1, max_size=3), node), min_size=1, max_size=12))
def test_any_tree_round_trips(
    tmp_path_factory: pytest.TempPathFactory, tree: list[tuple[list[str], tuple[str, bytes, int]]]
) -> None:
    base = tmp_path_factory.mktemp("prop")
    try:
        src = base / "src"
        src.mkdir()
        files: list[Path] = []
        for parts, (kind, data, mode) in tree:
            path = src.joinpath(*parts)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if os.path.lexists(path):
                    continue
                if kind == "file":
                    path.write_bytes(data)
                    os.chown(path, len(data) % 3, 0)
                    os.chmod(path, mode)
                    files.append(path)
                elif kind == "dir":
                    path.mkdir()
                    os.chmod(path, mode)
                elif kind == "symlink":
                    os.symlink(data, path)
                elif files:
                    os.link(files[0], path)
            except (NotADirectoryError, FileExistsError):
                continue  # the tree said "file" where another entry needs a directory
            except OSError as e:
                if e.errno not in (errno.ENOTDIR, errno.EEXIST):
                    raise
        out = io.BytesIO()
        archive.write_tree(str(src), out)
        tar = out.getvalue()
        for whiteouts in ("overlay", "delete"):
            dest = base / whiteouts
            result = apply(tar, dest, whiteouts)  # type: ignore[arg-type]
            assert snapshot(dest, seconds=True) == snapshot(src, seconds=True)
            rebuilt = io.BytesIO()
            tarsplit.rebuild(result.tar_split, str(dest), rebuilt)
            assert rebuilt.getvalue() == tar
    finally:
        shutil.rmtree(base)


@pytest.mark.container
def test_gnu_format_layer_with_long_names_and_links(tmp_path: Path) -> None:
    t = Tar(fmt=tarfile.GNU_FORMAT)
    long_dir = "d" * 80 + "/" + "e" * 80
    t.add(long_dir, type=tarfile.DIRTYPE)
    t.add(long_dir + "/" + "f" * 120, b"content")
    t.add("short-link", type=tarfile.SYMTYPE, linkname="/" + "t" * 150)
    t.add("hard-to-long", type=tarfile.LNKTYPE, linkname=long_dir + "/" + "f" * 120)
    raw = t.bytes()
    dest = tmp_path / "dest"
    result = apply(raw, dest)
    assert (dest / long_dir / ("f" * 120)).read_bytes() == b"content"
    assert os.readlink(dest / "short-link") == "/" + "t" * 150
    assert os.stat(dest / "hard-to-long").st_ino == os.stat(dest / long_dir / ("f" * 120)).st_ino
    assert result.size == len(b"content") + 151  # the symlink counts its target's length
    out = io.BytesIO()
    tarsplit.rebuild(result.tar_split, str(dest), out)
    assert out.getvalue() == raw


@pytest.mark.container
def test_bad_target_or_mode_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HullError, match="cannot open"):
        apply_layer(io.BytesIO(b""), str(tmp_path / "missing"), whiteouts="overlay")
    with pytest.raises(InvalidArgument, match="whiteout mode"):
        apply_layer(io.BytesIO(b""), str(tmp_path), whiteouts="aufs")  # type: ignore[arg-type]
