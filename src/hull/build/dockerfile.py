"""The Dockerfile parser: text in, stages of instructions out; nothing is expanded or run here.

Vocabulary: an *instruction* is one logical line (continuations joined) with its keyword, its
`--flags`, its arguments in *shell form* (`rest`, text) or *exec form* (`exec`, a JSON array of
strings) and any *here-documents* (`RUN <<EOF ... EOF`) that follow it. A *stage* starts at a
FROM; the ARGs before the first FROM are the *meta args*, the only ones FROM may use.

Contract (Docker's parser, facts not code):
- Parser directives (`# syntax=`, `# escape=`, `# check=`) count only at the very top; `escape`
  is `\\` or a backtick and is the continuation character. Blank lines and `#` comment lines
  are skipped, also inside a continued instruction; leading whitespace of a line is dropped.
- Keywords are case-insensitive. Flags are parsed only for the instructions that take them
  (FROM, RUN, COPY, ADD, HEALTHCHECK's are read by its own dispatcher); an unknown flag, an
  unknown instruction, an instruction before the first FROM (other than ARG), an exec form
  that is not a JSON array of strings, and a missing argument are DockerfileErrors that name
  the file, the line and the instruction.
"""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from hull.errors import InvalidArgument

DEFAULT_ESCAPE = "\\"
INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})  # fmt: skip
# The flags each instruction takes; `--link` (BuildKit's layer linking) changes nothing here.
FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "COPY": frozenset({"from", "chown", "chmod", "link"}),
    "ADD": frozenset({"chown", "chmod", "link", "checksum", "keep-git-dir"}),
    "RUN": frozenset({"network"}),
}
# Instructions whose arguments may be an exec form (a JSON array of strings).
EXEC_FORM = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
HEREDOCS = frozenset({"RUN", "COPY", "ADD"})
NEEDS_ARGUMENT = INSTRUCTIONS - {"CMD", "ENTRYPOINT"}  # `CMD` alone is Docker's `CMD []`

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_FLAG = re.compile(r"^--([a-z][a-z-]*)(?:=(.*))?$")


class DockerfileError(InvalidArgument):
    """A Dockerfile that cannot be built as written; the message names file and line."""


def error_at(file: str, line: int, message: str) -> DockerfileError:
    return DockerfileError(f"dockerfile parse error on line {line} of {file}: {message}")


@dataclass(frozen=True)
class Heredoc:
    """A here-document: its terminator word, its text, and whether `$VAR`s in it expand (unquoted word)."""

    name: str
    content: str
    expand: bool


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    rest: str  # the arguments after the flags, as written (continuations joined)
    original: str  # the whole instruction as Docker prints it in "Step n/m : ..."
    line: int  # where it starts, from 1
    flags: tuple[tuple[str, str], ...] = ()
    exec: tuple[str, ...] | None = None  # the exec form's arguments
    heredocs: tuple[Heredoc, ...] = ()

    def flag(self, name: str, default: str = "") -> str:
        for key, value in self.flags:
            if key == name:
                return value
        return default


@dataclass
class Stage:
    from_: Instruction
    base: str  # FROM's image, unexpanded
    name: str  # the `AS name`, lower case; "" when none
    index: int
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    file: str
    escape: str
    directives: dict[str, str]
    meta_args: list[Instruction]
    stages: list[Stage]

    @property
    def steps(self) -> int:
        """How many "Step n/m" lines a build of every stage prints."""
        return len(self.meta_args) + sum(1 + len(s.instructions) for s in self.stages)


def parse(text: str, file: str = "Dockerfile") -> Dockerfile:
    lines = text.replace("\r\n", "\n").split("\n")
    directives, start = _directives(lines, file)
    escape = directives.get("escape", DEFAULT_ESCAPE)
    meta_args: list[Instruction] = []
    stages: list[Stage] = []
    for ins in _instructions(lines, start, escape, file):
        if ins.keyword == "FROM":
            stages.append(_stage(ins, len(stages), file))
        elif stages:
            stages[-1].instructions.append(ins)
        elif ins.keyword == "ARG":
            meta_args.append(ins)
        else:
            raise error_at(file, ins.line, f"no build stage in current context: {ins.keyword} comes before any FROM")
    if not stages:
        raise DockerfileError(f"{file} has no FROM instruction: no build stage in current context")
    return Dockerfile(file, escape, directives, meta_args, stages)


def _directives(lines: Sequence[str], file: str) -> tuple[dict[str, str], int]:
    found: dict[str, str] = {}
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i].strip())
        if m is None or m.group(1).lower() not in _KNOWN_DIRECTIVES:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key in found:
            raise error_at(file, i + 1, f"only one {key} parser directive can be used")
        if key == "escape" and value not in ("\\", "`"):
            raise error_at(file, i + 1, f"invalid escape token '{value}' does not match ` or \\")
        found[key] = value
        i += 1
    return found, i


def _instructions(lines: Sequence[str], i: int, escape: str, file: str) -> list[Instruction]:
    out: list[Instruction] = []
    while i < len(lines):
        stripped = lines[i].lstrip()
        if not stripped.strip() or stripped.startswith("#"):
            i += 1
            continue
        start = i
        pieces: list[str] = []
        while True:
            text = lines[i].lstrip() if i > start else stripped
            body = text.rstrip()
            i += 1
            if body.endswith(escape):
                pieces.append(body[: -len(escape)])
                # Blank and comment lines inside a continuation are dropped, as Docker does.
                while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                    i += 1
                if i < len(lines):
                    continue
                break
            pieces.append(text.rstrip("\n"))
            break
        logical = "".join(pieces).strip()
        ins, i = _instruction(logical, start + 1, lines, i, file)
        out.append(ins)
    return out


def _instruction(logical: str, line: int, lines: Sequence[str], i: int, file: str) -> tuple[Instruction, int]:
    word, rest = _split_word(logical)
    keyword = word.upper()
    if keyword not in INSTRUCTIONS:
        raise error_at(file, line, f"unknown instruction: {word}")
    flags: list[tuple[str, str]] = []
    allowed = FLAGS.get(keyword)
    if allowed is not None:
        while rest.startswith("--"):
            flag_word, after = _split_word(rest)
            m = _FLAG.match(flag_word)
            if m is None or m.group(1) not in allowed:
                raise error_at(file, line, f"{keyword}: unknown flag: {flag_word.partition('=')[0]}")
            if m.group(2) is None:
                raise error_at(file, line, f"{keyword}: missing a value on flag: {flag_word}")
            flags.append((m.group(1), m.group(2)))
            rest = after
    heredocs: list[Heredoc] = []
    if keyword in HEREDOCS:
        for m in _HEREDOC.finditer(rest):
            strip_tabs, quoted, name = m.group(1) == "-", bool(m.group(2)), m.group(3)
            body: list[str] = []
            while True:
                if i >= len(lines):
                    raise error_at(file, line, f"{keyword}: here-document '{name}' has no terminating line")
                text = lines[i]
                i += 1
                if strip_tabs:
                    text = text.lstrip("\t")
                if text == name:
                    break
                body.append(text + "\n")
            heredocs.append(Heredoc(name, "".join(body), expand=not quoted))
    exec_form = None
    if keyword in EXEC_FORM and not heredocs:
        exec_form = _exec_form(keyword, rest, file, line)
    if keyword in NEEDS_ARGUMENT and not rest:
        raise error_at(file, line, f"{keyword} requires at least one argument")
    return Instruction(keyword, rest, logical, line, tuple(flags), exec_form, tuple(heredocs)), i


def _split_word(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _exec_form(keyword: str, rest: str, file: str, line: int) -> tuple[str, ...] | None:
    """The JSON array of an exec form; None for the shell form.

    Docker silently takes a broken array for shell form; `["` cannot start a sensible shell
    command, so that (and `[]`) is read as a JSON attempt and a broken one is an error. `[ -f x ]`
    stays shell form.
    """
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        value = None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if rest.startswith('["') or rest.replace(" ", "").startswith("[]"):
        raise error_at(file, line, f'{keyword}: invalid JSON array form: {rest} (use ["arg", ...] or the shell form)')
    return None


def _stage(ins: Instruction, index: int, file: str) -> Stage:
    words = ins.rest.split()
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not re.fullmatch(r"[a-z][a-z0-9_.-]*", name):
            raise error_at(file, ins.line, f"invalid name for build stage: {words[2]!r}, "
                           "name can't start with a number or contain symbols")  # fmt: skip
        return Stage(ins, words[0], name, index)
    if len(words) != 1:
        raise error_at(file, ins.line, "FROM requires either one or three arguments (FROM image [AS name])")
    return Stage(ins, words[0], "", index)
