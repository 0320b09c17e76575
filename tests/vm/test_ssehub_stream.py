# On the MicroPython VM: ssehub.Hub behind a real Microdot server on
# 127.0.0.1, with real client sockets in the same asyncio loop. Every wait
# is on a condition with a deadline.
import asyncio
import gc
import os
import socket
import time

from microdot import Microdot

from ssehub import Hub, Server

SOL_SOCKET = socket.SOL_SOCKET
SO_SNDBUF = 7  # Linux values; the VM's socket module does not name them
SO_RCVBUF = 8


# -- helpers --------------------------------------------------------------------

def _addr(port):
    return socket.getaddrinfo("127.0.0.1", port)[0][-1]


def _free_port():
    while True:
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 30000
        s = socket.socket()
        try:
            s.setsockopt(SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(_addr(port))
            return port
        except OSError:
            pass
        finally:
            s.close()


async def wait_until(cond, timeout=3.0, what="condition"):
    deadline = time.ticks_add(time.ticks_ms(), int(timeout * 1000))
    while not cond():
        if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            raise AssertionError("timed out waiting for " + what)
        await asyncio.sleep_ms(2)


class Rig:
    """A Microdot app serving ``hub`` at /events on a free port."""

    def __init__(self, hub, app=None, shrink_sndbuf=False):
        self.hub = hub
        self.app = app or Microdot()
        self.port = _free_port()
        app = self.app

        @app.route("/events")
        async def events(request):
            if shrink_sndbuf:  # so a client that does not read blocks us fast
                request.sock[1].s.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096)
            return await hub.serve(request)

        @app.route("/ping")
        async def ping(request):
            return "pong"

    async def __aenter__(self):
        self.task = asyncio.create_task(self.app.start_server(host="127.0.0.1", port=self.port))
        await wait_until(lambda: getattr(self.app, "server", None) is not None, what="server")
        return self

    async def __aexit__(self, *exc):
        self.hub.close()
        await wait_until(lambda: self.hub.clients == 0, what="streams to end")
        self.app.shutdown()
        await wait_until(lambda: self.task.done(), what="server to stop")
        await wait_until(lambda: self.hub._ticker is None, what="ticker to stop")

    async def client(self, path="/events", headers=b"", rcvbuf=None):
        return await Client.open(self.port, path, headers, rcvbuf)


class Client:
    """A raw HTTP client; ``buf`` holds everything read so far.

    With ``digest()`` called, complete frames are parsed as they come (data
    cut to 24 characters) into ``frames`` and only the rest stays in ``buf``,
    so a long stream does not fill the VM's heap.
    """

    def __init__(self, sock):
        self.sock = sock
        self.stream = asyncio.StreamReader(sock)
        self.buf = b""
        self.eof = False
        self._chunk = bytearray(1024)  # read into, so reads allocate no buffer
        self.frames = None
        self.last_id = None

    def digest(self):
        self.frames = []

    def _take_frames(self):
        if b"\r\n\r\n" in self.buf:
            self.buf = self.buf.split(b"\r\n\r\n", 1)[1]
        while b"\n\n" in self.buf:
            frame, self.buf = self.buf.split(b"\n\n", 1)
            fields = _parse(frame[:120])
            if "data" in fields:
                fields["data"] = fields["data"][:24]
            if "id" in fields:
                self.last_id = fields["id"]
            self.frames.append(fields)

    @classmethod
    async def open(cls, port, path="/events", headers=b"", rcvbuf=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(SOL_SOCKET, SO_RCVBUF, rcvbuf)
        s.connect(_addr(port))  # loopback: the kernel completes it
        s.setblocking(False)
        c = cls(s)
        if path is not None:
            await c.send(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
        return c

    async def send(self, data):
        self.stream.write(data)
        await self.stream.drain()

    async def _read_some(self, deadline):
        left = time.ticks_diff(deadline, time.ticks_ms())
        if left <= 0:
            raise AssertionError("timed out; got %r" % self.buf[-300:])
        try:
            n = await asyncio.wait_for_ms(self.stream.readinto(self._chunk), left)
        except asyncio.TimeoutError:
            raise AssertionError("timed out; got %r" % self.buf[-300:])
        except OSError:  # reset by the server
            n = 0
        if n is None:  # woken, but nothing to read after all
            return
        if not n:
            self.eof = True
        self.buf += self._chunk[:n]
        if self.frames is not None:
            self._take_frames()

    async def until(self, needle, timeout=3.0):
        """Read until ``needle`` is in ``buf``; return ``buf``."""
        deadline = time.ticks_add(time.ticks_ms(), int(timeout * 1000))
        while needle not in self.buf:
            if self.eof:
                raise AssertionError("closed before %r; got %r" % (needle, self.buf[-300:]))
            await self._read_some(deadline)
        return self.buf

    async def until_id(self, eid, timeout=3.0):
        """In digest mode: read until the frame with id ``eid`` is in."""
        deadline = time.ticks_add(time.ticks_ms(), int(timeout * 1000))
        while self.last_id != eid:
            if self.eof:
                raise AssertionError("closed before %s; last %s" % (eid, self.last_id))
            await self._read_some(deadline)

    async def until_closed(self, timeout=3.0):
        deadline = time.ticks_add(time.ticks_ms(), int(timeout * 1000))
        while not self.eof:
            await self._read_some(deadline)
        return self.buf

    @property
    def head(self):
        return self.buf.split(b"\r\n\r\n", 1)[0]

    @property
    def body(self):
        return self.buf.split(b"\r\n\r\n", 1)[1]

    def events(self):
        """Complete frames after the head, parsed: dicts of field -> str."""
        return [_parse(frame) for frame in self.body.split(b"\n\n")[:-1]]

    def close(self):
        self.sock.close()

    def reset(self):
        # close with SO_LINGER 0: the server gets an RST, not a FIN
        self.sock.setsockopt(SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        self.sock.close()


def _parse(frame):
    fields = {}
    for line in frame.split(b"\n"):
        name, _, value = line.decode().partition(":")
        value = value[1:] if value.startswith(" ") else value
        fields[name or "comment"] = fields[name] + "\n" + value \
            if name == "data" and name in fields else value
    return fields


def _data_events(client):
    return [e for e in client.events() if "data" in e]


# -- the stream -------------------------------------------------------------

async def test_headers_preamble_and_a_live_event():
    hub = Hub(heartbeat=0)
    async with Rig(hub) as rig:
        c = await rig.client()
        await c.until(b"\n\n")
        assert c.head.startswith(b"HTTP/1.0 200 OK\r\n"), c.head
        head = c.head.lower()
        assert b"\r\ncontent-type: text/event-stream" in head, head
        assert b"\r\ncache-control: no-cache" in head, head
        # retry in ms, and an id to resume from (no events yet: n = 0)
        assert c.body == b"retry: 3000\nid: " + hub.boot.encode() + b"-0\n\n", c.body
        await wait_until(lambda: hub._slots[0].state == 2, what="live")
        eid = hub.publish("hi", event="status")
        assert eid == hub.boot + "-1"
        want = b"event: status\nid: " + eid.encode() + b"\ndata: hi\n\n"
        await c.until(want)
        assert c.body.endswith(want)
        assert hub.stats()["last_id"] == eid
        c.close()


async def test_publish_allocation_does_not_grow_with_clients():
    payload = {"heap": 123456, "rssi": -61, "fps": 4.5}
    figures = {}
    for n in (1, 8):
        hub = Hub(max_clients=8, heartbeat=0)
        async with Rig(hub) as rig:
            clients = []
            for _ in range(n):
                clients.append(await rig.client())
                clients[-1].digest()
            await wait_until(lambda: hub.clients == n, what="clients")
            hub.publish(payload, event="telemetry")  # warm up
            await wait_until(lambda: all(s.state == 2 for s in hub._slots[:n]), what="all live")
            samples = []
            for _ in range(5):
                gc.collect()
                before = gc.mem_alloc()
                hub.publish(payload, event="telemetry")
                samples.append(gc.mem_alloc() - before)
                for c in clients:  # every client got it
                    await c.until_id(hub.last_id)
            # every publish went straight out to every client
            assert all(s.state == 2 for s in hub._slots[:n])
            figures[n] = min(samples), max(samples)
            for c in clients:
                c.close()
    print("ALLOC publish bytes: 1 client %d..%d, 8 clients %d..%d"
          % (figures[1] + figures[8]))
    assert figures[8][1] <= figures[1][1], figures
    assert figures[1][1] < 1024, figures


async def test_every_client_gets_every_event_in_order():
    hub = Hub(heartbeat=0)
    async with Rig(hub) as rig:
        clients = []
        for _ in range(3):
            clients.append(await rig.client())
        await wait_until(lambda: hub.clients == 3, what="3 clients")
        ids = [hub.publish({"i": i}, event="t") for i in range(10)]
        payloads = ['{"i": %d}' % i for i in range(10)]
        for c in clients:
            await c.until(b"data: {\"i\": 9}\n\n")
            got = _data_events(c)
            assert [e["id"] for e in got] == ids
            assert [e["data"] for e in got] == payloads
            c.close()


async def test_multiline_payload_arrives_whole():
    hub = Hub(heartbeat=0)
    async with Rig(hub) as rig:
        c = await rig.client()
        await c.until(b"\n\n")
        hub.publish("line one\r\nline two\n\nevent: fake", event="status")
        eid = hub.publish("next")
        await c.until(b"data: next\n\n")
        got = _data_events(c)
        assert got[0]["data"] == "line one\nline two\n\nevent: fake"
        assert got[0]["event"] == "status"
        assert got[1]["id"] == eid
        c.close()


async def test_last_event_id_replays_what_is_kept_then_live():
    hub = Hub(size=8, heartbeat=0)
    ids = [hub.publish("e%d" % i) for i in range(1, 6)]
    async with Rig(hub) as rig:
        c = await rig.client(headers=b"Last-Event-ID: " + ids[1].encode() + b"\r\n")
        await c.until(b"data: e5\n\n")
        live = hub.publish("e6")
        await c.until(b"data: e6\n\n")
        got = _data_events(c)
        assert [e["data"] for e in got] == ["e3", "e4", "e5", "e6"]
        assert [e["id"] for e in got] == ids[2:] + [live]
        assert hub.resyncs == 0
        # reconnecting with the newest id replays nothing
        c2 = await rig.client(headers=b"Last-Event-ID: " + live.encode() + b"\r\n")
        await c2.until(b"\n\n")
        hub.publish("e7")
        await c2.until(b"data: e7\n\n")
        assert [e["data"] for e in _data_events(c2)] == ["e7"]
        c.close()
        c2.close()


async def test_catch_up_joins_pending_events_into_bounded_writes():
    for batch in (1024, 100):
        hub = Hub(size=16, heartbeat=0, batch=batch)
        ids = [hub.publish({"n": n}, event="t") for n in range(12)]
        sizes = [len(hub._ring.frame(n)) for n in range(1, 13)]
        writes = []
        app = Microdot()

        @app.route("/events")
        async def events(request):
            writer = request.sock[1]
            write = writer.write

            def counted(data):  # the real socket write, counted
                writes.append(len(data))
                return write(data)

            writer.write = counted
            return await hub.serve(request)

        async with Rig(hub, app) as rig:
            c = await rig.client(headers=b"Last-Event-ID: " + hub.boot.encode() + b"-0\r\n")
            await c.until(b"id: " + ids[-1].encode() + b"\n")
            await c.until(b'{"n": 11}\n\n')
            assert [e["id"] for e in _data_events(c)] == ids
            # the head, then the 12 pending events packed greedily into writes
            # of at most `batch` bytes
            want, fill = [], 0
            for size in sizes:
                if fill + size > batch:
                    want.append(fill)
                    fill = 0
                fill += size
            want.append(fill)
            assert writes[1:] == want, (batch, writes, want)
            assert (len(want) == 1) == (batch == 1024)
            c.close()


async def test_last_event_id_older_than_the_ring_gets_resync_with_the_count():
    hub = Hub(size=4, heartbeat=0)
    ids = [hub.publish("e%d" % i) for i in range(1, 11)]  # keeps 7..10
    async with Rig(hub) as rig:
        c = await rig.client(headers=b"Last-Event-ID: " + ids[2].encode() + b"\r\n")
        await c.until(b"data: e10\n\n")
        got = _data_events(c)
        assert got[0] == {"event": "resync", "id": hub.boot + "-6", "data": '{"lost": 3}'}
        assert [e["data"] for e in got[1:]] == ["e7", "e8", "e9", "e10"]
        assert hub.resyncs == 1
        c.close()


async def test_foreign_boot_future_or_bad_id_gets_resync_then_the_ring():
    hub = Hub(size=4, heartbeat=0, stall_timeout=0.5)  # hang-ups seen within 0.125 s
    for i in range(1, 7):
        hub.publish("e%d" % i)  # keeps 3..6
    foreign = ("0" if hub.boot[0] != "0" else "1") + hub.boot[1:] + "-5"
    async with Rig(hub) as rig:
        for last in (foreign, hub.boot + "-7", hub.boot + "-99", "garbage"):
            c = await rig.client(headers=b"Last-Event-ID: " + last.encode() + b"\r\n")
            await c.until(b"data: e6\n\n")
            got = _data_events(c)
            assert got[0] == {"event": "resync", "id": hub.boot + "-2", "data": '{"lost": null}'}, \
                (last, got[0])
            assert [e["data"] for e in got[1:]] == ["e3", "e4", "e5", "e6"], last
            c.close()
            await wait_until(lambda: hub.clients == 0, what="slot freed")
        assert hub.resyncs == 4


async def test_heartbeat_on_an_idle_stream():
    hub = Hub(heartbeat=0.1)
    async with Rig(hub) as rig:
        c = await rig.client()
        await c.until(b"\n\n")
        t0 = time.ticks_ms()
        await c.until(b"\n\n: \n\n", timeout=2)
        assert time.ticks_diff(time.ticks_ms(), t0) >= 80
        await c.until(b"\n\n: \n\n: \n\n", timeout=2)  # and again
        c.close()


async def test_over_the_cap_gets_200_busy_and_gets_in_when_a_slot_frees():
    hub = Hub(max_clients=2, heartbeat=0, retry=2, stall_timeout=0.5)
    async with Rig(hub) as rig:
        a = await rig.client()
        b = await rig.client()
        await wait_until(lambda: hub.clients == 2, what="2 clients")
        c = await rig.client()
        await c.until_closed()
        assert c.head.startswith(b"HTTP/1.0 200 OK\r\n"), c.buf
        assert b"content-type: text/event-stream" in c.head.lower()
        assert b"cache-control: no-cache" in c.head.lower()
        assert c.body == b'retry: 2000\nevent: busy\ndata: {"max_clients": 2, "retry_ms": 2000}\n\n', c.body
        assert hub.busy == 1 and hub.clients == 2
        a.close()  # a hangs up: noticed without any write
        await wait_until(lambda: hub.clients == 1, what="slot freed")
        d = await rig.client()
        await d.until(b"retry: 2000\nid: ")
        await wait_until(lambda: hub.clients == 2, what="d in")
        assert hub.stats()["clients_peak"] == 2
        assert hub.stats()["clients_max"] == 2
        b.close()
        d.close()


async def test_slot_released_when_the_peer_resets():
    hub = Hub(max_clients=1, heartbeat=0)
    async with Rig(hub) as rig:
        c = await rig.client()
        await c.until(b"\n\n")
        await wait_until(lambda: hub._slots[0].state == 2, what="live")
        c.reset()
        # a write to it fails (or the ticker sees the reset first): quiet end
        for _ in range(3):
            hub.publish("x")
        await wait_until(lambda: hub.clients == 0, what="slot freed")
        assert hub.dropped == 0


async def test_slot_released_when_the_hub_closes():
    hub = Hub(max_clients=1, heartbeat=0)
    async with Rig(hub) as rig:
        c = await rig.client()
        await c.until(b"\n\n")
        hub.close()
        await c.until_closed()
        await wait_until(lambda: hub.clients == 0, what="slot freed")


async def test_slot_released_and_socket_closed_when_the_task_is_cancelled():
    hub = Hub(max_clients=1, heartbeat=0)
    async with Rig(hub) as rig:
        c = await rig.client()
        await c.until(b"\n\n")
        await wait_until(lambda: hub._slots[0].state == 2, what="live")
        hub._slots[0].task.cancel()  # e.g. the app shutting its tasks down
        await c.until_closed()
        await wait_until(lambda: hub.clients == 0, what="slot freed")
        c2 = await rig.client()
        await c2.until(b"\n\n")
        c2.close()


async def test_slot_released_when_the_head_write_fails():
    # The peer is gone (reset) before the hub writes the response head.
    hub = Hub(max_clients=1, heartbeat=0)
    app = Microdot()
    gate = asyncio.Event()

    @app.route("/late")
    async def late(request):
        await gate.wait()
        return await hub.serve(request)

    async with Rig(hub, app) as rig:
        c = await rig.client("/late")
        await asyncio.sleep_ms(20)
        c.reset()
        await asyncio.sleep_ms(20)
        gate.set()
        await wait_until(lambda: hub.clients == 0 and hub.clients_peak == 1,
                         what="slot claimed and freed")


async def test_a_client_that_does_not_read_is_dropped_others_unharmed():
    hub = Hub(size=8, heartbeat=0, stall_timeout=0.3)
    async with Rig(hub, shrink_sndbuf=True) as rig:
        good = await rig.client()
        good.digest()
        slow = await rig.client(rcvbuf=2048)  # reads nothing until the end
        slow.digest()
        await wait_until(lambda: hub.clients == 2, what="2 clients")
        blob = "x" * 1000
        sent = []
        t0 = time.ticks_ms()
        while hub.dropped == 0:
            assert time.ticks_diff(time.ticks_ms(), t0) < 5000, "never dropped"
            sent.append(hub.publish(blob))
            await good.until_id(sent[-1])  # the good one keeps up
            await asyncio.sleep_ms(10)
        assert time.ticks_diff(time.ticks_ms(), t0) >= 300  # not before stall_timeout
        await wait_until(lambda: hub.clients == 1, what="slow one released")
        assert hub.stats()["dropped"] == 1
        # the slow client's connection was closed: it reads to the end
        await slow.until_closed()
        assert slow.last_id in sent  # it got a part, then the end
        # the good one got every event, in order, no resync
        last = hub.publish("after")
        await good.until_id(last)
        assert [f["id"] for f in good.frames if "data" in f] == sent + [last]
        assert hub.resyncs == 0
        good.close()
        good.frames = slow.frames = None


async def test_a_client_that_falls_behind_gets_resync_then_the_oldest_kept():
    hub = Hub(size=8, heartbeat=0, stall_timeout=5)
    async with Rig(hub, shrink_sndbuf=True) as rig:
        slow = await rig.client(rcvbuf=2048)
        slow.digest()
        await wait_until(lambda: hub.clients == 1, what="client")
        await wait_until(lambda: hub._slots[0].state == 2, what="live")
        ids = []
        for i in range(60):  # ~60 KB: far more than both socket buffers hold
            ids.append(hub.publish("%d:" % i + "y" * 1000))
            await asyncio.sleep_ms(0)
        assert hub._slots[0].state == 1  # blocked: behind
        await slow.until_id(ids[-1], timeout=5)  # now it reads
        got = [f for f in slow.frames if "data" in f]
        resyncs = [i for i, e in enumerate(got) if e.get("event") == "resync"]
        assert len(resyncs) >= 1, [e.get("id") for e in got]
        # every event is either received, in order, or counted as lost
        seen = [e for e in got if e.get("event") != "resync"]
        lost = sum(int(got[i]["data"].split(": ")[1][:-1]) for i in resyncs)
        assert len(seen) + lost == 60, (len(seen), lost)
        nums = [int(e["id"].split("-")[1]) for e in seen]
        assert nums == sorted(nums) and len(set(nums)) == len(nums)
        # the id a resync carries is the last event skipped: the next follows it
        for i in resyncs:
            skipped_to = int(got[i]["id"].split("-")[1])
            assert int(got[i + 1]["id"].split("-")[1]) == skipped_to + 1
        # after the resync: the oldest kept, then everything up to the newest
        assert nums[-8:] == list(range(53, 61))
        for e in seen:
            n = int(e["id"].split("-")[1])
            assert e["data"].startswith("%d:" % (n - 1))
        assert hub.resyncs == len(resyncs)
        assert hub.dropped == 0
        slow.close()
        slow.frames = got = seen = None


async def test_econnaborted_on_write_ends_the_stream_quietly():
    # ECONNABORTED (113) cannot be provoked on Linux loopback: here a stream
    # whose writes raise it stands in for the ESP32's socket.
    from microdot import Response

    class Aborting:
        def __init__(self, ok_writes=0):
            self.s = socket.socket()  # what the hub probes for hang-ups
            self.out_buf = b""
            self.ok_writes = ok_writes

        def write(self, data):
            if self.ok_writes:
                self.ok_writes -= 1
                return
            raise OSError(113)

        async def drain(self):
            pass

    class Request:
        headers = {}
        args = {}

        def __init__(self, ok_writes=0):
            self.sock = (None, Aborting(ok_writes))

    hub = Hub(heartbeat=0)
    # on the response head
    for _ in range(2):  # the slot is back for the next one
        req = Request()
        assert await hub.serve(req) is Response.already_handled
        assert hub.clients == 0
        req.sock[1].s.close()
    # on a live event written by publish()
    req = Request(ok_writes=1)
    task = asyncio.create_task(hub.serve(req))
    await wait_until(lambda: hub._slots[0].state == 2, what="live")
    hub.publish("x")  # raises nothing here
    await wait_until(lambda: task.done(), what="stream to end")
    assert hub.clients == 0
    req.sock[1].s.close()
    assert hub.stats()["clients_peak"] == 1 and hub.dropped == 0


# -- Server: the request head deadline -----------------------------------------

async def test_server_closes_a_connection_that_sends_no_request_line():
    hub = Hub(heartbeat=0)
    app = Server(request_timeout=0.2)
    async with Rig(hub, app) as rig:
        silent = await rig.client(path=None)
        partial = await rig.client(path=None)
        await partial.send(b"GET /pi")  # no end of line, ever
        slow_headers = await rig.client(path=None)
        await slow_headers.send(b"GET /ping HTTP/1.1\r\nHost: t\r\n")  # no blank line
        t0 = time.ticks_ms()
        for c in (silent, partial, slow_headers):
            await c.until_closed(timeout=2)
            assert c.buf == b"", c.buf
        assert time.ticks_diff(time.ticks_ms(), t0) >= 150
        assert app.timeouts == 3
        # a prompt request is served as usual, body included
        ok = await rig.client("/ping")
        await ok.until_closed()
        assert ok.head.startswith(b"HTTP/1.0 200 OK"), ok.buf
        assert ok.body == b"pong"
        # and so is the event stream
        ev = await rig.client()
        await ev.until(b"\n\n")
        hub.publish("through the server")
        await ev.until(b"data: through the server\n\n")
        ev.close()
        # a head of more than 64 lines is answered 431, not reset
        chatty = await rig.client(path=None)
        await chatty.send(b"GET /ping HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n")
        await chatty.until_closed()
        assert chatty.head.startswith(b"HTTP/1.0 431 "), chatty.buf
        assert app.refused == 1
        # a connection that hangs up at once is closed without fuss
        gone = await rig.client(path=None)
        gone.close()
        ok = await rig.client("/ping")
        await ok.until_closed()
        assert ok.body == b"pong"
        assert app.timeouts == 3


async def test_server_serves_request_bodies():
    app = Server(request_timeout=1)

    @app.post("/echo")
    async def echo(request):
        return request.body

    async with Rig(Hub(heartbeat=0), app) as rig:
        c = await rig.client(path=None)
        await c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        await c.until_closed()
        assert c.head.startswith(b"HTTP/1.0 200 OK"), c.buf
        assert c.body == b"hello"

