"""Faults and load against the virtual board (real VM, heap capped, ROMFS),
over real sockets: a stalled client, connection churn, slowloris, heap
pressure. Events come from the test-only load hook (tests/hooks/loadhook.py)
where a high rate is needed. (Wi-Fi drops and camera failures mid-run are in
test_firmware.py.)"""

import json
import socket
import statistics
import threading
import time

import pytest

from hardening import raw, request, set_load, start_board, status, wait_for
from sse_client import Stream

LINGER_RESET = b"\x01\0\0\0\0\0\0\0"  # SO_LINGER on, 0 s: close() sends an RST


@pytest.fixture
def board(vboard_fs, tmp_path):
    # thumbnails off: their ring is made at a motion and given back when the
    # heap runs short, which would blur the heap figures these tests read
    vb = start_board(tmp_path, hooked=True, telemetry_s=1, episodes_max=0)
    yield vb
    vb.stop()


@pytest.fixture
def thumbs_board(vboard_fs, tmp_path):
    vb = start_board(tmp_path, hooked=True, telemetry_s=1)
    yield vb
    vb.stop()


def heap_free(vb, samples=3):
    """Free heap after a collection, the median of a few samples."""
    return statistics.median(status(vb)["heap_free"] for _ in range(samples))


class Reader(threading.Thread):
    """Reads /events in the background; keeps the load events' numbers and
    the longest gap between two events."""

    def __init__(self, vb, event="load"):
        super().__init__(daemon=True)
        self.stream = Stream(vb.url, timeout=10)
        self.event = event
        self.numbers = []
        self.max_gap = 0.0
        self.error = None
        self.stop = threading.Event()
        self.start()

    def run(self):
        last = time.monotonic()
        try:
            while not self.stop.is_set():
                ev = self.stream.next(timeout=10)
                now = time.monotonic()
                self.max_gap = max(self.max_gap, now - last)
                last = now
                if ev.event == self.event:
                    self.numbers.append(json.loads(ev.data)["n"])
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def close(self):
        self.stop.set()
        self.join(15)
        self.stream.close()


def test_a_stalled_client_is_dropped_others_keep_receiving_heap_stays_flat(board):
    # tried: 200 events/s of 200 bytes; one client asks for /events with a
    # 4 KB receive buffer and never reads. Checked: it is dropped (reset)
    # within the 5 s stall timeout plus the time to fill the buffers; a
    # reading client meanwhile gets every event with no gap over 1 s; free
    # heap after the drop is within 2 KB of before.
    set_load(board, rate=200, size=200)
    reader = Reader(board)
    wait_for(lambda: len(reader.numbers) > 200, 20, "the reader to get load events")
    before = heap_free(board)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", board.http_port))
    stalled.sendall(request("GET", "/events"))
    t0 = time.monotonic()
    wait_for(lambda: status(board)["dropped"] == 1, 30, "the stalled client to be dropped")
    took = time.monotonic() - t0
    after = heap_free(board)
    n_during = len(reader.numbers)
    wait_for(lambda: len(reader.numbers) > n_during + 100, 10, "events after the drop")
    reader.close()
    stalled.settimeout(5)
    ended = None
    try:
        while stalled.recv(65536):
            pass
        ended = "closed"
    except ConnectionResetError:
        ended = "reset"
    except socket.timeout:
        ended = "still open"
    stalled.close()
    numbers = reader.numbers
    print("stalled client dropped after %.1f s (%s); reader: %d events, longest gap %.3f s; "
          "heap free %d -> %d" % (took, ended, len(numbers), reader.max_gap, before, after))
    assert reader.error is None, reader.error
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "the reader missed events"
    assert reader.max_gap < 1.0
    assert took < 15  # 5 s without progress, once its buffers are full
    assert ended in ("reset", "closed")
    assert abs(after - before) <= 2048
    assert wait_for(lambda: status(board)["clients"] == 0, 10, "streams to close")
    assert "MemoryError" not in board.console()


def _cycle(port, kind):
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", port))
        if kind == 0:  # a whole stream, closed after its first event
            s.sendall(request("GET", "/events"))
            got = b""
            while b"\ndata:" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        elif kind == 1:  # closed in the middle of an event
            s.sendall(request("GET", "/events"))
            s.recv(150)
        elif kind == 2:  # half a request, then gone
            s.sendall(b"GET /events HTTP/1.1\r\nHo")
        elif kind == 3:  # reset while streaming
            s.sendall(request("GET", "/events", headers={"Last-Event-ID": "0-0"}))
            s.recv(100)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        # kind 4: connected and closed without a word
    except OSError:  # a busy answer may close before we are done
        pass
    finally:
        s.close()


def test_a_thousand_connect_disconnect_cycles_leave_no_trace(board):
    # tried: 1,000 /events connections from 2 threads while 100 events/s
    # flow: a fifth each closed after the first event, mid-event, with half
    # a request sent, reset (RST), or silent. Checked: streams back to 0,
    # free heap within 2 KB of before, no MemoryError, the board serves.
    set_load(board, rate=100, size=100)

    def cycles(n):
        def worker(offset):
            for i in range(n // 2):
                _cycle(board.http_port, (i + offset) % 5)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)

    # warm up the same way first: the ring full of load events, and the
    # asyncio I/O map and select.poll table grown once to the most sockets
    # open at a time (they keep their size: about 3 KB here, where the VM has
    # no 10-socket limit; measured not to grow again over 5,000 more cycles)
    cycles(1000)
    wait_for(lambda: status(board)["clients"] == 0, 15, "warm-up streams to close")
    before = heap_free(board)
    t0 = time.monotonic()
    cycles(1000)
    took = time.monotonic() - t0
    wait_for(lambda: status(board)["clients"] == 0, 15, "every stream to close")
    after = heap_free(board)
    st = status(board)
    print("1000 cycles in %.1f s; heap free %d -> %d; dropped %d"
          % (took, before, after, st["dropped"]))
    assert abs(after - before) <= 2048, (before, after)
    assert "MemoryError" not in board.console() and "Traceback" not in board.console()
    with Stream(board.url) as s:
        assert s.next(timeout=10, event="load")


def test_slowloris_does_not_stop_a_normal_client(board):
    # tried: 10 connections, 5 silent and 5 sending a byte a second, for 8 s;
    # checked: a normal client is answered within a few seconds all along,
    # and the board closes each slow connection after the 5 s deadline
    stop = threading.Event()
    slow = []
    closed_after = {}

    def trickle(i, s):
        t0 = time.monotonic()
        data = request("GET", "/api/status")
        k = 0
        while not stop.is_set():
            try:
                if i % 2:
                    s.send(data[k:k + 1])
                    k += 1
                s.settimeout(1)
                if s.recv(100) == b"":
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        closed_after[i] = time.monotonic() - t0

    for i in range(10):
        s = socket.create_connection(("127.0.0.1", board.http_port))
        slow.append(s)
        threading.Thread(target=trickle, args=(i, s), daemon=True).start()
    waits = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 8:
        t = time.monotonic()
        code, _, _ = raw(board, request("GET", "/api/status"))
        waits.append(time.monotonic() - t)
        assert code == 200
        time.sleep(0.3)
    wait_for(lambda: len(closed_after) == 10, 15, "the board to close the slow connections")
    stop.set()
    for s in slow:
        s.close()
    print("normal client answered in at most %.2f s; slow connections closed after %s s"
          % (max(waits), sorted("%.1f" % v for v in closed_after.values())))
    assert max(waits) < 3
    assert all(4 <= v <= 12 for v in closed_after.values()), closed_after


def test_heap_pressure_refuses_new_streams_with_a_warning_not_memoryerror(thumbs_board):
    # tried: the heap filled until about 9 KB is free (under 3/4 of
    # heap_warn_bytes, 16 KB, where new streams are refused), with one
    # stream open, detection running (and keeping motion thumbnails) and 50
    # events/s;
    # checked: the thumbnails' ring gives its memory back first; filled
    # again, new streams get `busy` (a 200: EventSource retries), the open
    # stream gets a low-heap warning and keeps its telemetry, the API
    # answers, no MemoryError anywhere; once the memory is let go a new
    # stream gets in
    board = thumbs_board
    watcher = Stream(board.url)
    try:
        set_load(board, rate=50, size=100)
        wait_for(lambda: status(board)["published"] > 100, 10, "the ring full of load events")
        def picture_held():
            listed = json.loads(raw(board, request("GET", "/api/episodes"))[2])["episodes"]
            return any(e["start"] for e in listed)

        wait_for(picture_held, 30, "a thumbnail kept (a motion start)")
        # the heap runs short (under heap_warn_bytes): at the next telemetry
        # the ring is given back
        set_load(board, fill_free=9000, rate=50, size=100)
        while True:
            data = json.loads(watcher.next(timeout=15, event="status").data)
            if data["kind"] == "warning" and "thumbnails given back" in data["message"]:
                break
        set_load(board, fill_free=8500, rate=50, size=100)  # and filled again
        for _ in range(5):
            with Stream(board.url) as s:
                assert s.status == 200
                ev = s.next(timeout=10)
                assert ev.event == "busy", ev
        deadline = time.monotonic() + 15
        while True:
            ev = watcher.next(timeout=15, event="status")
            data = json.loads(ev.data)
            if data["kind"] == "warning" and "new streams refused" in data["message"]:
                break
            assert time.monotonic() < deadline, "no low-heap warning"
        for _ in range(3):
            watcher.next(timeout=5, event="telemetry")
        for _ in range(10):
            st = status(board)
            assert st["heap_free"] < 12288, st["heap_free"]
        set_load(board, fill_free=0)
        with Stream(board.url) as s:
            ev = s.next(timeout=10)
            assert ev.event != "busy", ev
    finally:
        watcher.close()
    print("lowest free heap %d bytes" % status(board)["heap_min_free"])
    assert "MemoryError" not in board.console(), board.console()[-2000:]
