"""Image verbs: images, rmi, tag, history, import, save, load, pull, image inspect, image prune."""

from __future__ import annotations

import argparse
import sys

from hull import humanize
from hull.cli import credentials
from hull.cli import format as fmt
from hull.cli.client import APIError, CLIError, filters_json, path_quote
from hull.cli.commands.containers import confirm, follow_progress, pull_image, split_reference, write_output
from hull.cli.context import Context

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms of every start)
if TYPE_CHECKING:
    from typing import Any, BinaryIO


def _i(name: str) -> str:
    return f"/images/{path_quote(name)}"


# ------------------------------------------------------------------------------ images
IMAGES_DEFAULT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_HEADERS = {
    "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID", "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "VIRTUAL SIZE",
    "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}  # fmt: skip


def _split_repo(ref: str) -> tuple[str, str]:
    if "@" in ref:
        return ref.split("@", 1)[0], ref.split("@", 1)[1]
    return split_reference(ref)


def image_records(
    images: list[dict[str, Any]], trunc: bool, digests: bool, now: float | None = None
) -> list[dict[str, Any]]:
    """One record per (repository, tag[, digest]) of GET /images/json, as docker's image list shows them."""
    out = []
    for img in images:
        repo_tags: dict[str, list[str]] = {}
        repo_digests: dict[str, list[str]] = {}
        for ref in img.get("RepoTags") or []:
            if ref == "<none>:<none>":
                continue
            repo, tag = split_reference(ref)
            repo_tags.setdefault(repo, []).append(tag)
        for ref in img.get("RepoDigests") or []:
            if ref == "<none>@<none>":
                continue
            repo, dgst = _split_repo(ref)
            repo_digests.setdefault(repo, []).append(dgst)
        rows: list[tuple[str, str, str]] = []
        for repo, tags in repo_tags.items():
            ds = repo_digests.pop(repo, []) if digests else (repo_digests.pop(repo, None) and [])
            for tag in tags:
                rows += [(repo, tag, d) for d in ds] if ds else [(repo, tag, "<none>")]
        for repo, ds in repo_digests.items():
            rows += [(repo, "<none>", d) for d in ds] if digests else [(repo, "<none>", "<none>")]
        if not rows:
            rows = [("<none>", "<none>", "<none>")]
        created = float(img.get("Created", 0))
        size = img.get("Size", 0) or 0
        shared = img.get("SharedSize", -1)
        for repo, tag, dgst in rows:
            out.append({
                "ID": fmt.short_id(img.get("Id", ""), trunc),
                "Repository": repo, "Tag": tag, "Digest": dgst,
                "CreatedSince": fmt.since(created, now), "CreatedAt": fmt.go_time(created),
                "Size": humanize.human_size(size, 3),
                "VirtualSize": humanize.human_size(img.get("VirtualSize", size) or 0, 3),
                "SharedSize": "N/A" if shared == -1 else humanize.human_size(shared, 3),
                "UniqueSize": "N/A" if shared == -1 else humanize.human_size(size - shared, 3),
                "Containers": "N/A" if img.get("Containers", -1) == -1 else str(img["Containers"]),
            })  # fmt: skip
    return out


def args_images(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="show all images (default hides intermediate images)")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("-f", "--filter", action="append", default=[], help="filter output based on conditions provided")
    p.add_argument("--format", default=None, help="format output using a custom template")
    p.add_argument("reference", nargs="?", default=None, metavar="[REPOSITORY[:TAG]]")


def cmd_images(ctx: Context, a: argparse.Namespace) -> int:
    filters = list(a.filter)
    if a.reference:
        filters.append(f"reference={a.reference}")
    params = {"all": a.all or None, "filters": filters_json(filters) if filters else None}
    items = ctx.client.get("/images/json", params) or []
    records = image_records(items, not a.no_trunc, a.digests)
    if a.quiet and a.format is None:
        for ident in dict.fromkeys(r["ID"] for r in records):
            print(ident)
        return 0
    default = IMAGES_DIGESTS if a.digests else IMAGES_DEFAULT
    fmt.write_records("{{.ID}}" if a.quiet else a.format, default, IMAGES_HEADERS, records)
    return 0


# ------------------------------------------------------------------------------ rmi / tag / history
def args_rmi(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="do not delete untagged parents")
    p.add_argument("images", nargs="+", metavar="IMAGE")


def cmd_rmi(ctx: Context, a: argparse.Namespace) -> int:
    client = ctx.client
    status = 0
    for name in a.images:
        try:
            result = client.delete(_i(name), {"force": a.force or None, "noprune": a.no_prune or None})
        except APIError as e:
            ctx.err(e.message)
            status = 1
            continue
        for item in result or []:
            for key in ("Untagged", "Deleted"):
                if item.get(key):
                    print(f"{key}: {item[key]}")
    return status


def args_tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")


def cmd_tag(ctx: Context, a: argparse.Namespace) -> int:
    repo, tag = split_reference(a.target)
    if "@" in a.target:
        raise CLIError("refusing to create a tag with a digest reference")
    ctx.client.post(f"{_i(a.source)}/tag", {"repo": repo, "tag": tag})
    return 0


HISTORY_DEFAULT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                   "Size": "SIZE", "Comment": "COMMENT"}  # fmt: skip


def history_records(
    items: list[dict[str, Any]], trunc: bool, human: bool, now: float | None = None
) -> list[dict[str, Any]]:
    out = []
    for h in items:
        ident = h.get("Id", "")
        created = float(h.get("Created", 0))
        created_by = (h.get("CreatedBy") or "").replace("\t", " ")
        out.append({
            "ID": ident if ident == "<missing>" else fmt.short_id(ident, trunc),
            "CreatedSince": fmt.since(created, now) if human else fmt.rfc3339(created),
            "CreatedAt": fmt.rfc3339(created),
            "CreatedBy": fmt.ellipsis(created_by, 45) if trunc else created_by,
            "Size": humanize.human_size(h.get("Size", 0) or 0, 3) if human else str(h.get("Size", 0)),
            "Comment": h.get("Comment", ""),
        })  # fmt: skip
    return out


def args_history(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-H", "--human", default="true", nargs="?", const="true", help="print sizes and dates in human readable format"
    )
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("--format", default=None, help="format output using a custom template")
    p.add_argument("image", metavar="IMAGE")


def cmd_history(ctx: Context, a: argparse.Namespace) -> int:
    items = ctx.client.get(f"{_i(a.image)}/history") or []
    human = str(a.human).lower() not in ("false", "0")
    records = history_records(items, not a.no_trunc, human)
    if a.quiet and a.format is None:
        for r in records:
            print(r["ID"])
        return 0
    fmt.write_records("{{.ID}}" if a.quiet else a.format, HISTORY_DEFAULT, HISTORY_HEADERS, records)
    return 0


# ------------------------------------------------------------------------------ import / save / load / pull
def _print_messages(ctx: Context, resp: Any) -> None:
    """The JSON messages of load/import/pull: `stream` text, `status` lines; an `error` raises."""
    for msg in ctx.client.json_lines(resp):
        if msg.get("error") or msg.get("errorDetail"):
            raise CLIError(str(msg.get("error") or (msg.get("errorDetail") or {}).get("message")))
        if msg.get("stream"):
            sys.stdout.write(msg["stream"])
        elif msg.get("status"):
            ident = msg.get("id")
            sys.stdout.write((f"{ident}: " if ident else "") + msg["status"] + "\n")
        sys.stdout.flush()


def args_import(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c", "--change", action="append", default=[], help="apply Dockerfile instruction to the created image"
    )
    p.add_argument("-m", "--message", default="", help="set commit message for imported image")
    p.add_argument("--platform", default="", help="set platform if server is multi-platform capable")
    p.add_argument("source", metavar="file|URL|-")
    p.add_argument("reference", nargs="?", default="", metavar="[REPOSITORY[:TAG]]")


def cmd_import(ctx: Context, a: argparse.Namespace) -> int:
    repo, tag = split_reference(a.reference) if a.reference else ("", "")
    if a.reference and ":" not in a.reference.rsplit("/", 1)[-1]:
        tag = ""
    is_url = a.source.startswith(("http://", "https://"))
    params: list[tuple[str, Any]] = [("fromSrc", a.source if is_url else "-"), ("repo", repo), ("tag", tag),
                                     ("message", a.message)]  # fmt: skip
    params += [("changes", c) for c in a.change]
    if a.platform:
        params.append(("platform", a.platform))
    if is_url:
        resp = ctx.client.request("POST", "/images/create", params)
    elif a.source == "-":
        resp = ctx.client.request("POST", "/images/create", params, data=sys.stdin.buffer)
    else:
        with _open_input(a.source) as f:
            resp = ctx.client.request("POST", "/images/create", params, data=f)
    _print_messages(ctx, resp)
    return 0


def _open_input(path: str) -> BinaryIO:
    """A file the user named, or docker's error for it."""
    try:
        return open(path, "rb")
    except OSError as e:
        raise CLIError(f"open {path}: {(e.strerror or str(e)).lower()}") from None


def args_save(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default=None, help="write to a file, instead of STDOUT")
    p.add_argument("images", nargs="+", metavar="IMAGE")


def cmd_save(ctx: Context, a: argparse.Namespace) -> int:
    if not a.output and sys.stdout.isatty():
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = ctx.client.request("GET", "/images/get", [("names", n) for n in a.images])
    write_output(resp, a.output, "image")
    return 0


def args_load(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", default=None, help="read from tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress the load output")


def cmd_load(ctx: Context, a: argparse.Namespace) -> int:
    params = {"quiet": True if a.quiet else None}
    if a.input:
        with _open_input(a.input) as f:
            resp = ctx.client.request("POST", "/images/load", params, data=f)
            _print_messages(ctx, resp)
        return 0
    if sys.stdin.isatty():
        raise CLIError("requested load from stdin, but stdin is empty")
    resp = ctx.client.request("POST", "/images/load", params, data=sys.stdin.buffer)
    _print_messages(ctx, resp)
    return 0


def args_pull(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    p.add_argument("-a", "--all-tags", action="store_true", help="download all tagged images in the repository")
    p.add_argument("--platform", default="", help="set platform if server is multi-platform capable")
    p.add_argument("image", metavar="NAME[:TAG|@DIGEST]")


def cmd_pull(ctx: Context, a: argparse.Namespace) -> int:
    pull_image(ctx.client, a.image, quiet=a.quiet, out=sys.stdout, platform=a.platform)
    if a.quiet:
        repo, tag = split_reference(a.image)
        print(f"{repo}:{tag}")
    return 0


def args_push(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    p.add_argument("image", metavar="NAME[:TAG]")


def cmd_push(ctx: Context, a: argparse.Namespace) -> int:
    repo, tag = split_reference(a.image)
    auth = credentials.auth_header(credentials.registry_of(repo))
    resp = ctx.client.request("POST", f"{_i(repo)}/push", {"tag": tag}, headers={"X-Registry-Auth": auth}, data=b"")
    follow_progress(ctx.client, resp, a.quiet, sys.stdout)
    if a.quiet:
        print(f"{repo}:{tag}")
    return 0


# ------------------------------------------------------------------------------ inspect / prune
def args_image_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", default=None, help="format output using a custom template")
    p.add_argument("names", nargs="+", metavar="IMAGE")


def cmd_image_inspect(ctx: Context, a: argparse.Namespace) -> int:
    from hull.cli.commands.system import inspect_objects

    return inspect_objects(ctx, a.names, "image", a.format, False)


def args_image_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.add_argument("--filter", action="append", default=[], help='provide filter values (e.g. "until=<timestamp>")')


def cmd_image_prune(ctx: Context, a: argparse.Namespace) -> int:
    warning = (
        "WARNING! This will remove all images without at least one container associated to them."
        if a.all
        else "WARNING! This will remove all dangling images."
    )
    if not a.force and not confirm(ctx, warning):
        return 0
    filters = [f"dangling={'false' if a.all else 'true'}", *a.filter]
    result = ctx.client.post("/images/prune", {"filters": filters_json(filters)}) or {}
    deleted = result.get("ImagesDeleted") or []
    if deleted:
        print("Deleted Images:")
        for d in deleted:
            for key in ("Untagged", "Deleted"):
                if d.get(key):
                    print(f"{key.lower()}: {d[key]}")
        print()
    print(f"Total reclaimed space: {humanize.human_size(result.get('SpaceReclaimed') or 0)}")
    return 0
