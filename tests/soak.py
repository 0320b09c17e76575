"""The soak run: a virtual board under a high event rate with clients coming
and going, its heap sampled every second. Used by tests/test_soak.py (2
minutes in `make test`, 1 hour with `make soak`)."""

import os
import random
import socket
import threading
import time

from hardening import raw, request, set_load, status
from sse_client import Stream, id_number

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Soak:
    """Drive ``vb`` (a board with the load hook) for ``seconds``.

    - the load hook publishes ``rate`` events a second (detection and
      telemetry run as usual);
    - 2 readers stay 3-15 s each, then leave and come back with
      Last-Event-ID, checking every event id follows the last;
    - a churner opens /events, reads a little and hangs up (or resets),
      several times a second;
    - a poller reads /api/status every second (the heap samples), loads the
      dashboard and saves an unchanged setting now and then.
    """

    def __init__(self, vb, seconds, password, rate=100, log=print):
        self.vb = vb
        self.seconds = seconds
        self.password = password
        self.rate = rate
        self.log = log
        self.samples = []  # (t, heap_free, heap_min_free, clients)
        self.stop = threading.Event()
        self.errors = []
        self.reconnects = 0
        self.resyncs = 0
        self.missed = 0  # events a reader found missing although no resync said so
        self.max_gap = 0.0  # longest a connected reader waited for an event
        self.churns = 0
        self.busy = 0

    def _guard(self, fn, *args):
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported at the end
            self.errors.append("%s: %r" % (fn.__name__, exc))
            self.stop.set()

    def reader(self, seed):
        rnd = random.Random(seed)
        last = None
        while not self.stop.is_set():
            stay = time.monotonic() + rnd.uniform(3, 15)
            s = Stream(self.vb.url, last_event_id=last, timeout=10)
            try:
                if s.status != 200:
                    raise AssertionError("status %s" % s.status)
                prev_t = time.monotonic()
                while time.monotonic() < stay and not self.stop.is_set():
                    ev = s.next(timeout=10)
                    now = time.monotonic()
                    self.max_gap = max(self.max_gap, now - prev_t)
                    prev_t = now
                    if ev.event == "busy":
                        self.busy += 1
                        time.sleep(s.retry / 1000 if s.retry else 3)
                        break
                    if ev.event == "resync":
                        self.resyncs += 1
                    elif last is not None and id_number(ev.id) != id_number(last) + 1:
                        self.missed += id_number(ev.id) - id_number(last) - 1
                    last = ev.id
            finally:
                s.close()
            self.reconnects += 1

    def churner(self, seed):
        rnd = random.Random(seed)
        while not self.stop.is_set():
            sock = socket.socket()
            sock.settimeout(10)
            try:
                sock.connect(("127.0.0.1", self.vb.http_port))
                sock.sendall(request("GET", "/events"))
                sock.recv(rnd.choice((50, 300, 2000)))
                if rnd.random() < 0.3:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            except OSError:
                pass
            finally:
                sock.close()
            self.churns += 1
            time.sleep(rnd.uniform(0.05, 0.4))

    def poller(self):
        t0 = time.monotonic()
        n = 0
        while not self.stop.is_set():
            st = status(self.vb)
            self.samples.append((round(time.monotonic() - t0, 1), st["heap_free"],
                                 st["heap_min_free"], st["clients"]))
            n += 1
            if n % 5 == 0:
                code = raw(self.vb, request("GET", "/", headers={"Accept-Encoding": "gzip"}))[0]
                assert code == 200, code
            if n % 10 == 0:
                code = raw(self.vb, request("POST", "/api/settings", {
                    "password": self.password, "settings": {"threshold": 16}}))[0]
                assert code == 200, code
            self.stop.wait(1)

    def run(self):
        set_load(self.vb, rate=self.rate, size=150)
        threads = [threading.Thread(target=self._guard, args=(self.reader, k), daemon=True)
                   for k in range(2)]
        threads.append(threading.Thread(target=self._guard, args=(self.churner, 7), daemon=True))
        threads.append(threading.Thread(target=self._guard, args=(self.poller,), daemon=True))
        for t in threads:
            t.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        for t in threads:
            t.join(30)
        set_load(self.vb, rate=0)
        return self

    # -- what it showed --------------------------------------------------------

    def window_lows(self, windows=6, skip_s=10, percentile=10):
        """The floor of free heap in each of ``windows`` equal spans of the
        run, after the first ``skip_s`` seconds (start-up), among samples
        taken with the usual number of streams open (an open stream holds
        about 3 KB on the VM: comparing like with like shows a leak, not
        when a churned connection happened to be sampled).

        The floor is the ``percentile``-th lowest sample, not the lowest: a
        single sample taken while a churned request was half read sits one
        connection (about 3 KB) lower, while a leak lowers every sample.
        ``percentile=0`` gives the lowest."""
        s = [x for x in self.samples if x[0] >= skip_s]
        if len(s) < windows:
            return []
        counts = [x[3] for x in s]
        usual = max(set(counts), key=counts.count)
        size = len(s) / windows
        lows = []
        for i in range(windows):
            part = [x[1] for x in s[int(i * size):int((i + 1) * size)] if x[3] == usual]
            part.sort()
            lows.append(part[len(part) * percentile // 100] if part else None)
        return [v for v in lows if v is not None]

    def report(self):
        lows = self.window_lows()
        free = [x[1] for x in self.samples]
        lines = [
            "soak: %d s at %d events/s: %d reconnects with Last-Event-ID, %d resyncs, "
            "%d events missed, %d churned connections, %d busy answers, longest wait for "
            "an event %.2f s" % (self.seconds, self.rate, self.reconnects, self.resyncs,
                                 self.missed, self.churns, self.busy, self.max_gap),
            "soak: free heap after collection: %d..%d bytes; floor (10th percentile) per sixth "
            "of the run (with the usual number of streams open): %s; lowest per sixth: %s"
            % (min(free), max(free), lows, self.window_lows(percentile=0)),
            "soak: heap curve (free, %d samples): %s" % (len(free), sparkline(free)),
        ]
        return "\n".join(lines)

    def write(self, out_dir):
        """build/soak/heap.csv and heap.svg: the heap curve."""
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "heap.csv"), "w") as f:
            f.write("t_s,heap_free,heap_min_free,clients\n")
            for row in self.samples:
                f.write("%s,%d,%d,%d\n" % row)
        with open(os.path.join(out_dir, "heap.svg"), "w") as f:
            f.write(svg_plot(self.samples, "free heap on the virtual board during the soak "
                             "(%d s, %d events/s)" % (self.seconds, self.rate)))
        return out_dir


def sparkline(values, width=60):
    if not values:
        return ""
    bars = " .:-=+*#%@"
    step = max(1, len(values) // width)
    cols = [min(values[i:i + step]) for i in range(0, len(values), step)]
    lo, hi = min(cols), max(cols)
    span = (hi - lo) or 1
    return "".join(bars[int((v - lo) * (len(bars) - 1) / span)] for v in cols) + \
        " (%d..%d)" % (lo, hi)


def svg_plot(samples, title, w=800, h=300):
    """A small SVG line plot of free heap (and its low mark) over time."""
    if not samples:
        return "<svg xmlns='http://www.w3.org/2000/svg'/>"
    pad = 50
    t_max = max(s[0] for s in samples) or 1
    lo = min(min(s[1], s[2]) for s in samples)
    hi = max(s[1] for s in samples)
    lo, hi = lo - 2048, hi + 2048

    def xy(t, v):
        return (pad + (w - 2 * pad) * t / t_max, h - pad - (h - 2 * pad) * (v - lo) / (hi - lo))

    def path(i):
        return " ".join("%.1f,%.1f" % xy(s[0], s[i]) for s in samples)

    out = ["<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
           "font-family='sans-serif' font-size='11'>" % (w, h),
           "<rect width='100%' height='100%' fill='white'/>",
           "<text x='%d' y='20'>%s</text>" % (pad, title),
           "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='black'/>" % (pad, h - pad, w - pad, h - pad),
           "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='black'/>" % (pad, pad, pad, h - pad)]
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        x, y = xy(0, v)
        out.append("<text x='2' y='%.0f'>%d</text>" % (y + 4, v))
    for k in range(5):
        t = t_max * k / 4
        x, y = xy(t, lo)
        out.append("<text x='%.0f' y='%d'>%ds</text>" % (x - 10, h - pad + 15, t))
    out.append("<polyline fill='none' stroke='#2a6' points='%s'/>" % path(1))
    out.append("<polyline fill='none' stroke='#c33' points='%s'/>" % path(2))
    out.append("<text x='%d' y='%d' fill='#2a6'>free after collection</text>" % (pad, h - 10))
    out.append("<text x='%d' y='%d' fill='#c33'>lowest so far</text>" % (pad + 160, h - 10))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def soak_seconds(default=120):
    return int(os.environ.get("SOAK_SECONDS") or default)
