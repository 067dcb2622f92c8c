"""The container lifecycle of the OCI runtime spec: create, start, state, kill, delete, plus exec and pause.

Each operation is one short-lived process (the CLI) acting on the state directory and the
kernel. `create` forks the child of init.py and answers its requests over the sync channel
until the init is ready and waiting on exec.fifo; then it records the state and returns, so
no runtime process stays behind. `run` and foreground `exec` are the same plus waiting: the
runtime marks itself child subreaper so the container's process, orphaned by stage one,
becomes its child and its exit status can be read.
"""

import base64
import gc
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from hull.errors import Conflict, HullError, InvalidArgument
from hull.fsutil import atomic_write
from hull.runtime import console, hooks, namespaces, state, sync, syscalls
from hull.runtime.cgroups import CgroupManager, manager_from_json, new_manager
from hull.runtime.init import ChildPlan, child_main
from hull.runtime.spec import IDMapping, Process, Spec, load_spec
from hull.runtime.state import CREATED, PAUSED, RUNNING, STOPPED, ContainerState, Options

# How long delete and kill wait for a killed container to be gone.
DEATH_TIMEOUT = 10.0


def _cgroup(st: ContainerState) -> CgroupManager:
    return manager_from_json(st.cgroup)


def current_status(opts: Options, st: ContainerState) -> str:
    if not state.init_alive(st):
        return STOPPED
    return state.status(opts.root, st, _cgroup(st).frozen())


def load(opts: Options, container_id: str) -> tuple[ContainerState, str]:
    st = state.load(opts.root, container_id)
    return st, current_status(opts, st)


def _connect(path: str, what: str) -> socket.socket:
    """A unix socket connected to `path` (a console socket, a seccomp listenerPath)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise HullError(f"connect to {what} {path}: {e.strerror}") from None
    return sock


def _write_id_map(pid: int, name: str, mappings: list[IDMapping]) -> None:
    text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)
    try:
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)
    except OSError as e:
        raise HullError(f"write /proc/{pid}/{name}: {e.strerror}") from None


def _fork_child(cgroup: CgroupManager) -> tuple[int, bool]:
    """fork(2): (pid as os.fork returns it, whether the child was born in the container's cgroup2).

    A write to cgroup.procs (cgroup2 has no other way in) waits out an RCU grace period, some
    5 ms, unless another migration ran just before, as none does before an exec; a child
    born there by clone3(CLONE_INTO_CGROUP) skips it. Only from a single-threaded process
    (see clone3_into_cgroup); if the kernel refuses (older than 5.7, or the cgroup is not
    allowed), a plain fork, and stage one's write says what is wrong."""
    directory = cgroup.cgroup2_dir()
    if directory is not None and len(os.listdir("/proc/self/task")) == 1:
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return os.fork(), False
        try:
            return syscalls.clone3_into_cgroup(fd), True
        except OSError:
            pass
        finally:
            os.close(fd)
    return os.fork(), False


def _spawn(
    plan: ChildPlan,
    on_userns: Callable[[int], None],
    on_hooks: Callable[[int], dict[str, Any]],
    seccomp_cache: str,
    process_state: Callable[[int], dict[str, Any]],
) -> int:
    """Fork the child, serve its requests until it is ready; return the container process's pid.
    `process_state(pid)`: the state to send with a seccomp listener, if the filter makes one."""
    parent_end, child_end = sync.channel()
    plan.sync = child_end
    seccomp = plan.spec.linux.seccomp
    if seccomp is not None and seccomp.listener_path:
        from hull.runtime.seccomp import uses_notify  # imported already: parsing the spec's seccomp did

        if uses_notify(seccomp):
            plan.seccomp_listener = _connect(seccomp.listener_path, "seccomp listenerPath")
    # An exec's child is born in the container's pid namespace and is the process itself; a
    # container's init is the child of a first child that unshares the namespaces (init.py).
    pid_ns = (plan.join or {}).get("pid") if plan.is_exec else None
    try:
        with namespaces.pid_namespace_for_children(pid_ns):
            child, born_in_cgroup2 = _fork_child(plan.cgroup)
            if child == 0:
                parent_end.close()
                plan.born_in_cgroup2 = born_in_cgroup2
                child_main(plan)
    finally:
        if plan.seccomp_listener is not None:
            plan.seccomp_listener.close()  # the child's copy is the one that sends
    child_end.close()
    pid = child if plan.is_exec else 0
    try:
        # The seccomp program is compiled here, after the fork, while the child works (joins
        # its cgroup and namespaces); the child gets it with its `ok` and only installs it.
        seccomp_fields = {}
        if plan.spec.linux.seccomp is not None:
            from hull.runtime.seccomp import compile_filter  # only containers that ask pay for libseccomp

            program = compile_filter(plan.spec.linux.seccomp, seccomp_cache)
            seccomp_fields["seccomp"] = base64.b64encode(program).decode()
        listener_fields: dict[str, Any] = {}
        if plan.is_exec:  # we know its pid already: no `pid` message comes
            if plan.seccomp_listener is not None:
                listener_fields["listener_state"] = process_state(pid)
            sync.send(parent_end, sync.OK, **seccomp_fields, **listener_fields)
        while True:
            msg = sync.recv(parent_end)
            kind = msg.get("type")
            if kind == sync.USERNS:
                on_userns(child)
                sync.send(parent_end, sync.OK)
            elif kind == sync.PID:
                pid = int(msg["pid"])
                if plan.seccomp_listener is not None:
                    listener_fields["listener_state"] = process_state(pid)
                # Stage two waits for this: its messages need the pid.
                sync.send(parent_end, sync.OK, **seccomp_fields, **listener_fields)
            elif kind == sync.HOOKS:
                sync.send(parent_end, sync.OK, state=on_hooks(pid))
            elif kind == sync.READY:
                return pid
            elif kind == sync.ERROR:
                raise HullError(f"unable to start container process: {msg['message']}")
            else:
                raise HullError("unable to start container process: the container's init ended before it was ready")
    except BaseException:
        if pid:
            _kill_quietly(pid)
        if plan.is_exec:
            os.waitpid(child, 0)
        raise
    finally:
        parent_end.close()
        if not plan.is_exec:  # stage one; an exec's child is the process, for our caller to wait on
            os.waitpid(child, 0)


def _process_state(st: ContainerState, pid: int, status: str, metadata: str) -> dict[str, Any]:
    """The OCI runtime spec's containerProcessState, sent to listenerPath with the listener's fd."""
    return {"ociVersion": st.config.get("ociVersion", ""), "fds": ["seccompFd"], "pid": pid,
            "metadata": metadata, "state": st.oci_state(status)}  # fmt: skip


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def create(
    opts: Options,
    container_id: str,
    bundle: str,
    *,
    console_socket: str = "",
    console_sock: socket.socket | None = None,
    pid_file: str = "",
    no_pivot: bool = False,
    preserve_fds: int = 0,
    spec: Spec | None = None,
) -> ContainerState:
    """Make the container and leave its init waiting for `start` (`spec`: the bundle's, already loaded)."""
    state.check_id(container_id)
    if spec is None:
        spec = load_spec(bundle)
    if spec.process is None:
        raise InvalidArgument("config.json: process is required to create a container")
    if spec.linux.namespace("mount") is None:
        raise InvalidArgument("linux.namespaces: the container needs its own mount namespace")
    cdir = state.make_container_dir(opts.root, container_id)
    st = ContainerState(
        id=container_id,
        bundle=os.path.abspath(bundle),
        rootfs=spec.root_path,
        created=state.now_rfc3339(),
        owner="",
        annotations=spec.annotations,
        config=spec.raw,
    )
    cgroup: CgroupManager | None = None
    try:
        cgroup = new_manager(spec.linux.cgroups_path, container_id)
        cgroup.create()
        if spec.linux.resources is not None:
            cgroup.apply(spec.linux.resources)
        st.cgroup = cgroup.to_json()
        fifo = os.path.join(cdir, state.EXEC_FIFO)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # whatever our umask: a non-root init must open it for writing
        exec_fifo = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        con = console_sock
        if con is None and spec.process.terminal:
            if not console_socket:
                raise InvalidArgument("process.terminal is set: --console-socket is required")
            con = _connect(console_socket, "console socket")
        plan = ChildPlan(
            spec=spec,
            process=spec.process,
            cgroup=cgroup,
            sync=None,  # type: ignore[arg-type]  # set by _spawn
            console=con,
            exec_fifo=exec_fifo,
            no_pivot=no_pivot,
            preserve_fds=preserve_fds,
        )

        def on_userns(stage_one: int) -> None:
            _write_id_map(stage_one, "uid_map", spec.linux.uid_mappings)
            _write_id_map(stage_one, "gid_map", spec.linux.gid_mappings)

        def on_hooks(pid: int) -> dict[str, Any]:
            st.init_pid = pid
            creating = st.oci_state(state.CREATING)
            hooks.run_hooks(spec.hooks["prestart"], creating, "prestart")
            hooks.run_hooks(spec.hooks["createRuntime"], creating, "createRuntime")
            return st.oci_state(CREATED)

        try:
            metadata = spec.linux.seccomp.listener_metadata if spec.linux.seccomp else ""
            st.init_pid = _spawn(
                plan, on_userns, on_hooks, state.seccomp_cache_dir(opts.root),
                lambda pid: _process_state(st, pid, state.CREATING, metadata),
            )  # fmt: skip
        finally:
            os.close(exec_fifo)
            if con is not None and console_sock is None:
                con.close()
        st.init_start_time = state.proc_start_time(st.init_pid)
        state.save(opts.root, st)
        if pid_file:
            atomic_write(os.path.abspath(pid_file), str(st.init_pid).encode(), fsync=False)
    except BaseException:
        if st.init_pid:
            _kill_quietly(st.init_pid)
        if cgroup is not None:
            _destroy_cgroup(cgroup)
        state.remove_container_dir(opts.root, container_id)
        raise
    return st


def start(opts: Options, container_id: str) -> None:
    """Let a created container's init exec the user's process."""
    st, status = load(opts, container_id)
    if status == STOPPED:
        raise Conflict("cannot start a container that has stopped")
    if status != CREATED:
        raise Conflict("cannot start an already running container")
    fifo_path = os.path.join(opts.root, container_id, state.EXEC_FIFO)
    # Non-blocking open: it succeeds with no writer, so a dead init can't hang us; the init's
    # blocking open for writing returns as soon as we hold the read end.
    fifo = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fifo, select.POLLIN)
        while not poller.poll(100):
            if not state.init_alive(st):
                raise Conflict("cannot start a container that has stopped")
        if not os.read(fifo, 1):
            raise Conflict("cannot start a container that has stopped")
    finally:
        os.close(fifo)
    os.unlink(fifo_path)
    _run_late_hooks(st, "poststart", RUNNING)


def kill(opts: Options, container_id: str, sig: int, all_processes: bool = False) -> None:
    st, status = load(opts, container_id)
    if status == STOPPED:
        raise Conflict("container not running")
    if all_processes:
        _cgroup(st).kill_all(sig)
    else:
        os.kill(st.init_pid, sig)


def delete(opts: Options, container_id: str, force: bool = False) -> None:
    """Remove a stopped (or, with force, any) container: processes, cgroup and state."""
    try:
        st, status = load(opts, container_id)
    except HullError:
        if force:
            return
        raise
    if status in (RUNNING, PAUSED) and not force:
        raise Conflict(f"cannot delete container {container_id} that is not stopped: {status}")
    cgroup = _cgroup(st)
    if status != STOPPED:
        cgroup.kill_all(signal.SIGKILL)
        _wait_gone(st)
    _destroy_cgroup(cgroup)
    state.remove_container_dir(opts.root, container_id)
    _run_late_hooks(st, "poststop", STOPPED)


def _run_late_hooks(st: ContainerState, kind: str, status: str) -> None:
    """poststart/poststop: only warn on failure, and parse the config only if it has hooks."""
    if st.config.get("hooks", {}).get(kind):
        spec = Spec.from_json(st.config, st.bundle)
        hooks.run_hooks_warn(spec.hooks[kind], st.oci_state(status), kind)


def _wait_gone(st: ContainerState) -> None:
    deadline = time.monotonic() + DEATH_TIMEOUT
    while state.init_alive(st):
        if time.monotonic() > deadline:
            raise HullError(f"container {st.id}: init (pid {st.init_pid}) did not die after SIGKILL")
        time.sleep(0.005)


def _destroy_cgroup(cgroup: CgroupManager) -> None:
    """Kill what is left in the cgroup, then remove it (a dying task keeps it busy briefly)."""
    if cgroup.pids():
        cgroup.kill_all(signal.SIGKILL)
    cgroup.destroy()


def pause(opts: Options, container_id: str) -> None:
    st, status = load(opts, container_id)
    if status not in (RUNNING, CREATED):
        raise Conflict("container not running")
    _cgroup(st).freeze()


def resume(opts: Options, container_id: str) -> None:
    st, status = load(opts, container_id)
    if status != PAUSED:
        raise Conflict("container not paused")
    _cgroup(st).thaw()


def exec_process(
    opts: Options,
    container_id: str,
    process: Process,
    *,
    console_socket: str = "",
    console_sock: socket.socket | None = None,
    pid_file: str = "",
    preserve_fds: int = 0,
    ignore_paused: bool = False,
    spec: Spec | None = None,
) -> int:
    """Start `process` inside a running container; return its pid (in our pid namespace).
    `spec`: the container's, parsed already (a caller that execs often keeps it)."""
    st, status = load(opts, container_id)
    if status == STOPPED:
        raise Conflict("cannot exec in a stopped container")
    if status == PAUSED and not ignore_paused:
        raise Conflict("cannot exec in a paused container (use --ignore-paused to override)")
    if spec is None:
        spec = Spec.from_json(st.config, st.bundle)
    join = {n.type: namespaces.proc_ns_path(st.init_pid, n.type) for n in spec.linux.namespaces}
    con = console_sock
    if con is None and process.terminal:
        if not console_socket:
            raise InvalidArgument("--tty is set: --console-socket is required")
        con = _connect(console_socket, "console socket")
    plan = ChildPlan(
        spec=spec,
        process=process,
        cgroup=_cgroup(st),
        sync=None,  # type: ignore[arg-type]  # set by _spawn
        console=con,
        is_exec=True,
        join=join,
        preserve_fds=preserve_fds,
    )
    try:
        metadata = spec.linux.seccomp.listener_metadata if spec.linux.seccomp else ""
        pid = _spawn(
            plan, lambda _: None, lambda _: {}, state.seccomp_cache_dir(opts.root),
            lambda pid: _process_state(st, pid, RUNNING, metadata),
        )  # fmt: skip
    finally:
        if con is not None and console_sock is None:
            con.close()
    if pid_file:
        atomic_write(os.path.abspath(pid_file), str(pid).encode(), fsync=False)
    return pid


def prepare_foreground() -> None:
    """Before create/exec in the foreground: orphans below us (the container's process, once
    stage one exits) become our children, and SIGCHLD waits pending for wait_foreground
    (the child unblocks it again before execve)."""
    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])


def wait_foreground(pid: int, master: int | None) -> int:
    """Forward signals to `pid`, relay its terminal if any, reap orphans; return its exit code."""
    # The CLI runs without cyclic GC (cli.py) and this wait may last as long as the container:
    # turn it back on, for new objects only (freeze spares a pass over everything imported).
    gc.freeze()
    gc.enable()
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
    for sig in forwarded:
        signal.signal(sig, lambda s, _f: _forward(pid, s))
    exit_code: list[int] = []

    def reap() -> bool:
        while True:
            try:
                child, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if child == 0:
                return bool(exit_code)
            if child == pid:
                code = os.waitstatus_to_exitcode(status)
                exit_code.append(code if code >= 0 else 128 - code)

    if master is not None:
        console.proxy(master, reap)
        os.close(master)
    while not reap():
        _sleep_until_child_event()
    return exit_code[0] if exit_code else 255


def _sleep_until_child_event() -> None:
    signal.sigtimedwait([signal.SIGCHLD], 0.05)


def _forward(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def internal_console() -> tuple[socket.socket, socket.socket]:
    """A console socket pair for `run`/`exec` in the foreground with a terminal and no socket given."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
