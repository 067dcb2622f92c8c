"""sysinfo(2) as a limited container should see it, answered by the shim through seccomp.

lxcfs makes /proc/meminfo tell the container's truth, but `free` (busybox's, and others)
takes its totals from the sysinfo system call, which no file can fix. So when the daemon
asks for it, the container's seccomp filter hands its sysinfo calls to a listener
(SCMP_ACT_NOTIFY; the runtime sends the listener's fd to the spec's listenerPath, a socket
of this shim), and the shim answers each one: it writes a struct sysinfo whose memory and
swap come from the container's memory cgroup, whose uptime is the container's and whose
process count is its pids cgroup's, into the caller's memory, then lets the call return 0.
With no memory limit the call runs as usual (SECCOMP_USER_NOTIF_FLAG_CONTINUE).

Lean on purpose: the shim's re-exec'd monitor imports this (fcntl and struct only). The
struct layouts are those of a 64-bit Linux (x86_64, aarch64); the daemon asks for this only there.
"""

import errno
import fcntl
import os
import select
import socket
import struct

# linux/seccomp.h: _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, struct seccomp_notif_resp),
# _IOW('!', 2, __u64).
NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101
NOTIF_ID_VALID = 0x40082102
USER_NOTIF_FLAG_CONTINUE = 1
# struct seccomp_notif: id, pid, flags, then struct seccomp_data: nr, arch, instruction pointer, args[6].
_NOTIF = struct.Struct("=QIIiIQ6Q")
_RESP = struct.Struct("=QqiI")  # id, val, error, flags
# struct sysinfo: uptime, loads[3], totalram, freeram, sharedram, bufferram, totalswap, freeswap,
# procs, pad, totalhigh, freehigh, mem_unit, and the padding of a 64-bit long.
_SYSINFO = struct.Struct("=q3Q6QHH4xQQI4x")
SI_LOAD_SHIFT = 16
UNLIMITED = 1 << 62  # memory cgroup v1 writes "no limit" as a page-rounded 2**63-1

# The cgroup files read (v1 names, then v2).
V1_LIMIT, V1_USAGE = "memory.limit_in_bytes", "memory.usage_in_bytes"
V1_MEMSW_LIMIT, V1_MEMSW_USAGE = "memory.memsw.limit_in_bytes", "memory.memsw.usage_in_bytes"
V2_MAX, V2_CURRENT = "memory.max", "memory.current"
V2_SWAP_MAX, V2_SWAP_CURRENT = "memory.swap.max", "memory.swap.current"
MEMORY_STAT, PIDS_CURRENT = "memory.stat", "pids.current"


def supported() -> bool:
    """Whether this host's struct layouts are the ones packed here (64-bit Linux)."""
    return os.uname().machine in ("x86_64", "aarch64")


class Cgroups:
    """Where the container's memory and pids controllers are (directories; "" if absent)."""

    def __init__(self, memory: str, pids: str, v2: bool) -> None:
        self.memory, self.pids, self.v2 = memory, pids, v2

    def to_json(self) -> dict[str, object]:
        return {"memory": self.memory, "pids": self.pids, "v2": self.v2}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> "Cgroups":
        return cls(str(d["memory"]), str(d["pids"]), bool(d["v2"]))


def receive_listener(conn: socket.socket) -> int | None:
    """The listener fd that the runtime sends (with the process state, which we don't need)."""
    _, fds, _, _ = socket.recv_fds(conn, 65536, 1)
    return fds[0] if fds else None


def answer(listener: int, cgroups: Cgroups, init_pid: int) -> bool:
    """Answer one pending notification; False once the listener is dead (its processes are gone)."""
    if _hung_up(listener):
        return False
    buf = bytearray(_NOTIF.size)  # the kernel wants it zeroed
    try:
        fcntl.ioctl(listener, NOTIF_RECV, buf, True)
    except InterruptedError:
        return True
    except OSError as e:
        # ENOENT: the caller died or was interrupted before we asked. Anything else: the
        # filter's processes are gone (or this listener is unusable): stop watching it.
        return e.errno == errno.ENOENT
    notif_id, pid, _flags, _nr, _arch, _ip, buf_addr, *_ = _NOTIF.unpack(buf)
    error, flags = 0, 0
    try:
        info = _sysinfo(cgroups, init_pid)
    except (OSError, ValueError):  # unreadable cgroup or /proc files: the host's answer, not a hang
        info = None
    if info is None:
        flags = USER_NOTIF_FLAG_CONTINUE
    else:
        error = _write_to(pid, listener, notif_id, buf_addr, info)
    try:
        fcntl.ioctl(listener, NOTIF_SEND, bytearray(_RESP.pack(notif_id, 0, error, flags)), True)
    except OSError as e:
        return e.errno == errno.ENOENT  # the caller is gone: nothing to answer
    return True


def _hung_up(listener: int) -> bool:
    """No process uses the filter any more and nothing is pending: the listener only says POLLHUP
    from now on (and would wake a poll loop for ever)."""
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    events = poller.poll(0)
    mask = events[0][1] if events else 0
    return bool(mask & select.POLLHUP) and not mask & select.POLLIN


def _write_to(pid: int, listener: int, notif_id: int, address: int, data: bytes) -> int:
    """Write into the caller's memory; 0 or the negative errno its call should fail with."""
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return -errno.ENOSYS
    try:
        # The pid may have been reused since the notification: only write if it is still the caller.
        fcntl.ioctl(listener, NOTIF_ID_VALID, bytearray(struct.pack("=Q", notif_id)), True)
        os.pwrite(fd, data, address)
    except OSError:
        return -errno.EFAULT
    finally:
        os.close(fd)
    return 0


def _sysinfo(cgroups: Cgroups, init_pid: int) -> bytes | None:
    """The container's struct sysinfo, or None when it has no memory limit (the host's is right)."""
    if not cgroups.memory:
        return None
    host = _meminfo()
    mem_total = host.get("MemTotal", 0)
    if cgroups.v2:
        limit, usage = _number(cgroups.memory, V2_MAX), _number(cgroups.memory, V2_CURRENT)
        swap_limit, swap_used = _number(cgroups.memory, V2_SWAP_MAX), _number(cgroups.memory, V2_SWAP_CURRENT)
        shmem_key = "shmem"
    else:
        limit, usage = _number(cgroups.memory, V1_LIMIT), _number(cgroups.memory, V1_USAGE)
        memsw_limit, memsw_usage = _number(cgroups.memory, V1_MEMSW_LIMIT), _number(cgroups.memory, V1_MEMSW_USAGE)
        swap_limit = memsw_limit - limit if memsw_limit < UNLIMITED and limit < UNLIMITED else UNLIMITED
        swap_used = max(0, memsw_usage - usage)
        shmem_key = "total_shmem"
    if not limit or limit >= min(UNLIMITED, mem_total or UNLIMITED):  # 0: unreadable
        return None
    swap_total = min(max(0, swap_limit), host.get("SwapTotal", 0))
    loads = _loads()
    return _SYSINFO.pack(
        _uptime(init_pid), *loads,
        limit, max(0, limit - usage), _stat(cgroups.memory, shmem_key), 0,
        swap_total, max(0, swap_total - swap_used),
        min(0xFFFF, _number(cgroups.pids, PIDS_CURRENT) if cgroups.pids else 0),
        0, 0, 0, 1,  # pad, totalhigh, freehigh, mem_unit
    )  # fmt: skip


def _number(directory: str, name: str) -> int:
    try:
        with open(os.path.join(directory, name), "rb") as f:
            text = f.read().strip()
    except OSError:
        return 0
    return UNLIMITED if text == b"max" else int(text or 0)


def _stat(directory: str, key: str) -> int:
    try:
        with open(os.path.join(directory, MEMORY_STAT), "rb") as f:
            for line in f:
                name, _, value = line.partition(b" ")
                if name.decode() == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo", "rb") as f:
        for line in f:
            name, _, rest = line.partition(b":")
            if name in (b"MemTotal", b"SwapTotal"):
                out[name.decode()] = int(rest.split()[0]) * 1024
    return out


def _loads() -> list[int]:
    with open("/proc/loadavg", "rb") as f:
        return [int(float(v) * (1 << SI_LOAD_SHIFT)) for v in f.read().split()[:3]]


def _uptime(init_pid: int) -> int:
    """Seconds since the container's init started (what lxcfs's /proc/uptime says too)."""
    with open("/proc/uptime", "rb") as f:
        host_uptime = float(f.read().split()[0])
    try:
        with open(f"/proc/{init_pid}/stat", "rb") as f:
            started_ticks = int(f.read().rpartition(b")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return int(host_uptime)
    return max(0, int(host_uptime - started_ticks / os.sysconf("SC_CLK_TCK")))
