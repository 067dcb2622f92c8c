"""`hull build`: tar the context (minus .dockerignore), POST /build, render the legacy builder's stream.

As the docker CLI: the context's files go with owner 0:0 and their mode and mtime; the
Dockerfile and .dockerignore are always sent; a Dockerfile outside the context is added under
a generated name. Output is the daemon's `stream` text as it comes; an `errorDetail` is printed
on stderr and the command exits with its `code` (a failed RUN's status) or 1. `-q` prints only
the image id; `--iidfile` writes it to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import stat
import sys
import tarfile
import tempfile

from hull import humanize
from hull.build import dockerignore
from hull.cli.client import CLIError
from hull.cli.context import Context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any


def args_build(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--tag", action="append", default=[], help="name and optionally a tag (name:tag)")
    p.add_argument("-f", "--file", default="", help="name of the Dockerfile (default: PATH/Dockerfile)")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress the build output and print image ID on success")
    p.add_argument("--no-cache", action="store_true", help="do not use cache when building the image")
    p.add_argument("--pull", action="store_true", help="always attempt to pull a newer version of the image")
    p.add_argument("--build-arg", action="append", default=[], help="set build-time variables")
    p.add_argument("--label", action="append", default=[], help="set metadata for an image")
    p.add_argument("--target", default="", help="set the target build stage to build")
    p.add_argument("--iidfile", default="", help="write the image ID to the file")
    p.add_argument("--platform", default="", help="set platform if server is multi-platform capable")
    p.add_argument("--rm", default="true", help="remove intermediate containers after a successful build")
    p.add_argument("--force-rm", action="store_true", help="always remove intermediate containers")
    p.add_argument("path", metavar="PATH")


def _pairs(items: list[str], what: str, env_fallback: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise CLIError(f"invalid argument {item!r} for --{what}")
        # `--build-arg NAME` takes NAME from the environment (unset: no value), as docker does.
        out[key] = value if eq else (os.environ.get(key) if env_fallback else "")
    return out


def write_context(root: str, dockerfile: str, out: IO[bytes]) -> str:
    """Tar the context into `out`; returns the Dockerfile's path inside it."""
    ignore_text = ""
    try:
        with open(os.path.join(root, ".dockerignore"), encoding="utf-8") as f:
            ignore_text = f.read()
    except FileNotFoundError:
        pass
    matcher = dockerignore.Matcher(dockerignore.parse(ignore_text))
    abs_root = os.path.abspath(root)
    df_abs = os.path.abspath(dockerfile) if dockerfile else os.path.join(abs_root, "Dockerfile")
    inside = os.path.relpath(df_abs, abs_root)
    outside = inside.startswith("..")
    keep = {".dockerignore", "" if outside else inside}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(abs_root):
            rel_dir = os.path.relpath(dirpath, abs_root)
            rel_dir = "" if rel_dir == "." else rel_dir
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if rel not in keep and matcher.excluded(rel):
                    if name in dirnames and not matcher.has_exceptions:
                        dirnames.remove(name)
                    continue
                _add(tar, os.path.join(dirpath, name), rel)
        if outside:
            inside = f".dockerfile.{secrets.token_hex(10)}"
            _add(tar, df_abs, inside)
    return inside


def _add(tar: tarfile.TarFile, path: str, name: str) -> None:
    st = os.lstat(path)
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        tar.addfile(info)
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
        with open(path, "rb") as f:
            tar.addfile(info, f)


def cmd_build(ctx: Context, a: argparse.Namespace) -> int:
    if not os.path.isdir(a.path):
        raise CLIError(f'unable to prepare context: path "{a.path}" not found')
    params: list[tuple[str, Any]] = [("t", t) for t in a.tag]
    params += [("q", True if a.quiet else None), ("nocache", True if a.no_cache else None),
               ("pull", True if a.pull else None), ("target", a.target or None),
               ("platform", a.platform or None), ("rm", True), ("forcerm", True if a.force_rm else None)]  # fmt: skip
    if a.build_arg:
        params.append(("buildargs", json.dumps(_pairs(a.build_arg, "build-arg", True))))
    if a.label:
        params.append(("labels", json.dumps(_pairs(a.label, "label", False))))
    with tempfile.TemporaryFile() as spool:
        params.append(("dockerfile", write_context(a.path, a.file, spool)))
        size = spool.tell()
        spool.seek(0)
        if not a.quiet:
            sys.stdout.write(f"Sending build context to Docker daemon  {humanize.human_size(size)}\n\n")
            sys.stdout.flush()
        resp = ctx.client.request("POST", "/build", params, data=spool)
        image_id = ""
        for message in ctx.client.json_lines(resp):
            if "errorDetail" in message or "error" in message:
                detail = message.get("errorDetail") or {}
                Context.err(detail.get("message") or message.get("error") or "build failed")
                return int(detail.get("code") or 1)
            aux = message.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])
            text = message.get("stream") or (message.get("status", "") + "\n" if message.get("status") else "")
            if text and not a.quiet:
                sys.stdout.write(text)
                sys.stdout.flush()
    if a.quiet:
        print(image_id)
    if a.iidfile:
        with open(a.iidfile, "w", encoding="utf-8") as f:
            f.write(image_id)
    return 0
