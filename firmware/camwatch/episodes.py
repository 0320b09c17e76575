"""Motion thumbnails: a small JPEG of each episode's start and of its peak.

- Each motion episode (``start`` .. ``end``) gets an id, carried in its
  ``motion`` events as ``"episode"``. The camera's ``thumbnail_into()``
  encodes the frame detection just read: the start frame, and the frame
  with the highest score among the episode's events (taken again at most
  once per ``PEAK_EVERY_MS`` while the score climbs).
- They are kept in RAM in one ring of ``thumbs_bytes`` bytes, made at the
  first episode: a new picture overwrites the oldest. At most
  ``episodes_max`` episodes are listed (0: no thumbnails at all).
- ``GET /api/episodes``: the episodes, newest first, with the address of
  each picture still held (``null`` once overwritten).
- ``GET /episodes/<id>-start.jpg``, ``/episodes/<id>-peak.jpg``, and
  ``/episodes/<id>.jpg`` (the peak, else the start): the JPEG, ``404``
  once it was overwritten.
- On a board with a microSD slot (``board.has_sd()``) every picture is
  also written to the card, by ``camwatch.sdcard`` (loaded only there):
  ``/sd/camwatch/<date>/``, oldest deleted first above ``sd_max_mb``; a
  missing, full or pulled card is a ``warning`` status, never a stall.

Heap: this module is loaded at a motion start once the heap can spare the
ring (``App.thumbnails``); the ring (``thumbs_bytes``) is made once, under
the same rule, and given back when the heap runs short (``shed``); the
camera encodes into it directly; nothing per frame. Episode records are
small lists.
"""

import gc
import time

from micropython import const

PEAK_EVERY_MS = const(1000)  # the peak picture is taken again at most this often

# an episode record: a list, indexed by these (ID, TIME and S_OFF public:
# camwatch.sdcard reads them)
ID = const(0)
_T = const(1)  # uptime ms at its start
TIME = const(2)  # Unix seconds at its start, or None
_DUR = const(3)  # duration_ms, or -1 while it goes on
_PEAK = const(4)  # peak score
S_OFF = const(5)  # the start picture's offset in the ring, -1 when gone
_S_LEN = const(6)
_P_OFF = const(7)  # the peak picture's, -1 when gone or not kept yet
_P_LEN = const(8)


class Episodes:
    """The capability; ``app``: the App (settings, status, board,
    telemetry). The App loads it at a motion start once the heap can
    spare the ring (``App.thumbnails``), calls ``motion(kind, data, cam)``
    for each motion event before it is published, and routes
    ``/api/episodes`` and ``/episodes/<name>`` to ``list`` and ``picture``."""

    def __init__(self, app):
        self.app = app
        self.clock = time.ticks_ms  # tests put a clock of their own here
        self.records = []  # newest last
        self.next_id = 1
        self.overwritten = 0  # pictures overwritten in the ring since boot
        self.skipped = 0  # pictures not kept (no memory, or larger than the ring)
        self._ring = None
        self._head = 0
        self._active = None  # the record of the episode going on
        self._best = 0  # the score of its peak picture
        self._best_at = 0  # ticks_ms when that was taken
        self._no_ring = False  # said that the ring could not be made
        self._too_big = False  # said that a picture was larger than the ring
        # the microSD card (camwatch.sdcard), on boards with a slot only
        self.card = None
        if app.board.has_sd():
            from camwatch.sdcard import Card

            self.card = Card(self)
        app.telemetry.sources.append(self._heap_check)

    # -- the detection loop's side ---------------------------------------------

    def motion(self, kind, data, cam):
        """Hear one motion event (``start``/``update``/``end``), before it is
        published, and add its ``"episode"`` id to ``data``. ``cam``: the
        camera that read the frame (its ``thumbnail_into()`` encodes it)."""
        keep = self.app.settings["episodes_max"]
        if kind == "start":
            rec = [self.next_id, data.get("t", 0), data.get("time"), -1, data.get("score", 0),
                   -1, 0, -1, 0]
            self.next_id += 1
            self._active = rec
            self._best = 0  # no picture of it yet: the next update may take one
            self._best_at = time.ticks_add(self.clock(), -PEAK_EVERY_MS)
            data["episode"] = rec[ID]
            if not keep:
                return
            self.records.append(rec)
            self._trim_records(keep)
            if self._shoot(cam, rec, S_OFF):
                rec[_P_OFF] = rec[S_OFF]  # the peak so far is the start
                rec[_P_LEN] = rec[_S_LEN]
                self._queue_card(rec, S_OFF)
                self._best = rec[_PEAK]
                self._best_at = self.clock()
            return
        rec = self._active
        if rec is None:
            return
        data["episode"] = rec[ID]
        if kind == "update":
            score = data.get("score", 0)
            if score > rec[_PEAK]:
                rec[_PEAK] = score
            # a higher peak, and the last one is a while ago: take it again
            if keep and score > self._best and rec in self.records and \
                    time.ticks_diff(self.clock(), self._best_at) >= PEAK_EVERY_MS:
                if self._shoot(cam, rec, _P_OFF):
                    self._best = score
                    self._best_at = self.clock()
        elif kind == "end":
            rec[_DUR] = data.get("duration_ms", 0)
            rec[_PEAK] = max(rec[_PEAK], data.get("peak_score", 0))
            if rec[_P_OFF] >= 0 and rec[_P_OFF] != rec[S_OFF]:
                self._queue_card(rec, _P_OFF)  # the peak is final now
            self._active = None

    def _shoot(self, cam, rec, slot):
        """Have ``cam`` encode the frame detection just read straight into
        the ring at its head, over the oldest pictures (from the ring's start
        when it does not fit before its end); its place into ``rec[slot]``,
        ``rec[slot + 1]``. False when none was kept (counted in ``skipped``)."""
        ring = self._ring or self._make_ring()
        if ring is None:
            self.skipped += 1
            return False
        pos = self._head
        while True:
            room = memoryview(ring)[pos:]
            try:
                n = cam.thumbnail_into(room)
            except OSError as exc:
                self._drop(pos, len(ring))  # what the encoder may have written over
                self.skipped += 1
                self.app.status.report("warning", "thumbnail not taken: %r" % exc)
                return False
            if n <= len(room):
                break
            self._drop(pos, len(ring))
            if pos == 0 or n > len(ring):  # larger than the whole ring
                self.skipped += 1
                if not self._too_big:
                    self._too_big = True
                    self.app.status.report("warning", "thumbnails: a %d-byte picture does not "
                                           "fit in thumbs_bytes (%d)" % (n, len(ring)))
                return False
            pos = 0
        self._drop(pos, pos + n)
        self._head = pos + n
        rec[slot] = pos
        rec[slot + 1] = n
        return True

    def _drop(self, start, end):
        """Forget the pictures that overlap ring[start:end] (written over)."""
        for rec in self.records:
            for s in (_P_OFF, S_OFF):  # the peak first: it may share the start's place
                off = rec[s]
                if off >= 0 and off < end and off + rec[s + 1] > start:
                    if s == S_OFF or off != rec[S_OFF]:
                        self.overwritten += 1
                    rec[s] = -1

    def _make_ring(self):
        """The ring of ``thumbs_bytes``, made only while the heap has twice
        ``heap_warn_bytes`` free besides: pictures are worth less than the
        streams, MQTT and the API the rest of the heap keeps going."""
        size = self.app.settings["thumbs_bytes"]
        gc.collect()
        ring = None
        if gc.mem_free() - size >= 2 * self.app.settings["heap_warn_bytes"]:
            try:
                ring = bytearray(size)
            except MemoryError:
                pass
        if ring is None:
            if not self._no_ring:
                self._no_ring = True
                self.app.status.report("warning", "thumbnails: not enough heap for a %d-byte "
                                       "ring (thumbs_bytes) now; tried again at the next motion"
                                       % size)
            return None
        self._no_ring = False
        self._ring = ring
        self._head = 0
        return ring

    def shed(self):
        """Give the ring's memory back (the heap is short: streams, MQTT
        and the API come first); its pictures are gone. It is made again at
        a motion once the heap has room. Whether there was a ring."""
        ring = self._ring
        if ring is None:
            return False
        self._ring = None
        for rec in self.records:
            rec[S_OFF] = rec[_P_OFF] = -1
        self.app.status.report("warning", "low heap: %d bytes of thumbnails given back"
                               % len(ring))
        return True

    def _heap_check(self, data):
        # a telemetry source: sees the free heap every telemetry_s
        if self._ring is not None and \
                data.get("heap_free", 1 << 30) < self.app.settings["heap_warn_bytes"]:
            self.shed()

    def _queue_card(self, rec, slot):
        if self.card is not None:
            self.card.queue(rec, slot)

    def settings_changed(self, changed):
        if "thumbs_bytes" in changed and self._ring is not None:
            self._ring = None  # made again, of the new size, at the next picture
            for rec in self.records:
                rec[S_OFF] = rec[_P_OFF] = -1
        if "episodes_max" in changed:
            keep = self.app.settings["episodes_max"]
            self._trim_records(keep)
            if not keep:
                self._ring = None

    def _trim_records(self, keep):
        while len(self.records) > keep:
            old = self.records.pop(0)
            old[S_OFF] = old[_P_OFF] = -1  # its pictures are not written to the card now

    # -- routes ----------------------------------------------------------------

    def _picture_of(self, name):
        """(offset, length) in the ring of ``<id>-start``, ``<id>-peak`` or
        ``<id>`` (the peak, else the start); None when it is not held."""
        slots = (_P_OFF, S_OFF)
        if name.endswith("-start"):
            name, slots = name[:-6], (S_OFF,)
        elif name.endswith("-peak"):
            name, slots = name[:-5], (_P_OFF,)
        if not name.isdigit() or len(name) > 9:
            return None
        ident = int(name)
        for rec in self.records:
            if rec[ID] == ident:
                for slot in slots:
                    if rec[slot] >= 0:
                        return rec[slot], rec[slot + 1]
                return None
        return None

    def _url(self, rec, slot):
        if rec[slot] < 0:
            return None
        return "episodes/%d-%s.jpg" % (rec[ID], "start" if slot == S_OFF else "peak")

    async def list(self, request):
        out = []
        for rec in reversed(self.records):
            out.append({"id": rec[ID], "t": rec[_T], "time": rec[TIME],
                        "duration_ms": None if rec[_DUR] < 0 else rec[_DUR],
                        "active": rec is self._active, "peak_score": rec[_PEAK],
                        "start": self._url(rec, S_OFF), "peak": self._url(rec, _P_OFF)})
        s = self.app.settings
        return {"episodes": out, "loaded": True, "episodes_max": s["episodes_max"],
                "thumbs_bytes": s["thumbs_bytes"], "overwritten": self.overwritten,
                "skipped": self.skipped,
                "sd": self.card.info() if self.card else {"state": "none"}}

    async def picture(self, request, name):
        if not name.endswith(".jpg"):
            return {"error": "not found"}, 404
        found = self._picture_of(name[:-4])
        if found is None:
            return {"error": "no such picture (overwritten, or never taken)"}, 404
        off, n = found
        return await self.app.live.send_whole(
            request, b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\nCache-Control: no-store\r\n"
            b"Content-Length: %d\r\n\r\n" % n, memoryview(self._ring)[off:off + n])

    async def run(self):
        if self.card is not None:
            await self.card.run()
