"""Docker's JSON progress stream (pull, push) on a terminal: a line per layer with a bar (rich).

Docker's messages: `{"status": ..., "id": <short digest>, "progressDetail": {"current", "total"}}`
for a layer, `{"status": ...}` for the image as a whole (and `{"status": "Pulling from x", "id":
<tag>}`, a heading). A layer's line keeps its last status ("Downloading", "Extracting", "Pull
complete", "Already exists") and its bar the bytes of the step under way, as docker's own
display does; the other messages are printed above the bars as they come.
"""

from __future__ import annotations

from hull.humanize import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import IO, Any

# A layer's last word: its bar shows full.
DONE = ("Pull complete", "Already exists", "Pushed", "Layer already exists", "Mounted from")
HEADINGS = ("Pulling from", "The push refers to")


def show_progress(messages: Iterable[dict[str, Any]], out: IO[str]) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    columns = (TextColumn("{task.fields[ident]}: {task.description:<18}"), BarColumn(bar_width=40),
               TextColumn("{task.fields[amount]}"))  # fmt: skip
    with Progress(*columns, console=Console(file=out, highlight=False), auto_refresh=False) as progress:
        layers: dict[str, Any] = {}
        for msg in messages:
            status, ident = msg.get("status") or "", msg.get("id")
            if not ident or status.startswith(HEADINGS):
                progress.console.print(f"{ident}: {status}" if ident else status)
                continue
            detail = msg.get("progressDetail") or {}
            if ident not in layers:
                layers[ident] = progress.add_task(status, ident=ident, total=None, amount="")
            current, total = detail.get("current") or 0, detail.get("total") or 0
            if status.startswith(DONE):
                progress.update(layers[ident], description=status, total=1, completed=1, amount="")
            elif total:
                amount = f"{human_size(current)}/{human_size(total)}"
                progress.update(layers[ident], description=status, total=total, completed=current, amount=amount)
            else:
                progress.update(layers[ident], description=status, amount="")
            progress.refresh()
