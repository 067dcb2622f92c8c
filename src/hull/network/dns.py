"""The embedded DNS server of a user-defined network: container names, aliases and short ids.

Where Docker answers on 127.0.0.11 inside each container (through DNAT in its namespace), hull
answers on the network's gateway address, port 53 (UDP), from the daemon itself, and the
containers' resolv.conf names that address. A name of the network is answered from
`lookup`; any other query is relayed as it is to the host's nameservers (which may be on
loopback: the daemon runs in the host's namespace) and their answer relayed back.
"""

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import cast

log = logging.getLogger("hulld.dns")

DNS_PORT = 53
FORWARD_TIMEOUT = 3.0
QTYPE_A = 1
QCLASS_IN = 1
TTL = 600
FLAG_QR, FLAG_RD, FLAG_RA = 0x8000, 0x0100, 0x0080
RCODE_FORMERR, RCODE_SERVFAIL = 1, 2

Lookup = Callable[[str], list[str] | None]  # name -> IPv4 addresses; None: not a name of this network


def parse_question(packet: bytes) -> tuple[int, int, str, int, int] | None:
    """(id, flags, name, qtype, end of the question) of a query with one question, else None."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1 or flags & FLAG_QR:
        return None
    labels, pos = [], 12
    while True:
        if pos >= len(packet):
            return None
        n = packet[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0 or pos + n > len(packet):
            return None
        labels.append(packet[pos : pos + n].decode("ascii", "replace"))
        pos += n
    if pos + 4 > len(packet):
        return None
    qtype, _ = struct.unpack("!HH", packet[pos : pos + 4])
    return qid, flags, ".".join(labels), qtype, pos + 4


def answer(packet: bytes, qid: int, flags: int, qtype: int, end: int, addresses: list[str]) -> bytes:
    """A reply carrying the question and, for an A query, one A record per address."""
    records = addresses if qtype == QTYPE_A else []
    header = struct.pack("!HHHHHH", qid, FLAG_QR | (flags & FLAG_RD) | FLAG_RA, 1, len(records), 0, 0)
    out = [header, packet[12:end]]
    for a in records:
        # 0xc00c: a pointer to the question's name at offset 12.
        out.append(struct.pack("!HHHIH", 0xC00C, QTYPE_A, QCLASS_IN, TTL, 4) + bytes(int(x) for x in a.split(".")))
    return b"".join(out)


def error_reply(packet: bytes, rcode: int) -> bytes:
    qid, flags = struct.unpack("!HH", packet[:4])
    return struct.pack("!HHHHHH", qid, FLAG_QR | (flags & FLAG_RD) | FLAG_RA | rcode, 0, 0, 0, 0)


class _Relay(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.reply.done():
            self.reply.set_result(data)


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self, lookup: Lookup, upstreams: list[str]) -> None:
        self.lookup = lookup
        self.upstreams = upstreams
        self.transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def serve(cls, address: str, lookup: Lookup, upstreams: list[str]) -> "DnsServer":
        server = cls(lookup, upstreams)
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: server, local_addr=(address, DNS_PORT))
        return server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        q = parse_question(data)
        if q is None:
            if len(data) >= 12:
                self.transport.sendto(error_reply(data, RCODE_FORMERR), addr)
            return
        qid, flags, name, qtype, end = q
        found = self.lookup(name.lower().rstrip("."))
        if found is not None:
            self.transport.sendto(answer(data, qid, flags, qtype, end, found), addr)
            return
        task = asyncio.create_task(self._forward(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, data: bytes, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        for upstream in self.upstreams:
            transport, relay = await loop.create_datagram_endpoint(_Relay, remote_addr=(upstream, DNS_PORT))
            try:
                transport.sendto(data)
                reply = await asyncio.wait_for(relay.reply, FORWARD_TIMEOUT)
            except (TimeoutError, OSError):
                continue
            finally:
                transport.close()
            if self.transport is not None:
                self.transport.sendto(reply, addr)
            return
        if self.transport is not None:
            self.transport.sendto(error_reply(data, RCODE_SERVFAIL), addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for task in self._tasks:
            task.cancel()
