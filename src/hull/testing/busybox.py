"""A minimal root filesystem built from the host's busybox-static, for tests, benchmarks and the demo.

Layout of what `build_busybox_rootfs` makes:

    bin/busybox            a copy of the host's statically linked /bin/busybox
    bin/<applet>           -> busybox, one symlink per applet (`busybox --list`)
    sbin, usr/bin, usr/sbin  -> bin, so every applet is also where scripts look for it
    etc/passwd, group      root (0), user (1000), nobody (65534)
    etc/hostname, hosts
    dev proc sys run mnt tmp var/tmp root home/user   empty: mount points and homes

A static binary needs no shared libraries, so this is a complete userland with no download.
"""

import os
import shutil
import struct
import subprocess
from pathlib import Path

from hull.errors import Conflict, HullError

BUSYBOX = Path("/bin/busybox")
INSTALL_HINT = "install it with `apt-get install busybox-static` (or `make setup`)"

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """\
root:x:0:
tty:x:5:
users:x:100:
user:x:1000:
nogroup:x:65534:
"""
HOSTS = """\
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
"""
# Empty directories and their modes: mount points for the runtime, homes, scratch space.
DIRS = {
    "dev": 0o755, "proc": 0o555, "sys": 0o555, "run": 0o755, "mnt": 0o755, "etc": 0o755,
    "tmp": 0o1777, "var": 0o755, "var/tmp": 0o1777, "root": 0o700, "home": 0o755, "home/user": 0o755,
    "usr": 0o755,
}  # fmt: skip
PT_INTERP = 3


def elf_interpreter(path: Path) -> str | None:
    """The dynamic loader `path` asks for (its PT_INTERP), or None for a static executable.

    Raises HullError if `path` is not an ELF file.
    """
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 52 or head[:4] != b"\x7fELF":
            raise HullError(f"{path} is not an ELF executable")
        end = "<" if head[5] == 1 else ">"
        if head[4] == 2:  # ELFCLASS64
            (phoff,) = struct.unpack_from(end + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
            ph_fmt, ph_at = end + "QQQQ", 8  # p_offset, p_vaddr, p_paddr, p_filesz after p_type, p_flags
        else:
            (phoff,) = struct.unpack_from(end + "I", head, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
            ph_fmt, ph_at = end + "IIII", 4  # the same fields after p_type
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        for i in range(phnum):
            entry = table[i * phentsize : (i + 1) * phentsize]
            if struct.unpack_from(end + "I", entry, 0)[0] == PT_INTERP:
                p_offset, _, _, p_filesz = struct.unpack_from(ph_fmt, entry, ph_at)
                f.seek(p_offset)
                return f.read(p_filesz).rstrip(b"\0").decode(errors="replace") or "?"
    return None


def static_busybox(path: Path = BUSYBOX) -> Path:
    """`path` if it is a statically linked busybox, else a HullError saying how to get one."""
    if not path.is_file():
        raise HullError(f"busybox-static is not installed ({path} not found): {INSTALL_HINT}")
    interp = elf_interpreter(path)
    if interp is not None:
        # Debian's dynamic `busybox` package also installs /bin/busybox; it cannot run in an empty rootfs.
        raise HullError(f"{path} is dynamically linked (needs {interp}), not busybox-static: {INSTALL_HINT}")
    return path


def applets(busybox: Path = BUSYBOX) -> list[str]:
    """The applet names `busybox --list` reports."""
    done = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=False)
    names = [n for n in done.stdout.split() if n and "/" not in n]
    if done.returncode != 0 or not names:
        raise HullError(f"`{busybox} --list` failed (status {done.returncode}): {done.stderr.strip()}")
    return names


def build_busybox_rootfs(dest: Path, busybox: Path = BUSYBOX) -> Path:
    """Build the busybox root filesystem into `dest` (created; must be absent or empty) and return it."""
    busybox = static_busybox(busybox)
    names = applets(busybox)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise Conflict(f"cannot build a rootfs into {dest}: the directory is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    for rel, mode in DIRS.items():
        d = dest / rel
        d.mkdir(exist_ok=True)
        d.chmod(mode)  # explicit chmod: mkdir's mode is cut by the umask, and sticky bits need it anyway
    bindir = dest / "bin"
    bindir.mkdir(mode=0o755)
    shutil.copyfile(busybox, bindir / "busybox")
    (bindir / "busybox").chmod(0o755)
    for name in names:
        if name != "busybox":
            os.symlink("busybox", bindir / name)
    os.symlink("bin", dest / "sbin")
    os.symlink("../bin", dest / "usr/bin")
    os.symlink("../bin", dest / "usr/sbin")
    etc = dest / "etc"
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)
    (etc / "hostname").write_text("hull\n")
    (etc / "hosts").write_text(HOSTS)
    if os.geteuid() == 0:
        os.chown(dest / "home/user", 1000, 1000)
    return dest
