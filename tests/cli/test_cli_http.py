"""hull's HTTP/1.1 client (cli/http.py) against canned daemon answers over a socketpair."""

import io
import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hull.cli import http

pytestmark = pytest.mark.unit


def _exchange(
    answer: bytes, method: str = "GET", body: object = None, close: bool = True
) -> tuple[http.Response, bytes]:
    """Send a request to a fake daemon that answers `answer`; returns the response and what it received."""
    ours, theirs = socket.socketpair()
    received = bytearray()

    def daemon() -> None:
        # The whole request before the answer, as a daemon reads it: answering and closing first
        # would have the client's body meet a closed socket (EPIPE).
        while b"\r\n\r\n" not in received:
            received.extend(theirs.recv(65536))
        head, _, _ = bytes(received).partition(b"\r\n\r\n")
        if b"chunked" in head:
            while not received.endswith(b"0\r\n\r\n"):
                received.extend(theirs.recv(65536))
        lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.startswith(b"Content-Length:")]
        length = lengths[0] if lengths else 0
        while len(received) < len(head) + 4 + length:
            received.extend(theirs.recv(65536))
        theirs.sendall(answer)
        if close:
            theirs.close()

    t = threading.Thread(target=daemon)
    t.start()
    resp = http.request(ours, method, "/v1.43/x", {"User-Agent": "t"}, body)  # type: ignore[arg-type]
    t.join()
    return resp, bytes(received)


def test_content_length_body_and_headers() -> None:
    resp, sent = _exchange(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    assert (resp.status, resp.reason, resp.getheader("content-type")) == (200, "OK", "application/json")
    assert resp.read() == b"{}" and resp.read1() == b""
    assert sent.startswith(b"GET /v1.43/x HTTP/1.1\r\n") and b"Connection: close\r\n" in sent


def test_chunked_body_with_trailer() -> None:
    resp, _ = _exchange(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n"
    )
    assert resp.read() == b"abcde"


def test_body_until_close_and_no_body_statuses() -> None:
    resp, _ = _exchange(b"HTTP/1.1 200 OK\r\n\r\nstreamed until the end")
    assert resp.read() == b"streamed until the end"
    for status in (b"204 No Content", b"304 Not Modified"):
        resp, _ = _exchange(b"HTTP/1.1 " + status + b"\r\n\r\n")
        assert resp.read() == b""
    resp, _ = _exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", method="HEAD")
    assert resp.read() == b""


def test_request_bodies_bytes_and_streams() -> None:
    _, sent = _exchange(b"HTTP/1.1 204 No Content\r\n\r\n", "POST", b"payload")
    assert b"Content-Length: 7\r\n" in sent and sent.endswith(b"\r\n\r\npayload")
    _, sent = _exchange(b"HTTP/1.1 204 No Content\r\n\r\n", "POST", io.BytesIO(b"from a file"))
    assert b"Transfer-Encoding: chunked\r\n" in sent and sent.endswith(b"\r\n\r\nb\r\nfrom a file\r\n0\r\n\r\n")
    _, sent = _exchange(b"HTTP/1.1 204 No Content\r\n\r\n", "POST")
    assert b"Content-Length: 0\r\n" in sent


def test_upgrade_hands_over_the_socket_and_early_bytes() -> None:
    resp, _ = _exchange(
        b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x02hi", "POST", close=False
    )
    assert resp.status == 101
    sock, rest = resp.detach()
    assert rest == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    sock.close()


def test_broken_answers_are_protocol_errors() -> None:
    with pytest.raises(http.ProtocolError, match="malformed status line"):
        _exchange(b"SPDY/9 nonsense\r\n\r\n")
    with pytest.raises(http.ProtocolError, match="closed before the response"):
        _exchange(b"HTTP/1.1 200")
    resp, _ = _exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    with pytest.raises(http.ProtocolError, match="5 bytes of the body missing"):
        resp.read()


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=8))
def test_chunked_round_trip(pieces: list[bytes]) -> None:
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    resp, _ = _exchange(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + encoded)
    assert resp.read() == b"".join(pieces)


@given(st.text(), st.sampled_from(["", "/:@"]))
def test_percent_encoding_matches_the_standard_library(text: str, safe: str) -> None:
    from urllib.parse import quote

    from hull.cli.client import percent_encode

    assert percent_encode(text, safe) == quote(text, safe=safe)
