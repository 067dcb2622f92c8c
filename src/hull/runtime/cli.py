"""`hull-runtime`: runc's command line over hull's OCI runtime.

Same commands, flags, output and exit statuses as runc, so an engine that drives runc (hulld,
or containerd and its shims) can drive this unchanged: errors exit 1 (`exec` failures 255)
with runc's message; `run` and foreground `exec` exit with the process's own status.
argparse rather than click: this program starts for every container and its import time is
part of every start.
"""

import gc

# A runtime command lives for milliseconds (or waits on one container: wait_foreground turns
# collection back on). Cyclic GC passes during the imports of a container start cost more
# than a tenth of it, and there is nothing for them to free.
gc.disable()

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hull.errors import HullError, InvalidArgument
from hull.runtime import log, state
from hull.runtime.state import Options

if TYPE_CHECKING:
    from hull.runtime.spec import Process

PROG = "hull-runtime"


def _parse_signal(text: str) -> int:
    name = text.upper()
    if name.isdigit():
        return int(name)
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"unknown signal {text!r}") from None


def cmd_spec(opts: Options, a: argparse.Namespace) -> int:
    from hull.runtime.spec import CONFIG_FILE, default_spec

    path = os.path.join(a.bundle or ".", CONFIG_FILE)
    if os.path.exists(path):
        raise HullError(f"File {CONFIG_FILE} exists. Remove it first")
    spec = default_spec()
    if a.rootless:
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": os.getgid(), "size": 1}]
    with open(path, "w") as f:
        json.dump(spec, f, indent="\t")
    return 0


def cmd_create(opts: Options, a: argparse.Namespace) -> int:
    from hull.runtime import container

    container.create(
        opts, a.id, a.bundle or ".", console_socket=a.console_socket, pid_file=a.pid_file,
        no_pivot=a.no_pivot, preserve_fds=a.preserve_fds,
    )  # fmt: skip
    return 0


def cmd_run(opts: Options, a: argparse.Namespace) -> int:
    from hull.runtime import container
    from hull.runtime.spec import load_spec

    bundle = a.bundle or "."
    spec = load_spec(bundle)
    process = spec.process
    terminal = process is not None and process.terminal
    ours, theirs = (None, None)
    if terminal and not a.console_socket:
        if a.detach:
            raise InvalidArgument("cannot allocate tty if runc will detach without setting console socket")
        ours, theirs = container.internal_console()
    if not a.detach:
        container.prepare_foreground()
    try:
        st = container.create(
            opts, a.id, bundle, console_socket=a.console_socket, console_sock=theirs, pid_file=a.pid_file,
            no_pivot=a.no_pivot, preserve_fds=a.preserve_fds, spec=spec,
        )  # fmt: skip
        master = None
        if ours is not None:
            from hull.runtime.console import recv_master

            master = recv_master(ours)
        container.start(opts, a.id)
    except BaseException:
        container.delete(opts, a.id, force=True)
        raise
    finally:
        for s in (ours, theirs):
            if s is not None:
                s.close()
    if a.detach:
        return 0
    code = container.wait_foreground(st.init_pid, master)
    if not a.keep:
        container.delete(opts, a.id, force=True)
    return code


def cmd_start(opts: Options, a: argparse.Namespace) -> int:
    from hull.runtime import container

    container.start(opts, a.id)
    return 0


def cmd_state(opts: Options, a: argparse.Namespace) -> int:
    from hull.runtime import container

    st, status = container.load(opts, a.id)
    sys.stdout.write(json.dumps(st.oci_state(status), indent=2))
    return 0


def cmd_kill(opts: Options, a: argparse.Namespace) -> int:
    from hull.runtime import container

    container.kill(opts, a.id, _parse_signal(a.signal), a.all)
    return 0


def cmd_delete(opts: Options, a: argparse.Namespace) -> int:
    from hull.runtime import container

    container.delete(opts, a.id, a.force)
    return 0


def cmd_pause(opts: Options, a: argparse.Namespace) -> int:
    from hull.runtime import container

    container.pause(opts, a.id)
    return 0


def cmd_resume(opts: Options, a: argparse.Namespace) -> int:
    from hull.runtime import container

    container.resume(opts, a.id)
    return 0


def _exec_process(opts: Options, a: argparse.Namespace) -> "Process":
    """The process to exec: from --process, or the container's own process with the flags applied."""
    import copy

    from hull.runtime import container, fields
    from hull.runtime.capabilities import LinuxCapabilities
    from hull.runtime.spec import Process, User

    if a.process:
        try:
            with open(a.process, "rb") as f:
                obj = json.load(f)
        except OSError as e:
            raise InvalidArgument(f"open {a.process}: {e.strerror}") from None
        except ValueError as e:
            raise InvalidArgument(f"{a.process}: invalid JSON: {e}") from None
        return Process.from_json(fields.expect(obj, dict, a.process))
    if not a.command:
        raise InvalidArgument("exec: no command given (args must not be empty)")
    st, _ = container.load(opts, a.id)
    base = Process.from_json(st.config.get("process") or {"args": ["sh"]})
    proc = copy.deepcopy(base)
    proc.args = list(a.command)
    proc.terminal = a.tty
    proc.console_size = None
    env = {e.split("=", 1)[0]: e for e in proc.env}
    for item in a.env:
        env[item.split("=", 1)[0]] = item
    proc.env = list(env.values())
    if a.cwd:
        proc.cwd = a.cwd
    if a.user:
        uid, _, gid = a.user.partition(":")
        try:
            proc.user = User(uid=int(uid), gid=int(gid or 0), umask=proc.user.umask)
        except ValueError:
            raise InvalidArgument(f"invalid --user {a.user!r}: expected uid[:gid] as numbers") from None
    if a.additional_gids:
        proc.user.additional_gids = [int(g) for g in a.additional_gids]
    if a.cap:
        caps = proc.capabilities or LinuxCapabilities([], [], [], [], [])
        extra = LinuxCapabilities.from_json({k: a.cap for k in ("bounding", "effective", "permitted")}, where="--cap")
        for name in ("bounding", "effective", "permitted"):
            merged = getattr(caps, name) + [c for c in getattr(extra, name) if c not in getattr(caps, name)]
            setattr(caps, name, merged)
        proc.capabilities = caps
    if a.no_new_privs:
        proc.no_new_privileges = True
    return proc


def cmd_exec(opts: Options, a: argparse.Namespace) -> int:
    from hull.runtime import container

    proc = _exec_process(opts, a)
    ours, theirs = (None, None)
    if proc.terminal and not a.console_socket:
        if a.detach:
            raise InvalidArgument("cannot allocate tty if runc will detach without setting console socket")
        ours, theirs = container.internal_console()
    if not a.detach:
        container.prepare_foreground()
    try:
        pid = container.exec_process(
            opts, a.id, proc, console_socket=a.console_socket, console_sock=theirs, pid_file=a.pid_file,
            preserve_fds=a.preserve_fds, ignore_paused=a.ignore_paused,
        )  # fmt: skip
        master = None
        if ours is not None:
            from hull.runtime.console import recv_master

            master = recv_master(ours)
    finally:
        for s in (ours, theirs):
            if s is not None:
                s.close()
    if a.detach:
        return 0
    return container.wait_foreground(pid, master)


def cmd_ps(opts: Options, a: argparse.Namespace) -> int:
    import subprocess

    from hull.runtime import container
    from hull.runtime.cgroups import manager_from_json

    st, status = container.load(opts, a.id)
    pids = manager_from_json(st.cgroup).pids() if status != state.STOPPED else []
    if a.format == "json":
        sys.stdout.write(json.dumps(pids) + "\n")
        return 0
    ps_args = a.ps_args or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise HullError(f"ps {' '.join(ps_args)}: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise HullError("couldn't find PID field in ps output")
    col = header.index("PID")
    keep = {str(p) for p in pids}
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col] in keep:
            print(line)
    return 0


def cmd_list(opts: Options, a: argparse.Namespace) -> int:
    from hull.runtime import container

    rows = []
    for cid in state.list_ids(opts.root):
        try:
            st, status = container.load(opts, cid)
        except HullError:
            continue
        rows.append(st.oci_state(status))
    if a.quiet:
        for r in rows:
            print(r["id"])
    elif a.format == "json":
        sys.stdout.write(json.dumps(rows) + "\n")
    else:
        table = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        table += [[r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"] or "root"] for r in rows]
        widths = [max(12, *(len(row[i]) + 3 for row in table)) for i in range(6)]
        for row in table:
            print("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _parse_interval(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * units[suffix]
            except ValueError:
                break
    raise InvalidArgument(f"invalid interval {text!r} (e.g. 5s, 500ms)")


def cmd_events(opts: Options, a: argparse.Namespace) -> int:
    import time

    from hull.runtime import container
    from hull.runtime.cgroups import manager_from_json

    interval = _parse_interval(a.interval)
    st, status = container.load(opts, a.id)
    if status == state.STOPPED:
        raise HullError("container with id " + a.id + " is not running")
    cgroup = manager_from_json(st.cgroup)

    def emit(kind: str, data: object) -> None:
        sys.stdout.write(json.dumps({"type": kind, "id": a.id, "data": data}) + "\n")
        sys.stdout.flush()

    if a.stats:
        emit("stats", cgroup.stats())
        return 0
    ooms = cgroup.oom_kill_count()
    while state.init_alive(st):
        emit("stats", cgroup.stats())
        now = cgroup.oom_kill_count()
        if now > ooms:
            emit("oom", None)
            ooms = now
        time.sleep(interval)
    return 0


def _spec_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-b", "--bundle", default="")
    sp.add_argument("--rootless", action="store_true")


def _create_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-b", "--bundle", default="")
    sp.add_argument("--console-socket", default="")
    sp.add_argument("--pid-file", default="")
    sp.add_argument("--no-pivot", action="store_true")
    sp.add_argument("--no-new-keyring", action="store_true")
    sp.add_argument("--preserve-fds", type=int, default=0)
    sp.add_argument("id")


def _run_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-d", "--detach", action="store_true")
    sp.add_argument("--keep", action="store_true")
    _create_args(sp)


def _id_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("id")


def _kill_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-a", "--all", action="store_true")
    sp.add_argument("id")
    sp.add_argument("signal", nargs="?", default="SIGTERM")


def _delete_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-f", "--force", action="store_true")
    sp.add_argument("id")


def _exec_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--console-socket", default="")
    sp.add_argument("--cwd", default="")
    sp.add_argument("-e", "--env", action="append", default=[])
    sp.add_argument("-t", "--tty", action="store_true")
    sp.add_argument("-u", "--user", default="")
    sp.add_argument("-g", "--additional-gids", action="append", default=[])
    sp.add_argument("-p", "--process", default="")
    sp.add_argument("-d", "--detach", action="store_true")
    sp.add_argument("--pid-file", default="")
    sp.add_argument("--process-label", default="")
    sp.add_argument("--apparmor", default="")
    sp.add_argument("--no-new-privs", action="store_true")
    sp.add_argument("-c", "--cap", action="append", default=[])
    sp.add_argument("--preserve-fds", type=int, default=0)
    sp.add_argument("--ignore-paused", action="store_true")
    sp.add_argument("id")
    sp.add_argument("command", nargs=argparse.REMAINDER)


def _ps_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-f", "--format", default="table", choices=["table", "json"])
    sp.add_argument("id")
    sp.add_argument("ps_args", nargs=argparse.REMAINDER)


def _list_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("-f", "--format", default="table", choices=["table", "json"])
    sp.add_argument("-q", "--quiet", action="store_true")


def _events_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--interval", default="5s")
    sp.add_argument("--stats", action="store_true")
    sp.add_argument("id")


Handler = Callable[[Options, argparse.Namespace], int]


@dataclass
class Command:
    """One verb: its handler, its line in the help, and what declares its arguments."""

    fn: Handler
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    aliases: tuple[str, ...] = ()


COMMANDS = {
    "spec": Command(cmd_spec, "write a default config.json", _spec_args),
    "create": Command(cmd_create, "create a container", _create_args),
    "run": Command(cmd_run, "create and start a container", _run_args),
    "start": Command(cmd_start, "start a created container", _id_arg),
    "state": Command(cmd_state, "print a container's state", _id_arg),
    "pause": Command(cmd_pause, "freeze every process of a container", _id_arg),
    "resume": Command(cmd_resume, "thaw a paused container", _id_arg),
    "kill": Command(cmd_kill, "send a signal to a container's init", _kill_args),
    "delete": Command(cmd_delete, "delete a container", _delete_args, ("rm",)),
    "exec": Command(cmd_exec, "run a process in a running container", _exec_args),
    "ps": Command(cmd_ps, "list the processes of a container", _ps_args),
    "list": Command(cmd_list, "list containers", _list_args, ("ls",)),
    "events": Command(cmd_events, "print container stats and events", _events_args),
}
ALIASES = {alias: name for name, c in COMMANDS.items() for alias in c.aliases}


def _global_parser() -> argparse.ArgumentParser:
    """The global options and the verb; the verb's own arguments are parsed by _command_parser.

    Two parsers rather than argparse's subparsers: building every verb's parser costs more
    than a container's namespaces, and this program runs once per container operation.
    """
    verbs = "\n".join(f"  {name:<8} {c.help}" for name, c in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog=PROG, description="an OCI runtime (runc-compatible) written in Python",
        epilog=f"commands:\n{verbs}", formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--root", default=state.DEFAULT_ROOT, help="state directory (default %(default)s)")
    p.add_argument("--log", default="", help="log file (default: stderr)")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="accepted for runc compatibility; ignored")
    p.add_argument("--rootless", default="auto", help="accepted for runc compatibility; ignored")
    p.add_argument("-v", "--version", action="version", version=f"{PROG} version 0.1.0\nspec: 1.2.0")
    p.add_argument("verb", nargs="?", metavar="COMMAND")
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def _command_parser(verb: str, command: Command) -> argparse.ArgumentParser:
    sp = argparse.ArgumentParser(prog=f"{PROG} {verb}", description=command.help)
    command.arguments(sp)
    return sp


def main(argv: list[str] | None = None) -> int:
    top = _global_parser()
    args = top.parse_args(argv)
    log.configure(args.log, args.log_format, args.debug)
    if args.verb is None:
        top.print_help(sys.stderr)
        return 1
    verb = ALIASES.get(args.verb, args.verb)
    command = COMMANDS.get(verb)
    if command is None:
        top.error(f"unknown command {args.verb!r}")
    a = _command_parser(verb, command).parse_args(args.rest)
    opts = Options(root=args.root)
    try:
        return command.fn(opts, a)
    except HullError as e:
        prefix = {"create": "create failed: ", "run": "run failed: ", "exec": "exec failed: "}.get(verb, "")
        log.fatal(f"{PROG} {prefix}{e.message}" if prefix else e.message)
        return 255 if verb == "exec" else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
