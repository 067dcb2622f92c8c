"""Docker's defaults for a container's OCI spec, each a named constant.

These are the values Docker 20.10 writes into a bundle's config.json when the user asks for
nothing else (checked field by field against the config.json of a real dockerd): the
capability set, the /proc and /sys paths it masks or makes read-only, the filesystems every
container gets, and the device cgroup rules. `ocispec` combines them with the user's flags;
nothing here depends on a flag.
"""

from typing import Any

# Docker's default capability set, in Docker's order (it is kept in the spec as written).
# As a mask in /proc/<pid>/status this is 0x00000000a80425fb.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# /proc and /sys entries that leak host information or control: bind-mounted over with an
# empty file (or a read-only empty tmpfs for a directory) by the runtime.
DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
)

# /proc entries that stay visible but become read-only.
DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# --init: where the init binary is bind-mounted (read-only) and run as PID 1, as Docker's docker-init.
INIT_DESTINATION = "/sbin/docker-init"

# The files lxcfs serves with the reader's cgroup limits, bind-mounted from its mount over the
# container's own (each one lxcfs provides; runc allows exactly these binds inside /proc).
LXCFS_FILES: tuple[str, ...] = (
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/sys/devices/system/cpu/online",
)

# The PATH a container gets when neither its image nor its config sets one.
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TTY_TERM_ENV = "TERM=xterm"

DEFAULT_SHM_SIZE = 64 * 1024 * 1024  # bytes, Docker's --shm-size default
DEFAULT_CPU_PERIOD = 100_000  # microseconds: the CFS period --cpus is expressed against
DEFAULT_CGROUP_PARENT = "/hull"  # Docker's is /docker

# The filesystems every container gets, before /dev/shm, the user's tmpfs mounts and the
# /etc files. The runtime creates the device nodes in /dev (null, zero, full, random,
# urandom, tty, ptmx) itself, as runc does, so the spec lists none.
DEFAULT_MOUNTS: tuple[dict[str, Any], ...] = (
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
        "destination": "/dev/pts",
        "type": "devpts",
        "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["ro", "nosuid", "noexec", "nodev"],
    },
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
)

SHM_DESTINATION = "/dev/shm"
SHM_OPTIONS: tuple[str, ...] = ("nosuid", "noexec", "nodev", "mode=1777")  # + size=<bytes>
HOST_SHM = "/dev/shm"  # what --ipc host shows at /dev/shm

# Options of the bind mounts of /etc/hostname, /etc/hosts and /etc/resolv.conf ("ro" is
# added when the root filesystem is read-only).
ETC_FILE_BIND_OPTIONS: tuple[str, ...] = ("rbind", "rprivate")

# What every --tmpfs mount gets before the user's own options (which may override them).
DEFAULT_TMPFS_OPTIONS: tuple[str, ...] = ("noexec", "nosuid", "nodev", "rprivate")

# The namespaces a container gets of its own, in Docker's order; host modes drop one.
DEFAULT_NAMESPACES: tuple[str, ...] = ("mount", "network", "uts", "pid", "ipc")

# linux.resources.devices: deny everything, then allow the nodes every container has; fuse
# (c 10:229) is denied explicitly. The runtime adds its own always-allowed rules (ptmx,
# /dev/pts/*, /dev/full) on top, as runc does.
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # /dev/zero
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # /dev/null
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # /dev/urandom
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # /dev/random
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # /dev/tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},  # /dev/console
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},  # /dev/fuse
)
PRIVILEGED_DEVICE_RULES: tuple[dict[str, Any], ...] = ({"allow": True, "access": "rwm"},)

# Host /dev subdirectories a privileged container does not get copies of: they are its own
# mounts (pts, shm, mqueue), links into /proc (fd), or container managers' private state.
HOST_DEVICE_SKIP_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})
HOST_DEVICE_SKIP_FILES = frozenset({"console"})  # the runtime binds the container's own console
