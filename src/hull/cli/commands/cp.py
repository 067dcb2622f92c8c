"""`hull cp`: copy files between a container and the host, as the docker CLI does.

The daemon only reads a container path as a tar and extracts a tar into a container
directory; everything else is the client's, as in Docker: which side is the container
(`CTR:PATH`), following a symlinked source (-L), and how the archive is renamed so that the
copy lands where `cp` would put it (a directory's contents only for "dir/.", a new name when
the destination does not exist). The host side reads and writes tars with the daemon's own
code (hull.containers.archive), with the docker CLI's host-side rules: no chown, no replacing
a directory by a file or the other way round, no symlink that climbs out of the destination.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import posixpath
import stat
import sys
import tempfile

from hull.cli.client import APIError, CLIError, path_quote
from hull.cli.context import Context

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

# Go's os.FileMode type bits in the daemon's stat header.
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_STAT_HEADER = "x-docker-container-path-stat"


def args_cp(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output during copy")
    p.add_argument("src", metavar="SRC_PATH")
    p.add_argument("dest", metavar="DEST_PATH")


def _split(arg: str) -> tuple[str, str]:
    """(container, path): docker's splitCpArg (an absolute or "./"-relative path is always local)."""
    if arg.startswith("/"):
        return "", arg
    ctr, colon, path = arg.partition(":")
    if not colon or ctr.startswith("."):
        return "", arg
    return ctr, path


def _archive_url(ctr: str) -> str:
    return f"/containers/{path_quote(ctr)}/archive"


def _split_dir_entry(path: str) -> tuple[str, str]:
    """Docker's SplitPathDirEntry: (parent, base), where "dir/." has the base "."."""
    clean = posixpath.normpath(path)
    if path.endswith("/.") or path == ".":
        clean += "/."
    return posixpath.dirname(clean), posixpath.basename(clean)


def _local(path: str) -> str:
    """Docker's resolveLocalPath: absolute, keeping a trailing "/" or "/."."""
    absolute = os.path.abspath(path)
    if path.endswith("/.") or path == ".":
        return absolute + "/."
    if path.endswith("/") and absolute != "/":
        return absolute + "/"
    return absolute


def _stat(ctx: Context, ctr: str, path: str) -> dict[str, Any] | None:
    """The container path's stat; None when the daemon answers 404 (a HEAD answer has no body to tell more)."""
    try:
        resp = ctx.client.request("HEAD", _archive_url(ctr), {"path": path})
    except APIError as e:
        if e.code == 404:
            return None
        raise
    resp.close()
    return _decode_stat(resp.getheader(_STAT_HEADER))


def _decode_stat(value: str | None) -> dict[str, Any]:
    if not value:
        raise CLIError("unable to get resource stat from response: no stat header")
    result: dict[str, Any] = json.loads(base64.b64decode(value))
    return result


def cmd_cp(ctx: Context, a: argparse.Namespace) -> int:
    src_ctr, src = _split(a.src)
    dst_ctr, dst = _split(a.dest)
    if not src:
        raise CLIError("source can not be empty")
    if not dst:
        raise CLIError("destination can not be empty")
    if src_ctr and dst_ctr:
        raise CLIError("copying between containers is not supported")
    if src_ctr:
        _from_container(ctx, src_ctr, src, dst, a.follow_link)
    elif dst_ctr:
        _to_container(ctx, src, dst_ctr, dst, a.follow_link, a.archive)
    else:
        raise CLIError("must specify at least one container source")
    return 0


def _from_container(ctx: Context, ctr: str, src: str, dst: str, follow: bool) -> None:
    from typing import BinaryIO, cast

    from hull.containers.archive import extract

    if dst != "-":
        dst = _local(dst)
        parent = posixpath.dirname(posixpath.normpath(dst))
        if not os.path.exists(parent):
            raise CLIError(f'invalid output path: directory "{parent}" does not exist')
    rebase_name = ""
    if follow:
        st = _stat(ctx, ctr, src)
        if st is None:
            raise CLIError(f"Error: No such container:path: {ctr}:{src}")
        if st["mode"] & _GO_SYMLINK:
            target = st["linkTarget"]
            if not target.startswith("/"):
                target = posixpath.join(_split_dir_entry(src)[0], target)
            if posixpath.basename(src.rstrip("/")) != posixpath.basename(target):
                rebase_name = posixpath.basename(src.rstrip("/"))
            src = target
    resp = ctx.client.request("GET", _archive_url(ctr), {"path": src})
    try:
        if dst == "-":
            while chunk := resp.read1(1 << 16):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        src_is_dir = bool(_decode_stat(resp.getheader(_STAT_HEADER))["mode"] & _GO_DIR)
        # The archive's top is named after the path read; -L renames it after the link first.
        src_base = _split_dir_entry(src)[1]
        dst_dir, new_base = _prepare(src_is_dir, dst)
        new_base = new_base or rebase_name
        rebase = (src_base, new_base) if new_base else None
        extract(
            dst_dir, cast(BinaryIO, resp), no_overwrite_dir_non_dir=True, owner=(os.getuid(), os.getgid()),
            rebase=rebase, links_inside=True,
        )  # fmt: skip
    finally:
        resp.close()


def _prepare(src_is_dir: bool, dst: str) -> tuple[str, str]:
    """Docker's PrepareArchiveCopy for a local destination: where to extract, and the name the archive's top
    takes there ("" to keep it)."""
    dst_dir, dst_base = _split_dir_entry(dst)
    if os.path.isdir(dst):
        return dst, ""
    if os.path.exists(dst) and src_is_dir:
        raise CLIError("cannot copy directory")
    if not os.path.exists(dst) and not src_is_dir and dst.endswith(("/", "/.")):
        raise CLIError("no such directory")
    return dst_dir, dst_base


def _to_container(ctx: Context, src: str, ctr: str, dst: str, follow: bool, keep_owner: bool) -> None:
    from hull.errors import HullError

    dst_path = dst
    try:
        st = _stat(ctx, ctr, dst)
        if st is not None and st["mode"] & _GO_SYMLINK:
            target = st["linkTarget"]
            dst_path = target if target.startswith("/") else posixpath.join(_split_dir_entry(dst)[0], target)
            st = _stat(ctx, ctr, dst_path)
    except APIError:
        # As docker: any failure is taken as "not there"; the extraction into the parent tells the real story.
        st = None
    exists, is_dir = st is not None, st is not None and bool(st["mode"] & _GO_DIR)
    params = {"path": dst_path, "noOverwriteDirNonDir": "true", "copyUIDGID": "true" if keep_owner else "false"}
    if src == "-":
        if not is_dir:
            raise CLIError(f'destination "{ctr}:{dst}" must be a directory')
        ctx.client.request("PUT", _archive_url(ctr), params, data=sys.stdin.buffer).close()
        return
    from hull.containers.archive import write_path

    src = _local(src)
    rebase_name = ""
    if follow:
        resolved = os.path.realpath(src)
        if posixpath.basename(src.rstrip("/")) != posixpath.basename(resolved):
            rebase_name = posixpath.basename(src.rstrip("/"))
        src = resolved
    try:
        src_st = os.lstat(src)
    except OSError as e:
        raise CLIError(f"lstat {src}: {(e.strerror or str(e)).lower()}") from None
    src_is_dir = os.path.isdir(src) if src.endswith(("/", "/.")) else stat.S_ISDIR(src_st.st_mode)
    src_base = rebase_name or _split_dir_entry(src)[1]
    # Docker's PrepareArchiveCopy: extract into the destination, or into its parent under its name.
    dst_dir, dst_base = _split_dir_entry(dst_path)
    if exists and is_dir:
        target_dir, name = dst_path, src_base
    elif exists and src_is_dir:
        raise CLIError("cannot copy directory")
    elif not exists and not src_is_dir and dst_path.endswith(("/", "/.")):
        raise CLIError("no such directory")
    else:
        target_dir, name = dst_dir, dst_base
    with tempfile.TemporaryFile() as spool:
        try:
            write_path("/", src, "", spool, name=name if name != "." else None)
        except HullError as e:
            raise CLIError(e.message) from None
        spool.seek(0)
        params["path"] = target_dir
        ctx.client.request("PUT", _archive_url(ctr), params, data=spool).close()
