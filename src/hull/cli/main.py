"""Entry point of `hull`: global flags, then the verb's own parser, built only for that verb.

Kept small on purpose: every `hull` invocation pays for what this module imports, so the
verbs live in hull.cli.commands.* and are imported when invoked.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import NoReturn

PROG = "hull"
VERSION = "0.1.0"


class Verb:
    """A verb: its module in hull.cli.commands, its name there (cmd_<name>, args_<name>) and its help line.

    A plain class: NamedTuple would import typing, 7 ms of every start.
    """

    __slots__ = ("help", "module", "name")

    def __init__(self, module: str, name: str, help: str) -> None:
        self.module, self.name, self.help = module, name, help


_C, _I, _S = "containers", "images", "system"

VERBS: dict[str, Verb] = {
    "run": Verb(_C, "run", "Create and run a new container from an image"),
    "create": Verb(_C, "create", "Create a new container"),
    "start": Verb(_C, "start", "Start one or more stopped containers"),
    "attach": Verb(_C, "attach", "Attach local standard input, output, and error streams to a running container"),
    "stop": Verb(_C, "stop", "Stop one or more running containers"),
    "kill": Verb(_C, "kill", "Kill one or more running containers"),
    "pause": Verb(_C, "pause", "Pause all processes within one or more containers"),
    "unpause": Verb(_C, "unpause", "Unpause all processes within one or more containers"),
    "rename": Verb(_C, "rename", "Rename a container"),
    "restart": Verb(_C, "restart", "Restart one or more containers"),
    "rm": Verb(_C, "rm", "Remove one or more containers"),
    "ps": Verb(_C, "ps", "List containers"),
    "logs": Verb(_C, "logs", "Fetch the logs of a container"),
    "wait": Verb(_C, "wait", "Block until one or more containers stop, then print their exit codes"),
    "exec": Verb(_C, "exec", "Execute a command in a running container"),
    "commit": Verb(_C, "commit", "Create a new image from a container's changes"),
    "export": Verb(_C, "export", "Export a container's filesystem as a tar archive"),
    "diff": Verb(_C, "diff", "Inspect changes to files or directories on a container's filesystem"),
    "cp": Verb("cp", "cp", "Copy files/folders between a container and the local filesystem"),
    "top": Verb("inspection", "top", "Display the running processes of a container"),
    "stats": Verb("inspection", "stats", "Display a live stream of container(s) resource usage statistics"),
    "update": Verb("inspection", "update", "Update configuration of one or more containers"),
    "inspect": Verb(_S, "inspect", "Return low-level information on Docker objects"),
    "build": Verb("build", "build", "Build an image from a Dockerfile"),
    "images": Verb(_I, "images", "List images"),
    "rmi": Verb(_I, "rmi", "Remove one or more images"),
    "tag": Verb(_I, "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "history": Verb(_I, "history", "Show the history of an image"),
    "import": Verb(_I, "import", "Import the contents from a tarball to create a filesystem image"),
    "save": Verb(_I, "save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "load": Verb(_I, "load", "Load an image from a tar archive or STDIN"),
    "pull": Verb(_I, "pull", "Download an image from a registry"),
    "push": Verb(_I, "push", "Upload an image to a registry"),
    "login": Verb("login", "login", "Log in to a registry"),
    "logout": Verb("login", "logout", "Log out from a registry"),
    "port": Verb("network", "port", "List port mappings or a specific mapping for the container"),
    "events": Verb(_S, "events", "Get real time events from the server"),
    "version": Verb(_S, "version", "Show the hull version information"),
    "info": Verb(_S, "info", "Display system-wide information"),
}

GROUPS: dict[str, dict[str, Verb]] = {
    "container": {
        **{v: VERBS[v] for v in ("run", "create", "start", "attach", "stop", "kill", "pause", "unpause", "rename",
                                  "restart", "rm", "logs", "wait",
                                  "exec", "commit", "export", "diff", "cp")},
        "ls": VERBS["ps"], "ps": VERBS["ps"], "list": VERBS["ps"],
        "inspect": Verb(_C, "container_inspect", "Display detailed information on one or more containers"),
        "prune": Verb(_C, "container_prune", "Remove all stopped containers"),
        **{v: VERBS[v] for v in ("top", "stats", "update")},
    },
    "image": {
        "ls": VERBS["images"], "list": VERBS["images"], "rm": VERBS["rmi"], "remove": VERBS["rmi"],
        **{v: VERBS[v] for v in ("build", "tag", "history", "import", "save", "load", "pull", "push")},
        "inspect": Verb(_I, "image_inspect", "Display detailed information on one or more images"),
        "prune": Verb(_I, "image_prune", "Remove unused images"),
    },
    "network": {
        "create": Verb("network", "network_create", "Create a network"),
        "ls": Verb("network", "network_ls", "List networks"), "list": Verb("network", "network_ls", "List networks"),
        "inspect": Verb("network", "network_inspect", "Display detailed information on one or more networks"),
        "rm": Verb("network", "network_rm", "Remove one or more networks"),
        "remove": Verb("network", "network_rm", "Remove one or more networks"),
        "connect": Verb("network", "network_connect", "Connect a container to a network"),
        "disconnect": Verb("network", "network_disconnect", "Disconnect a container from a network"),
        "prune": Verb("network", "network_prune", "Remove all unused networks"),
    },
    "volume": {
        "create": Verb("volume", "volume_create", "Create a volume"),
        "ls": Verb("volume", "volume_ls", "List volumes"), "list": Verb("volume", "volume_ls", "List volumes"),
        "inspect": Verb("volume", "volume_inspect", "Display detailed information on one or more volumes"),
        "rm": Verb("volume", "volume_rm", "Remove one or more volumes"),
        "remove": Verb("volume", "volume_rm", "Remove one or more volumes"),
        "prune": Verb("volume", "volume_prune", "Remove unused local volumes"),
    },
    "system": {
        "df": Verb(_S, "df", "Show docker disk usage"),
        "info": VERBS["info"],
        "events": VERBS["events"],
    },
}  # fmt: skip

USAGE = f"""Usage:  {PROG} [OPTIONS] COMMAND

A Docker-compatible container engine

Options:
  -H, --host string    Daemon socket to connect to (default: $HULL_HOST or unix:///run/hull/hull.sock)
  -D, --debug          Enable debug mode
  -v, --version        Print version information and quit
"""


def _usage() -> str:
    lines = [USAGE, "Management Commands:"]
    lines += [f"  {g:<12}Manage {g}s" for g in GROUPS]
    lines += ["", "Commands:"]
    lines += [f"  {n:<12}{v.help}" for n, v in VERBS.items()]
    return "\n".join(lines) + f"\n\nRun '{PROG} COMMAND --help' for more information on a command.\n"


def _split_global(argv: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    """Docker's global flags before the verb; the rest starts at the verb."""
    opts: dict[str, str | bool] = {}
    i = 0
    with_value = {"-H": "host", "--host": "host", "-l": "log_level", "--log-level": "log_level",
                  "--config": "config", "-c": "context", "--context": "context"}  # fmt: skip
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.partition("=")
        if name in with_value:
            if not eq:
                if i + 1 >= len(argv):
                    raise SystemExit(_flag_error(f"flag needs an argument: {arg}"))
                value = argv[i + 1]
                i += 1
            opts[with_value[name]] = value
        elif arg.startswith("-H") and len(arg) > 2:
            opts["host"] = arg[2:]
        elif arg in ("-D", "--debug"):
            opts["debug"] = True
        elif arg in ("-v", "--version"):
            opts["version"] = True
        elif arg in ("-h", "--help"):
            opts["help"] = True
        elif arg == "--":
            i += 1
            break
        else:
            raise SystemExit(_flag_error(f"unknown flag: {arg}"))
        i += 1
    return opts, argv[i:]


def _flag_error(msg: str) -> int:
    sys.stderr.write(f"{msg}\nSee '{PROG} --help'.\n")
    return 125


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    opts, rest = _split_global(argv)
    if opts.get("version"):
        print(f"Hull version {VERSION}")
        return 0
    if opts.get("help") or not rest:
        sys.stdout.write(_usage()) if opts.get("help") else sys.stderr.write(_usage())
        return 0 if opts.get("help") else 1
    word, args = rest[0], rest[1:]
    if word in GROUPS:
        group = GROUPS[word]
        if not args or args[0] in ("-h", "--help"):
            sys.stdout.write(f"\nUsage:  {PROG} {word} COMMAND\n\nCommands:\n")
            sys.stdout.write("".join(f"  {n:<10}{v.help}\n" for n, v in group.items()))
            return 0 if args else 1
        verb = group.get(args[0])
        if verb is None:
            sys.stderr.write(f"{PROG}: '{word} {args[0]}' is not a {PROG} command.\nSee '{PROG} --help'\n")
            return 1
        title, args = f"{word} {args[0]}", args[1:]
    else:
        found = VERBS.get(word)
        if found is None:
            sys.stderr.write(f"{PROG}: '{word}' is not a {PROG} command.\nSee '{PROG} --help'\n")
            return 1
        verb, title = found, word
    return run_verb(verb, title, args, opts)


def run_verb(verb: Verb, title: str, args: list[str], opts: dict[str, str | bool]) -> int:
    import argparse
    import importlib

    from hull.cli.client import APIError, CLIError, resolve_host
    from hull.cli.context import Context

    class Formatter(argparse.HelpFormatter):
        """argparse's formatter without its shutil import: every add_argument makes one."""

        def __init__(self, prog: str) -> None:
            try:
                width = os.get_terminal_size().columns - 2
            except OSError:
                width = 78
            super().__init__(prog, width=width)

    class FlagParser(argparse.ArgumentParser):
        """docker's answer to a bad flag: the problem, where to look, and status 125 (any verb)."""

        def __init__(self, prog: str, description: str | None) -> None:
            super().__init__(prog=prog, description=description, add_help=False, formatter_class=Formatter)

        def error(self, message: str) -> NoReturn:
            flag = message.removeprefix("unrecognized arguments: ")
            text = f"unknown flag: {flag.split()[0]}" if flag != message and flag.startswith("-") else message
            sys.stderr.write(f"{text}\nSee '{self.prog} --help'.\n")
            raise SystemExit(125)

    module = importlib.import_module(f"hull.cli.commands.{verb.module}")
    parser = FlagParser(f"{PROG} {title}", verb.help)
    parser.add_argument("--help", action="help", help="print usage")
    getattr(module, f"args_{verb.name}")(parser)
    try:
        a = parser.parse_args(args)
    except SystemExit as e:
        return 0 if e.code == 0 else 125
    host_flag = opts.get("host")
    host, explicit = resolve_host(host_flag if isinstance(host_flag, str) else None)
    ctx = Context(host, explicit, debug=bool(opts.get("debug")))
    failure = 125 if verb.name in ("run", "create") else 1
    try:
        return int(getattr(module, f"cmd_{verb.name}")(ctx, a))
    except APIError as e:
        prefix = f"{PROG}: " if verb.name in ("run", "create") else ""
        suffix = f"\n\nRun '{PROG} {title} --help' for more information" if prefix else ""
        Context.err(f"{prefix}{e.message}{suffix}")
        return failure
    except CLIError as e:
        Context.err(e.message)
        return e.status if e.status != 1 else failure
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
