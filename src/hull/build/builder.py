"""The builder: runs a parsed Dockerfile step by step against the image store, with the cache.

Contract (Docker's legacy builder, `DOCKER_BUILDKIT=0 docker build`):
- Every stage up to the target (default: the last) is built in order; each step starts from the
  previous step's image and makes a child image (layers.child_image). RUN runs the command as a
  real container of the ContainerManager (host network, the stage's env plus its build args, no
  entrypoint, no healthcheck), whose read-write layer is committed; COPY, ADD and WORKDIR write
  a layer directly; the other instructions change only the config (empty_layer).
- Before running a step the cache is asked (cache.find) unless --no-cache; a hit prints
  " ---> Using cache" and runs nothing. A changed COPY source changes its checksum, so that step
  and every later one (their parents differ) rebuild.
- Output is Docker's stream: "Step n/m : <instruction>", " ---> <short id>", RUN's output,
  "Successfully built <short id>", "Successfully tagged <name>", aux {"ID": <image id>}.
- A failed step raises a BuildError naming the Dockerfile and line; its container is removed
  and its layer freed whatever happened (the images of earlier steps stay, as the cache).
"""

import asyncio
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from hull.build import cache, instructions
from hull.build.context import BuildContext
from hull.build.copy import CopyRequest, ImageTree, Tree, history_source, parse_chmod, write
from hull.build.dockerfile import Dockerfile, Instruction, Stage, parse
from hull.build.instructions import StageState, expand, expand_words
from hull.build.layers import child_image, layer_from_tree, top_layer
from hull.errors import HullError, InvalidArgument, NotFound
from hull.images import containerconfig as cc
from hull.images import ids
from hull.images.service import ImageService
from hull.multiplex import HEADER_SIZE
from hull.storage.archive import Extractor
from hull.storage.compression import READ_SIZE

Emit = Callable[[dict[str, Any]], Awaitable[None]]
SCRATCH = "scratch"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BuildError(HullError):
    """A step failed; `code` is the exit code of a failed RUN (the CLI exits with it), else 1."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False


class Builder:
    def __init__(self, daemon: Any, context: BuildContext, options: BuildOptions, emit: Emit) -> None:
        self.daemon = daemon
        self.service = daemon.images
        self.context = context
        self.options = options
        self._emit = emit
        self.stages: dict[str, str | None] = {}  # stage name and index -> its image
        self.used_args: set[str] = set()
        self.step = 0
        self.total = 0
        self.file = options.dockerfile

    async def say(self, text: str) -> None:
        await self._emit({"stream": text})

    # --- the whole build -----------------------------------------------------------------------

    def dockerfile(self) -> Dockerfile:
        raw = self.context.read_file(self.options.dockerfile)
        if raw is None:
            raise BuildError(f"Cannot locate specified Dockerfile: {self.options.dockerfile}")
        df = parse(raw.decode("utf-8", "replace"), self.file)
        if self.options.labels:
            # Docker appends --label as a last LABEL instruction of the last stage.
            text = "LABEL " + " ".join(f'{instructions.go_quote(k)}={instructions.go_quote(v)}'
                                       for k, v in sorted(self.options.labels.items()))  # fmt: skip
            df.stages[-1].instructions.append(Instruction("LABEL", text[6:], text, 0))
        return df

    async def build(self) -> str:
        df = self.dockerfile()
        stages = self._stages_to_build(df)
        self.total = len(df.meta_args) + sum(1 + len(s.instructions) for s in stages)
        meta: dict[str, str | None] = {}
        for ins in df.meta_args:
            await self._step(ins)
            state = StageState(None, cc.empty())
            instructions.declare_args(state, ins, self.options.build_args, meta)
            meta.update(state.args)
            self.used_args.update(k for k in state.args if k in self.options.build_args)
        image_id: str | None = None
        for stage in stages:
            image_id = await self._stage(stage, meta)
        unused = sorted(set(self.options.build_args) - self.used_args - instructions.PROXY_ARGS)
        if unused:
            await self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        if image_id is None:
            raise BuildError("the build made no image: the final stage starts FROM scratch and has no step")
        return image_id

    def _stages_to_build(self, df: Dockerfile) -> list[Stage]:
        if not self.options.target:
            return df.stages
        for i, stage in enumerate(df.stages):
            if stage.name == self.options.target.lower():
                return df.stages[: i + 1]
        raise BuildError(f"failed to reach build target {self.options.target} in Dockerfile")

    async def _step(self, ins: Instruction) -> None:
        self.step += 1
        await self.say(f"Step {self.step}/{self.total} : {ins.original}\n")

    async def _done(self, image_id: str | None) -> None:
        await self.say(f" ---> {ids.short_id(image_id) if image_id else ''}\n")

    def _fail(self, ins: Instruction, message: str, code: int = 1) -> BuildError:
        where = f"{self.file} line {ins.line}" if ins.line else self.file
        return BuildError(f"{message} ({where}: {ins.original})", code)

    # --- stages ------------------------------------------------------------------------------

    async def _stage(self, stage: Stage, meta: dict[str, str | None]) -> str | None:
        await self._step(stage.from_)
        state = await self._from(stage, meta)
        triggers = list(state.config.get(cc.ON_BUILD) or ())
        if triggers:
            state.config[cc.ON_BUILD] = None
            await self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for text in triggers:
                trigger = parse(f"FROM {SCRATCH}\n{text}\n", self.file).stages[0].instructions[0]
                await self._run_instruction(state, trigger, meta)
        await self._done(state.image_id)  # after the triggers: the id the next step starts from, as Docker's
        for ins in stage.instructions:
            await self._step(ins)
            await self._run_instruction(state, ins, meta)
            await self._done(state.image_id)
        self.stages[str(stage.index)] = state.image_id
        if stage.name:
            self.stages[stage.name] = state.image_id
        return state.image_id

    async def _from(self, stage: Stage, meta: dict[str, str | None]) -> StageState:
        env = {k: v for k, v in meta.items() if v is not None}
        try:
            base = expand(stage.base, env)
        except HullError as e:
            raise self._fail(stage.from_, e.message) from None
        if not base:
            raise self._fail(stage.from_, "base name should not be blank")
        if base.lower() in self.stages:
            image_id = self.stages[base.lower()]
        elif base == SCRATCH:
            image_id = None
        else:
            image_id = await self._image(base, stage.from_)
        config = cc.empty() if image_id is None else await self.daemon.blocking(_config_of, self.service, image_id)
        if not any(e.startswith("PATH=") for e in config.get(cc.ENV) or ()):
            # Docker gives every stage a PATH when its base has none.
            config[cc.ENV] = [DEFAULT_PATH, *(config.get(cc.ENV) or ())]
        return StageState(image_id, config)

    async def _image(self, name: str, ins: Instruction) -> str:
        try:
            if not self.options.pull:
                return str(await self.daemon.blocking(self.service.lookup, name))
        except NotFound:
            pass
        try:
            return await self._pull(name)
        except HullError as e:
            raise self._fail(ins, f"pull access failed for {name}: {e.message}") from None

    async def _pull(self, name: str) -> str:
        from hull.distribution.pull import Puller, PullRequest, parse_auth_header
        from hull.images import reference
        from hull.images.platform import host_platform

        ref = reference.parse(name).with_default_tag()

        async def progress(message: dict[str, Any]) -> None:
            status = message.get("status")
            if status and not message.get("progressDetail"):
                await self.say(f"{status}{': ' + message['id'] if message.get('id') else ''}\n")

        puller = Puller(self.service, self.daemon.locked, self.daemon.blocking, self.daemon.downloads, progress)
        request = PullRequest(ref, host_platform(), parse_auth_header(""),
                              insecure=self.daemon.config.is_insecure(ref.domain))  # fmt: skip
        return str(await puller.pull(request))

    # --- one instruction -----------------------------------------------------------------------

    async def _run_instruction(self, state: StageState, ins: Instruction, meta: dict[str, str | None]) -> None:
        try:
            kw = ins.keyword
            if kw == "ARG":
                created_by = instructions.declare_args(state, ins, self.options.build_args, meta)
                self.used_args.update(k for k in state.args if k in self.options.build_args)
                await self._config_step(state, created_by)
            elif kw == "RUN":
                await self._run(state, ins)
            elif kw in ("COPY", "ADD"):
                await self._copy(state, ins)
            elif kw == "WORKDIR":
                path = instructions.workdir(state, ins)
                created_by = instructions.nop_layer(state, "WORKDIR " + path)
                await self._layer_step(state, created_by, lambda root: _mkdir(root, path))
            elif kw == "FROM":
                raise InvalidArgument("FROM is not allowed here")
            else:
                await self._config_step(state, instructions.apply(state, ins))
        except BuildError:
            raise
        except HullError as e:
            raise self._fail(ins, e.message) from None

    def _child_config(self, state: StageState) -> dict[str, Any]:
        config = dict(state.config)
        config[cc.IMAGE] = state.image_id or ""
        return config

    async def _cached(self, state: StageState, created_by: str, config: dict[str, Any]) -> str | None:
        if self.options.no_cache:
            return None
        hit = await self.daemon.blocking(cache.find, self.service, state.image_id, created_by, config)
        if hit is not None:
            await self.say(" ---> Using cache\n")
        return hit

    async def _config_step(self, state: StageState, created_by: str) -> None:
        config = self._child_config(state)
        hit = await self._cached(state, created_by, config)
        if hit is None:
            hit = await self.daemon.locked(child_image, self.service, state.image_id, config, created_by, None)
        state.image_id = hit

    async def _layer_step(self, state: StageState, created_by: str, fill: Callable[[str], None]) -> None:
        config = self._child_config(state)
        hit = await self._cached(state, created_by, config)
        if hit is None:
            layer = await layer_from_tree(self.daemon, state.image_id, fill)
            hit = await self.daemon.locked(child_image, self.service, state.image_id, config, created_by, layer)
        state.image_id = hit

    # --- COPY and ADD --------------------------------------------------------------------------

    async def _copy(self, state: StageState, ins: Instruction) -> None:
        env = state.build_env()
        chown = expand(ins.flag("chown"), env)
        req_args = list(ins.exec) if ins.exec is not None else expand_words(ins.rest, env)
        if ins.exec is not None:
            req_args = [expand(a, env) for a in req_args]
        heredoc_files = {h.name: h for h in ins.heredocs}
        if len(req_args) < 2:
            raise InvalidArgument(f"{ins.keyword} requires at least two arguments, but only one was provided. "
                                  "Destination could not be determined.")  # fmt: skip
        *sources, dest = req_args
        req = CopyRequest(ins.keyword, sources, dest, str(state.config.get(cc.WORKING_DIR) or "/"), chown,
                          parse_chmod(expand(ins.flag("chmod"), env)))  # fmt: skip
        source_from = expand(ins.flag("from"), env)
        cleanup: list[Callable[[], Any]] = []
        try:
            trees = await self._trees(state, ins, req, source_from, heredoc_files, cleanup)
            kind = await self.daemon.blocking(history_source, req, trees)
            created_by = instructions.nop_layer(state, f"{ins.keyword} {kind} in {dest} ")
            unpack_from = self.context if ins.keyword == "ADD" else None
            await self._layer_step(state, created_by, lambda root: write(root, trees, req, unpack_from))
        finally:
            for undo in reversed(cleanup):
                await self.daemon.blocking(undo) if not asyncio.iscoroutinefunction(undo) else await undo()

    async def _trees(
        self, state: StageState, ins: Instruction, req: CopyRequest, source_from: str,
        heredocs: dict[str, Any], cleanup: list[Callable[[], Any]],
    ) -> list[tuple[Tree, list[str]]]:  # fmt: skip
        trees: list[tuple[Tree, list[str]]] = []
        if source_from:
            if ins.keyword != "COPY":
                raise InvalidArgument("ADD does not take --from")
            tree = await self._image_tree(source_from, ins, cleanup)
            paths = await self.daemon.blocking(lambda: [p for s in req.sources for p in tree.sources(s, ins.keyword)])
            return [(tree, paths)]
        for source in req.sources:
            if source.startswith("<<") and source.lstrip("<-").strip("\"'") in heredocs:
                doc = heredocs[source.lstrip("<-").strip("\"'")]
                text = expand(doc.content, state.build_env()) if doc.expand else doc.content
                tree = await self._one_file_tree(doc.name, _once(text.encode()), 0o644, None, cleanup)
                trees.append((tree, [doc.name]))
            elif ins.keyword == "ADD" and source.startswith(("http://", "https://")):
                trees.append(await self._download(source, cleanup))
            else:
                trees.append((self.context, await self.daemon.blocking(self.context.sources, source, ins.keyword)))
        return trees

    async def _image_tree(self, name: str, ins: Instruction, cleanup: list[Callable[[], Any]]) -> ImageTree:
        key = name.lower()
        if key in self.stages:
            image_id = self.stages[key]
        else:
            if name.isdigit():
                raise InvalidArgument(f"invalid from flag value {name}: no stage with index {name} before this one")
            try:
                image_id = await self.daemon.blocking(self.service.lookup, name)
            except HullError:
                raise InvalidArgument(
                    f"invalid from flag value {name}: no build stage and no image named {name}"
                ) from None
        work_id = ids.new_id()
        layers = self.service.layers

        def mount() -> str:
            layers.create_rw(work_id, top_layer(self.service, image_id))
            return layers.mount(work_id)

        async def unmount() -> None:
            await self.daemon.locked(layers.unmount, work_id)
            await self.daemon.locked(layers.delete_rw, work_id)

        cleanup.append(unmount)
        return ImageTree(await self.daemon.locked(mount))

    async def _one_file_tree(self, name: str, chunks: AsyncIterable[bytes], mode: int, mtime: int | None,
                             cleanup: list[Callable[[], Any]]) -> ImageTree:  # fmt: skip
        """A tree of one file written from `chunks`, in a scratch directory that `cleanup` removes."""
        tmp = await self.daemon.blocking(lambda: tempfile.mkdtemp(prefix="build-", dir=self.service.root.layerdb_tmp))
        cleanup.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            async for chunk in chunks:
                await self.daemon.blocking(f.write, chunk)
        os.chmod(path, mode)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return ImageTree(tmp)

    async def _download(self, url: str, cleanup: list[Callable[[], Any]]) -> tuple[Tree, list[str]]:
        """ADD of a URL: the body streamed to a one-file tree (mode 0600, mtime from Last-Modified)."""
        import aiohttp

        name = posixpath.basename(urllib.parse.urlparse(url).path) or "download"
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                if resp.status >= 400:
                    raise InvalidArgument(f"failed to GET {url} with status {resp.status} {resp.reason}")
                mtime = _http_date(resp.headers.get("Last-Modified"))
                tree = await self._one_file_tree(name, resp.content.iter_chunked(READ_SIZE), 0o600, mtime, cleanup)
        except aiohttp.ClientError as e:
            raise InvalidArgument(f"failed to GET {url}: {e}") from None
        return tree, [name]

    # --- RUN -----------------------------------------------------------------------------------

    async def _run(self, state: StageState, ins: Instruction) -> None:
        if ins.exec is not None:
            command = list(ins.exec)
        elif ins.heredocs and ins.rest.strip().startswith("<<") and len(ins.heredocs) == 1 and \
                ins.rest.strip().lstrip("<-").strip("\"'") == ins.heredocs[0].name:  # fmt: skip
            command = [*state.shell(), ins.heredocs[0].content]
        elif ins.heredocs:
            script = "".join(f"\n{h.content}{h.name}" for h in ins.heredocs)
            command = [*state.shell(), ins.rest + script]
        else:
            command = [*state.shell(), ins.rest]
        args = state.run_args()
        created_by = " ".join(([f"|{len(args)}", *args] if args else []) + command)
        config = self._child_config(state)
        hit = await self._cached(state, created_by, config)
        if hit is not None:
            state.image_id = hit
            return
        if state.image_id is None:
            raise InvalidArgument("RUN needs a base image: a stage FROM scratch has no shell to run it")
        manager = self.daemon.containers
        body: dict[str, Any] = {
            "Image": state.image_id,
            "Entrypoint": command,
            "Cmd": None,
            "Env": [*(state.config.get(cc.ENV) or []), *args, *state.proxy_env(self.options.build_args)],
            "User": state.config.get(cc.USER) or "",
            "WorkingDir": state.config.get(cc.WORKING_DIR) or "",
            "Healthcheck": {"Test": ["NONE"]},
            "Labels": {},
            "HostConfig": {"NetworkMode": "host"},
        }
        container, _ = await manager.create("", body)
        layer = None
        try:
            await self.say(f" ---> Running in {container.id[:12]}\n")
            attached = manager.attach(container, False, True, True)
            exited = manager.wait(container, "next-exit")
            await manager.start(container)
            reader, writer = await attached
            await self._relay(reader)
            writer.close()
            code = await exited
            if code != 0:
                text = " ".join(command) if ins.exec is None else instructions.go_quoted_list(command)
                raise self._fail(ins, f"The command '{text}' returned a non-zero code: {code}", code)
            layer = await self.daemon.locked(self.service.layers.register_rw, container.id)
            state.image_id = await self.daemon.locked(child_image, self.service, state.image_id, config, created_by,
                                                      layer)  # fmt: skip
        except BaseException:
            if layer is not None:
                await self.daemon.locked(self.service.free_unused_layers, layer.chain_id)
            raise
        finally:
            await manager.remove(container, force=True)
            await self.say(f"Removing intermediate container {container.id[:12]}\n")

    async def _relay(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                header = await reader.readexactly(HEADER_SIZE)
            except asyncio.IncompleteReadError:
                return
            payload = await reader.readexactly(int.from_bytes(header[4:], "big"))
            await self.say(payload.decode("utf-8", "replace"))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _http_date(value: str | None) -> int | None:
    """A Last-Modified header as a Unix time; None when absent or unreadable (the file gets now)."""
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return None


def _config_of(service: ImageService, image_id: str) -> dict[str, Any]:
    return cc.normalize(json.loads(service.images.get(image_id)).get("config"), "image config")


def _mkdir(root: str, path: str) -> None:
    """WORKDIR's directory, made like `mkdir -p` owned by root (Docker's ContainerCreateWorkdir)."""
    rel = path.strip("/")
    if not rel:
        return
    extractor = Extractor(root, "delete")
    try:
        parts = rel.split("/")
        for k in range(1, len(parts) + 1):
            sub = "/".join(parts[:k])
            if os.path.lexists(os.path.join(root, sub)):
                continue
            info = tarfile.TarInfo(sub)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            extractor.apply(info, _NoContent())
        extractor.finish()
    finally:
        extractor.close()


class _NoContent:
    def content(self, name: str) -> Any:
        return iter(())
