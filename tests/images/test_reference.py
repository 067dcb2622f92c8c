"""reference: Docker's reference grammar, normalization, familiar printing and error wording."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hull.errors import InvalidArgument
from hull.images.reference import Reference, parse, parse_tagged, validate_tag

pytestmark = pytest.mark.unit

D64 = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest", "familiar"),
    [
        ("busybox", "docker.io", "library/busybox", None, None, "busybox"),
        ("busybox:latest", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
        ("docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox:1.36"),
        ("docker.io/busybox", "docker.io", "library/busybox", None, None, "busybox"),
        ("index.docker.io/busybox", "docker.io", "library/busybox", None, None, "busybox"),
        (
            "russellgao/openresty:1.17.8.2-5-alpine",
            "docker.io",
            "russellgao/openresty",
            "1.17.8.2-5-alpine",
            None,
            "russellgao/openresty:1.17.8.2-5-alpine",
        ),
        ("library/a/b", "docker.io", "library/a/b", None, None, "library/a/b"),
        ("localhost/app", "localhost", "app", None, None, "localhost/app"),
        ("localhost:5000/team/app:v1", "localhost:5000", "team/app", "v1", None, "localhost:5000/team/app:v1"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", None, None, "127.0.0.1:5000/app"),
        ("[::1]:5000/app", "[::1]:5000", "app", None, None, "[::1]:5000/app"),
        ("Registry/app", "Registry", "app", None, None, "Registry/app"),
        ("quay.io/a__b/c-d.e_f---g", "quay.io", "a__b/c-d.e_f---g", None, None, "quay.io/a__b/c-d.e_f---g"),
        ("busybox@" + D64, "docker.io", "library/busybox", None, D64, "busybox@" + D64),
        ("busybox:1@" + D64, "docker.io", "library/busybox", "1", D64, "busybox:1@" + D64),
        ("docker.io/a.b/app", "docker.io", "a.b/app", None, None, "docker.io/a.b/app"),
        ("docker.io/localhost/app", "docker.io", "localhost/app", None, None, "docker.io/localhost/app"),
        ("a:" + "X" * 128, "docker.io", "library/a", "X" * 128, None, "a:" + "X" * 128),
    ],
)
def test_parse_and_familiar(
    text: str, domain: str, path: str, tag: str | None, digest: str | None, familiar: str
) -> None:
    ref = parse(text)
    assert ref == Reference(domain, path, tag, digest)
    assert ref.familiar() == familiar
    assert parse(familiar) == ref
    assert parse(str(ref)) == ref


def test_full_and_familiar_names() -> None:
    ref = parse("busybox")
    assert ref.name == "docker.io/library/busybox"
    assert ref.familiar_name == "busybox"
    assert str(ref) == "docker.io/library/busybox"
    assert str(ref.with_default_tag()) == "docker.io/library/busybox:latest"
    assert parse_tagged("busybox").familiar() == "busybox:latest"
    assert parse_tagged("busybox@" + D64).familiar() == "busybox@" + D64  # no tag added to a digest
    both = parse("busybox:1@" + D64)
    assert both.favor_digest().familiar() == "busybox@" + D64
    assert both.name_only().familiar() == "busybox"
    assert parse("busybox").with_tag("x").familiar() == "busybox:x"
    assert parse("busybox").with_digest(D64).familiar() == "busybox@" + D64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid reference format"),
        ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
        ("example.com/Foo", "invalid reference format: repository name (Foo) must be lowercase"),
        ("a" * 64, "invalid repository name (" + "a" * 64 + "), cannot specify 64-byte hexadecimal strings"),
        ("docker.io/library/" + "b" * 64, "cannot specify 64-byte hexadecimal strings"),
        ("busybox:", "invalid reference format"),
        ("busybox:-x", "invalid reference format"),
        ("busybox:" + "x" * 129, "invalid reference format"),
        ("bus box", "invalid reference format"),
        ("-busybox", "invalid reference format"),
        ("busybox-", "invalid reference format"),
        ("a..b", "invalid reference format"),
        ("a___b", "invalid reference format"),
        ("a//b", "invalid reference format"),
        ("/busybox", "invalid reference format"),
        ("busybox/", "invalid reference format"),
        ("busybox\n", "invalid reference format"),
        ("busybox@sha256:abc", "invalid reference format"),
        ("busybox@sha256:" + "a" * 63, "invalid checksum digest length"),
        ("busybox@sha256:" + "A" * 64, "invalid checksum digest format"),
        ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("a" * 256, "repository name must not be more than 255 characters"),
        ("example.com/" + "a" * 256, "repository name must not be more than 255 characters"),
        ("a.b_c/app", "invalid reference format"),
        ("x" * 5000, "invalid reference format"),
    ],
)
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse(text)
    assert message in e.value.message


def test_validate_tag() -> None:
    assert validate_tag("v1.0_rc-2") == "v1.0_rc-2"
    for bad in ["", ".x", "-x", "a/b", "x" * 129, "é"]:
        with pytest.raises(InvalidArgument, match="invalid tag format"):
            validate_tag(bad)
    with pytest.raises(InvalidArgument, match="invalid tag format"):
        parse("busybox").with_tag("a:b")
    with pytest.raises(InvalidArgument):
        parse("busybox").with_digest("sha256:xyz")


# -- property tests ---------------------------------------------------------------------------

_alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_sep = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def path_component(draw: st.DrawFn) -> str:
    parts = [draw(_alnum)]
    for _ in range(draw(st.integers(0, 3))):
        parts += [draw(_sep), draw(_alnum)]
    return "".join(parts)


_dns_label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)


@st.composite
def domain(draw: st.DrawFn) -> str | None:
    kind = draw(st.sampled_from(["none", "dotted", "localhost", "ipv6", "hub", "upper"]))
    port = draw(st.one_of(st.none(), st.integers(0, 65535)))
    suffix = "" if port is None else f":{port}"
    if kind == "none":
        return None
    if kind == "dotted":
        labels = draw(st.lists(_dns_label, min_size=2, max_size=4))
        return ".".join(labels) + suffix
    if kind == "localhost":
        return "localhost" + suffix
    if kind == "ipv6":
        # Docker takes a first component for a domain only if it has "." or ":" (or uppercase).
        return "[" + draw(st.from_regex(r"[a-fA-F0-9:]{0,6}:[a-fA-F0-9:]{0,6}", fullmatch=True)) + "]" + suffix
    if kind == "hub":
        return draw(st.sampled_from(["docker.io", "index.docker.io"]))
    return draw(st.from_regex(r"[A-Z][a-zA-Z0-9]{0,5}", fullmatch=True)) + suffix


@st.composite
def reference_text(draw: st.DrawFn) -> str:
    d = draw(domain())
    components = draw(st.lists(path_component(), min_size=1, max_size=3))
    # Without a domain, a first component with "." is taken for one (refused if it is not valid).
    assume(d is not None or len(components) == 1 or "." not in components[0])
    path = "/".join(components)
    text = path if d is None else f"{d}/{path}"
    if draw(st.booleans()):
        text += ":" + draw(st.from_regex(r"[\w][\w.-]{0,20}", fullmatch=True).filter(str.isascii))
    if draw(st.booleans()):
        algo, n = draw(st.sampled_from([("sha256", 64), ("sha512", 128)]))
        text += f"@{algo}:" + draw(st.text("0123456789abcdef", min_size=n, max_size=n))
    return text


@given(reference_text())
def test_round_trip(text: str) -> None:
    """Every valid reference parses, and parse(format(x)) gives x back, in both printed forms."""
    ref = parse(text)
    assert parse(ref.familiar()) == ref
    assert parse(str(ref)) == ref
    assert ref.domain and ref.path
    assert ref.with_default_tag().tag is not None or ref.digest is not None


_ref_alphabet = st.sampled_from([*"abcAB019:/@._-[]", "sha256:", "library/", "localhost", " ", "\n", "é"])


@given(st.one_of(st.text(max_size=80), st.lists(_ref_alphabet, max_size=40).map("".join)))
def test_random_strings_are_parsed_or_refused(text: str) -> None:
    """Random input never crashes: it is a valid reference (that round-trips) or an InvalidArgument."""
    try:
        ref = parse(text)
    except InvalidArgument as e:
        assert e.message
        return
    assert parse(ref.familiar()) == ref
    assert parse(str(ref)) == ref
