"""The wire protocol between the daemon and a shim, over the unix stream socket `shim.sock`.

Requests and answers are one JSON object per line. A request names its `op`; the answer is
`{"ok": true, ...}` or `{"ok": false, "error": message, "kind": kind}` where kind tells the
client which hull.errors class to raise. After a successful `attach` the connection becomes a
byte stream: output in Docker's multiplexed frames (hull.multiplex), and whatever the client
sends goes to the container's stdin.
"""

import json
from typing import Any

from hull.errors import Conflict, HullError, InvalidArgument, NotFound

# A request line longer than this is refused (the rest of it skipped): no op needs more.
MAX_LINE = 1 << 20

_KINDS: list[tuple[type[HullError], str]] = [
    (NotFound, "not_found"),
    (Conflict, "conflict"),
    (InvalidArgument, "invalid"),
]


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def ok(**fields: Any) -> bytes:
    return encode({"ok": True, **fields})


def kind_of(err: BaseException) -> str:
    for cls, kind in _KINDS:
        if isinstance(err, cls):
            return kind
    return "error"


def error(err: BaseException) -> bytes:
    message = err.message if isinstance(err, HullError) else (getattr(err, "strerror", None) or str(err))
    return encode({"ok": False, "error": message, "kind": kind_of(err)})


def raise_for(answer: Any) -> dict[str, Any]:
    """The answer if it is ok; else raise the hull.errors class its kind names."""
    if not isinstance(answer, dict):
        raise HullError(f"shim: malformed answer {answer!r}")
    if answer.get("ok"):
        return answer
    message = str(answer.get("error", "unknown shim error"))
    cls = next((c for c, k in _KINDS if k == answer.get("kind")), HullError)
    raise cls(message)


def decode_answer(line: bytes) -> dict[str, Any]:
    if not line:
        raise HullError("shim: connection closed before an answer")
    try:
        answer = json.loads(line)
    except ValueError:
        raise HullError(f"shim: malformed answer {line[:200]!r}") from None
    return raise_for(answer)
