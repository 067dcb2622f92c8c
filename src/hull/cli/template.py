"""A bounded subset of Go's text/template, enough for docker's `--format` flags.

Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and `{{/* comments */}}`;
`.`, `$`, field chains (`.State.Status`, `$v.Name`, `(index .M "k").X`); string, raw-string,
number, `true`/`false`/`nil` literals; pipelines with `|`; variables (`$x := ...`);
`if`/`else if`/`else`, `range` (lists and maps, `$i, $v :=`, `else`), `with`; functions
`json join split lower upper title len index print println printf truncate pad eq ne lt le gt
ge and or not`; callable fields with arguments (`.Label "key"`). Values print as Go's `%v`
prints them (`[a b]`, `map[k:v]`, `<no value>`, `<nil>`, `true`). Not supported: `define`,
`template`, `block`, `break`/`continue`, method calls on non-callable values, `html`/`js`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (and dataclasses): start-up time
if TYPE_CHECKING:
    from typing import Any


class TemplateError(Exception):
    pass


class _NoValue:
    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE: Any = _NoValue()


# ---------------------------------------------------------------------------- formatting
def go_str(v: Any) -> str:
    """A value printed the way Go's fmt %v prints the equivalent JSON-decoded value."""
    if v is NO_VALUE:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v[k])}" for k in sorted(v, key=str)) + "]"
    return str(v)


def _go_float(f: float) -> str:
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == int(f) and abs(f) < 1e6:
        return str(int(f))
    r = repr(f)
    mant, _, exp = r.partition("e")
    digits = mant.replace("-", "").replace(".", "").lstrip("0") or "0"
    e = int(exp) if exp else (len(str(int(abs(f)))) - 1 if abs(f) >= 1 else _neg_exp(abs(f)))
    if e < -4 or e >= 21 or (e >= 6 and len(digits) <= 21):
        m = f"{f:.{max(len(digits.rstrip('0')) - 1, 0)}e}"
        mm, _, ee = m.partition("e")
        sign = "-" if ee.startswith("-") else "+"
        return f"{mm}e{sign}{abs(int(ee)):02d}"
    return r.rstrip("0").rstrip(".") if "." in r else r


def _neg_exp(f: float) -> int:
    e = 0
    while f < 1:
        f *= 10
        e -= 1
    return e


def to_json(v: Any) -> str:
    if v is NO_VALUE:
        v = None
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(o: Any) -> Any:
    if hasattr(o, "__dict__"):
        return {k: v for k, v in vars(o).items() if not k.startswith("_")}
    raise TypeError(f"cannot encode {type(o).__name__}")


def truthy(v: Any) -> bool:
    if v is NO_VALUE or v is None:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


# ---------------------------------------------------------------------------- lexer
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<decl>:=)
    | (?P<assign>=)
    | (?P<var>\$[A-Za-z0-9_]*)
    | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
    | (?P<dot>\.)
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>[|(),])
    )""",
    re.VERBOSE,
)


class Tok:
    def __init__(self, kind: str, text: str, glued: bool = False) -> None:
        self.kind, self.text = kind, text
        self.glued = glued  # a field chain right after the previous token: `$x.Name`, `(...).Name`


def _lex(src: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None or m.end() == pos:
            raise TemplateError(f"unexpected {src[pos:].strip()[:10]!r} in command")
        kind = m.lastgroup or ""
        glued = m.start(kind) == pos and kind == "field" and bool(toks) and toks[-1].kind in ("var", "punct", "field")
        if glued and toks[-1].kind == "punct" and toks[-1].text != ")":
            glued = False
        toks.append(Tok(kind, m.group(kind), glued))
        pos = m.end()
    return toks


# ---------------------------------------------------------------------------- parser
# Plain classes rather than dataclasses: importing dataclasses (and typing) costs more than a parse.
class Node:
    pass


class Text(Node):
    def __init__(self, text: str) -> None:
        self.text = text


class Operand:
    def __init__(self, kind: str, value: Any, chain: list[str] | None = None) -> None:
        self.kind = kind  # field, dot, var, str, num, bool, nil, ident, pipe
        self.value = value
        self.chain = chain or []


class Pipeline:
    def __init__(self, decl: list[str], cmds: list[list[Operand]], assign: bool = False) -> None:
        self.decl, self.cmds, self.assign = decl, cmds, assign


class Action(Node):
    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe


class Branch(Node):
    def __init__(self, kind: str, pipe: Pipeline, body: list[Node], orelse: list[Node]) -> None:
        self.kind = kind  # if, range, with
        self.pipe, self.body, self.orelse = pipe, body, orelse


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)


def _split(src: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", s) parts, with trim markers applied to the neighbouring text."""
    parts: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            parts.append(("text", text))
        parts.append(("action", m.group(2).strip()))
        trim_next = bool(m.group(3))
        pos = m.end()
    text = src[pos:]
    if trim_next:
        text = text.lstrip()
    if "{{" in text:
        raise TemplateError("unclosed action")
    if text:
        parts.append(("text", text))
    return parts


class _Parser:
    def __init__(self, src: str) -> None:
        self.parts = _split(src)
        self.i = 0

    def parse(self) -> list[Node]:
        nodes, stop = self.nodes()
        if stop is not None:
            raise TemplateError(f"unexpected {{{{{stop}}}}}")
        return nodes

    def nodes(self) -> tuple[list[Node], str | None]:
        out: list[Node] = []
        while self.i < len(self.parts):
            kind, s = self.parts[self.i]
            self.i += 1
            if kind == "text":
                out.append(Text(s))
                continue
            if s.startswith("/*"):
                if not s.endswith("*/"):
                    raise TemplateError("unclosed comment")
                continue
            word = s.split(None, 1)[0] if s else ""
            if word in ("end", "else"):
                return out, s
            if word in ("if", "range", "with"):
                out.append(self.branch(word, s[len(word) :]))
            elif word in ("define", "template", "block", "break", "continue"):
                raise TemplateError(f"{{{{{word}}}}} is not supported")
            else:
                out.append(Action(_pipeline(s)))
        return out, None

    def branch(self, kind: str, rest: str) -> Branch:
        pipe = _pipeline(rest)
        body, stop = self.nodes()
        orelse: list[Node] = []
        if stop is None:
            raise TemplateError(f"unexpected EOF: {{{{{kind}}}}} without {{{{end}}}}")
        if stop.startswith("else"):
            tail = stop[4:].strip()
            if tail.startswith(("if ", "with ")):
                word = tail.split(None, 1)[0]
                orelse = [self.branch(word, tail[len(word) :])]
                return Branch(kind, pipe, body, orelse)
            if tail:
                raise TemplateError(f"unexpected {tail!r} after else")
            orelse, stop = self.nodes()
            if stop != "end":
                raise TemplateError(f"expected {{{{end}}}} for {{{{{kind}}}}}")
        elif stop != "end":
            raise TemplateError(f"unexpected {stop!r}")
        return Branch(kind, pipe, body, orelse)


def _pipeline(src: str) -> Pipeline:
    toks = _lex(src)
    if not toks:
        raise TemplateError("missing value for command")
    decl: list[str] = []
    assign = False
    # `$x :=` or `$i, $v :=`
    j = 0
    names: list[str] = []
    while j < len(toks) and toks[j].kind == "var":
        names.append(toks[j].text)
        if j + 1 < len(toks) and toks[j + 1].kind == "punct" and toks[j + 1].text == ",":
            j += 2
            continue
        if j + 1 < len(toks) and toks[j + 1].kind in ("decl", "assign"):
            decl, assign = names, toks[j + 1].kind == "assign"
            toks = toks[j + 2 :]
        break
    pos, cmds = _commands(toks, 0, top=True)
    if pos != len(toks):
        raise TemplateError(f"unexpected {toks[pos].text!r} in command")
    return Pipeline(decl, cmds, assign)


def _commands(toks: list[Tok], pos: int, top: bool) -> tuple[int, list[list[Operand]]]:
    cmds: list[list[Operand]] = []
    cmd: list[Operand] = []
    while pos < len(toks):
        t = toks[pos]
        if t.kind == "punct" and t.text == "|":
            if not cmd:
                raise TemplateError("missing command before |")
            cmds.append(cmd)
            cmd = []
            pos += 1
            continue
        if t.kind == "punct" and t.text == ")":
            if top:
                raise TemplateError("unexpected right paren")
            break
        if t.kind == "punct" and t.text == "(":
            pos, inner = _commands(toks, pos + 1, top=False)
            if pos >= len(toks) or toks[pos].text != ")":
                raise TemplateError("unclosed left paren")
            op = Operand("pipe", Pipeline([], inner))
            pos += 1
        elif t.kind == "field" and t.glued and cmd:
            cmd[-1].chain += t.text[1:].split(".")
            pos += 1
            continue
        else:
            op = _operand(t)
            pos += 1
        cmd.append(op)
    if not cmd:
        raise TemplateError("missing value for command")
    cmds.append(cmd)
    return pos, cmds


def _operand(t: Tok) -> Operand:
    if t.kind == "field":
        return Operand("field", None, t.text[1:].split("."))
    if t.kind == "dot":
        return Operand("dot", None)
    if t.kind == "var":
        return Operand("var", t.text)
    if t.kind == "str":
        return Operand("str", json.loads(t.text) if "\\" in t.text else t.text[1:-1])
    if t.kind == "raw":
        return Operand("str", t.text[1:-1])
    if t.kind == "num":
        return Operand("num", float(t.text) if "." in t.text else int(t.text))
    if t.kind == "ident":
        if t.text in ("true", "false"):
            return Operand("bool", t.text == "true")
        if t.text == "nil":
            return Operand("nil", None)
        return Operand("ident", t.text)
    raise TemplateError(f"unexpected {t.text!r} in operand")


# ---------------------------------------------------------------------------- functions
def _index(v: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(v, dict):
            v = v.get(k, NO_VALUE)
        elif isinstance(v, (list, tuple, str)):
            if not isinstance(k, int) or not -1 < k < len(v):
                raise TemplateError(f"error calling index: index out of range: {k}")
            v = v[k]
        elif v is None or v is NO_VALUE:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"error calling index: can't index item of type {type(v).__name__}")
    return v


def _printf(fmt: str, *args: Any) -> str:
    it = iter(args)

    def repl(m: re.Match[str]) -> str:
        verb = m.group(2)
        if verb == "%":
            return "%"
        try:
            a = next(it)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        if verb == "q":
            return json.dumps(go_str(a), ensure_ascii=False)
        if verb == "d" and isinstance(a, (int, float)) and not isinstance(a, bool):
            return ("%" + m.group(1) + "d") % int(a)
        return ("%" + m.group(1) + "s") % go_str(a)

    return re.sub(r"%([-+# 0]*\d*(?:\.\d+)?)([a-zA-Z%])", repl, fmt)


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def f(a: Any, *bs: Any) -> bool:
        if not bs:
            raise TemplateError("missing argument for comparison")
        return any(op(a, b) for b in bs) if op is _eq else op(a, bs[0])

    return f


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


def _truncate(s: Any, n: int) -> str:
    s = go_str(s)
    return s[:n]


def _pad(s: Any, left: int, right: int) -> str:
    return " " * left + go_str(s) + " " * right


FUNCS: dict[str, Callable[..., Any]] = {
    "json": to_json,
    "join": lambda items, sep: sep.join(go_str(x) for x in (items or [])),
    "split": lambda s, sep: go_str(s).split(sep),
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "title": lambda s: go_str(s).title(),
    "len": lambda v: len(v) if v not in (None, NO_VALUE) else 0,
    "index": _index,
    "print": lambda *a: "".join(go_str(x) for x in a),
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "printf": _printf,
    "truncate": _truncate,
    "pad": _pad,
    "eq": _cmp(_eq),
    "ne": _cmp(lambda a, b: a != b),
    "lt": _cmp(lambda a, b: a < b),
    "le": _cmp(lambda a, b: a <= b),
    "gt": _cmp(lambda a, b: a > b),
    "ge": _cmp(lambda a, b: a >= b),
    "not": lambda v: not truthy(v),
}


# ---------------------------------------------------------------------------- evaluation
def _field(v: Any, name: str) -> Any:
    if v is NO_VALUE or v is None:
        return NO_VALUE
    if isinstance(v, dict):
        return v.get(name, NO_VALUE)
    attr = getattr(v, name, NO_VALUE)
    return attr


class Template:
    """A parsed template; `render(data)` returns the text."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.nodes = _Parser(src).parse()

    def render(self, data: Any) -> str:
        out: list[str] = []
        self._run(self.nodes, data, [{"$": data}], out)
        return "".join(out)

    def _run(self, nodes: list[Node], dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        for n in nodes:
            if isinstance(n, Text):
                out.append(n.text)
            elif isinstance(n, Action):
                v = self._pipe(n.pipe, dot, scopes)
                if not n.pipe.decl:
                    out.append(go_str(v))
            elif isinstance(n, Branch):
                self._branch(n, dot, scopes, out)

    def _branch(self, n: Branch, dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        inner = [*scopes, {}]
        if n.kind == "range":
            pipe = Pipeline([], n.pipe.cmds)
            v = self._pipe(pipe, dot, scopes)
            if isinstance(v, dict):
                items: list[tuple[Any, Any]] = [(k, v[k]) for k in sorted(v, key=str)]
            elif isinstance(v, (list, tuple, str)):
                items = list(enumerate(v))
            elif isinstance(v, int) and not isinstance(v, bool):
                items = [(i, i) for i in range(v)]
            elif v is None or v is NO_VALUE:
                items = []
            else:
                raise TemplateError(f"range can't iterate over {go_str(v)}")
            if not items:
                self._run(n.orelse, dot, inner, out)
                return
            for k, item in items:
                if len(n.pipe.decl) == 1:
                    inner[-1][n.pipe.decl[0]] = item
                elif len(n.pipe.decl) == 2:
                    inner[-1][n.pipe.decl[0]] = k
                    inner[-1][n.pipe.decl[1]] = item
                self._run(n.body, item, inner, out)
            return
        v = self._pipe(n.pipe, dot, inner)
        if truthy(v):
            self._run(n.body, v if n.kind == "with" else dot, inner, out)
        else:
            self._run(n.orelse, dot, inner, out)

    def _pipe(self, p: Pipeline, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        v: Any = NO_VALUE
        for i, cmd in enumerate(p.cmds):
            v = self._cmd(cmd, dot, scopes, v if i else None, i > 0)
        if p.decl:
            if p.assign:
                for s in reversed(scopes):
                    if p.decl[0] in s:
                        s[p.decl[0]] = v
                        break
                else:
                    raise TemplateError(f"undefined variable: {p.decl[0]}")
            else:
                scopes[-1][p.decl[-1]] = v
        return v

    def _cmd(self, cmd: list[Operand], dot: Any, scopes: list[dict[str, Any]], prev: Any, piped: bool) -> Any:
        head = cmd[0]
        args = [self._value(a, dot, scopes) for a in cmd[1:]]
        if piped:
            args.append(prev)
        if head.kind == "ident":
            if head.value == "and":
                r: Any = True
                for a in args:
                    r = a
                    if not truthy(a):
                        break
                return r
            if head.value == "or":
                r = False
                for a in args:
                    r = a
                    if truthy(a):
                        break
                return r
            fn = FUNCS.get(head.value)
            if fn is None:
                raise TemplateError(f'function "{head.value}" not defined')
            try:
                return fn(*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, AttributeError) as e:
                raise TemplateError(f"error calling {head.value}: {e}") from None
        v = self._value(head, dot, scopes)
        if callable(v):
            return v(*args)
        if args:
            raise TemplateError(f"can't give argument to non-function {self._describe(head)}")
        return v

    def _describe(self, op: Operand) -> str:
        return "." + ".".join(op.chain) if op.kind == "field" else str(op.value)

    def _value(self, op: Operand, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        if op.kind in ("field", "dot"):
            v = dot
        elif op.kind == "var":
            for s in reversed(scopes):
                if op.value in s:
                    v = s[op.value]
                    break
            else:
                raise TemplateError(f"undefined variable: {op.value}")
        elif op.kind == "pipe":
            v = self._pipe(op.value, dot, scopes)
        elif op.kind == "ident":
            fn = FUNCS.get(op.value)
            if fn is None:
                raise TemplateError(f'function "{op.value}" not defined')
            v = fn()
        else:
            v = op.value
        for name in op.chain:
            v = _field(v, name)
        return v


_CACHE: dict[str, Template] = {}


def render(src: str, data: Any) -> str:
    t = _CACHE.get(src)
    if t is None:
        t = _CACHE[src] = Template(src)
    return t.render(data)
