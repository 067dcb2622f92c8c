"""The embedded DNS server of a user-defined network: container names, aliases and short ids.

Where Docker answers on 127.0.0.11 inside each container (through DNAT in its namespace), hull
answers on the network's gateway address, port 53, UDP and TCP (where resolvers retry an
answer too long for a datagram), from the daemon itself, and the containers' resolv.conf
names that address. A name of the network is answered from `lookup`; any other query is
relayed as it is to the host's nameservers (which may be on loopback: the daemon runs in the
host's namespace), over the transport it came by, and their answer relayed back.
"""

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
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


async def _ask_udp(upstream: str, query: bytes) -> bytes:
    transport, relay = await asyncio.get_running_loop().create_datagram_endpoint(
        _Relay, remote_addr=(upstream, DNS_PORT)
    )
    try:
        transport.sendto(query)
        return await relay.reply
    finally:
        transport.close()


async def _ask_tcp(upstream: str, query: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(upstream, DNS_PORT)
    try:
        writer.write(struct.pack("!H", len(query)) + query)
        return await _read_tcp_message(reader)
    finally:
        writer.close()


async def _read_tcp_message(reader: asyncio.StreamReader) -> bytes:
    """One message of DNS over TCP: its two-byte length, then itself."""
    (size,) = struct.unpack("!H", await reader.readexactly(2))
    return await reader.readexactly(size)


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self, lookup: Lookup, upstreams: list[str]) -> None:
        self.lookup = lookup
        self.upstreams = upstreams
        self.transport: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def serve(cls, address: str, lookup: Lookup, upstreams: list[str]) -> "DnsServer":
        server = cls(lookup, upstreams)
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: server, local_addr=(address, DNS_PORT))
        try:
            server.tcp = await asyncio.start_server(server._serve_tcp, address, DNS_PORT)
        except OSError:
            server.close()
            raise
        return server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def _local_reply(self, query: bytes) -> bytes | None:
        """The answer to a name of the network, or FORMERR (b"" for what cannot even be
        answered that way); None: a name to relay."""
        q = parse_question(query)
        if q is None:
            return error_reply(query, RCODE_FORMERR) if len(query) >= 12 else b""
        qid, flags, name, qtype, end = q
        found = self.lookup(name.lower().rstrip("."))
        return None if found is None else answer(query, qid, flags, qtype, end, found)

    async def _relay(self, query: bytes, ask: Callable[[str, bytes], Awaitable[bytes]]) -> bytes:
        """The first upstream's answer, asked over the query's own transport; else SERVFAIL."""
        for upstream in self.upstreams:
            try:
                return await asyncio.wait_for(ask(upstream, query), FORWARD_TIMEOUT)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                continue
        return error_reply(query, RCODE_SERVFAIL)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        reply = self._local_reply(data)
        if reply is not None:
            if reply:
                self.transport.sendto(reply, addr)
            return
        task = asyncio.create_task(self._forward(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self._relay(data, _ask_udp)
        if self.transport is not None:
            self.transport.sendto(reply, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Queries one after another on a connection, until the client closes it."""
        try:
            while True:
                query = await _read_tcp_message(reader)
                reply = self._local_reply(query)
                if reply is None:
                    reply = await self._relay(query, _ask_tcp)
                if not reply:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.tcp is not None:
            self.tcp.close()
        for task in self._tasks:
            task.cancel()
