"""The child side of `create` and `exec`: from fork to execve of the user's process.

A container's init takes two stages, because a new pid namespace only applies to children of
the process that unshared it:

* stage one (a child of the runtime, still in the host's pid namespace): joins the cgroup,
  joins namespaces given by path, creates the user namespace (the runtime writes its id
  maps), unshares the other new namespaces, forks stage two, reports its pid and exits;
* stage two (PID 1 of the new pid namespace, or the exec'd process): builds the root
  filesystem and pivots into it (init only), sets up the terminal, the process's limits and
  identity, reports `ready`, waits on exec.fifo until `start` (init only), installs the
  seccomp program the runtime compiled (sent with the runtime's `ok`) last and execs.

An exec's child needs one: the runtime joins the container's pid namespace for its children
before it forks, so the child is born there; it joins the cgroup and the other namespaces
as stage one does and goes on as stage two, with no fork and no `pid` to report (a fork and
a round trip less per `docker exec`).

There is no runtime process left once the user process runs: stage two *becomes* it. Errors
travel to the runtime over the sync channel and end the child; they never return.
"""

import base64
import json
import os
import resource
import signal
import socket
from dataclasses import dataclass
from typing import NoReturn

from hull.runtime import console, namespaces, rootfs, sync, syscalls
from hull.runtime.capabilities import finalize_process_identity
from hull.runtime.cgroups import CgroupManager
from hull.runtime.hooks import run_hooks
from hull.runtime.spec import Process, Spec

DEFAULT_UMASK = 0o022


@dataclass
class ChildPlan:
    """What the forked child needs; built by the runtime before the fork."""

    spec: Spec
    process: Process
    cgroup: CgroupManager
    sync: socket.socket
    console: socket.socket | None
    is_exec: bool = False
    join: dict[str, str] | None = None  # exec: namespace type -> /proc/<init>/ns/<name>
    exec_fifo: int = -1  # create: an O_PATH descriptor of the state dir's exec.fifo
    no_pivot: bool = False
    preserve_fds: int = 0
    # Stage two's copy of the seccomp program the runtime compiled (no libseccomp in the child:
    # the container's root may have no such library, and compiling is the runtime's time).
    seccomp: bytes | None = None
    # A filter with SCMP_ACT_NOTIFY rules: connected to the spec's listenerPath by the runtime
    # (while the path is still in reach), and what to send there with the listener's fd.
    seccomp_listener: socket.socket | None = None
    listener_state: dict[str, object] | None = None
    born_in_cgroup2: bool = False  # stage one came from clone3 into the cgroup2 directory


def child_main(plan: ChildPlan) -> NoReturn:
    """Entry point right after fork; never returns."""
    try:
        _stage_one(plan)  # returns only in stage two
        _stage_two(plan)
    except BaseException as e:  # everything must reach the runtime, then the child ends
        msg = getattr(e, "message", None) or (f"{e.strerror}" if isinstance(e, OSError) and e.strerror else str(e))
        if isinstance(e, OSError) and e.filename and str(e.filename) not in msg:
            msg = f"{msg}: {e.filename}"
        try:
            sync.send(plan.sync, sync.ERROR, message=msg)
        except OSError:  # past `ready` the channel is closed: the process's stderr is all we have
            os.write(2, f"hull-runtime: {msg}\n".encode())
        finally:
            os._exit(1)
    os._exit(1)


def _stage_one(plan: ChildPlan) -> None:
    _close_extra_fds(plan)  # now, while /proc/self is still the host's
    plan.cgroup.add_current(born_in_cgroup2=plan.born_in_cgroup2)
    if plan.is_exec:
        # Born in the container's pid namespace (the runtime joined it for its children): the
        # other namespaces apply to ourselves, and we go on as the process.
        namespaces.setns_paths({t: p for t, p in (plan.join or {}).items() if t != "pid"})
        return
    nss = plan.spec.linux.namespaces
    namespaces.setns_paths({n.type: n.path for n in nss if n.path})
    if namespaces.unshare_flags(nss, user=True):
        syscalls.unshare(syscalls.CLONE_NEWUSER)
        sync.send(plan.sync, sync.USERNS)
        sync.expect_ok(plan.sync)
        # We hold every capability in the new namespace; become its root so that files
        # we create (device nodes, mount points) belong to the container's root.
        if any(m.container_id == 0 for m in plan.spec.linux.uid_mappings):
            os.setresgid(0, 0, 0)
            os.setgroups([])
            os.setresuid(0, 0, 0)
    syscalls.unshare(namespaces.unshare_flags(nss, user=False))
    pid = os.fork()
    if pid:
        sync.send(plan.sync, sync.PID, pid=pid)
        os._exit(0)


def _stage_two(plan: ChildPlan) -> NoReturn:
    # Stage one reports our pid as it exits; until the runtime has it, a `ready` or `hooks`
    # from us could overtake it and leave the runtime with no pid to wait on or hand to hooks.
    answer = sync.expect_ok(plan.sync)
    if "seccomp" in answer:
        plan.seccomp = base64.b64decode(answer["seccomp"])
    plan.listener_state = answer.get("listener_state")
    spec, proc = plan.spec, plan.process
    slave = -1
    if plan.is_exec:
        if proc.terminal:
            slave = _make_terminal(plan, "/dev/pts/ptmx", "/dev/pts")
    else:
        in_userns = spec.linux.namespace("user") is not None
        rootfs.prepare_rootfs(spec, plan.cgroup.paths(), in_userns)
        hook_state: dict[str, object] = {}
        if any(spec.hooks.values()):
            # The runtime runs prestart/createRuntime now, and tells us the state to hand ours.
            sync.send(plan.sync, sync.HOOKS)
            hook_state = sync.expect_ok(plan.sync)["state"]
        if spec.hooks.get("createContainer"):
            run_hooks(spec.hooks["createContainer"], hook_state, "createContainer")
        if proc.terminal:
            slave = _make_terminal(plan, f"{spec.root_path}/dev/pts/ptmx", f"{spec.root_path}/dev/pts")
        rootfs.pivot_root_into(spec.root_path, plan.no_pivot)
        rootfs.finalize_rootfs(spec)
        if spec.hostname:
            syscalls.sethostname(spec.hostname)
        if spec.domainname:
            syscalls.setdomainname(spec.domainname)
    path, env = _finish_process(plan, slave, session=not plan.is_exec)
    sync.send(plan.sync, sync.READY)
    plan.sync.close()
    if not plan.is_exec:
        # Block until `start` opens the fifo for reading; the byte tells it we got past. The
        # fifo is reopened through our O_PATH descriptor, as runc does: the state dir itself
        # may be out of reach for the container's user (a mapped root is an unprivileged
        # host uid), but the fifo's own mode lets anyone write.
        try:
            fifo = os.open(f"/proc/self/fd/{plan.exec_fifo}", os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            raise OSError(e.errno, f"open exec.fifo through /proc/self/fd (is /proc mounted?): {e.strerror}") from None
        os.write(fifo, b"0")
        os.close(fifo)
        os.close(plan.exec_fifo)
        if spec.hooks.get("startContainer"):
            run_hooks(spec.hooks["startContainer"], hook_state, "startContainer")
    _exec(path, proc.args, env, plan)


def _make_terminal(plan: ChildPlan, ptmx: str, pts_dir: str) -> int:
    """Open a pty in the container's devpts, send its master away, return the slave fd."""
    if plan.console is None:
        raise OSError("process.terminal is set but no --console-socket was given")
    if not os.path.exists(ptmx):
        raise OSError(f"a terminal needs a devpts mount at /dev/pts ({ptmx} is missing)")
    master, number = console.open_pty(ptmx)
    slave_path = f"{pts_dir}/{number}"
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    if plan.process.console_size:
        console.set_winsize(master, *plan.process.console_size)
    if not plan.is_exec:
        rootfs.bind_console(plan.spec.root_path, slave_path)
    console.send_master(plan.console, master)
    os.close(master)
    plan.console.close()
    return slave


def _rlim(value: int) -> int:
    """The spec writes "unlimited" as 2**64-1 (Go's uint64); setrlimit takes RLIM_INFINITY."""
    return resource.RLIM_INFINITY if value >= 2**63 else value


def _finish_process(plan: ChildPlan, slave: int, *, session: bool) -> tuple[str, dict[str, str]]:
    """Limits, terminal, identity and working directory; returns (program path, environment)."""
    proc = plan.process
    if proc.oom_score_adj is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc.oom_score_adj))
    for r in proc.rlimits:
        resource.setrlimit(getattr(resource, r.type), (_rlim(r.soft), _rlim(r.hard)))
    if slave >= 0:
        console.make_controlling_terminal(slave)
        os.close(slave)
    elif session:
        os.setsid()
    env = {name: value for name, _, value in (e.partition("=") for e in proc.env)}
    if "HOME" not in env:
        env["HOME"] = _home_of(proc.user.uid)
    if proc.no_new_privileges:
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
    elif plan.seccomp is not None:
        # Without no_new_privs only CAP_SYS_ADMIN may load a filter: now, before we drop it.
        _install_seccomp(plan)
        plan.seccomp = None
    finalize_process_identity(proc.capabilities, proc.user.uid, proc.user.gid, proc.user.additional_gids)
    os.umask(proc.user.umask if proc.user.umask is not None else DEFAULT_UMASK)
    try:
        os.chdir(proc.cwd)
    except OSError as e:
        raise OSError(e.errno, f"chdir to cwd ({proc.cwd!r}) set in config.json failed: {e.strerror}") from None
    return look_path(proc.args[0], env.get("PATH", "")), env


def look_path(name: str, path_var: str) -> str:
    """Find the program as execvp would, with Go's wording when it can't (engines match on it)."""
    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d or ".", name) for d in path_var.split(":")]
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    if "/" in name:
        if not os.path.exists(name):
            raise OSError(2, f'exec: "{name}": stat {name}: no such file or directory')
        raise OSError(13, f'exec: "{name}": permission denied')
    raise OSError(2, f'exec: "{name}": executable file not found in $PATH')


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def _close_extra_fds(plan: ChildPlan) -> None:
    """Only stdio and the preserved fds may cross execve into the container.

    Marks everything else close-on-exec (our own sockets already are) rather than closing
    it: the sync and console channels are still needed until the exec.
    """
    first = 3 + plan.preserve_fds
    for fd in range(3, first):
        os.set_inheritable(fd, True)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError:  # the listing's own descriptor, closed by now
                pass


def _install_seccomp(plan: ChildPlan) -> None:
    from hull.runtime.seccomp import install  # imported already: parsing the spec's seccomp did

    assert plan.seccomp is not None and plan.spec.linux.seccomp is not None
    listener = install(plan.seccomp, plan.spec.linux.seccomp)
    if listener is not None and plan.seccomp_listener is not None:
        # The OCI way: the process state as the message, the listener's fd alongside it.
        state = json.dumps(plan.listener_state or {}).encode()
        socket.send_fds(plan.seccomp_listener, [state], [listener])
        plan.seccomp_listener.close()
        os.close(listener)


def _exec(path: str, args: list[str], env: dict[str, str], plan: ChildPlan) -> NoReturn:
    # Python ignores SIGPIPE and SIGXFSZ; ignored dispositions survive execve, so undo them.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if plan.seccomp is not None:
        _install_seccomp(plan)  # last: from here on our own syscalls are filtered too
    os.execve(path, args, env)
    raise AssertionError("execve returned")
