"""Unit tests of the Go-template subset (hull.cli.template)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hull.cli.template import TemplateError, go_str, render

pytestmark = pytest.mark.unit

DATA = {
    "Name": "/web",
    "State": {"Status": "running", "Pid": 42, "Running": True},
    "Config": {"Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "1"}, "Cmd": None},
    "Empty": [],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.Name}}", "/web"),
        ("{{.State.Status}} {{.State.Pid}} {{.State.Running}}", "running 42 true"),
        ("{{json .Config.Env}}", '["A=1","B=2"]'),
        ("{{.Config.Env}}", "[A=1 B=2]"),
        ("{{.Config.Labels}}", "map[a:1 b:2]"),
        ('{{index .Config.Labels "b"}}', "2"),
        ("{{index .Config.Env 1}}", "B=2"),
        ("{{.Config.Cmd}}", "<nil>"),
        ("{{.Nope}}", "<no value>"),
        ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
        ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "a=1,b=2,"),
        ("{{range .Empty}}x{{else}}none{{end}}", "none"),
        ('{{if eq .State.Status "running"}}up{{else}}down{{end}}', "up"),
        ('{{if eq .State.Status "x"}}1{{else if .State.Running}}2{{else}}3{{end}}', "2"),
        ("{{with .State}}{{.Pid}}{{end}}", "42"),
        ("{{with .Nope}}x{{else}}y{{end}}", "y"),
        ("{{.Name | upper}}", "/WEB"),
        ('{{join .Config.Env ","}}', "A=1,B=2"),
        ('{{printf "%s=%d" .Name .State.Pid}}', "/web=42"),
        ("{{len .Config.Env}}", "2"),
        ("a {{- .Name -}} b", "a/webb"),
        ("{{/* comment */}}x", "x"),
        ("{{$n := .Name}}{{$n}}", "/web"),
        ("{{(index .Config.Env 0) | lower}}", "a=1"),
        ("{{json .State}}", '{"Status":"running","Pid":42,"Running":true}'),
        ("{{and .State.Running .Name}}", "/web"),
        ("{{or .Nope .Name}}", "/web"),
        ("{{not .State.Running}}", "false"),
        ("{{$}}", "map[Config:map[Cmd:<nil> Env:[A=1 B=2] Labels:map[a:1 b:2]] Empty:[] Name:/web "
                  "State:map[Pid:42 Running:true Status:running]]"),
    ],
)  # fmt: skip
def test_render(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


def test_callable_field_with_argument() -> None:
    assert render('{{.Label "k"}}', {"Label": lambda key: {"k": "v"}.get(key, "")}) == "v"


@pytest.mark.parametrize("template", ["{{.Name", "{{if .Name}}x", "{{nofunc .Name}}", "{{end}}", '{{template "x"}}'])
def test_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, DATA)


@pytest.mark.parametrize(
    ("value", "expected"), [(1.5e9, "1.5e+09"), (100000.0, "100000"), (0.5, "0.5"), (True, "true")]
)
def test_go_str(value: object, expected: str) -> None:
    assert go_str(value) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_json_function_round_trips(value: object) -> None:
    assert json.loads(render("{{json .X}}", {"X": value})) == value


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40))
def test_plain_text_is_unchanged(text: str) -> None:
    assert render(text, {}) == text


@given(st.lists(st.text(alphabet="abc =", max_size=5), max_size=5))
def test_range_matches_join(items: list[str]) -> None:
    assert render("{{range .}}{{.}}|{{end}}", items) == "".join(f"{i}|" for i in items)
    assert render('{{join . "|"}}', items) == "|".join(items)
