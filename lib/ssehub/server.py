# A Microdot app that does not let a silent connection hold a socket.
#
# Microdot 2.x waits for a request line forever, and the ESP32 has 10
# sockets: a few clients that connect and say nothing (a browser's
# speculative pre-connection, a port scanner, a stalled phone) would lock
# everyone out. This app reads the request head (request line and headers)
# under one deadline, closes the connection quietly if it does not arrive,
# then hands the head to Microdot as if read from the socket.
#
# It also ends a connection quietly on any socket error (OSError) raised while
# serving it, ECONNABORTED (113) included, which Microdot's own list of muted
# errors (32, 54, 104, 128) misses.

import asyncio

from microdot import Microdot

_MAX_HEAD_LINES = 64  # request line, headers and the blank line


def _print_exception(exc):
    try:
        import sys

        sys.print_exception(exc)
    except AttributeError:  # CPython
        import traceback

        traceback.print_exception(exc)


class _Head:
    # The reader Microdot gets: first the lines already read, then the
    # connection itself (anything else, e.g. readexactly for a body, goes
    # straight to the connection).
    def __init__(self, stream, lines):
        self._stream = stream
        self._lines = lines

    async def readline(self):
        lines = self._lines
        if lines:
            return lines.pop(0)
        return await self._stream.readline()

    def __getattr__(self, name):
        return getattr(self._stream, name)


async def _read_head(reader):
    lines = []
    while True:
        line = await reader.readline()
        lines.append(line)
        if len(line) <= 2 and line.strip() == b"":
            # the blank line ends the head (an empty read: the peer hung up)
            return lines if line else None
        if len(lines) >= _MAX_HEAD_LINES:
            return None


async def _close(writer):
    try:
        await writer.aclose()
    except Exception:
        pass


class Server(Microdot):
    """Microdot with a deadline for the request head and quiet socket errors.

    :param request_timeout: seconds a new connection has to send its request
        line and headers (up to the blank line). A connection that has not
        by then is closed without an answer and counted in ``timeouts``.
        One that hangs up first, or sends more than 64 head lines, is
        closed too. Only the head is timed: a request body and the response
        are not (``ssehub.Hub`` guards its own writes).

    Any ``OSError`` while serving a connection (ECONNABORTED included) closes
    it quietly instead of ending the connection's task with a traceback.

    Use it in place of ``Microdot``; everything else is unchanged::

        app = Server(request_timeout=5)
        hub.route(app, '/events')
        await app.start_server(port=80)
    """

    def __init__(self, request_timeout=5):
        super().__init__()
        self.request_timeout = request_timeout
        #: connections closed because their request head did not come in time
        self.timeouts = 0

    async def handle_request(self, reader, writer):
        try:
            lines = await asyncio.wait_for(_read_head(reader), self.request_timeout)
        except asyncio.TimeoutError:
            self.timeouts += 1
            lines = None
        except Exception:  # a socket error
            lines = None
        if not lines:  # no complete head: hung up first, or too many lines
            await _close(writer)
            return
        try:
            await super().handle_request(_Head(reader, lines), writer)
        except OSError:
            await _close(writer)
        except Exception as exc:
            # e.g. MemoryError while a body streams, after the head went out:
            # Microdot would leave the socket open and the browser waiting
            # for the rest forever. Close it, and say why on the console.
            await _close(writer)
            _print_exception(exc)
