"""`.dockerignore`: which files of a build context are left out of the tar sent to the daemon.

Contract (Docker's patternmatcher, facts not code):
- One pattern a line; blank lines and lines starting with `#` are skipped; surrounding blanks
  are trimmed; a leading `!` makes an *exception* (a path it matches is sent after all). Each
  pattern is cleaned like a path (`./a//b/` is `a/b`, a leading `/` means the context root).
- Patterns are Go filepath.Match patterns on `/`-separated paths relative to the root: `*`
  and `?` never match a `/`, `[...]` is a character class (`[^...]` negated), `\\` escapes the
  next character, and `**` matches any number of directories (also none).
- A path is excluded when the last pattern that matches it, or one of its parent
  directories, is not an exception. The Dockerfile and .dockerignore are always sent (the
  caller keeps them, as the docker CLI does).
"""

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Pattern:
    text: str  # cleaned, without the "!"
    exception: bool
    regex: re.Pattern[str]


def parse(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
            if not line:
                continue
        cleaned = posixpath.normpath(line).lstrip("/") or "."
        patterns.append(Pattern(cleaned, exception, compile_pattern(cleaned)))
    return patterns


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a filepath.Match pattern with `**`."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # "**/" also matches no directory at all
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[^", i) or pattern.startswith("[]", i) else i + 1)
            if end < 0:
                # An unterminated class: Go reports ErrBadPattern, and such a pattern matches nothing.
                return re.compile(r"(?!)")
            body = pattern[i + 1 : end]
            negate = body.startswith("^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out))


class Matcher:
    """The patterns of one .dockerignore, asked about paths relative to the context root."""

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.patterns = list(patterns)
        self.has_exceptions = any(p.exception for p in self.patterns)

    def excluded(self, path: str) -> bool:
        path = posixpath.normpath(path).lstrip("/")
        parents = _parents(path)
        result = False
        for p in self.patterns:
            if p.regex.fullmatch(path) or any(p.regex.fullmatch(parent) for parent in parents):
                result = not p.exception
        return result


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:k]) for k in range(1, len(parts))]
