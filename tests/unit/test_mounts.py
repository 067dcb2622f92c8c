"""Mount option words: the flags, propagation, bind and data each one gives, and the remount flags."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hull.errors import InvalidArgument
from hull.runtime import syscalls as S
from hull.runtime.mounts import (
    FLAG_WORDS,
    PER_MOUNT_FLAGS,
    PROPAGATION_WORDS,
    MountOptions,
    parse_mount_options,
    remount_flags,
    statvfs_flags,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "word, flags, clear",
    [
        ("ro", S.MS_RDONLY, 0),
        ("rw", 0, S.MS_RDONLY),
        ("nosuid", S.MS_NOSUID, 0),
        ("suid", 0, S.MS_NOSUID),
        ("nodev", S.MS_NODEV, 0),
        ("dev", 0, S.MS_NODEV),
        ("noexec", S.MS_NOEXEC, 0),
        ("exec", 0, S.MS_NOEXEC),
        ("sync", S.MS_SYNCHRONOUS, 0),
        ("async", 0, S.MS_SYNCHRONOUS),
        ("dirsync", S.MS_DIRSYNC, 0),
        ("remount", S.MS_REMOUNT, 0),
        ("mand", S.MS_MANDLOCK, 0),
        ("nomand", 0, S.MS_MANDLOCK),
        ("atime", 0, S.MS_NOATIME),
        ("noatime", S.MS_NOATIME, 0),
        ("diratime", 0, S.MS_NODIRATIME),
        ("nodiratime", S.MS_NODIRATIME, 0),
        ("relatime", S.MS_RELATIME, 0),
        ("norelatime", 0, S.MS_RELATIME),
        ("strictatime", S.MS_STRICTATIME, 0),
        ("nostrictatime", 0, S.MS_STRICTATIME),
        ("lazytime", S.MS_LAZYTIME, 0),
        ("nosymfollow", S.MS_NOSYMFOLLOW, 0),
        ("defaults", 0, 0),
    ],
)
def test_flag_words(word: str, flags: int, clear: int) -> None:
    assert parse_mount_options([word]) == MountOptions(flags=flags, clear=clear)


@pytest.mark.parametrize(
    "word, flags",
    [
        ("private", S.MS_PRIVATE),
        ("rprivate", S.MS_PRIVATE | S.MS_REC),
        ("shared", S.MS_SHARED),
        ("rshared", S.MS_SHARED | S.MS_REC),
        ("slave", S.MS_SLAVE),
        ("rslave", S.MS_SLAVE | S.MS_REC),
        ("unbindable", S.MS_UNBINDABLE),
        ("runbindable", S.MS_UNBINDABLE | S.MS_REC),
    ],
)
def test_propagation_words_are_separate_calls(word: str, flags: int) -> None:
    opts = parse_mount_options(["ro", word])
    assert opts.propagation == (flags,)
    assert opts.flags == S.MS_RDONLY  # never mixed into the mount's own flags


def test_bind_and_rbind() -> None:
    assert parse_mount_options(["bind"]) == MountOptions(flags=S.MS_BIND, recursive_bind=False)
    assert parse_mount_options(["rbind", "ro"]) == MountOptions(flags=S.MS_BIND | S.MS_RDONLY, recursive_bind=True)
    assert parse_mount_options(["rbind", "bind"]).recursive_bind is False  # the last word wins
    assert parse_mount_options(["rbind"]).bind
    assert not parse_mount_options(["ro"]).bind


def test_last_word_wins() -> None:
    assert parse_mount_options(["ro", "rw"]) == MountOptions(clear=S.MS_RDONLY)
    assert parse_mount_options(["rw", "ro"]) == MountOptions(flags=S.MS_RDONLY)


def test_atime_modes_replace_each_other() -> None:
    assert parse_mount_options(["noatime", "strictatime"]).flags == S.MS_STRICTATIME
    assert parse_mount_options(["strictatime", "relatime", "nodiratime"]).flags == S.MS_RELATIME | S.MS_NODIRATIME


def test_the_default_spec_options() -> None:
    opts = parse_mount_options(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"])
    assert opts.flags == S.MS_NOSUID | S.MS_NOEXEC
    assert opts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    opts = parse_mount_options(["nosuid", "strictatime", "mode=755", "size=65536k"])
    assert opts == MountOptions(flags=S.MS_NOSUID | S.MS_STRICTATIME, data="mode=755,size=65536k")


@pytest.mark.parametrize("word", ["tmpcopyup", "idmap", "ridmap"])
def test_unsupported_words_are_refused(word: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_mount_options(["rbind", word])
    assert repr(word) in e.value.message
    assert "not supported" in e.value.message


@pytest.mark.parametrize("word", ["rro", "rnosuid", "rnoexec", "rnoatime"])
def test_recursive_attributes_are_refused(word: str) -> None:
    with pytest.raises(InvalidArgument, match="recursive mount attributes"):
        parse_mount_options([word])


words = st.lists(
    st.one_of(
        st.sampled_from(sorted(FLAG_WORDS)),
        st.sampled_from(sorted(PROPAGATION_WORDS)),
        st.sampled_from(["bind", "rbind"]),
        st.from_regex(r"[a-z]{1,6}=[0-9a-z]{1,4}", fullmatch=True),
    ),
    max_size=12,
)


@given(words)
def test_parse_invariants(options: list[str]) -> None:
    opts = parse_mount_options(options)
    assert opts.flags & opts.clear == 0
    assert (opts.data.split(",") if opts.data else []) == [w for w in options if "=" in w]
    assert opts.propagation == tuple(PROPAGATION_WORDS[w] for w in options if w in PROPAGATION_WORDS)
    assert bin(opts.flags & (S.MS_NOATIME | S.MS_RELATIME | S.MS_STRICTATIME)).count("1") <= 1


# --- remount flags ----------------------------------------------------------------------------


def test_remount_keeps_what_the_mount_has() -> None:
    current = S.MS_NOSUID | S.MS_NODEV | S.MS_RELATIME
    assert remount_flags(current, parse_mount_options(["ro"])) == current | S.MS_RDONLY


def test_remount_drops_what_the_options_clear() -> None:
    current = S.MS_RDONLY | S.MS_NOSUID | S.MS_RELATIME
    assert remount_flags(current, parse_mount_options(["rw", "suid"])) == S.MS_RELATIME


def test_remount_atime_word_replaces_the_mode() -> None:
    assert remount_flags(S.MS_RELATIME, parse_mount_options(["noatime"])) == S.MS_NOATIME
    assert remount_flags(S.MS_STRICTATIME, parse_mount_options(["ro"])) == S.MS_STRICTATIME | S.MS_RDONLY


def test_remount_keep_current_for_locked_mounts() -> None:
    current = S.MS_RDONLY | S.MS_NOSUID | S.MS_RELATIME
    opts = parse_mount_options(["rw", "noatime", "nodev"])
    assert remount_flags(current, opts, keep_current=True) == current | S.MS_NODEV


def test_statvfs_flags_match_mountinfo() -> None:
    """The per-mount options /proc/self/mountinfo lists are the flags statvfs_flags reports."""
    top: dict[str, list[str]] = {}  # mount point -> options of the mount seen there (the last one)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if "\\" not in fields[4]:
                top[fields[4]] = fields[5].split(",")
    checked = 0
    for mount_point, mount_options in top.items():
        try:
            flags = statvfs_flags(mount_point)
        except OSError:
            continue  # not reachable for us
        expected = parse_mount_options(mount_options).flags & PER_MOUNT_FLAGS
        if not expected & (S.MS_NOATIME | S.MS_RELATIME):
            expected |= S.MS_STRICTATIME  # mountinfo names no atime mode for strictatime
        assert flags == expected, (mount_point, mount_options)
        checked += 1
    assert checked > 0
