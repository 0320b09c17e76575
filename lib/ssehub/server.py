# A Microdot app that reads requests itself, with limits and a deadline.
#
# Microdot 2.x waits for a request forever, reads lines of any length before
# checking them (max_readline is checked after the line is in memory), takes
# any number of headers, and prints a traceback for every request it cannot
# parse. The ESP32 has 10 sockets and a small heap: a few clients that
# connect and say nothing (a browser's speculative pre-connection, a port
# scanner, a stalled phone), or one that sends an endless header, would lock
# everyone out or run the board out of memory.
#
# This app reads the request (head and body) itself, under one deadline and
# within fixed sizes, checks it, and answers what it cannot serve with a
# 4xx and one line on the console, never a traceback. What it accepts goes to
# Microdot's routing and handlers unchanged.
#
# It also ends a connection quietly on any socket error (OSError) raised while
# serving it, ECONNABORTED (113) included, which Microdot's own list of muted
# errors (32, 54, 104, 128) misses.

import asyncio
import time

from microdot import Microdot, Request, Response
from microdot.microdot import NoCaseDict

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

_MAX_LINES = const(64)  # request line and headers
_MAX_LINE = const(2048)  # the request line
# The path, without the query. Microdot matches routes with `re`, whose
# matcher recurses once per character: a path of about 1,000 characters
# overflows the VM's stack (RuntimeError, "maximum recursion depth"), and a
# board's stack is smaller. No route of ours needs more than a few dozen.
_MAX_PATH = const(255)
_CHUNK = const(512)  # bytes asked for per read of the head
_LOG_WINDOW_MS = const(10000)
_LOG_LINES = const(5)  # console lines per window about refused requests

_NO_MEMORY = (b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 5\r\n"
              b"Content-Length: 0\r\n\r\n")
_REASONS = {
    400: "Bad Request",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
}


def _print_exception(exc):
    try:
        import sys

        sys.print_exception(exc)
    except AttributeError:  # CPython
        import traceback

        traceback.print_exception(exc)


def peer(addr):
    """``(ip, port)`` of a peer address as the socket layer gives it: a
    tuple (ESP32, CPython) or a raw ``sockaddr_in`` (the unix port)."""
    if isinstance(addr, tuple):
        return addr[0], addr[1]
    if addr and len(addr) >= 8 and addr[0] == 2:  # AF_INET
        return "%d.%d.%d.%d" % (addr[4], addr[5], addr[6], addr[7]), addr[2] << 8 | addr[3]
    return "?", 0


class _Refused(Exception):
    # a request the server answers with ``status`` and ``reason``
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _blank_line(buf):
    # (end of the head, start of the body) in ``buf``, or None
    best = None
    for sep in (b"\r\n\r\n", b"\n\n", b"\n\r\n"):
        i = buf.find(sep)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, i + len(sep))
    return best


async def _close(writer):
    try:
        await writer.aclose()
    except Exception:
        pass


class Server(Microdot):
    """Microdot with a deadline and size limits on requests, and quiet refusals.

    :param request_timeout: seconds a new connection has to send its whole
        request (request line, headers and body). One that has not by then
        is closed without an answer and counted in ``timeouts``; so is one
        that hangs up first. The response is not timed (``ssehub.Hub``
        guards its own writes).
    :param max_head: most bytes of request line and headers; a longer head
        (or more than 64 lines) is answered ``431``.
    :param max_body: most bytes of body (``Content-Length``); a larger one is
        answered ``413``. The body is read whole before the handler runs.

    A request that is not well-formed HTTP/1.x (request line, header lines,
    ``Content-Length``, UTF-8, query string) is answered ``400`` with a JSON
    ``{"error": reason}``; a chunked body ``411``. Each refusal prints one
    line on the console (at most 5 every 10 s, then a count of those not
    shown) and counts in ``refused``. After answering, what the client still
    sends is read and dropped for a moment, so that closing does not reset
    the connection before the client has read the answer.

    ``request.client_addr`` is ``(ip, port)`` on every port.

    Any ``OSError`` while serving a connection (ECONNABORTED included) closes
    it quietly instead of ending the connection's task with a traceback.

    Use it in place of ``Microdot``; routes and handlers are unchanged::

        app = Server(request_timeout=5)
        hub.route(app, '/events')
        await app.start_server(port=80)
    """

    def __init__(self, request_timeout=5, max_head=4096, max_body=4096):
        super().__init__()
        self.request_timeout = request_timeout
        self.max_head = max_head
        self.max_body = max_body
        #: connections closed because their request did not come in time
        self.timeouts = 0
        #: requests refused here: malformed or too big (4xx), or no memory (503)
        self.refused = 0
        #: ``(method, path prefix, most bytes)``: see stream_body()
        self.streamed = []
        self._log_since = ticks_ms()
        self._logged = 0
        self._unlogged = 0
        # a handler that runs out of memory: 503 and a retry, as when the
        # request itself could not be read, not Microdot's 500
        self.error_handlers[MemoryError] = self._no_memory

    def stream_body(self, method, prefix, most):
        """Let the handlers of ``method`` requests whose path starts with
        ``prefix`` read a body of up to ``most`` bytes themselves, after the
        request's deadline: an upload bigger than ``max_body`` that must not
        sit whole in the heap. Such a request reaches its handler with
        ``request.body`` empty and ``request.stream`` set to ``(first,
        reader)``: the bytes of the body that came in with the head, then
        the connection's stream for the rest (``request.content_length``
        bytes in all). The handler sets its own deadline on each read."""
        self.streamed.append((method, prefix, most))

    def _no_memory(self, request, exc):
        self._note("http: 503: out of memory serving " + request.path)
        return Response(b"", 503, {"Retry-After": "5"})

    # -- reading ------------------------------------------------------------

    async def _read_head(self, reader):
        # (head bytes, bytes after it) or None if the peer hung up first
        buf = b""
        while True:
            chunk = await reader.read(_CHUNK)
            if not chunk:
                return None
            buf += chunk
            found = _blank_line(buf)
            if found:
                if found[0] > self.max_head:
                    raise _Refused(431, "request head over %d bytes" % self.max_head)
                return buf[:found[0]], buf[found[1]:]
            if len(buf) > self.max_head:
                raise _Refused(431, "request head over %d bytes" % self.max_head)
            if buf.count(b"\n") >= _MAX_LINES:
                raise _Refused(431, "more than %d header lines" % (_MAX_LINES - 1))

    async def _read_request(self, reader, writer):
        # a Request, or None when the peer hung up; raises _Refused
        got = await self._read_head(reader)
        if got is None:
            return None
        head, rest = got
        try:
            text = head.decode()
        except UnicodeError:
            raise _Refused(400, "request head is not UTF-8")
        lines = text.split("\n")
        if len(lines) > _MAX_LINES:
            raise _Refused(431, "more than %d header lines" % (_MAX_LINES - 1))
        line = lines[0].strip()
        if len(line) > _MAX_LINE:
            raise _Refused(414, "request line over %d bytes" % _MAX_LINE)
        parts = line.split()
        if len(parts) != 3:
            raise _Refused(400, "bad request line")
        method, url, version = parts
        if not method.isalpha() or not method.isupper():
            raise _Refused(400, "bad method")
        if not url.startswith("/"):
            raise _Refused(400, "the path must start with /")
        q = url.find("?")
        if (len(url) if q < 0 else q) > _MAX_PATH:
            raise _Refused(414, "path over %d bytes" % _MAX_PATH)
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            raise _Refused(400, "HTTP/1.0 or HTTP/1.1 only")
        headers = NoCaseDict()
        length = None
        for line in lines[1:]:
            line = line.rstrip("\r")
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or " " in name \
                    or line[0] in " \t":
                raise _Refused(400, "bad header line")
            value = value.strip()
            lower = name.lower()
            if lower == "content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise _Refused(400, "bad Content-Length")
                length = int(value)
            elif lower == "transfer-encoding":
                raise _Refused(411, "chunked bodies are not taken; send Content-Length")
            headers[name] = value
        body = b""
        stream = None
        if length:
            most = self.max_body
            for m, prefix, limit in self.streamed:
                if m == method and url.startswith(prefix):
                    most = limit
                    stream = True
            if length > most:
                raise _Refused(413, "body over %d bytes" % most)
            if stream:
                stream = (rest[:length], reader)
            else:
                body = rest[:length]
                if len(body) < length:
                    body += await reader.readexactly(length - len(body))
        try:
            req = Request(self, peer(writer.get_extra_info("peername")), method, url,
                          version[5:], headers, body=body, stream=stream, sock=(reader, writer))
        except ValueError:  # what Microdot parses itself: the query string
            raise _Refused(400, "bad query string")
        if stream:
            req.max_content_length = length  # checked here already; Microdot's 16 KB is not ours
        return req

    # -- answering ------------------------------------------------------------

    def _note(self, line):
        # one console line per refusal, at most _LOG_LINES per window
        self.refused += 1
        now = ticks_ms()
        if ticks_diff(now, self._log_since) >= _LOG_WINDOW_MS:
            if self._unlogged:
                print("http: %d more refused requests not shown" % self._unlogged)
            self._log_since = now
            self._logged = self._unlogged = 0
        if self._logged < _LOG_LINES:
            self._logged += 1
            print(line)
        else:
            self._unlogged += 1

    async def _refuse(self, reader, writer, status, reason):
        self._note("http: %d from %s: %s" % (status, peer(writer.get_extra_info("peername"))[0],
                                             reason))
        body = '{"error": "%s"}' % reason
        try:
            writer.write(("HTTP/1.0 %d %s\r\nContent-Type: application/json\r\n"
                          "Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                          % (status, _REASONS[status], len(body), body)).encode())
            await writer.drain()
            # a lingering close: drop what the client still sends for a
            # moment, so the close does not reset the answer away
            start = ticks_ms()
            dropped = 0
            while dropped < 16384:
                left = 500 - ticks_diff(ticks_ms(), start)
                if left <= 0:
                    break
                chunk = await asyncio.wait_for(reader.read(_CHUNK), left / 1000)
                if not chunk:
                    break
                dropped += len(chunk)
        except Exception:  # timed out, or the peer is gone
            pass
        await _close(writer)

    async def handle_request(self, reader, writer):
        try:
            req = await asyncio.wait_for(self._read_request(reader, writer),
                                         self.request_timeout)
        except _Refused as r:
            await self._refuse(reader, writer, r.status, r.reason)
            return
        except asyncio.TimeoutError:
            self.timeouts += 1
            req = None
        except MemoryError:
            self._note("http: 503: out of memory reading a request")
            try:
                writer.write(_NO_MEMORY)
            except Exception:
                pass
            req = None
        except Exception:  # a socket error, a body cut short
            req = None
        if req is None:
            await _close(writer)
            return
        try:
            res = await self.dispatch_request(req)
            if res != Response.already_handled:
                await res.write(writer)
            await writer.aclose()
        except OSError:
            await _close(writer)
        except Exception as exc:
            # e.g. MemoryError while a body streams, after the head went out:
            # Microdot would leave the socket open and the browser waiting
            # for the rest forever. Close it, and say why on the console.
            await _close(writer)
            _print_exception(exc)
