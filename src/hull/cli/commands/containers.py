"""Container verbs: run, create, start, stop, kill, restart, rm, ps, logs, wait, exec, commit,
export, diff, container inspect, container prune."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from hull import detachkeys, humanize
from hull.cli.client import APIClient, APIError, CLIError, Hijacked, filters_json, path_quote, version_tuple
from hull.cli.commands.runflags import add_flags, create_body, create_params
from hull.cli.context import Context
from hull.cli.streams import copy_stream, is_multiplexed
from hull.cli.terminal import RawTerminal, WindowSize

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms of every start)
if TYPE_CHECKING:
    import threading
    from collections.abc import Iterator
    from typing import Any


def _c(ident: str) -> str:
    return f"/containers/{path_quote(ident)}"


def each(ctx: Context, names: list[str], action: Any) -> int:
    """Apply `action(name)` to every name; errors are printed, the status is 1 if any failed."""
    status = 0
    for name in names:
        try:
            action(name)
        except APIError as e:
            ctx.err(e.message)
            status = 1
        else:
            print(name, flush=True)
    return status


# ------------------------------------------------------------------------------ images for run
def split_reference(ref: str) -> tuple[str, str]:
    """("repo", "tag") of an image reference; the tag defaults to latest (a digest is kept as tag)."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, "latest"


def pull_image(client: APIClient, ref: str, quiet: bool = False, out: Any = None, platform: str = "") -> None:
    """POST /images/create?fromImage=&tag= and follow its JSON messages; errors in the stream raise."""
    repo, tag = split_reference(ref)
    params = {"fromImage": repo, "tag": tag} if "@" not in ref else {"fromImage": ref}
    if platform:
        params["platform"] = platform
    from hull.cli import credentials  # here: only a missing image needs it, and base64 costs every `run`

    auth = credentials.auth_header(credentials.registry_of(ref))
    resp = client.request("POST", "/images/create", params, headers={"X-Registry-Auth": auth})
    follow_progress(client, resp, quiet, out or sys.stderr)


def follow_progress(client: APIClient, resp: Any, quiet: bool, out: Any) -> None:
    """Show a pull's or push's JSON messages: on a terminal as a progress bar per layer (rich),
    else as `id: status` lines, as docker does; an error in the stream raises."""
    messages = _checked(client.json_lines(resp))
    if quiet:
        for _ in messages:
            pass
    elif out.isatty():
        from hull.cli.progress import show_progress  # rich only where a terminal shows it

        show_progress(messages, out)
    else:
        for msg in messages:
            if msg.get("status"):
                ident = msg.get("id")
                out.write((f"{ident}: " if ident else "") + f"{msg['status']}\n")
    out.flush()


def _checked(messages: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for msg in messages:
        if msg.get("error") or msg.get("errorDetail"):
            raise CLIError(str(msg.get("error") or msg["errorDetail"].get("message")))
        yield msg


def _create(ctx: Context, a: argparse.Namespace, body: dict[str, Any]) -> str:
    client = ctx.client
    params = create_params(a)
    pull = getattr(a, "pull", "missing")
    if pull == "always":
        pull_image(client, a.image, quiet=a.quiet)
    try:
        resp = client.post("/containers/create", params, body)
    except APIError as e:
        if e.code != 404 or "image" not in e.detail.lower() or pull == "never":
            raise
        repo, tag = split_reference(a.image)
        ctx.err(f"Unable to find image '{repo}{'@' if '@' in a.image else ':'}{tag}' locally")
        try:
            pull_image(client, a.image, quiet=a.quiet)
        except CLIError as pe:
            raise CLIError(f"hull: {pe.message}\n\nRun 'hull run --help' for more information", 125) from None
        resp = client.post("/containers/create", params, body)
    for w in resp.get("Warnings") or []:
        ctx.err(f"WARNING: {w}")
    return str(resp["Id"])


# ------------------------------------------------------------------------------ run / create / start
def args_create(p: argparse.ArgumentParser) -> None:
    add_flags(p, run=False)


def cmd_create(ctx: Context, a: argparse.Namespace) -> int:
    body = create_body(a, detach=True)
    body["AttachStdout"] = body["AttachStderr"] = not a.attach or "stdout" in [s.lower() for s in a.attach]
    print(_create(ctx, a, body))
    return 0


def args_run(p: argparse.ArgumentParser) -> None:
    add_flags(p, run=True)


class Attachment:
    """A hijacked attach connection and what it carries. With a TTY, stdin is watched for the
    detach keys (`detached` is then set): the daemon drops them and ends the stream, and the
    container goes on running."""

    def __init__(
        self, conn: Hijacked, stdin: bool, tty: bool, api_version: tuple[int, ...] = (1, 42), detach_keys: str = ""
    ) -> None:
        self.conn, self.stdin, self.tty, self.api_version = conn, stdin, tty, api_version
        self.scanner = detachkeys.Scanner(detachkeys.parse(detach_keys or detachkeys.DEFAULT) if tty else b"")
        self.detached = False

    def pump_stdin(self) -> threading.Thread:
        import threading  # only -i needs a thread

        def copy() -> None:
            try:
                fd = sys.stdin.fileno()
                while True:
                    data = os.read(fd, 65536)
                    if not data:
                        break
                    # All of it goes on: the daemon holds back and drops the keys itself.
                    self.conn.sock.sendall(data)
                    if self.scanner.feed(data)[1]:
                        self.detached = True
                        break
            except OSError:
                pass
            finally:
                self.conn.close_write()

        t = threading.Thread(target=copy, name="stdin", daemon=True)
        t.start()
        return t

    def copy_output(self) -> None:
        multiplexed = is_multiplexed(self.conn.content_type, self.tty, self.api_version)
        copy_stream(self.conn.read, sys.stdout.buffer, sys.stderr.buffer, multiplexed)


def attach(
    client: APIClient, cid: str, stdin: bool, stdout: bool, stderr: bool, tty: bool, detach_keys: str = ""
) -> Attachment:
    params = {"stream": True, "stdin": stdin, "stdout": stdout, "stderr": stderr, "detachKeys": detach_keys or None}
    conn = client.hijack(f"{_c(cid)}/attach", params)
    return Attachment(conn, stdin, tty, version_tuple(client.version), detach_keys)


def check_detach_keys(spec: str | None) -> str:
    """`--detach-keys` checked before anything is created; "" for the daemon's default."""
    try:
        detachkeys.parse(spec or detachkeys.DEFAULT)
    except ValueError:
        raise CLIError(f"Invalid detach keys ({spec}) provided") from None
    return spec or ""


def _start_error_status(message: str) -> int:
    low = message.lower()
    if "executable file not found" in low or "no such file or directory" in low or "not found" in low:
        return 127
    if "permission denied" in low:
        return 126
    return 125


def _proxy_signals(client: APIClient, cid: str) -> None:
    def forward(signum: int, _frame: Any) -> None:
        try:
            client.post(f"{_c(cid)}/kill", {"signal": str(signum)})
        except CLIError:
            pass

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, forward)


def _run_attached(
    ctx: Context,
    cid: str,
    streams: tuple[bool, bool, bool],
    tty: bool,
    remove: bool,
    sig_proxy: bool,
    start: bool = True,
    detach_keys: str = "",
) -> int:
    """Attach, register the wait, start, copy the streams; the container's exit status (0 when
    the user detached: the container runs on)."""
    client = ctx.client
    stdin, stdout, stderr = streams
    att = attach(client, cid, stdin, stdout, stderr, tty, detach_keys) if any(streams) else None
    wait = client.request("POST", f"{_c(cid)}/wait", {"condition": "removed" if remove else "next-exit"})
    term = RawTerminal(tty and stdin)
    try:
        if start:
            try:
                client.post(f"{_c(cid)}/start")
            except APIError as e:
                ctx.err(f"hull: {e.message}\n\nRun 'hull run --help' for more information")
                return _start_error_status(e.detail)
        if tty:
            WindowSize(client, _c(cid)).start()
        if sig_proxy and not tty:
            _proxy_signals(client, cid)
        if att is not None:
            if stdin:
                att.pump_stdin()
            att.copy_output()
            att.conn.close()
            if att.detached:
                wait.close()
                return 0
        raw = wait.read()
        wait.close()
    finally:
        term.restore()
    try:
        result = json.loads(raw)
    except ValueError:
        raise CLIError("error waiting for container: unexpected answer", 125) from None
    if result.get("Error") and result["Error"].get("Message"):
        raise CLIError(f"error waiting for container: {result['Error']['Message']}", 125)
    return int(result.get("StatusCode", 0))


def cmd_run(ctx: Context, a: argparse.Namespace) -> int:
    keys = check_detach_keys(a.detach_keys)
    body = create_body(a, detach=a.detach)
    cid = _create(ctx, a, body)
    if a.detach:
        try:
            ctx.client.post(f"{_c(cid)}/start")
        except APIError as e:
            ctx.err(f"hull: {e.message}")
            return _start_error_status(e.detail)
        print(cid)
        return 0
    streams = (body["AttachStdin"], body["AttachStdout"], body["AttachStderr"])
    return _run_attached(ctx, cid, streams, a.tty, a.rm, a.sig_proxy.lower() != "false", detach_keys=keys)


def args_start(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="attach container's STDIN")
    p.add_argument("--detach-keys", default=None, help="override the key sequence for detaching a container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def cmd_start(ctx: Context, a: argparse.Namespace) -> int:
    client = ctx.client
    if a.attach or a.interactive:
        if len(a.containers) > 1:
            raise CLIError("you cannot start and attach multiple containers at once")
        info = client.get(f"{_c(a.containers[0])}/json")
        cfg = info.get("Config") or {}
        tty = bool(cfg.get("Tty"))
        stdin = a.interactive and bool(cfg.get("OpenStdin"))
        keys = check_detach_keys(a.detach_keys)
        return _run_attached(ctx, info["Id"], (stdin, True, True), tty, False, not tty, detach_keys=keys)
    return each(ctx, a.containers, lambda c: client.post(f"{_c(c)}/start"))


def args_attach(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detach-keys", default=None, help="override the key sequence for detaching a container")
    p.add_argument("--no-stdin", action="store_true", help="do not attach STDIN")
    p.add_argument(
        "--sig-proxy", default="true", nargs="?", const="true", help="proxy all received signals to the process"
    )
    p.add_argument("container", metavar="CONTAINER")


def cmd_attach(ctx: Context, a: argparse.Namespace) -> int:
    info = ctx.client.get(f"{_c(a.container)}/json")
    state = info.get("State") or {}
    # The docker CLI's own checks: the daemon would attach to a stopped container and wait for its next start.
    if not state.get("Running"):
        raise CLIError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise CLIError("You cannot attach to a paused container, unpause it first")
    if state.get("Restarting"):
        raise CLIError("You cannot attach to a restarting container, wait until it is running")
    keys = check_detach_keys(a.detach_keys)
    cfg = info.get("Config") or {}
    tty = bool(cfg.get("Tty"))
    stdin = not a.no_stdin and bool(cfg.get("OpenStdin"))
    sig_proxy = str(a.sig_proxy).lower() != "false"
    return _run_attached(ctx, info["Id"], (stdin, True, True), tty, False, sig_proxy, start=False, detach_keys=keys)


# ------------------------------------------------------------------------------ stop / kill / restart / rm
def args_stop(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-t", "--time", "--timeout", type=int, default=None, dest="time", help="seconds to wait before killing"
    )
    p.add_argument("-s", "--signal", default="", help="signal to send to the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def cmd_stop(ctx: Context, a: argparse.Namespace) -> int:
    client = ctx.client
    params: dict[str, Any] = {"t": a.time}
    if a.signal:
        if not client.at_least("1.42"):
            raise CLIError(f'"--signal" requires API version 1.42, but the daemon API version is {client.version}')
        params["signal"] = a.signal
    return each(ctx, a.containers, lambda c: client.request("POST", f"{_c(c)}/stop", params).read())


def args_restart(p: argparse.ArgumentParser) -> None:
    args_stop(p)


def cmd_restart(ctx: Context, a: argparse.Namespace) -> int:
    client = ctx.client
    params: dict[str, Any] = {"t": a.time}
    if a.signal:
        params["signal"] = a.signal
    return each(ctx, a.containers, lambda c: client.post(f"{_c(c)}/restart", params))


def args_kill(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--signal", default="", help="signal to send to the container")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def cmd_kill(ctx: Context, a: argparse.Namespace) -> int:
    client = ctx.client
    params = {"signal": a.signal or None}
    return each(ctx, a.containers, lambda c: client.post(f"{_c(c)}/kill", params))


def args_pause(p: argparse.ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def cmd_pause(ctx: Context, a: argparse.Namespace) -> int:
    return each(ctx, a.containers, lambda c: ctx.client.post(f"{_c(c)}/pause"))


args_unpause = args_pause


def cmd_unpause(ctx: Context, a: argparse.Namespace) -> int:
    return each(ctx, a.containers, lambda c: ctx.client.post(f"{_c(c)}/unpause"))


def args_rename(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")


def cmd_rename(ctx: Context, a: argparse.Namespace) -> int:
    ctx.client.post(f"{_c(a.container)}/rename", {"name": a.new_name})
    return 0


def args_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="force the removal of a running container")
    p.add_argument("-v", "--volumes", action="store_true", help="remove anonymous volumes of the container")
    p.add_argument("-l", "--link", action="store_true", help="remove the specified link")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def cmd_rm(ctx: Context, a: argparse.Namespace) -> int:
    client = ctx.client
    params = {"force": a.force or None, "v": a.volumes or None, "link": a.link or None}
    return each(ctx, a.containers, lambda c: client.delete(_c(c), params))


def args_wait(p: argparse.ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def cmd_wait(ctx: Context, a: argparse.Namespace) -> int:
    client = ctx.client
    status = 0
    for c in a.containers:
        try:
            result = client.post(f"{_c(c)}/wait")
        except APIError as e:
            ctx.err(e.message)
            status = 1
            continue
        print(result.get("StatusCode", 0), flush=True)
    return status


# ------------------------------------------------------------------------------ ps
PS_DEFAULT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
    "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE",
    "LocalVolumes": "LOCAL VOLUMES", "Label": "LABEL", "Platform": "PLATFORM",
}  # fmt: skip


def display_ports(ports: list[dict[str, Any]] | None) -> str:
    out = []
    for p in sorted(ports or [], key=lambda p: (p.get("PrivatePort", 0), p.get("Type", ""), p.get("IP", ""))):
        private = f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}"
        if p.get("PublicPort"):
            ip = p.get("IP") or "0.0.0.0"
            host = f"[{ip}]" if ":" in ip else ip
            out.append(f"{host}:{p['PublicPort']}->{private}")
        else:
            out.append(private)
    return ", ".join(dict.fromkeys(out))


def container_record(c: dict[str, Any], trunc: bool, now: float | None = None) -> dict[str, Any]:
    """The fields docker's ps template sees for one entry of GET /containers/json."""
    from hull.cli import format as fmt  # here, not at the top: `run` would pay for datetime
    labels = c.get("Labels") or {}
    names = [n[1:] if n.startswith("/") else n for n in c.get("Names") or []]
    names = [n for n in names if "/" not in n] if trunc else names
    command = c.get("Command", "")
    image = c.get("Image", "")
    if trunc and image.startswith("sha256:"):
        image = fmt.short_id(image)
    created = float(c.get("Created", 0))
    size = ""
    if "SizeRw" in c or "SizeRootFs" in c:
        size = humanize.human_size(c.get("SizeRw") or 0, 3)
        if c.get("SizeRootFs"):
            size += f" (virtual {humanize.human_size(c['SizeRootFs'], 3)})"
    mounts = [m.get("Name") or m.get("Source", "") for m in c.get("Mounts") or []]
    networks = sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    return {
        "ID": fmt.short_id(c.get("Id", ""), trunc),
        "Image": image,
        "Command": fmt.go_quote(fmt.ellipsis(command, 20) if trunc else command),
        "CreatedAt": fmt.go_time(created),
        "RunningFor": fmt.since(created, now),
        "Ports": display_ports(c.get("Ports")),
        "Status": c.get("Status", ""),
        "State": c.get("State", ""),
        "Size": size,
        "Names": ",".join(names),
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "Label": lambda key: labels.get(key, ""),
        "Mounts": ",".join(fmt.ellipsis(m, 15) if trunc else m for m in mounts),
        "Networks": ",".join(networks),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")),
    }


def args_ps(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default shows just running)")
    p.add_argument("-q", "--quiet", action="store_true", help="only display container IDs")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-f", "--filter", action="append", default=[], help="filter output based on conditions provided")
    p.add_argument("--format", default=None, help="format output using a custom template")
    p.add_argument("-n", "--last", type=int, default=-1, help="show n last created containers (includes all states)")
    p.add_argument(
        "-l", "--latest", action="store_true", help="show the latest created container (includes all states)"
    )
    p.add_argument("-s", "--size", action="store_true", help="display total file sizes")


def cmd_ps(ctx: Context, a: argparse.Namespace) -> int:
    limit = 1 if a.latest else a.last
    size = a.size or (a.format is not None and ".Size" in a.format)
    params = {
        "all": True if a.all or limit > 0 else None,
        "limit": limit if limit > 0 else None,
        "size": True if size else None,
        "filters": filters_json(a.filter) if a.filter else None,
    }
    items = ctx.client.get("/containers/json", params) or []
    records = [container_record(c, not a.no_trunc) for c in items]
    if a.quiet and a.format is None:
        for r in records:
            print(r["ID"])
        return 0
    default = PS_DEFAULT + ("\t{{.Size}}" if a.size else "")
    from hull.cli import format as fmt

    fmt.write_records("{{.ID}}" if a.quiet else a.format, default, PS_HEADERS, records)
    return 0


# ------------------------------------------------------------------------------ logs
def args_logs(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="follow log output")
    p.add_argument("--since", default="", help="show logs since timestamp or relative (e.g. 42m)")
    p.add_argument("--until", default="", help="show logs before a timestamp or relative (e.g. 42m)")
    p.add_argument("-n", "--tail", default="all", help="number of lines to show from the end of the logs")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("--details", action="store_true", help="show extra details provided to logs")
    p.add_argument("container", metavar="CONTAINER")


def cmd_logs(ctx: Context, a: argparse.Namespace) -> int:
    from hull.cli import units

    client = ctx.client
    info = client.get(f"{_c(a.container)}/json")
    tty = bool((info.get("Config") or {}).get("Tty"))
    params = {
        "stdout": True, "stderr": True, "follow": a.follow or None,
        "since": units.timestamp(a.since) if a.since else None,
        "until": units.timestamp(a.until) if a.until else None,
        "timestamps": a.timestamps or None, "details": a.details or None, "tail": a.tail,
    }  # fmt: skip
    resp = client.request("GET", f"{_c(a.container)}/logs", params)
    mux = is_multiplexed(resp.getheader("Content-Type") or "", tty, version_tuple(client.version))
    copy_stream(resp.read1, sys.stdout.buffer, sys.stderr.buffer, mux)
    return 0


# ------------------------------------------------------------------------------ exec
def args_exec(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="detached mode: run command in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], help="set environment variables")
    p.add_argument("-w", "--workdir", default="", help="working directory inside the container")
    p.add_argument("-u", "--user", default="", help="username or UID")
    p.add_argument("--privileged", action="store_true", help="give extended privileges to the command")
    p.add_argument("--detach-keys", default=None, help="override the key sequence for detaching a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")


def cmd_exec(ctx: Context, a: argparse.Namespace) -> int:
    if not a.command:
        raise CLIError('"hull exec" requires at least 2 arguments.')
    client = ctx.client
    info = client.get(f"{_c(a.container)}/json")
    body = {
        "User": a.user, "Privileged": a.privileged, "Tty": a.tty, "AttachStdin": a.interactive and not a.detach,
        "AttachStderr": not a.detach, "AttachStdout": not a.detach, "Detach": a.detach,
        "DetachKeys": a.detach_keys or "", "Env": a.env or None, "WorkingDir": a.workdir, "Cmd": a.command,
    }  # fmt: skip
    exec_id = client.post(f"{_c(info['Id'])}/exec", None, body)["Id"]
    if a.detach:
        client.post(f"/exec/{exec_id}/start", None, {"Detach": True, "Tty": a.tty})
        return 0
    start: dict[str, Any] = {"Detach": False, "Tty": a.tty}
    if a.tty and os.isatty(sys.stdout.fileno()):  # the size from the start, as the docker CLI sends it
        size = os.get_terminal_size(sys.stdout.fileno())
        start["ConsoleSize"] = [size.lines, size.columns]
    conn = client.hijack(f"/exec/{exec_id}/start", None, start)
    att = Attachment(conn, a.interactive, a.tty, version_tuple(client.version))
    term = RawTerminal(a.tty and a.interactive)
    try:
        if a.tty:
            WindowSize(client, f"/exec/{exec_id}").start()
        if a.interactive:
            att.pump_stdin()
        att.copy_output()
        conn.close()
    finally:
        term.restore()
    return int(client.get(f"/exec/{exec_id}/json").get("ExitCode") or 0)


# ------------------------------------------------------------------------------ commit / export / diff
def args_commit(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--author", default="", help='author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-m", "--message", default="", help="commit message")
    p.add_argument("-c", "--change", action="append", default=[], help="apply Dockerfile instruction to the image")
    p.add_argument("-p", "--pause", default="true", nargs="?", const="true", help="pause container during commit")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("reference", nargs="?", default="", metavar="[REPOSITORY[:TAG]]")


def cmd_commit(ctx: Context, a: argparse.Namespace) -> int:
    repo, tag = split_reference(a.reference) if a.reference else ("", "")
    params: list[tuple[str, Any]] = [
        ("container", a.container), ("repo", repo), ("tag", tag), ("comment", a.message),
        ("author", a.author), ("pause", str(a.pause).lower() not in ("false", "0")),
    ]  # fmt: skip
    params += [("changes", c) for c in a.change]
    result = ctx.client.post("/commit", params)
    print(result.get("Id", ""))
    return 0


def write_output(resp: Any, path: str | None, what: str) -> None:
    """Copy a streamed body to a file, or to stdout when it is not a terminal."""
    if path:
        tmp = path + ".tmp" if not path.startswith("/dev/") else path
        with open(tmp, "wb") as f:
            _copy_body(resp, f)
        if tmp != path:
            os.replace(tmp, path)
        return
    if sys.stdout.isatty():
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    _copy_body(resp, sys.stdout.buffer)
    sys.stdout.buffer.flush()


def _copy_body(resp: Any, out: Any) -> None:
    while True:
        chunk = resp.read1(1 << 16)
        if not chunk:
            break
        out.write(chunk)
    resp.close()


def args_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default=None, help="write to a file, instead of STDOUT")
    p.add_argument("container", metavar="CONTAINER")


def cmd_export(ctx: Context, a: argparse.Namespace) -> int:
    if not a.output and sys.stdout.isatty():
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = ctx.client.request("GET", f"{_c(a.container)}/export")
    write_output(resp, a.output, "container")
    return 0


def args_diff(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")


def cmd_diff(ctx: Context, a: argparse.Namespace) -> int:
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in ctx.client.get(f"{_c(a.container)}/changes") or []:
        print(f"{kinds.get(change.get('Kind'), '?')} {change.get('Path')}")
    return 0


# ------------------------------------------------------------------------------ inspect / prune
def args_container_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default=None, help="format output using a custom template")
    p.add_argument("-s", "--size", action="store_true", help="display total file sizes")
    p.add_argument("names", nargs="+", metavar="CONTAINER")


def cmd_container_inspect(ctx: Context, a: argparse.Namespace) -> int:
    from hull.cli.commands.system import inspect_objects

    return inspect_objects(ctx, a.names, "container", a.format, a.size)


def args_container_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help='provide filter values (e.g. "until=<timestamp>")')


def confirm(ctx: Context, warning: str) -> bool:
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def cmd_container_prune(ctx: Context, a: argparse.Namespace) -> int:
    if not a.force and not confirm(ctx, "WARNING! This will remove all stopped containers."):
        return 0
    result = ctx.client.post("/containers/prune", {"filters": filters_json(a.filter) if a.filter else None}) or {}
    deleted = result.get("ContainersDeleted") or []
    if deleted:
        print("Deleted Containers:")
        for d in deleted:
            print(d)
        print()
    print(f"Total reclaimed space: {humanize.human_size(result.get('SpaceReclaimed') or 0)}")
    return 0
