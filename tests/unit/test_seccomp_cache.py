"""compile_filter's cache: one compiled program per distinct filter, read back instead of rebuilt."""

import os
from pathlib import Path

import pytest

from hull.runtime.seccomp import BPF_SUFFIX, LinuxSeccomp, compile_filter

pytestmark = pytest.mark.unit


def _filter(errno_ret: int) -> LinuxSeccomp:
    return LinuxSeccomp.from_json(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mknod"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno_ret}],
        }
    )


def test_the_cache_holds_one_program_per_filter(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    program = compile_filter(_filter(1), str(cache))
    assert program == compile_filter(_filter(1))  # the same bytes as an uncached compile
    (entry,) = cache.iterdir()
    assert entry.name.endswith(BPF_SUFFIX) and entry.read_bytes() == program
    assert os.stat(entry).st_mode & 0o777 == 0o600
    other = compile_filter(_filter(13), str(cache))
    assert other != program and len(list(cache.iterdir())) == 2


def test_a_cached_program_is_what_is_returned(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    compile_filter(_filter(1), str(cache))
    (entry,) = cache.iterdir()
    marker = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # one BPF instruction: return ALLOW
    entry.write_bytes(marker)
    assert compile_filter(_filter(1), str(cache)) == marker


def test_a_damaged_entry_is_compiled_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    good = compile_filter(_filter(1), str(cache))
    (entry,) = cache.iterdir()
    entry.write_bytes(b"\x01\x02\x03")  # not whole instructions
    assert compile_filter(_filter(1), str(cache)) == good
    assert entry.read_bytes() == good
