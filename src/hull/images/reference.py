"""Docker image references: `[domain/]path[:tag][@digest]`, parsed and printed as Docker does.

Grammar (distribution/reference):

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] path-component ["/" path-component]*
    domain           := host [":" port-number]
    host             := domain-name | "[" IPv6 "]"
    domain-name      := domain-component ["." domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component   := /[a-z0-9]+/ [separator /[a-z0-9]+/]*
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex   (sha256, sha384, sha512; lowercase hex of the right length)

Vocabulary:
- normalized (canonical) form: every Reference here has a domain; a familiar name is
  normalized as Docker does: `busybox` -> domain `docker.io`, path `library/busybox`;
  `index.docker.io` becomes `docker.io`; the first component is a domain only if it has a
  `.` or `:`, is `localhost`, or has an uppercase letter.
- familiar form: what Docker prints (`docker images`, repositories.json): `docker.io/` and a
  single-level `library/` dropped: `busybox:latest`, `myuser/app`, `localhost:5000/x`.
- the default tag is `latest`, added only where Docker adds it (with_default_tag).

Errors are InvalidArgument carrying Docker's own messages ("invalid reference format", ...).
Deliberate differences, all so that every Reference prints in a form that parses back to it:
a reference whose familiar name is a 64-hex identifier is refused (Docker refuses it only when
typed familiar); a first component taken for a domain that is not a valid one (`a.b_c/app`)
is refused (Docker keeps a name without domain); and a Docker Hub path whose first component
looks like a domain (`docker.io/a.b/app`) keeps `docker.io/` in its familiar form.
"""

import re
from dataclasses import dataclass

from hull.errors import InvalidArgument
from hull.images import ids

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# Patterns, composed as in distribution/reference's regexp.go. re.ASCII keeps \w to [A-Za-z0-9_]
# as in Go; matching uses fullmatch, never `$` (which in Python also matches before a final "\n").
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_OPTIONAL_PORT = r"(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = _DOMAIN_NAME_COMPONENT + r"(?:\." + _DOMAIN_NAME_COMPONENT + r")*"
_HOST = r"(?:" + _DOMAIN_NAME + "|" + _IPV6 + ")"
_DOMAIN_AND_PORT = _HOST + _OPTIONAL_PORT
_PATH_COMPONENT = _ALPHANUMERIC + r"(?:" + _SEPARATOR + _ALPHANUMERIC + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

_REFERENCE_RE = re.compile(r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?", re.ASCII)
_NAME_RE = re.compile(r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")

# Longer input is refused before the regular expressions run: Python's backtracking engine
# (unlike Go's) could spend long on pathological strings. No valid reference comes close.
_MAX_INPUT = 4096


@dataclass(frozen=True)
class Reference:
    """A normalized image reference: domain and path always set, tag and digest optional."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The full repository name: `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as Docker prints it: `busybox`, `myuser/app`, `localhost:5000/app`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_REPO_PREFIX):
            rest = self.path[len(OFFICIAL_REPO_PREFIX) :]
            if "/" not in rest:
                return rest
        first = self.path.partition("/")[0]
        if "/" in self.path and ("." in first or first == "localhost"):
            # Printed without its domain, `docker.io/a.b/app` would read back as registry `a.b`
            # (Docker prints it so anyway); hull keeps the domain so that the name parses back.
            return self.name
        return self.path

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag is not None else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        """The full form: `docker.io/library/busybox:latest`."""
        return self.name + self._suffix()

    def familiar(self) -> str:
        """The familiar form: `busybox:latest`, `busybox@sha256:...`."""
        return self.familiar_name + self._suffix()

    @property
    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def name_only(self) -> "Reference":
        """The repository alone, tag and digest dropped."""
        return Reference(self.domain, self.path)

    def with_tag(self, tag: str) -> "Reference":
        """This reference with `tag` (validated); any digest is kept."""
        if not isinstance(tag, str) or _TAG_RE.fullmatch(tag) is None:
            raise InvalidArgument(f"invalid tag format: {tag!r}")
        return Reference(self.domain, self.path, tag, self.digest)

    def with_digest(self, digest: str) -> "Reference":
        """This reference with `digest` (validated); any tag is kept."""
        ids.check_digest(digest)
        return Reference(self.domain, self.path, self.tag, digest)

    def with_default_tag(self) -> "Reference":
        """Add the tag `latest` to a name-only reference (Docker's TagNameOnly)."""
        return Reference(self.domain, self.path, DEFAULT_TAG) if self.is_name_only else self

    def favor_digest(self) -> "Reference":
        """Drop the tag of a reference that has both: the digest alone names the content."""
        return Reference(self.domain, self.path, None, self.digest) if self.digest else self


def _split_docker_domain(name: str) -> tuple[str, str]:
    """Split a familiar or full name into (domain, remainder) the way Docker guesses the domain."""
    first, slash, rest = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == "localhost":
        domain, remainder = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _parse_full(s: str) -> Reference:
    """Parse a reference that already starts with its domain (distribution/reference Parse)."""
    m = _REFERENCE_RE.fullmatch(s)
    if m is None:
        if not s:
            raise InvalidArgument("repository name must have at least one component")
        if _REFERENCE_RE.fullmatch(s.lower()) is not None:
            raise InvalidArgument("repository name must be lowercase")
        raise InvalidArgument("invalid reference format")
    name, tag, digest = m.group(1), m.group(2), m.group(3)
    nm = _NAME_RE.fullmatch(name)
    if nm is None or nm.group(1) is None:
        # The first component was taken for a domain but the grammar only allows it as a path
        # (`a.b_c/app`): Docker would keep a name without a domain; hull refuses it.
        raise InvalidArgument("invalid reference format")
    domain, path = nm.group(1), nm.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if digest is not None:
        ids.check_digest(digest)
    return Reference(domain, path, tag, digest)


def parse(s: str) -> Reference:
    """Parse a reference as Docker's clients type it (ParseNormalizedNamed) into its full form.

    `busybox` -> docker.io/library/busybox (no tag added: see Reference.with_default_tag).
    """
    if not isinstance(s, str):
        raise InvalidArgument(f"invalid reference format: {s!r} is not a string")
    if len(s) > _MAX_INPUT:
        raise InvalidArgument("invalid reference format")
    if _IDENTIFIER_RE.fullmatch(s) is not None:
        raise InvalidArgument(f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(s)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidArgument(f"invalid reference format: repository name ({remote}) must be lowercase")
    ref = _parse_full(f"{domain}/{remainder}")
    if _IDENTIFIER_RE.fullmatch(ref.familiar_name) is not None:
        raise InvalidArgument(
            f"invalid repository name ({ref.familiar_name}), cannot specify 64-byte hexadecimal strings"
        )
    return ref


def parse_tagged(s: str) -> Reference:
    """Parse as `parse`, then add the default tag to a name-only reference (what pull and run use)."""
    return parse(s).with_default_tag()


def validate_tag(tag: str) -> str:
    """Return `tag` if it is a valid tag (`[\\w][\\w.-]{0,127}`), else InvalidArgument."""
    if not isinstance(tag, str) or _TAG_RE.fullmatch(tag) is None:
        raise InvalidArgument(f"invalid tag format: {tag!r}")
    return tag


def parse_new_tag(name: str) -> Reference:
    """The tag reference `name` names for tagging (`name` alone means `name:latest`); a digest reference is refused."""
    ref = parse(name)
    if ref.digest is not None:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {name}")
    return ref.with_default_tag()
