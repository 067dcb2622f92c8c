"""The container's root filesystem: from a directory on the host to the `/` its processes see.

Vocabulary: the *rootfs* is the spec's `root.path`, a host directory that is made a mount
point of its own; a *destination* is a path as the container sees it (`/proc`), resolved
into the rootfs by securejoin, so that symlinks in the image cannot lead a mount out of it;
*propagation* decides whether a mount made in one mount namespace appears in another
(mount_namespaces(7)); the default here, as in runc, is rslave: host mounts still reach the
container, nothing the container mounts reaches the host.

The init process, already alone in its new mount namespace (maybe also a user namespace),
calls, in this order:

1. `prepare_rootfs(spec, cgroup_paths, in_userns)`, while the host's tree is still visible:
   propagation of `/`, the rootfs bind-mounted onto itself, the spec's mounts in order, then
   the device nodes (the defaults and `linux.devices`) and /dev symlinks, when /dev is the
   spec's own tmpfs: in any other /dev they would land in the image or on the host.
2. `bind_console(rootfs, slave_path)`, only with a terminal: the pty slave on /dev/console.
3. `pivot_root_into(rootfs, no_pivot)`: the rootfs becomes `/`, the host's tree goes away.
4. `finalize_rootfs(spec)`, from inside: sysctls, readonlyPaths, maskedPaths, then /dev and
   `/` read-only if asked. Read-only comes last because everything before it writes.

Every failure is a HullError naming what was being done (`mount proc on /proc: Operation not
permitted`). Nothing is undone on failure: all of it lives in the init's mount namespace and
vanishes with it. `write_sysctls` and `check_sysctls` are also usable on their own.
"""

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from hull.errors import HullError, InvalidArgument
from hull.runtime import syscalls
from hull.runtime.cgroups.hierarchy import UNIFIED
from hull.runtime.devices import DEFAULT_DEV_SYMLINKS, DEFAULT_DEVICES, DeviceNode
from hull.runtime.mounts import (
    PER_MOUNT_FLAGS,
    PROPAGATION_WORDS,
    MountOptions,
    parse_mount_options,
    remount_flags,
    statvfs_flags,
)
from hull.runtime.securejoin import resolve_in_root
from hull.runtime.spec import Linux, Mount, Spec
from hull.runtime.syscalls import (
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
)

DEFAULT_ROOT_PROPAGATION = MS_SLAVE | MS_REC

# Paths below /proc a mount may cover: the files lxcfs serves (the seeds' fix for `top`
# showing the host). Anything else there could hide a masked or read-only path.
PROC_MOUNT_ALLOWED = frozenset(
    {
        "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
        "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
        "/proc/sys/kernel/ns_last_pid",
    }
)  # fmt: skip

_NODE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}

# Sysctls that live in a namespace, by the spec's namespace type: only these may be set,
# since writing any other changes the host.
_IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
    }
)  # fmt: skip
_UTS_SYSCTLS = frozenset({"kernel.hostname", "kernel.domainname"})


def _reason(e: OSError) -> str:
    """The kernel's word for an error (syscalls' messages also name the call, which we say better)."""
    return os.strerror(e.errno) if e.errno else str(e)


# --- 1. before pivot_root ---------------------------------------------------------------------


def prepare_rootfs(spec: Spec, cgroup_paths: dict[str, str], in_userns: bool) -> None:
    """Build the container's tree under the rootfs (step 1 of the module docstring).

    `cgroup_paths` maps hierarchy names to the container's cgroup directory in each (the
    cgroup manager's `paths()`), for a `cgroup` mount; `in_userns` says the caller is in a
    new user namespace, where mknod is refused and mount flags may be locked.
    """
    root = os.path.realpath(spec.root_path)
    _check_reachable(root)
    propagation = spec.linux.rootfs_propagation
    _set_propagation("/", PROPAGATION_WORDS[propagation] if propagation else DEFAULT_ROOT_PROPAGATION)
    _make_parent_mount_private(root)
    _bind_onto_itself(root)
    for m in spec.mounts:
        _mount_entry(root, m, cgroup_paths, in_userns)
    dev = _dev_mount(spec)
    if dev is not None and dev.type == "tmpfs" and not parse_mount_options(dev.options).bind:
        _populate_dev(root, spec.linux.devices, in_userns)


def _check_reachable(root: str) -> None:
    """Say it plainly when the rootfs can't be reached: in a user namespace its root user is
    some unprivileged host uid, which needs search permission on every directory above it."""
    try:
        os.stat(root)
    except OSError as e:
        hint = " (in a user namespace, every directory above it must be searchable by the mapped root)"
        raise HullError(f"rootfs {root}: {_reason(e)}{hint if e.errno == errno.EACCES else ''}") from None


def _set_propagation(path: str, flags: int) -> None:
    try:
        syscalls.mount(None, path, None, flags)
    except OSError as e:
        raise HullError(f"set mount propagation of {path}: {_reason(e)}") from None


def _make_parent_mount_private(root: str) -> None:
    """Make the mount holding `root` private.

    pivot_root(2) refuses a new root whose parent mount is shared, and a shared parent would
    also pass the rootfs bind to its peers. The rslave default leaves nothing shared, but a
    spec's rootfsPropagation (shared, or a non-recursive slave) may. A propagation change
    on a path that is not a mount point is EINVAL, so walk up to the first that is.
    """
    path = root
    while True:
        try:
            syscalls.mount(None, path, None, MS_PRIVATE)
            return
        except OSError as e:
            if e.errno != errno.EINVAL or path == "/":
                raise HullError(f"make the mount holding the rootfs {root} private: {_reason(e)}") from None
        path = os.path.dirname(path)


def _bind_onto_itself(root: str) -> None:
    """pivot_root(2) needs the new root to be a mount point; a bind onto itself makes it one."""
    try:
        syscalls.mount(root, root, None, MS_BIND | MS_REC)
    except OSError as e:
        raise HullError(f"bind-mount the rootfs {root} onto itself: {_reason(e)}") from None


def _dev_mount(spec: Spec) -> Mount | None:
    """The spec's mount at /dev (the last one, which covers any before it)."""
    found = None
    for m in spec.mounts:
        if os.path.normpath(m.destination) == "/dev":
            found = m
    return found


def _mount_entry(root: str, m: Mount, cgroup_paths: dict[str, str], in_userns: bool) -> None:
    """Mount one of the spec's mounts; any failure is a HullError naming it."""
    what = f"mount {m.source or m.type} on {m.destination}"
    try:
        options = parse_mount_options(m.options)
    except HullError as e:
        raise type(e)(f"{what}: {e.message}") from None
    if m.type == "bind" and not options.bind:
        options = replace(options, flags=options.flags | MS_BIND)
    if os.path.normpath(m.destination) == "/dev":
        # Read-only waits for finalize_rootfs: the device nodes are yet to be made in it.
        options = replace(options, flags=options.flags & ~MS_RDONLY)
    try:
        dest = resolve_in_root(root, m.destination)
        _check_proc_destination(root, dest, m.type)
        if m.type == "cgroup":
            _mount_cgroup(root, dest, options, cgroup_paths, in_userns)
        elif options.bind:
            if options.data:
                raise InvalidArgument(f"unknown mount option(s) for a bind mount: {options.data}")
            _mount_bind(root, dest, m.source, options, in_userns)
        else:
            _mount_filesystem(root, dest, m, options, in_userns)
    except HullError as e:
        raise type(e)(f"{what}: {e.message}") from None
    except OSError as e:
        reason = _reason(e)
        if e.errno == errno.EINVAL and options.data:
            reason += f" (options {options.data!r})"
        raise HullError(f"{what}: {reason}") from None


def _check_proc_destination(root: str, dest: str, fstype: str) -> None:
    """Refuse a mount that would cover part of /proc (and so escape maskedPaths and readonlyPaths)."""
    inside = "/" + os.path.relpath(dest, root)
    if inside == "/proc" and fstype != "proc":
        raise InvalidArgument("only a proc filesystem may be mounted at /proc")
    if inside.startswith("/proc/") and inside not in PROC_MOUNT_ALLOWED:
        raise InvalidArgument(f"{inside} is inside /proc, where a mount could hide masked or read-only paths")


@contextmanager
def _target(root: str, path: str) -> Iterator[str]:
    """`path` (resolved into `root`) as the /proc/self/fd link of a descriptor checked to be there.

    resolve_in_root reads the tree once; a process that can write it (another container
    sharing a volume) could swap a component for a symlink before mount(2) walks the path
    again. Mounting on the descriptor's magic link uses the file actually opened, and the
    check makes sure that is the file resolved. Reopen for each call: a descriptor taken
    before a mount refers to the covered directory, not to the new mount on top of it.
    """
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        link = f"/proc/self/fd/{fd}"
        if os.readlink(link) != path or stat.S_ISLNK(os.fstat(fd).st_mode):
            raise HullError(f"{path} changed while it was being mounted on (a symlink swapped in?)")
        yield link
    finally:
        os.close(fd)


def _make_mountpoint(path: str, directory: bool) -> None:
    """Create what a mount needs at `path`, a directory or an empty file; keep whatever is there."""
    if os.path.lexists(path):
        return
    os.makedirs(path if directory else os.path.dirname(path), 0o755, exist_ok=True)
    if not directory:
        os.close(os.open(path, os.O_CREAT | os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))


def _mount_filesystem(root: str, dest: str, m: Mount, options: MountOptions, in_userns: bool) -> None:
    _make_mountpoint(dest, directory=True)
    try:
        with _target(root, dest) as target:
            syscalls.mount(m.source or m.type, target, m.type or None, options.flags, options.data or None)
    except PermissionError:
        if not (in_userns and m.type == "sysfs"):
            raise
        # Without its own network namespace a user namespace may not mount sysfs; show the
        # host's instead, with the same flags (runc does the same for rootless containers).
        _mount_bind(root, dest, "/sys", replace(options, flags=options.flags | MS_BIND, recursive_bind=True), in_userns)
        return
    _apply_propagation(root, dest, options.propagation)


def _mount_bind(root: str, dest: str, source: str, options: MountOptions, in_userns: bool) -> None:
    """Bind `source` (a host path) on `dest`, then remount for the per-mount flags, then propagation.

    A relative source is taken from the current directory, which for a runtime is the bundle.
    """
    source = os.path.abspath(source)
    try:
        is_dir = stat.S_ISDIR(os.stat(source).st_mode)
    except FileNotFoundError:
        raise HullError(f"bind source {source} does not exist") from None
    _make_mountpoint(dest, is_dir)
    with _target(root, dest) as target:
        syscalls.mount(source, target, None, MS_BIND | (MS_REC if options.recursive_bind else 0))
    if (options.flags | options.clear) & PER_MOUNT_FLAGS:
        _bind_remount(root, dest, options, in_userns)
    _apply_propagation(root, dest, options.propagation)


def _bind_remount(root: str, dest: str, options: MountOptions, in_userns: bool) -> None:
    """Give the bind mount at `dest` the per-mount flags of `options`, keeping what it has.

    The flags come from statvfs because a remount sets all of them at once. In a user
    namespace clearing a flag the mount inherited (nosuid from the host, say) is EPERM:
    then retry keeping every flag it has.
    """
    with _target(root, dest) as target:
        current = statvfs_flags(target)
        try:
            syscalls.mount(None, target, None, MS_BIND | MS_REMOUNT | remount_flags(current, options))
        except PermissionError:
            if not in_userns:
                raise
            keep = remount_flags(current, options, keep_current=True)
            syscalls.mount(None, target, None, MS_BIND | MS_REMOUNT | keep)


def _apply_propagation(root: str, dest: str, propagation: tuple[int, ...]) -> None:
    for flags in propagation:
        with _target(root, dest) as target:
            syscalls.mount(None, target, None, flags)


def _cgroup_subdir(hierarchy: str) -> str:
    """Where a hierarchy appears under /sys/fs/cgroup: `cpu,cpuacct`, `systemd` (name=systemd), `unified`."""
    if hierarchy == UNIFIED:
        return "unified"
    return hierarchy.removeprefix("name=")


def _mount_cgroup(root: str, dest: str, options: MountOptions, cgroup_paths: dict[str, str], in_userns: bool) -> None:
    """Show the container its own cgroups at `dest` (/sys/fs/cgroup), never the host's tree.

    On a cgroup2-only host that is a bind of the container's directory. Otherwise it is a
    tmpfs holding one bind per hierarchy, named as the host names its mount points, plus a
    symlink per co-mounted controller (cpu -> cpu,cpuacct); read-only after it is filled if
    the mount says ro. The binds are the container's own directories, not a new cgroup
    mount, so this needs no cgroup namespace.
    """
    binds = replace(options, flags=options.flags | MS_BIND, recursive_bind=True, propagation=())
    if set(cgroup_paths) == {UNIFIED}:
        _mount_bind(root, dest, cgroup_paths[UNIFIED], binds, in_userns)
        _apply_propagation(root, dest, options.propagation)
        return
    _make_mountpoint(dest, directory=True)
    tmpfs_flags = (options.flags & PER_MOUNT_FLAGS & ~MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC
    with _target(root, dest) as target:
        syscalls.mount("tmpfs", target, "tmpfs", tmpfs_flags, "mode=755")
    for hierarchy, directory in cgroup_paths.items():
        subdir = _cgroup_subdir(hierarchy)
        _mount_bind(root, os.path.join(dest, subdir), directory, binds, in_userns)
        for controller in subdir.split(","):
            if controller != subdir:
                os.symlink(subdir, os.path.join(dest, controller))
    if options.flags & MS_RDONLY:
        _bind_remount(root, dest, MountOptions(flags=MS_RDONLY), in_userns)
    _apply_propagation(root, dest, options.propagation)


def _populate_dev(root: str, devices: list[DeviceNode], in_userns: bool) -> None:
    """The default device nodes, the spec's own (which win on the same path) and the /dev symlinks."""
    nodes = {d.path: d for d in DEFAULT_DEVICES} | {d.path: d for d in devices}
    for node in nodes.values():
        path = resolve_in_root(root, node.path)
        if os.path.lexists(path):
            continue  # a spec mount put something there already
        try:
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            if in_userns:
                _bind_device(root, path, node)
            else:
                _mknod(path, node)
        except OSError as e:
            raise HullError(f"create device {node.path}: {_reason(e)}") from None
    links = list(DEFAULT_DEV_SYMLINKS)
    if os.path.exists("/proc/kcore"):  # runc makes it too; maskedPaths usually hides its target
        links.append(("/proc/kcore", "/dev/core"))
    for target, link in links:
        try:
            os.symlink(target, resolve_in_root(root, link))
        except FileExistsError:
            pass  # a spec mount or device put something there already
        except OSError as e:
            raise HullError(f"create symlink {link} -> {target}: {_reason(e)}") from None


def _mknod(path: str, node: DeviceNode) -> None:
    device = os.makedev(node.major, node.minor) if node.type != "p" else 0
    os.mknod(path, _NODE_TYPES[node.type] | 0o600, device)
    os.chown(path, node.uid, node.gid)
    os.chmod(path, node.file_mode)  # mknod's mode is cut by the umask


def _bind_device(root: str, path: str, node: DeviceNode) -> None:
    """In a user namespace mknod is refused: bind the host's node onto an empty file instead."""
    if not os.path.exists(node.path):
        raise OSError(errno.ENOENT, f"no {node.path} on the host to bind (mknod is not allowed in a user namespace)")
    _make_mountpoint(path, directory=False)
    with _target(root, path) as target:
        syscalls.mount(node.path, target, None, MS_BIND)


# --- 2. the terminal --------------------------------------------------------------------------


def bind_console(rootfs: str, slave_path: str) -> None:
    """Bind-mount the pty slave `slave_path` on the rootfs's /dev/console (created if missing)."""
    root = os.path.realpath(rootfs)
    try:
        dest = resolve_in_root(root, "/dev/console")
        _make_mountpoint(dest, directory=False)
        with _target(root, dest) as target:
            syscalls.mount(slave_path, target, None, MS_BIND)
    except OSError as e:
        raise HullError(f"mount {slave_path} on /dev/console: {_reason(e)}") from None


# --- 3. the switch ----------------------------------------------------------------------------


def pivot_root_into(rootfs: str, no_pivot: bool = False) -> None:
    """Make `rootfs` (a mount point: prepare_rootfs made it one) the root of this mount namespace.

    pivot_root(".", ".") needs no directory for the old root inside the new one (which may
    be read-only): it stacks the old root on top of the new one, at the same place. From a
    descriptor of the old root we then reach that stacked mount, make it (and everything
    below) a slave so that unmounting it cannot propagate to the host's mounts it shares a
    peer group with, and detach it. What is left at `/` is the rootfs, and the host's tree
    is no longer reachable from this namespace at all.

    `no_pivot` is for roots where pivot_root(2) fails (a ramfs initramfs): the rootfs is
    moved onto `/` and chrooted into. The host's tree then stays in the namespace, unreachable
    by path; the host's proc and sysfs mounts are detached first, since the kernel lets a
    container mount a new proc or sysfs only when no fully visible one is in the namespace
    and would otherwise see them.
    """
    root = os.path.realpath(rootfs)
    if no_pivot:
        _move_root(root)
        return
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        syscalls.pivot_root(".", ".")
        os.fchdir(old)
        syscalls.mount(None, ".", None, MS_SLAVE | MS_REC)
        syscalls.umount2(".", MNT_DETACH)
    except OSError as e:
        raise HullError(f"pivot_root into {root}: {_reason(e)}") from None
    finally:
        os.close(old)
        os.close(new)
    os.chdir("/")


def _move_root(root: str) -> None:
    try:
        _detach_host_proc_and_sys(root)
        os.chdir(root)
        syscalls.mount(".", "/", None, MS_MOVE)
        os.chroot(".")
    except OSError as e:
        raise HullError(f"move the rootfs {root} onto / (--no-pivot): {_reason(e)}") from None
    os.chdir("/")


def _mountinfo_unescape(field: str) -> str:
    """Undo the kernel's octal escapes (`\\040` for a space) in a /proc/self/mountinfo field."""
    parts = field.split("\\")
    return parts[0] + "".join(chr(int(p[:3], 8)) + p[3:] for p in parts[1:])


def _detach_host_proc_and_sys(root: str) -> None:
    """Detach every full proc and sysfs mount outside `root` (see pivot_root_into)."""
    targets = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            mount_point = _mountinfo_unescape(fields[4])
            if fstype in ("proc", "sysfs") and fields[3] == "/" and not (mount_point + "/").startswith(root + "/"):
                targets.append(mount_point)
    for path in targets:
        try:
            syscalls.mount(None, path, None, MS_SLAVE | MS_REC)  # so the unmount stays here
        except FileNotFoundError:
            continue  # under a mount detached already
        try:
            syscalls.umount2(path, MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM):
                raise
            # Locked in a user namespace: cover it instead.
            syscalls.mount("tmpfs", path, "tmpfs", 0)


# --- 4. after pivot_root ----------------------------------------------------------------------


def finalize_rootfs(spec: Spec) -> None:
    """Step 4 of the module docstring, inside the new root (after pivot_root_into)."""
    if spec.linux.rootfs_propagation:
        # `/` is now the rootfs bind, made while the old `/` had this propagation and its
        # parent was private; give it the asked propagation itself.
        _set_propagation("/", PROPAGATION_WORDS[spec.linux.rootfs_propagation])
    check_sysctls(spec.linux.sysctl, spec.linux)
    write_sysctls(spec.linux.sysctl)
    for path in spec.linux.readonly_paths:
        _make_readonly(path)
    for path in spec.linux.masked_paths:
        _mask(path)
    dev = _dev_mount(spec)
    if dev is not None and parse_mount_options(dev.options).flags & MS_RDONLY:
        _remount_readonly("/dev")
    if spec.root_readonly:
        _remount_readonly("/")


def _remount_readonly(path: str, extra: int = 0) -> None:
    """Make the mount at `path` read-only (plus `extra` flags), keeping its other flags.

    MS_BIND makes the remount change this mount point only: without it the remount of `/`
    would make the filesystem itself read-only, the host's copy of it included.
    """
    try:
        flags = statvfs_flags(path) | MS_RDONLY | extra
        syscalls.mount(None, path, None, MS_BIND | MS_REMOUNT | flags)
    except OSError as e:
        raise HullError(f"remount {path} read-only: {_reason(e)}") from None


def _make_readonly(path: str) -> None:
    """A readonlyPaths entry: bind it onto itself, then remount that ro, nosuid, nodev, noexec."""
    try:
        syscalls.mount(path, path, None, MS_BIND | MS_REC)
    except FileNotFoundError:
        return
    except OSError as e:
        raise HullError(f"make {path} read-only: {_reason(e)}") from None
    _remount_readonly(path, MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _mask(path: str) -> None:
    """A maskedPaths entry: an empty read-only tmpfs over a directory, /dev/null over anything else."""
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    try:
        if is_dir:
            syscalls.mount("tmpfs", path, "tmpfs", MS_RDONLY)
        else:
            syscalls.mount("/dev/null", path, None, MS_BIND)
    except OSError as e:
        raise HullError(f"mask {path}: {_reason(e)}") from None


def _sysctl_path(key: str) -> str:
    """/proc/sys/<key>: dots separate the levels unless the key uses slashes (a dot in a name: eth0.100)."""
    rel = key if "/" in key else key.replace(".", "/")
    if any(part in ("", ".", "..") for part in rel.split("/")):
        raise InvalidArgument(f"sysctl {key!r}: not a sysctl name")
    return "/proc/sys/" + rel


def check_sysctls(sysctl: dict[str, str], linux: Linux) -> None:
    """Refuse a sysctl that is not in a namespace of the container's own (it would change the host).

    Namespaced are the IPC ones (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*), the
    network ones (net.*) and the hostname/domainname ones (uts), each only when the spec
    gives the container that namespace (new, or joined by path).
    """
    for key in sysctl:
        name = key.replace("/", ".")
        if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
            ns_type = "ipc"
        elif name.startswith("net."):
            ns_type = "network"
        elif name in _UTS_SYSCTLS:
            ns_type = "uts"
        else:
            raise InvalidArgument(f"sysctl {key!r} is not in a separate kernel namespace")
        if linux.namespace(ns_type) is None:
            raise InvalidArgument(f"sysctl {key!r} needs the container to have its own {ns_type} namespace")


def write_sysctls(sysctl: dict[str, str]) -> None:
    """Write each value to /proc/sys/<key>; an unknown key or a refused value is a HullError naming it."""
    for key, value in sysctl.items():
        path = _sysctl_path(key)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise HullError(f"sysctl {key!r}: no such sysctl ({path} does not exist)") from None
        except OSError as e:
            raise HullError(f"sysctl {key!r}: open {path}: {_reason(e)}") from None
        try:
            os.write(fd, value.encode())
        except OSError as e:
            raise HullError(f"sysctl {key!r}: write {value!r} to {path}: {_reason(e)}") from None
        finally:
            os.close(fd)
