"""The Dockerfile parser and the .dockerignore matcher: examples and properties."""

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hull.build import dockerignore
from hull.build.dockerfile import DockerfileError, parse

NAMES = st.text(alphabet="abcxyz019_", min_size=1, max_size=8)


def test_continuations_comments_and_stages() -> None:
    df = parse(
        "# escape=\\\nARG B=busybox\nFROM $B AS one\nRUN echo a \\\n# comment\n  b\n\n"
        "FROM scratch\nCOPY --from=one /a /b\n"
    )
    assert df.escape == "\\"
    assert [s.name for s in df.stages] == ["one", ""]
    run = df.stages[0].instructions[0]
    assert (run.keyword, run.rest, run.line) == ("RUN", "echo a b", 4)
    assert df.stages[1].instructions[0].flag("from") == "one"
    assert df.steps == 5


def test_exec_form_heredoc_and_backtick_escape() -> None:
    df = parse('# escape=`\nFROM x\nCMD ["a", "b c"]\nRUN <<EOF\necho hi\nEOF\nRUN echo `\n  more\n')
    cmd, heredoc, run = df.stages[0].instructions
    assert cmd.exec == ("a", "b c")
    assert heredoc.heredocs[0].content == "echo hi\n"
    assert run.rest == "echo more"


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("FROM x\nFOO bar\n", "line 2 of Dockerfile: unknown instruction: FOO"),
        ("RUN true\n", "line 1 of Dockerfile: no build stage"),
        ("# nothing\n", "has no FROM"),
        ('FROM x\nCMD ["a",\n', "line 2 of Dockerfile: CMD: invalid JSON array form"),
        ("FROM x\nCOPY --bogus=1 a b\n", "line 2 of Dockerfile: COPY: unknown flag: --bogus"),
    ],
)
def test_errors_name_file_and_line(text: str, wanted: str) -> None:
    with pytest.raises(DockerfileError) as e:
        parse(text)
    assert wanted in e.value.message


def test_shell_test_bracket_stays_shell_form() -> None:
    assert parse("FROM x\nRUN [ -f /x ] || true\n").stages[0].instructions[0].exec is None


@given(st.lists(st.tuples(NAMES, NAMES), min_size=1, max_size=6))
def test_every_instruction_keeps_its_line(pairs: list[tuple[str, str]]) -> None:
    lines = ["FROM base"]
    for key, value in pairs:
        lines += ["", "# c", f"env {key}={value} \\", f"   {key}2=x"]
    df = parse("\n".join(lines) + "\n")
    got = df.stages[0].instructions
    assert [i.keyword for i in got] == ["ENV"] * len(pairs)
    assert [i.line for i in got] == [4 + 4 * k for k in range(len(pairs))]
    assert [i.rest for i in got] == [f"{k}={v} {k}2=x" for k, v in pairs]


def test_dockerignore_examples() -> None:
    m = dockerignore.Matcher(dockerignore.parse("*.log\n!keep.log\nbuild/\n**/tmp\n# c\n/abs\n"))
    assert m.excluded("a.log") and not m.excluded("keep.log")
    assert m.excluded("build/x/y") and m.excluded("src/tmp/y") and m.excluded("tmp") and m.excluded("abs")
    assert not m.excluded("dir/a.log") and not m.excluded("ok")


SEGMENTS = st.lists(st.text(alphabet="ab.c", min_size=1, max_size=3).filter(lambda s: s not in (".", "..")),
                    min_size=1, max_size=4)  # fmt: skip


@given(SEGMENTS, SEGMENTS)
def test_dockerignore_a_matched_directory_excludes_everything_below(top: list[str], below: list[str]) -> None:
    path = "/".join(top)
    m = dockerignore.Matcher(dockerignore.parse(path))
    assert m.excluded(path)
    assert m.excluded(posixpath.join(path, *below))
    # An exception for exactly that path re-includes it, and the last pattern wins.
    assert not dockerignore.Matcher(dockerignore.parse(f"{path}\n!{path}")).excluded(path)


@given(SEGMENTS)
def test_dockerignore_double_star_matches_any_depth(parts: list[str]) -> None:
    m = dockerignore.Matcher(dockerignore.parse("**/" + parts[-1]))
    assert m.excluded("/".join(parts))
    assert m.excluded("x/y/" + "/".join(parts))
