"""Change instructions: the Dockerfile lines that `docker import --change` and `docker commit --change` apply.

Vocabulary: a *change* is one Dockerfile instruction (`CMD ["sh"]`, `ENV A=1`) applied to a
container config (see containerconfig.py) instead of being built. The changes are read as one
Dockerfile, the way Docker joins them with newlines: blank lines and `#` comments are
skipped, a line ending in `\\` continues on the next.

Contract (Docker's builder, BuildFromConfig, facts not code):
- Only CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME and WORKDIR
  are changes; any other instruction is refused with Docker's "<name> is not a valid change
  command" (the name in lower case), before anything is applied.
- ENV, LABEL, EXPOSE, USER, VOLUME and WORKDIR expand `$VAR`, `${VAR}` and `${VAR:-word}`
  (and `-`, `:+`, `+`, `:?`, `?`) from the config's environment as it was before the
  instruction, and remove quotes and escapes, as Docker's shell lexer does; CMD, ENTRYPOINT
  and HEALTHCHECK take a JSON array (exec form) or the rest of the line (shell form, run by
  the config's Shell or `/bin/sh -c`). ENTRYPOINT clears a Cmd that no earlier change set.
- `apply_changes` returns a new normalized config; bad input is an InvalidArgument with
  Docker's wording, and the config passed in is never modified.
- The shell lexer (`Lexer`, `raw_words`), `key_values` and `port_spec` are also the Dockerfile builder's
  (hull.build.instructions): one lexer for both.
"""

import copy
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hull.errors import InvalidArgument
from hull.images import containerconfig as cc

VALID_CHANGES = ("cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "user", "volume", "workdir")
DEFAULT_SHELL = ("/bin/sh", "-c")
ESCAPE = "\\"
_PORT_PROTOCOLS = ("tcp", "udp", "sctp")
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}  # fmt: skip
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_MIN_HEALTH_DURATION = 1_000_000  # 1ms: Docker's lower bound for the healthcheck durations


@dataclass(frozen=True)
class Instruction:
    """One instruction of the changes: its name (lower case), the rest of its line, the line itself."""

    name: str
    rest: str
    original: str


def parse_changes(changes: Iterable[str]) -> list[Instruction]:
    """Split changes into instructions and check that each one is allowed (nothing is applied)."""
    if isinstance(changes, str):
        changes = [changes]
    lines: list[str] = []
    pending = ""
    for raw in "\n".join(changes).split("\n"):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # Docker drops comment lines inside a continued instruction
        if stripped.endswith(ESCAPE):
            pending += stripped[:-1]
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending.strip():
        lines.append(pending)
    out = []
    for line in lines:
        word, _, rest = line.strip().partition(" ")
        if "\t" in word:  # an instruction may be separated from its arguments by a tab too
            word, _, more = word.partition("\t")
            rest = more + " " + rest
        name = word.lower()
        if name not in VALID_CHANGES:
            raise InvalidArgument(f"{name} is not a valid change command")
        out.append(Instruction(name, rest.strip(), line.strip()))
    return out


def apply_changes(config: Mapping[str, Any] | None, changes: Iterable[str]) -> dict[str, Any]:
    """`config` (a container config) with `changes` applied, in order; see the module docstring."""
    instructions = parse_changes(changes)
    state = _State(cc.normalize(copy.deepcopy(dict(config or {}))))
    for ins in instructions:
        _DISPATCH[ins.name](state, ins)
    return cc.normalize(state.config)


@dataclass
class _State:
    config: dict[str, Any]
    cmd_set: bool = False

    def env(self) -> dict[str, str]:
        return cc.env_map(self.config)


# --- the shell lexer: quotes, escapes and variables ------------------------------------------------


class Lexer:
    """Docker's word processing for one word (or a list of words) with the environment `env`."""

    def __init__(self, text: str, env: Mapping[str, str]) -> None:
        self.text = text
        self.pos = 0
        self.env = env

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.pos += 1
        return ch

    def words(self) -> list[str]:
        """The words of the text: quotes removed, variables expanded, split at unquoted whitespace."""
        words: list[str] = []
        current: list[str] = []
        in_word = False
        while self.pos < len(self.text):
            ch = self._peek()
            if ch in " \t\n":
                self.pos += 1
                if in_word:
                    words.append("".join(current))
                    current, in_word = [], False
                continue
            in_word = True
            if ch == "$":
                # An unquoted variable that expands to several words gives several words.
                value = self._variable()
                parts = value.split()
                if not parts:
                    continue
                if value[:1].isspace() and current:
                    words.append("".join(current))
                    current = []
                current.append(parts[0])
                for part in parts[1:]:
                    words.append("".join(current))
                    current = [part]
                if value[-1:].isspace():
                    words.append("".join(current))
                    current, in_word = [], False
                continue
            current.append(self._piece())
        if in_word:
            words.append("".join(current))
        return words

    def word(self) -> str:
        """The whole text as one word (whitespace kept): what ENV, LABEL, USER and WORKDIR use."""
        out = []
        while self.pos < len(self.text):
            out.append(self._variable() if self._peek() == "$" else self._piece())
        return "".join(out)

    def _piece(self) -> str:
        ch = self._next()
        if ch == "'":
            return self._single_quoted()
        if ch == '"':
            return self._double_quoted()
        if ch == ESCAPE:
            nxt = self._next()
            return nxt if nxt else ESCAPE
        return ch

    def _single_quoted(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise InvalidArgument("unexpected end of statement while looking for matching single-quote")
        out = self.text[self.pos : end]
        self.pos = end + 1
        return out

    def _double_quoted(self) -> str:
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise InvalidArgument("unexpected end of statement while looking for matching double-quote")
            ch = self._peek()
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self._variable())
                continue
            self.pos += 1
            if ch == ESCAPE:
                nxt = self._peek()
                if nxt in ('"', "$", ESCAPE):
                    self.pos += 1
                    out.append(nxt)
                    continue
            out.append(ch)

    def _name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and _NAME_CHAR.fullmatch(self.text[self.pos]):
            self.pos += 1
        return self.text[start : self.pos]

    def _variable(self) -> str:
        self.pos += 1  # the "$"
        if self._peek() != "{":
            name = self._name()
            return self.env.get(name, "") if name else "$"
        self.pos += 1
        name = self._name()
        if not name:
            raise InvalidArgument(f"bad substitution: missing variable name in {self.text!r}")
        op = ""
        if self._peek() == ":" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] in "-+?":
            op = self.text[self.pos : self.pos + 2]
            self.pos += 2
        elif self._peek() in ("-", "+", "?"):
            op = self._next()
        elif self._peek() != "}":
            raise InvalidArgument(f"unsupported modifier ({self._peek()}) in substitution: {self.text!r}")
        word = self._until_brace()
        value = self.env.get(name)
        if op == "":
            return value or ""
        empty_counts = op.startswith(":")
        is_set = value is not None and (value != "" or not empty_counts)
        kind = op[-1]
        if kind == "-":
            return value if is_set and value is not None else word
        if kind == "+":
            return word if is_set else ""
        if not is_set:  # "?"
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        return value or ""

    def _until_brace(self) -> str:
        out: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise InvalidArgument(f"missing '}}' in substitution: {self.text!r}")
            if self._peek() == "}":
                self.pos += 1
                return "".join(out)
            out.append(self._variable() if self._peek() == "$" else self._piece())


def _word(text: str, env: Mapping[str, str]) -> str:
    return Lexer(text, env).word()


def _words(text: str, env: Mapping[str, str]) -> list[str]:
    return Lexer(text, env).words()


def raw_words(text: str) -> list[str]:
    """Whitespace-separated words, quotes and escapes kept for later processing (Docker's parseWords)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
            continue
        if ch.isspace() and not quote:
            if current:
                words.append("".join(current))
                current = []
            continue
        if ch == ESCAPE and quote != "'":
            escaped = True
        elif quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        current.append(ch)
    if current:
        words.append("".join(current))
    return words


def key_values(rest: str, what: str) -> list[tuple[str, str]]:
    """ENV and LABEL arguments: `k=v k2=v2` or the legacy `k some value` (unprocessed)."""
    words = raw_words(rest)
    if not words:
        raise InvalidArgument(f"{what} requires at least one argument")
    if "=" not in words[0]:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise InvalidArgument(f"{what} must have two arguments")
        return [(parts[0], parts[1])]
    pairs = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq:
            raise InvalidArgument(f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
        if not key:
            raise InvalidArgument(f"{what} names can not be blank")
        pairs.append((key, value))
    return pairs


def _json_list(text: str) -> list[str] | None:
    """The exec form: a JSON array of strings, or None when `text` is not one (the shell form)."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _command(state: _State, text: str) -> list[str]:
    exec_form = _json_list(text)
    if exec_form is not None:
        return exec_form
    return [*(state.config.get(cc.SHELL) or DEFAULT_SHELL), text]


# --- the instructions -------------------------------------------------------------------------------


def _env(state: _State, ins: Instruction) -> None:
    env = state.env()  # every pair of one ENV sees the environment from before it, as in Docker
    entries: list[str] = list(state.config.get(cc.ENV) or ())
    for raw_key, raw_value in key_values(ins.rest, "ENV"):
        key, value = _word(raw_key, env), _word(raw_value, env)
        entry = f"{key}={value}"
        for i, existing in enumerate(entries):
            if existing.partition("=")[0] == key:
                entries[i] = entry
                break
        else:
            entries.append(entry)
    state.config[cc.ENV] = entries


def _label(state: _State, ins: Instruction) -> None:
    env = state.env()
    labels = dict(state.config.get(cc.LABELS) or {})
    for raw_key, raw_value in key_values(ins.rest, "LABEL"):
        labels[_word(raw_key, env)] = _word(raw_value, env)
    state.config[cc.LABELS] = labels


def _expose(state: _State, ins: Instruction) -> None:
    if not ins.rest:
        raise InvalidArgument("EXPOSE requires at least one argument")
    ports = dict(state.config.get(cc.EXPOSED_PORTS) or {})
    for spec in _words(ins.rest, state.env()):
        for port in port_spec(spec):
            ports[port] = {}
    state.config[cc.EXPOSED_PORTS] = ports


def port_spec(spec: str) -> list[str]:
    """`80`, `80/udp`, `8000-8002/tcp` as Docker's port keys (`80/tcp`, ...)."""
    if ":" in spec:
        raise InvalidArgument(f"EXPOSE does not support mapping a host port: {spec}")
    port, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in _PORT_PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    first, dash, last = port.partition("-")
    if not first.isdigit() or (dash and not last.isdigit()):
        raise InvalidArgument(f"invalid containerPort: {port}")
    start, end = int(first), int(last) if dash else int(first)
    if not 0 < start <= 65535 or not 0 < end <= 65535:
        raise InvalidArgument(f"invalid containerPort: {port}")
    if end < start:
        raise InvalidArgument(f"invalid range specified for container port: {port}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def _user(state: _State, ins: Instruction) -> None:
    # Docker reads USER and WORKDIR as one string: "exactly one argument" only refuses none.
    if not ins.rest:
        raise InvalidArgument("USER requires exactly one argument")
    state.config[cc.USER] = _word(ins.rest, state.env())


def _workdir(state: _State, ins: Instruction) -> None:
    if not ins.rest:
        raise InvalidArgument("WORKDIR requires exactly one argument")
    path = _word(ins.rest, state.env())
    # A relative WORKDIR continues the current one; the result is always a clean absolute path.
    state.config[cc.WORKING_DIR] = posixpath.normpath(posixpath.join("/", state.config.get(cc.WORKING_DIR) or "", path))


def _volume(state: _State, ins: Instruction) -> None:
    if not ins.rest:
        raise InvalidArgument("VOLUME requires at least one argument")
    env = state.env()
    listed = _json_list(ins.rest)
    paths = listed if listed is not None else [_word(w, env) for w in raw_words(ins.rest)]
    volumes = dict(state.config.get(cc.VOLUMES) or {})
    for path in paths:
        if not path.strip():
            raise InvalidArgument("VOLUME specified can not be an empty string")
        volumes[path] = {}
    state.config[cc.VOLUMES] = volumes


def _cmd(state: _State, ins: Instruction) -> None:
    state.config[cc.CMD] = _command(state, ins.rest)
    state.config.pop(cc.ARGS_ESCAPED, None)  # only Windows' shell form escapes its arguments
    state.cmd_set = True


def _entrypoint(state: _State, ins: Instruction) -> None:
    state.config[cc.ENTRYPOINT] = _command(state, ins.rest)
    state.config.pop(cc.ARGS_ESCAPED, None)
    if not state.cmd_set:
        state.config[cc.CMD] = None


def _onbuild(state: _State, ins: Instruction) -> None:
    trigger = ins.rest.split(None, 1)[0].upper() if ins.rest else ""
    if not trigger:
        raise InvalidArgument("ONBUILD requires at least one argument")
    if trigger == "ONBUILD":
        raise InvalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("FROM", "MAINTAINER"):
        raise InvalidArgument(f"{trigger} isn't allowed as an ONBUILD trigger")
    state.config[cc.ON_BUILD] = [*(state.config.get(cc.ON_BUILD) or ()), ins.rest]


def _duration(flag: str, text: str) -> int:
    """A Go duration (`30s`, `1m30s`, `1.5h`) in nanoseconds."""
    body = text.lstrip("+-")
    if body == "0":
        return 0
    if not body:
        raise InvalidArgument(f"invalid argument {text!r} for --{flag}: time: invalid duration {text!r}")
    total, pos = 0.0, 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            raise InvalidArgument(f"invalid argument {text!r} for --{flag}: time: invalid duration {text!r}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return -int(total) if text.startswith("-") else int(total)


_HEALTH_FLAGS = {
    "interval": cc.HEALTH_INTERVAL,
    "timeout": cc.HEALTH_TIMEOUT,
    "start-period": cc.HEALTH_START_PERIOD,
    "start-interval": cc.HEALTH_START_INTERVAL,
    "retries": cc.HEALTH_RETRIES,
}


def _healthcheck(state: _State, ins: Instruction) -> None:
    rest = ins.rest
    values: dict[str, int] = {}
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        name, eq, value = flag[2:].partition("=")
        if name not in _HEALTH_FLAGS:
            raise InvalidArgument(f"Unknown flag: {name}")
        if not eq:
            raise InvalidArgument(f"Missing a value on flag: {flag}")
        field = _HEALTH_FLAGS[name]
        if field == cc.HEALTH_RETRIES:
            if not value.lstrip("-").isdigit():
                raise InvalidArgument(f"invalid argument {value!r} for --retries")
            values[field] = int(value)
            if values[field] < 0:
                raise InvalidArgument(f"--retries cannot be negative ({value})")
        else:
            ns = _duration(name, value)
            if ns != 0 and ns < _MIN_HEALTH_DURATION:
                raise InvalidArgument(f'{field} "{value}" cannot be less than 1ms')
            values[field] = ns
    kind, _, command = rest.partition(" ")
    kind, command = kind.upper(), command.strip()
    if kind == "NONE":
        if command or values:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        state.config[cc.HEALTHCHECK] = {cc.HEALTH_TEST: ["NONE"]}
        return
    if kind != "CMD":
        raise InvalidArgument(f"Unknown type {kind!r} in HEALTHCHECK (try CMD)")
    if not command:
        raise InvalidArgument("Missing command after HEALTHCHECK CMD")
    exec_form = _json_list(command)
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", command]
    state.config[cc.HEALTHCHECK] = {cc.HEALTH_TEST: test, **values}


_DISPATCH: dict[str, Callable[[_State, Instruction], None]] = {
    "cmd": _cmd,
    "entrypoint": _entrypoint,
    "env": _env,
    "expose": _expose,
    "healthcheck": _healthcheck,
    "label": _label,
    "onbuild": _onbuild,
    "user": _user,
    "volume": _volume,
    "workdir": _workdir,
}
