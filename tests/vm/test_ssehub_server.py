# On the MicroPython VM: ssehub.Server refusing malformed requests, over real
# sockets on 127.0.0.1 in the same asyncio loop.
import asyncio
import gc
import os
import time

from ssehub import Server


class Client:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.buf = b""

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def until_closed(self, timeout=3.0):
        deadline = time.ticks_add(time.ticks_ms(), int(timeout * 1000))
        while True:
            left = time.ticks_diff(deadline, time.ticks_ms())
            assert left > 0, "not closed in time; got %r" % self.buf[-200:]
            try:
                chunk = await asyncio.wait_for_ms(self.reader.read(1024), left)
            except OSError:  # reset
                return self.buf
            if not chunk:
                return self.buf
            self.buf += chunk

    async def answer(self, timeout=3.0):
        """Read one whole answer (head and Content-Length body), then hang
        up as a browser does; return it."""
        deadline = time.ticks_add(time.ticks_ms(), int(timeout * 1000))
        while True:
            if b"\r\n\r\n" in self.buf:
                for line in self.head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:") and \
                            len(self.body) >= int(line[15:]):
                        self.close()
                        return self.buf
            left = time.ticks_diff(deadline, time.ticks_ms())
            assert left > 0, "no whole answer in time; got %r" % self.buf[-200:]
            try:
                chunk = await asyncio.wait_for_ms(self.reader.read(1024), left)
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                return self.buf
            self.buf += chunk

    @property
    def head(self):
        return self.buf.split(b"\r\n\r\n", 1)[0]

    @property
    def body(self):
        return self.buf.split(b"\r\n\r\n", 1)[1]

    def close(self):
        self.writer.s.close()


class Rig:
    """``app`` serving /ping and POST /echo on a free port."""

    def __init__(self, app):
        self.app = app
        self.port = 20000 + int.from_bytes(os.urandom(2), "big") % 30000

        @app.route("/ping")
        async def ping(request):
            return "pong"

        @app.post("/echo")
        async def echo(request):
            return request.body

    async def __aenter__(self):
        self.task = asyncio.create_task(self.app.start_server(host="127.0.0.1", port=self.port))
        while getattr(self.app, "server", None) is None:
            await asyncio.sleep_ms(5)
        return self

    async def __aexit__(self, *exc):
        self.app.shutdown()
        await asyncio.wait_for(self.task, 3)

    async def client(self, path="/ping"):
        c = Client(*await asyncio.open_connection("127.0.0.1", self.port))
        if path is not None:
            await c.send(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        return c


BAD_REQUESTS = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /ping\r\n\r\n", 400),
    (b"get /ping HTTP/1.1\r\n\r\n", 400),
    (b"G3T /ping HTTP/1.1\r\n\r\n", 400),
    (b"GET ping HTTP/1.1\r\n\r\n", 400),
    (b"GET http://t/ping HTTP/1.1\r\n\r\n", 400),
    (b"GET /ping HTTP/2.0\r\n\r\n", 400),
    (b"GET /ping HTTP/1.1\r\nno colon here\r\n\r\n", 400),
    (b"GET /ping HTTP/1.1\r\n: empty name\r\n\r\n", 400),
    (b"GET /ping HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    (b"GET /ping HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", 400),
    (b"GET /p\xffing HTTP/1.1\r\n\r\n", 400),
    (b"GET /ping HTTP/1.1\r\nX: \xc3\x28\r\n\r\n", 400),
    (b"GET /ping?a=%zz HTTP/1.1\r\n\r\n", 400),
    (b"GET /ping?a=%ff HTTP/1.1\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 400),
    (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 411),
    (b"POST /echo HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413),
    (b"GET /" + b"a" * 2100 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /ping HTTP/1.1\r\nX-Big: " + b"b" * 5000 + b"\r\n\r\n", 431),
    (b"GET /ping HTTP/1.1\r\n" + b"X-A: b\r\n" * 70 + b"\r\n", 431),
]


async def test_server_answers_malformed_requests_with_a_4xx_and_serves_on():
    app = Server(request_timeout=1)
    lines = []
    import ssehub.server as server_module

    server_module.print = lambda *a: lines.append(" ".join(str(x) for x in a))
    try:
        async with Rig(app) as rig:
            for round in range(2):  # the second round: heap back where it was
                gc.collect()
                before = gc.mem_alloc()
                for request, status in BAD_REQUESTS:
                    c = await rig.client(path=None)
                    await c.send(request)
                    await c.answer()
                    assert c.head.startswith(b"HTTP/1.0 %d " % status), (request[:60], c.buf[:200])
                    assert c.body.startswith(b'{"error": "'), c.body
                    ok = await rig.client("/ping")
                    await ok.answer()
                    assert ok.body == b"pong", (request[:60], ok.buf)
                del c, ok
                gc.collect()
                grown = gc.mem_alloc() - before
            assert grown < 512, grown
    finally:
        del server_module.print
    assert app.refused == 2 * len(BAD_REQUESTS)
    # one line for each of the first 5, then a count of the rest, no traceback
    assert len(lines) == 5 and all(line.startswith("http: 4") for line in lines), lines
    assert "GARBAGE" not in " ".join(lines)


async def test_an_endless_header_line_is_cut_off_within_the_head_limit():
    # Microdot reads a whole line before checking its length; a line that
    # never ends would fill the heap
    app = Server(request_timeout=2, max_head=1024)
    async with Rig(app) as rig:
        gc.collect()
        before = gc.mem_alloc()
        c = await rig.client(path=None)
        await c.send(b"GET /ping HTTP/1.1\r\nX: ")
        for _ in range(40):
            try:
                await c.send(b"z" * 512)
            except OSError:  # the server has answered and closed
                break
        await c.until_closed()
        assert c.head.startswith(b"HTTP/1.0 431 "), c.buf[:200]
        gc.collect()
        assert gc.mem_alloc() - before < 4096


async def test_a_slow_body_is_timed_out_like_a_slow_head():
    app = Server(request_timeout=0.3)
    async with Rig(app) as rig:
        c = await rig.client(path=None)
        await c.send(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")  # 7 short
        await c.until_closed()
        assert c.buf == b"" and app.timeouts == 1
        cut = await rig.client(path=None)
        await cut.send(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        cut.close()  # hung up half-way through the body
        ok = await rig.client(path=None)
        await ok.send(b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel")
        await asyncio.sleep_ms(50)
        await ok.send(b"lo")  # in two pieces, in time
        await ok.until_closed()
        assert ok.body == b"hello", ok.buf
        assert app.refused == 0


async def test_a_handler_out_of_memory_is_answered_503_with_retry_after():
    # tried: a route whose handler raises MemoryError (a board whose heap is
    # short at that moment); checked: 503 with Retry-After (a client tries
    # again), not a 500, one console line, and the server serves on
    app = Server(request_timeout=1)

    @app.route("/hungry")
    async def hungry(request):
        raise MemoryError("memory allocation failed")

    lines = []
    import ssehub.server as server_module

    server_module.print = lambda *a: lines.append(" ".join(str(x) for x in a))
    try:
        async with Rig(app) as rig:
            c = await rig.client("/hungry")
            await c.answer()
            assert c.head.startswith(b"HTTP/1.0 503 "), c.buf[:200]
            assert b"Retry-After: 5" in c.head, c.head
            ok = await rig.client("/ping")
            await ok.answer()
            assert ok.body == b"pong", ok.buf
    finally:
        del server_module.print
    assert app.refused == 1
    assert any(line.startswith("http: 503: out of memory serving /hungry") for line in lines), lines
