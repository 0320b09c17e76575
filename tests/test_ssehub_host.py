"""lib/ssehub on CPython: the same code against upstream microdot.sse and a
real Microdot server on 127.0.0.1 with raw-socket clients.

The board (MicroPython) is the target and is tested on the VM in
tests/vm/test_ssehub_*.py; this checks the library also runs on CPython.
"""

import asyncio
import os
import socket
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))

from microdot.sse import SSE  # noqa: E402

from ssehub import Hub, Server, format_event  # noqa: E402

CASES = [
    (("hello",), {}), ((b"hello",), {}), (("",), {}), (({"foo": "bar"},), {}),
    (([1, "a", None],), {}), ((42,), {}), ((1.5,), {}), ((None,), {}),
    (("hi",), {"event": "greeting"}), (("hi",), {"event_id": "7"}),
    (("hi",), {"retry": 2}), (("hi",), {"retry": 0.25}), (("hi",), {"retry": 0}),
    (("x",), {"event": "e", "event_id": "1", "retry": 1.5}),
    (("ping",), {"comment": True}), (("ping",), {"comment": True, "event": "e"}),
    (("hi",), {"event": "", "event_id": ""}),
]


def run(coro):
    """asyncio.run in a thread of its own: the browser tests' Playwright keeps
    an event loop running in the main thread for the whole session."""
    import threading

    result = {}

    def target():
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join(60)
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.mark.parametrize("args,kwargs", CASES)
def test_format_event_matches_upstream(args, kwargs):
    sse = SSE()
    run(sse.send(*args, **kwargs))
    assert format_event(*args, **kwargs) == sse.queue[0]


def test_multiline_and_bad_fields():
    assert format_event("a\r\nb\rc\n") == b"data: a\ndata: b\ndata: c\ndata: \n\n"
    with pytest.raises(ValueError):
        format_event("x", event="a\nb")
    with pytest.raises(ValueError):
        format_event("x", event_id="1\r")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until(reader, buf, needle, timeout=3):
    while needle not in buf:
        chunk = await asyncio.wait_for(reader.read(4096), timeout)
        if not chunk:
            raise AssertionError("closed before %r; got %r" % (needle, buf))
        buf += chunk
    return buf


async def _wait(cond, timeout=3):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_hub_and_server_on_cpython():
    async def main():
        hub = Hub(size=4, max_clients=1, heartbeat=0.1, stall_timeout=0.4, retry=1)
        app = Server(request_timeout=0.2)
        hub.route(app, "/events")
        port = _free_port()
        server = asyncio.ensure_future(app.start_server(host="127.0.0.1", port=port))
        await _wait(lambda: getattr(app, "server", None) is not None)
        try:
            for i in range(6):
                hub.publish("e%d" % i)
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /events HTTP/1.1\r\nLast-Event-ID: %s-4\r\n\r\n" % hub.boot.encode())
            buf = await _until(r, b"", b"data: e5\n\n")
            assert b"content-type: text/event-stream" in buf.lower()
            assert b"retry: 1000\n" in buf
            assert b"data: e4\n\n" in buf and b"data: e3\n\n" not in buf
            hub.publish({"live": True}, event="t")
            buf = await _until(r, buf, b'event: t\nid: %s-7\ndata: {"live": true}\n\n'
                               % hub.boot.encode())
            buf = await _until(r, buf, b"\n\n: \n\n")  # heartbeat
            # over the cap: 200, busy, closed
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            w2.write(b"GET /events HTTP/1.1\r\n\r\n")
            busy = await asyncio.wait_for(r2.read(), 3)
            assert busy.startswith(b"HTTP/1.0 200 OK")
            assert busy.endswith(b'retry: 1000\nevent: busy\ndata: {"max_clients": 1, "retry_ms": 1000}\n\n')
            # a silent connection is closed
            r3, w3 = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(r3.read(), 3) == b""
            assert app.timeouts == 1
            # the first client hangs up: its slot frees
            w.close()
            await _wait(lambda: hub.clients == 0)
            for wr in (w2, w3):
                wr.close()
        finally:
            hub.close()
            app.shutdown()
            await asyncio.wait_for(server, 3)

    run(main())


def test_a_body_that_fails_after_the_head_closes_the_connection(capsys):
    class Failing:
        # a streamed body that runs out of memory after its first chunk
        def __init__(self):
            self.sent = False

        def __aiter__(self):
            return self

        async def __anext__(self):
            if self.sent:
                raise MemoryError("memory allocation failed, allocating 1281 bytes")
            self.sent = True
            return b"first chunk"

    async def main():
        app = Server(request_timeout=1)

        @app.get("/picture")
        async def picture(request):
            return Failing(), 200, {"Content-Type": "image/bmp", "Content-Length": "99999"}

        port = _free_port()
        server = asyncio.ensure_future(app.start_server(host="127.0.0.1", port=port))
        await _wait(lambda: getattr(app, "server", None) is not None)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /picture HTTP/1.1\r\n\r\n")
            # the browser must not wait forever for the other 99988 bytes
            got = await asyncio.wait_for(r.read(), 3)
            assert got.startswith(b"HTTP/1.0 200 OK") and got.endswith(b"first chunk")
            w.close()
        finally:
            app.shutdown()
            await asyncio.wait_for(server, 3)

    run(main())
    assert "MemoryError" in capsys.readouterr().err
