"""The processes of a container as the host's `ps` shows them (`GET /containers/{id}/top`).

As dockerd does: run `ps` with the client's arguments (default `-ef`), restricted to the
container's pids with `-q` (retried without it for options `-q` does not combine with), and
keep the lines whose PID column is one of the container's; a thread line (PID "-", from the
`m` option) stays with the process above it. The last title's column (the command) takes
the rest of each line, spaces included.
"""

import asyncio
import re
from typing import Any

from hull.errors import HullError, InvalidArgument

DEFAULT_PS_ARGS = "-ef"
PS = "ps"
PID_TITLE = "PID"
# `-o x=PID` would rename a column PID and make another column be read as the pids.
_RENAMED_PID = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def check_ps_args(ps_args: str) -> None:
    for key, value in _RENAMED_PID.findall(ps_args):
        if key != "pid":
            raise InvalidArgument(f'specifying "{key}={value}" is not allowed')


async def _ps(args: list[str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        PS, *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err


def parse_ps_output(output: str, pids: set[int]) -> dict[str, Any]:
    lines = output.split("\n")
    titles = lines[0].split()
    if PID_TITLE not in titles:
        raise HullError("Couldn't find PID field in ps output")
    pid_index = titles.index(PID_TITLE)
    processes: list[list[str]] = []
    in_container = False
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if fields[pid_index] == "-":
            if in_container:
                processes.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise HullError(f"Unexpected pid '{fields[pid_index]}'") from None
        in_container = pid in pids
        if in_container:
            processes.append(_row(fields, len(titles)))
    return {"Titles": titles, "Processes": processes}


def _row(fields: list[str], columns: int) -> list[str]:
    return [*fields[: columns - 1], " ".join(fields[columns - 1 :])]


async def top(pids: list[int], ps_args: str) -> dict[str, Any]:
    """{"Titles": [...], "Processes": [[...], ...]} for the container's `pids` (host pids)."""
    ps_args = ps_args or DEFAULT_PS_ARGS
    check_ps_args(ps_args)
    args = ps_args.split(" ")
    code, out, err = await _ps([*args, "-q" + ",".join(str(p) for p in pids)])
    if code != 0:
        code, out, err = await _ps(args)
        if code != 0:
            first = err.decode(errors="replace").split("\n", 1)[0]
            raise HullError(f"ps: {first or f'exit status {code}'}")
    return parse_ps_output(out.decode(errors="replace"), set(pids))
