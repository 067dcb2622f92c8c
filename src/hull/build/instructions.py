"""The instructions that change only the image config, variable expansion, and the history text of every step.

Vocabulary: the *build env* is what `$VAR` means in a stage: its config's Env, plus its ARGs
that have a value and that no ENV of the same name hides. A *nop comment* is the history line of
a config-only step (`/bin/sh -c #(nop)  ENV A=b`): Docker's legacy builder records each step
as the command of a container that never ran, with the stage's SHELL.

Contract (Docker's legacy builder, facts not code):
- ENV, LABEL, ARG, EXPOSE, USER, WORKDIR, VOLUME, STOPSIGNAL (and FROM, COPY, ADD, in the
  builder) expand variables from the build env with the shell lexer of hull.images.changes;
  CMD, ENTRYPOINT, HEALTHCHECK, ONBUILD, SHELL and RUN do not (the shell does it at run time).
- `apply` changes the stage's config and returns the history text; errors are
  InvalidArgument with Docker's wording (the builder adds file and line).
- History texts are Docker 20.10's byte for byte: `#(nop)  CMD ["a" "b"]` (Go's %q of the
  list), `SHELL [a b]` and `VOLUME [/v]` (Go's %v), `HEALTHCHECK &{["CMD" "x"] "5s" "0s" "0s"
  '\\x00'}` (Go's %q of the struct), `ENV A=b C=d e` (expanded, unquoted).
"""

import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hull.build.dockerfile import Instruction
from hull.errors import InvalidArgument
from hull.images import containerconfig as cc
from hull.images.changes import Lexer, apply_changes, key_values, port_spec, raw_words

DEFAULT_SHELL = ("/bin/sh", "-c")
NOP = "#(nop) "
# Usable with --build-arg without an ARG; kept out of history unless declared (Docker's list).
PROXY_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})  # fmt: skip


@dataclass
class StageState:
    """What a stage has built so far: its image (None: scratch or nothing yet), config and ARGs."""

    image_id: str | None
    config: dict[str, Any]
    args: dict[str, str | None] = field(default_factory=dict)  # declared ARGs, in order
    cmd_set: bool = False

    def env(self) -> dict[str, str]:
        return cc.env_map(self.config)

    def build_env(self) -> dict[str, str]:
        env = self.env()
        return {**{k: v for k, v in self.args.items() if v is not None and k not in env}, **env}

    def shell(self) -> tuple[str, ...]:
        return tuple(self.config.get(cc.SHELL) or DEFAULT_SHELL)

    def run_args(self) -> list[str]:
        """`k=v` of the ARGs a RUN sees and records (sorted, as Docker's `|N k=v` prefix)."""
        env = self.env()
        return sorted(f"{k}={v}" for k, v in self.args.items() if v is not None and k not in env)

    def proxy_env(self, given: Mapping[str, str | None]) -> list[str]:
        """Predefined proxy args given but not declared: in RUN's environment, not in history."""
        env = self.env()
        return sorted(
            f"{k}={v}"
            for k, v in given.items()
            if k in PROXY_ARGS and k not in self.args and k not in env and v is not None
        )


def expand(text: str, env: Mapping[str, str]) -> str:
    return Lexer(text, env).word()


def expand_words(text: str, env: Mapping[str, str]) -> list[str]:
    """Whitespace-separated words, each expanded (what EXPOSE, ARG, COPY and ADD take)."""
    return [expand(w, env) for w in raw_words(text)]


def nop(state: StageState, text: str) -> str:
    """The history line of a config-only step (two spaces after "#(nop)", as Docker joins it)."""
    return " ".join((*state.shell(), NOP, text))


def nop_layer(state: StageState, text: str) -> str:
    """The history line of COPY, ADD and WORKDIR: the comment is one word with the text."""
    return " ".join((*state.shell(), NOP + text))


def go_quote(s: str) -> str:
    """Go's %q of a string (strconv.Quote), close enough for printable text."""
    return json.dumps(s, ensure_ascii=False)


def go_quoted_list(items: list[str] | tuple[str, ...]) -> str:
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _trim(rest / 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def _go_rune(n: int) -> str:
    ch = chr(n) if 0 <= n < 0x110000 else "\ufffd"
    if ch.isprintable() and ch != "'":
        return f"'{ch}'"
    return f"'\\x{n:02x}'" if n < 0x100 else f"'\\u{n:04x}'"


def _key_values(ins: Instruction, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """ENV and LABEL pairs, with the stage's variables substituted."""
    return [(expand(k, env), expand(v, env)) for k, v in key_values(ins.rest, ins.keyword)]


def declare_args(state: StageState, ins: Instruction, given: Mapping[str, str | None],
                 meta: Mapping[str, str | None]) -> str:  # fmt: skip
    """ARG: declare each name; its value is the --build-arg, else the default, else the meta ARG's."""
    env = state.build_env()
    texts = []
    for word in raw_words(ins.rest):
        name, eq, default = expand(word, env).partition("=")
        if not name:
            raise InvalidArgument("ARG names can not be blank")
        if name in given:
            value = given[name]
        elif eq:
            value = default
        else:
            value = meta.get(name)
        state.args[name] = value
        texts.append(f"{name}={default}" if eq else name)
        env = state.build_env()
    return nop(state, "ARG " + " ".join(texts))


def apply(state: StageState, ins: Instruction) -> str:
    """Apply a config-only instruction (not ARG, FROM, RUN, COPY, ADD, WORKDIR); returns its history line."""
    env = state.build_env()
    kw = ins.keyword
    config = state.config
    if kw == "ENV":
        pairs = _key_values(ins, env)
        config[cc.ENV] = _env_in_place(config.get(cc.ENV) or [], pairs)
        return nop(state, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))
    if kw == "LABEL":
        pairs = _key_values(ins, env)
        labels = dict(config.get(cc.LABELS) or {})
        labels.update(pairs)
        config[cc.LABELS] = labels
        return nop(state, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))
    if kw == "MAINTAINER":
        return nop(state, "MAINTAINER " + ins.rest)
    if kw == "EXPOSE":
        ports_given = expand_words(ins.rest, env)
        ports = dict(config.get(cc.EXPOSED_PORTS) or {})
        for spec in ports_given:
            for port in port_spec(spec):
                ports[port] = {}
        config[cc.EXPOSED_PORTS] = ports
        return nop(state, "EXPOSE " + " ".join(ports_given))
    if kw == "USER":
        config[cc.USER] = expand(ins.rest, env)
        return nop(state, "USER " + config[cc.USER])
    if kw == "STOPSIGNAL":
        config[cc.STOP_SIGNAL] = expand(ins.rest, env)
        return nop(state, "STOPSIGNAL " + config[cc.STOP_SIGNAL])
    if kw == "VOLUME":
        paths = list(ins.exec) if ins.exec is not None else expand_words(ins.rest, env)
        if not paths:
            raise InvalidArgument("VOLUME requires at least one argument")
        volumes = dict(config.get(cc.VOLUMES) or {})
        for path in paths:
            if not path.strip():
                raise InvalidArgument("VOLUME specified can not be an empty string")
            volumes[path] = {}
        config[cc.VOLUMES] = volumes
        return nop(state, "VOLUME [" + " ".join(paths) + "]")
    if kw == "SHELL":
        if not ins.exec:
            raise InvalidArgument("SHELL requires the arguments to be in JSON form")
        config[cc.SHELL] = list(ins.exec)  # the history line already uses the new shell
        return nop(state, "SHELL [" + " ".join(ins.exec) + "]")
    return _via_changes(state, ins)


def _env_in_place(entries: list[str], pairs: list[tuple[str, str]]) -> list[str]:
    """ENV replaces a variable where it stands, and appends new ones."""
    out = list(entries)
    for key, value in pairs:
        for i, existing in enumerate(out):
            if existing.partition("=")[0] == key:
                out[i] = f"{key}={value}"
                break
        else:
            out.append(f"{key}={value}")
    return out


def _via_changes(state: StageState, ins: Instruction) -> str:
    """CMD, ENTRYPOINT, HEALTHCHECK and ONBUILD: applied as `--change`s are (no expansion here)."""
    kw = ins.keyword
    before_cmd = state.config.get(cc.CMD)
    line = ins.original if ins.exec is None or kw not in ("CMD", "ENTRYPOINT") else f"{kw} {json.dumps(list(ins.exec))}"
    if kw in ("CMD", "ENTRYPOINT") and not ins.rest:
        line = f"{kw} []"
    new = apply_changes(state.config, [line])
    if kw == "ENTRYPOINT" and state.cmd_set:
        new[cc.CMD] = before_cmd  # a CMD of this stage survives a later ENTRYPOINT
    if kw == "CMD":
        state.cmd_set = True
    state.config.clear()
    state.config.update(new)
    if kw in ("CMD", "ENTRYPOINT"):
        return nop(state, f"{kw} " + go_quoted_list(new.get(cc.CMD if kw == "CMD" else cc.ENTRYPOINT) or []))
    if kw == "ONBUILD":
        return nop(state, "ONBUILD " + ins.rest)
    if kw == "HEALTHCHECK":
        return nop(state, "HEALTHCHECK " + _go_health(new.get(cc.HEALTHCHECK) or {}))
    raise InvalidArgument(f"unknown instruction: {kw}")


def _go_health(h: Mapping[str, Any]) -> str:
    """Go's %q of *container.HealthConfig as Docker 20.10 has it (no StartInterval)."""
    durations = " ".join(go_quote(go_duration(int(h.get(k) or 0)))
                         for k in (cc.HEALTH_INTERVAL, cc.HEALTH_TIMEOUT, cc.HEALTH_START_PERIOD))  # fmt: skip
    retries = _go_rune(int(h.get(cc.HEALTH_RETRIES) or 0))
    return f"&{{{go_quoted_list(h.get(cc.HEALTH_TEST) or [])} {durations} {retries}}}"


def workdir(state: StageState, ins: Instruction) -> str:
    """WORKDIR: the new working directory (absolute, clean); the caller makes it exist."""
    path = expand(ins.rest, state.build_env())
    state.config[cc.WORKING_DIR] = posixpath.normpath(posixpath.join("/", state.config.get(cc.WORKING_DIR) or "", path))
    return str(state.config[cc.WORKING_DIR])
