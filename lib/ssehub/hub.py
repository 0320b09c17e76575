# The broadcast hub: publish once, every /events stream reads it.
#
# Each event is formatted to wire bytes once and kept in a Ring. A client is
# a slot holding a cursor (the number of the last frame it has), not a
# queue. A client that keeps up is "live": publish() writes the frame
# straight into its socket (a non-blocking write that allocates nothing).
# A client that is behind -- it just connected with Last-Event-ID, or its
# socket would not take a whole frame -- has its own task copy what it
# missed from the ring, several frames per write, and goes live again when
# it has caught up. One ticker task per hub sends heartbeats, notices
# clients that hung up, and drops clients whose writes do not complete.

import asyncio
import os
import socket
import time

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

from microdot import Response

from ssehub.ring import Ring
from ssehub.wire import format_event

# Slot states. From _GONE on, the slot's task is on its way out.
_FREE = const(0)
_BUSY = const(1)  # the slot's own task is writing (headers, catch-up, drain)
_LIVE = const(2)  # caught up; publish() and the ticker write to it directly
_GONE = const(3)  # the peer hung up, a write failed, or the hub closed
_STALLED = const(4)  # a write did not complete within stall_timeout

_HEAD = (b"HTTP/1.0 200 OK\r\n"
         b"Content-Type: text/event-stream\r\n"
         b"Cache-Control: no-cache\r\n\r\n")
_HEARTBEAT = format_event(b"", comment=True)
_LINGER_OFF = b"\x01\0\0\0\0\0\0\0"  # struct linger {1, 0}, little-endian ints
_SO_SNDBUF = getattr(socket, "SO_SNDBUF", 7)  # Linux's number where the port names none

try:
    _sleep_ms = asyncio.sleep_ms
except AttributeError:  # CPython
    def _sleep_ms(ms):
        return asyncio.sleep(ms / 1000)


def _backlog(writer):
    """Bytes the stream holds that the socket has not taken yet."""
    buf = getattr(writer, "out_buf", None)  # MicroPython's asyncio.Stream
    if buf is None:  # CPython's StreamWriter
        return writer.transport.get_write_buffer_size()
    return len(buf)


def _abort(writer):
    """Close the connection now, discarding anything not yet sent."""
    sock = getattr(writer, "s", None)
    try:
        if sock is None:  # CPython
            writer.transport.abort()
            return
        try:
            # linger on, 0 s: the close resets the connection, so the stack
            # frees its buffers now instead of retrying a peer that stalls
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_OFF)
        except Exception:  # not every port has SO_LINGER
            pass
        sock.close()
    except Exception:
        pass


class _Slot:
    # One client: where it is in the ring and how to reach it.
    def __init__(self):
        self.state = _FREE
        self.cursor = 0
        self.writer = None
        self.reader = None
        self.sock = None  # MicroPython: the raw socket, probed for hang-ups
        self.task = None
        self.wake = asyncio.Event()
        self.sent_at = 0  # ticks_ms of the last write taken by the socket
        self.blocked_at = 0  # ticks_ms when the pending drain started
        self.draining = False


class Hub:
    """A broadcast hub for Server-Sent Events with a fixed memory footprint.

    :param size: how many events are kept (the ring), for clients that
        reconnect with ``Last-Event-ID`` or fall behind. On overflow the
        oldest event is overwritten; a client that still needed it gets a
        ``resync`` event (data ``{"lost": N}``) and continues from the oldest
        event kept.
    :param max_clients: how many ``/events`` streams may be open at once
        (each holds a socket; the ESP32 has 10 in all). A client over the cap
        gets a 200 ``text/event-stream`` answer holding ``retry:`` and a
        ``busy`` event (data ``{"max_clients": N}``), then the connection is
        closed: EventSource reconnects by itself after ``retry`` seconds and
        gets in once a slot is free. ``busy`` counts them.
    :param heartbeat: seconds a stream may stay silent before it gets a
        comment line (``: ``). Keeps an idle stream from being timed out on
        the way, and is how a peer that vanished without closing gets
        noticed (only a write fails). 0 disables heartbeats.
    :param stall_timeout: seconds a write to one client may stay pending.
        A client whose socket takes nothing for that long is dropped: its
        connection is reset and ``dropped`` counts it. Its browser
        reconnects by itself and, with ``Last-Event-ID``, gets what it
        missed that is still in the ring.
    :param retry: seconds EventSource should wait before reconnecting, sent
        as ``retry:`` at the start of every stream and with ``busy``.
    :param batch: most bytes joined into one socket write when a client
        catches up from the ring (a single larger frame is written alone).
        One buffer of this size serves the whole hub.
    :param sndbuf: if given, each stream's socket send buffer (SO_SNDBUF),
        where the port lets it be set. A stalled client is noticed once the
        buffer is full: lwIP's on the ESP32 holds about 5.7 KB, a desktop
        OS's grows to megabytes (minutes of events) unless set.

    One ticker task runs while streams are open, every
    ``min(1, heartbeat / 4, stall_timeout / 4)`` seconds: heartbeats and
    drops come at most that late, and a client that closed its end is
    noticed (and its slot freed) within that time.

    Where a new stream starts (the ``Last-Event-ID`` request header, or the
    ``last`` query argument from a page that had to open a new EventSource,
    which cannot set headers):

    - none: with the next event published (the stream opens with an
      ``id:`` line naming the newest event, so a reconnect resumes there);
    - an id of this boot still in the ring: with every event after it;
    - an id of this boot older than the ring: ``resync`` with the number
      lost, then the oldest event kept;
    - an id of another boot, one this boot has not reached, or anything
      else: ``resync`` with ``{"lost": null}`` (unknown), then every event
      in the ring: all of it happened since this boot.

    A ``resync`` event carries the id of the last event skipped, so a
    client that reconnects right after it resumes at the right place.
    """

    def __init__(self, size=32, max_clients=4, heartbeat=15, stall_timeout=5,
                 retry=3, batch=1024, sndbuf=None):
        self.boot = "%06x" % int.from_bytes(os.urandom(3), "big")
        self._ring = Ring(size, self.boot)
        self._slots = [_Slot() for _ in range(max_clients)]
        self.max_clients = max_clients
        self.retry = retry
        self.sndbuf = sndbuf
        self._heartbeat_ms = int(heartbeat * 1000)
        self._stall_ms = int(stall_timeout * 1000)
        periods = [self._stall_ms]
        if self._heartbeat_ms:
            periods.append(self._heartbeat_ms)
        # the ticker's period: a heartbeat or a drop comes at most this late
        self._tick_ms = max(10, min(1000, min(periods) // 4))
        self._ticker = None
        self._scratch = bytearray(batch)
        self._scratch_mv = memoryview(self._scratch)
        self._probe = bytearray(16)
        self._busy = _HEAD + format_event(
            '{"max_clients": %d, "retry_ms": %d}' % (max_clients, int(retry * 1000)),
            event="busy", retry=retry)
        self._retry_line = ("retry: %d\n" % int(retry * 1000)).encode() if retry else b""
        #: open streams now
        self.clients = 0
        #: most streams open at once since boot
        self.clients_peak = 0
        #: clients dropped because a write did not complete in stall_timeout
        self.dropped = 0
        #: resync events sent (a client lost events, or had an unknown id)
        self.resyncs = 0
        #: clients answered ``busy`` because max_clients streams were open
        self.busy = 0

    # -- publishing -------------------------------------------------------

    def publish(self, data, event=None):
        """Publish one event to every stream; return its id (``'<boot>-<n>'``).

        ``data`` and ``event`` as in ``format_event``. The event is formatted
        once and kept in the ring; clients that are caught up get it written
        to their socket now (non-blocking), the others pick it up from the
        ring. Never blocks and never raises because of a client.
        """
        ring = self._ring
        eid = ring.next_id()
        frame = format_event(data, event, eid)
        n = ring.add(frame)
        now = ticks_ms()
        for slot in self._slots:
            if slot.state == _LIVE:
                slot.cursor = n
                self._push(slot, frame, now)
        return eid

    @property
    def seq(self):
        """The number of the newest event (0 before the first): a reader
        that starts here gets only events published from now on."""
        return self._ring.seq

    def read(self, cursor):
        """The event after ``cursor``, for a reader that is not a stream (an
        MQTT bridge, a log): a cursor into the ring like a stream's, so
        however far behind it is it costs no memory.

        Returns ``(n, frame, lost)``: the number of the event returned (the
        next cursor), its wire bytes as formatted for the streams (``None``
        when nothing newer was published: ``n`` is then the cursor), and how
        many events after ``cursor`` are gone from the ring (0 if none).
        """
        ring = self._ring
        lost = ring.lost(cursor)
        if lost:
            cursor = ring.first() - 1
        if cursor >= ring.seq:
            return cursor, None, lost
        cursor += 1
        return cursor, ring.frame(cursor), lost

    @property
    def last_id(self):
        """The id of the newest event, or ``None`` before the first."""
        ring = self._ring
        return ring.id_of(ring.seq) if ring.seq else None

    def stats(self):
        """A dict for telemetry.

        ``clients`` streams open now; ``clients_max`` the cap
        (``max_clients``); ``clients_peak`` most open at once; ``published``
        events since boot; ``dropped`` clients dropped as stalled;
        ``resyncs`` resync events sent; ``busy`` clients turned away at the
        cap; ``last_id`` id of the newest event (``None`` before the first).
        """
        return {
            "clients": self.clients,
            "clients_max": self.max_clients,
            "clients_peak": self.clients_peak,
            "published": self._ring.seq,
            "dropped": self.dropped,
            "resyncs": self.resyncs,
            "busy": self.busy,
            "last_id": self.last_id,
        }

    # -- serving ------------------------------------------------------------

    def route(self, app, path="/events"):
        """Mount the stream in a Microdot ``app`` as ``GET path``."""
        app.route(path)(self.serve)

    async def serve(self, request, busy=False):
        """Microdot handler: stream events to this request's client.

        Writes the response itself and returns
        ``Response.already_handled`` when the stream ends (the client hung
        up or stalled, a write failed, or ``close()`` was called); Microdot
        then closes the socket. Any ``OSError`` on a write ends the stream
        quietly. ``after_request`` handlers do not see this response.

        :param busy: answer ``busy`` as over the cap even if a slot is free
            (the app cannot afford another stream now, e.g. low on memory);
            the browser retries by itself.
        """
        reader, writer = request.sock
        slot = None if busy else self._claim(reader, writer)
        if slot is None:
            self.busy += 1
            try:
                writer.write(self._busy)
            except OSError:
                pass
            return Response.already_handled
        try:
            ring = self._ring
            # a page that had to create a new EventSource cannot set the
            # header; it may send the id as ?last= instead
            last = request.headers.get("Last-Event-ID") or request.args.get("last")
            cursor, lost = ring.locate(last)
            slot.cursor = cursor
            # the id line gives a new client a place to resume from
            writer.write(_HEAD + self._retry_line + b"id: " + ring.id_of(cursor).encode()
                         + b"\n\n")
            if lost != 0:
                writer.write(self._resync(cursor, lost))
            await self._drain(slot)
            await self._pump(slot)
        except asyncio.CancelledError:
            if slot.state < _GONE:  # not ours: close up and pass it on
                _abort(writer)
                raise
        except OSError:
            pass
        finally:
            self._release(slot)
        return Response.already_handled

    def close(self):
        """End every open stream (their sockets are closed by Microdot)."""
        for slot in self._slots:
            if slot.state != _FREE:
                self._end(slot, _GONE)

    # -- the parts ----------------------------------------------------------

    def _claim(self, reader, writer):
        for slot in self._slots:
            if slot.state == _FREE:
                break
        else:
            return None
        slot.state = _BUSY
        slot.reader = reader
        slot.writer = writer
        slot.sock = getattr(writer, "s", None)
        slot.task = asyncio.current_task()
        slot.wake.clear()
        slot.draining = False
        slot.sent_at = ticks_ms()
        if slot.sock is None:  # CPython: let drain() wait until all is sent
            writer.transport.set_write_buffer_limits(0)
        elif self.sndbuf:
            try:
                slot.sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUF, self.sndbuf)
            except Exception:  # not every port lets it be set
                pass
        self.clients += 1
        if self.clients > self.clients_peak:
            self.clients_peak = self.clients
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())
        return slot

    def _release(self, slot):
        if slot.state == _STALLED:
            _abort(slot.writer)
        slot.state = _FREE
        slot.reader = slot.writer = slot.sock = slot.task = None
        slot.draining = False
        self.clients -= 1
        if not self.clients and self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def _end(self, slot, why):
        # Make the slot's task leave. It is parked on its wake event, or
        # suspended in a drain that will not finish by itself.
        if slot.state >= _GONE:
            return
        slot.state = why
        if why == _STALLED:
            self.dropped += 1
        if slot.draining and slot.task is not None:
            slot.task.cancel()
        else:
            slot.wake.set()

    def _push(self, slot, frame, now):
        # Write to a live client without waiting. The socket takes the whole
        # frame (usual case, nothing allocated) or the stream keeps the rest
        # and the slot's task drains it.
        try:
            slot.writer.write(frame)
        except OSError:
            self._end(slot, _GONE)
            return
        slot.sent_at = now
        if _backlog(slot.writer):
            slot.state = _BUSY
            slot.wake.set()

    def _resync(self, cursor, lost):
        self.resyncs += 1
        return format_event('{"lost": %s}' % ("null" if lost is None else lost),
                            event="resync", event_id=self._ring.id_of(cursor))

    def _catch_up(self, slot):
        # Write what the client missed: a resync if some is gone, then as many
        # kept frames as fit in one batch. Synchronous: the shared scratch
        # buffer is copied by the stream before anything else runs.
        ring = self._ring
        writer = slot.writer
        lost = ring.lost(slot.cursor)
        if lost:
            slot.cursor = ring.first() - 1
            writer.write(self._resync(slot.cursor, lost))
        used, last = ring.gather(slot.cursor, self._scratch)
        if used:
            writer.write(self._scratch_mv[:used])
        else:  # one frame larger than the batch
            last = slot.cursor + 1
            writer.write(ring.frame(last))
        slot.cursor = last

    async def _drain(self, slot):
        # Wait until the socket has taken everything; the ticker drops the
        # client if that takes longer than stall_timeout.
        slot.blocked_at = ticks_ms()
        slot.draining = True
        try:
            await slot.writer.drain()
        finally:
            slot.draining = False
        slot.sent_at = ticks_ms()

    async def _pump(self, slot):
        ring = self._ring
        writer = slot.writer
        wake = slot.wake
        while slot.state < _GONE:
            if _backlog(writer):
                slot.state = _BUSY
                await self._drain(slot)
            elif slot.cursor != ring.seq:
                slot.state = _BUSY
                self._catch_up(slot)
                await self._drain(slot)
            else:
                slot.state = _LIVE
                wake.clear()
                await wake.wait()

    def _hung_up(self, slot):
        # Has the peer closed its end? A read of a few bytes on the
        # non-blocking socket: None means nothing to read, 0 means closed.
        sock = slot.sock
        if sock is None:  # CPython
            return slot.reader.at_eof()
        try:
            return sock.readinto(self._probe) == 0
        except OSError:
            return True

    async def _tick(self):
        # Runs while there are clients: the last one leaving cancels it.
        while True:
            await _sleep_ms(self._tick_ms)
            now = ticks_ms()
            for slot in self._slots:
                state = slot.state
                if state == _LIVE:
                    if self._hung_up(slot):
                        self._end(slot, _GONE)
                    elif self._heartbeat_ms and \
                            ticks_diff(now, slot.sent_at) >= self._heartbeat_ms:
                        self._push(slot, _HEARTBEAT, now)
                elif state == _BUSY and slot.draining and \
                        ticks_diff(now, slot.blocked_at) >= self._stall_ms:
                    self._end(slot, _STALLED)
