"""A DNS responder for the captive portal: every name is the board.

A phone that joins the board's access point asks DNS for its connectivity
check host (connectivitycheck.gstatic.com, captive.apple.com,
www.msftconnecttest.com, ...). Answering every A query with the board's own
address sends those checks, and any page the person types, to the board's
web server, which sends them on to the setup page. Other record types (AAAA
first of all) get an empty answer, so the phone falls back to IPv4.

MicroPython's asyncio has no datagram streams: the socket is non-blocking
and polled every ``POLL_MS``. It exists only while the access point is up
(``camwatch.portal`` starts and stops it), so a board in station mode pays
nothing.
"""

import asyncio
import socket

from micropython import const

POLL_MS = const(50)
_TTL = b"\x00\x00\x00\x3c"  # 60 s: short, the portal is temporary
_MAX = const(512)  # a DNS message over UDP


def answer(query, ip):
    """The response to the DNS message ``query``, or None to ignore it.

    :param query: the datagram as received (bytes).
    :param ip: the board's address as 4 bytes, given in every A answer.

    Only standard queries with one question get an answer; responses,
    other opcodes and malformed messages are ignored, as a resolver would
    drop them.
    """
    n = len(query)
    if n < 17 or query[2] & 0xF8:  # a response, or an opcode other than QUERY
        return None
    if query[4] != 0 or query[5] != 1:  # exactly one question
        return None
    i = 12
    while query[i]:  # the name: length-prefixed labels up to a 0
        if query[i] & 0xC0:  # a pointer has no place in a question
            return None
        i += query[i] + 1
        if i >= n:
            return None
    end = i + 5  # the 0, then type and class
    if end > n:
        return None
    qtype = query[i + 1] << 8 | query[i + 2]
    qclass = query[i + 3] << 8 | query[i + 4]
    found = qclass == 1 and qtype in (1, 255)  # IN, A or ANY
    head = bytes((query[0], query[1],
                  0x84 | (query[2] & 0x01), 0x80,  # response, authoritative, RD copied; RA
                  0, 1, 0, 1 if found else 0, 0, 0, 0, 0))
    if not found:
        return head + query[12:end]
    return head + query[12:end] + b"\xc0\x0c\x00\x01\x00\x01" + _TTL + b"\x00\x04" + ip


class Responder:
    """Answers every A query on ``(host, port)`` with ``ip``.

    :param ip: the board's address (dotted string) to give out.
    :param host: the address to listen on (all, on a board).
    :param port: 53 on a board; another on the virtual board, where 53
                 needs root.

    ``run()`` serves until ``stop()``; ``answered`` counts the answers sent.
    """

    def __init__(self, ip, host="0.0.0.0", port=53):
        self.ip = bytes(int(part) for part in ip.split("."))
        self.host = host
        self.port = port
        self.answered = 0
        self._running = False

    async def run(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(socket.getaddrinfo(self.host, self.port)[0][-1])
            sock.setblocking(False)
            self._running = True
            while self._running:
                try:
                    query, peer = sock.recvfrom(_MAX)
                except OSError:  # nothing waiting (EAGAIN)
                    await asyncio.sleep_ms(POLL_MS)
                    continue
                reply = answer(query, self.ip)
                if reply is not None:
                    try:
                        sock.sendto(reply, peer)
                        self.answered += 1
                    except OSError:
                        pass  # the phone left; the next query is another try
                await asyncio.sleep_ms(0)  # a burst of queries must not starve the rest
        finally:
            sock.close()

    def stop(self):
        self._running = False
