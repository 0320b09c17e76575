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
- On a board with a microSD card (``board.sd_mount()``) every picture is
  also written to ``/sd/camwatch/<date>/`` (``undated/`` while the clock is
  not set), oldest deleted first above ``sd_max_mb``. A missing, full or
  pulled card is a ``warning`` status; the card is tried again every
  ``SD_RETRY_S``; the detection loop never waits on it (the writes are a
  task of their own).

Heap: the ring (``thumbs_bytes``) and two picture buffers of a thumbnail's
size, all made once; nothing per frame. Episode records are small lists.
"""

import asyncio
import gc
import os
import time

from micropython import const

from camwatch.clock import EPOCH
from camwatch.settings import declare

declare({"episodes_max": ("int", 0, 32, 8),
         "thumbs_bytes": ("int", 2048, 262144, 12288),
         "sd_max_mb": ("int", 0, 1048576, 1024)})

PEAK_EVERY_MS = const(1000)  # the peak picture is taken again at most this often
FIRST_BUFFER = const(2048)  # first size of a picture buffer; grown when a picture needs more
SD_RETRY_S = const(60)  # a card that failed (or was missing) is tried again this often
SD_QUEUE = const(16)  # pictures waiting for the card; more are not written
SD_DIR = "camwatch"
_ENOSPC = const(28)

# an episode record: a list, indexed by these
_ID = const(0)
_T = const(1)  # uptime ms at its start
_TIME = const(2)  # Unix seconds at its start, or None
_DUR = const(3)  # duration_ms, or -1 while it goes on
_PEAK = const(4)  # peak score
_S_OFF = const(5)  # the start picture's offset in the ring, -1 when gone
_S_LEN = const(6)
_P_OFF = const(7)  # the peak picture's, -1 when gone or not kept yet
_P_LEN = const(8)


class Episodes:
    """The capability; ``app``: the App (web, settings, status, board).
    The detection loop calls ``motion(kind, data, cam)`` for each motion
    event before it is published."""

    def __init__(self, app):
        self.app = app
        self.clock = time.ticks_ms  # tests put a clock of their own here
        self.retry_ms = SD_RETRY_S * 1000  # and a shorter wait here
        self.records = []  # newest last
        self.next_id = 1
        self.overwritten = 0  # pictures overwritten in the ring since boot
        self.skipped = 0  # pictures not kept (no memory, or larger than the ring)
        self._ring = None
        self._head = 0
        self._shot = None  # the picture buffer: each thumbnail is taken into it
        self._active = None  # the record of the episode going on
        self._best = 0  # the score of its peak picture
        self._best_at = 0  # ticks_ms when that was taken
        # the card
        self.sd = None  # its mount point while it works
        # none (no slot), absent, ok, full, failed
        self.sd_state = "absent" if app.board.has_sd() else "none"
        self.sd_written = 0
        self._sd_said = None  # the state last reported
        self._sd_used = -1  # bytes under SD_DIR, -1 until counted
        self._sd_base = 0  # undated names are numbered from here (above any on the card)
        self._sd_retry = None  # ticks_ms when the card may be tried again; None: now
        self._no_ring = False  # said that the ring could not be made
        self._queue = []  # (record, slot) waiting for the card
        self._due = asyncio.Event()
        web = app.web
        web.get("/api/episodes")(self.list)
        web.get("/episodes/<name>")(self.picture)

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
            data["episode"] = rec[_ID]
            if not keep:
                return
            self.records.append(rec)
            self._trim_records(keep)
            n = self._take(cam)
            if n and self._keep(rec, _S_OFF, n):
                rec[_P_OFF] = rec[_S_OFF]  # the peak so far is the start
                rec[_P_LEN] = n
                self._queue_card(rec, _S_OFF)
                self._best = rec[_PEAK]
                self._best_at = self.clock()
            return
        rec = self._active
        if rec is None:
            return
        data["episode"] = rec[_ID]
        if kind == "update":
            score = data.get("score", 0)
            if score > rec[_PEAK]:
                rec[_PEAK] = score
            # a higher peak, and the last one is a while ago: take it again
            if keep and score > self._best and rec in self.records and \
                    time.ticks_diff(self.clock(), self._best_at) >= PEAK_EVERY_MS:
                n = self._take(cam)
                if n and self._keep(rec, _P_OFF, n):
                    self._best = score
                    self._best_at = self.clock()
        elif kind == "end":
            rec[_DUR] = data.get("duration_ms", 0)
            rec[_PEAK] = max(rec[_PEAK], data.get("peak_score", 0))
            if rec[_P_OFF] >= 0 and rec[_P_OFF] != rec[_S_OFF]:
                self._queue_card(rec, _P_OFF)  # the peak is final now
            self._active = None

    def _take(self, cam):
        """A thumbnail of the frame detection just read into ``self._shot``;
        its length, or 0 when there is none (counted in ``skipped``)."""
        try:
            buf = self._shot or self._afford(FIRST_BUFFER)
            n = cam.thumbnail_into(buf) if buf is not None else 0
            if buf is not None and n > len(buf):
                buf = self._afford(n + n // 4)  # the old one is garbage once this is made
                n = cam.thumbnail_into(buf) if buf is not None else 0
                if buf is not None and n > len(buf):
                    raise OSError(5, "thumbnail larger than announced")  # EIO
        except OSError as exc:
            self.skipped += 1
            self.app.status.report("warning", "thumbnail not taken: %r" % exc)
            return 0
        self._shot = buf
        if not n:
            self.skipped += 1
        return n

    def _afford(self, size):
        """A new bytearray of ``size`` bytes, or None when it would leave
        less than ``heap_warn_bytes`` free: pictures are worth less than
        the streams, MQTT and the API the rest of the heap keeps going."""
        gc.collect()
        if gc.mem_free() - size < self.app.settings["heap_warn_bytes"]:
            return None
        try:
            return bytearray(size)
        except MemoryError:
            return None

    def _keep(self, rec, slot, n):
        """Copy the picture (``self._shot[:n]``) into the ring, overwriting
        the oldest; its place into ``rec[slot]``, ``rec[slot + 1]``. False
        when it could not be kept."""
        ring = self._ring
        if ring is None:
            size = self.app.settings["thumbs_bytes"]
            ring = self._ring = self._afford(size)
            if ring is None:
                self.skipped += 1
                if not self._no_ring:
                    self._no_ring = True
                    self.app.status.report("warning", "thumbnails: not enough heap for a "
                                           "%d-byte ring now (thumbs_bytes); tried again at "
                                           "the next motion" % size)
                return False
            self._no_ring = False
            self._head = 0
        size = len(ring)
        if n > size:
            self.skipped += 1
            return False
        pos = self._head
        if pos + n > size:
            pos = 0
        end = pos + n
        for other in self.records:  # what the new picture covers is overwritten
            for s in (_P_OFF, _S_OFF):  # the peak first: it may share the start's place
                off = other[s]
                if off >= 0 and off < end and off + other[s + 1] > pos:
                    if s == _S_OFF or off != other[_S_OFF]:
                        self.overwritten += 1
                    other[s] = -1
        ring[pos:end] = memoryview(self._shot)[:n]
        self._head = end
        rec[slot] = pos
        rec[slot + 1] = n
        return True

    def _queue_card(self, rec, slot):
        if self.sd_state != "none" and len(self._queue) < SD_QUEUE \
                and self.app.settings["sd_max_mb"]:
            self._queue.append((rec, slot))
            self._due.set()

    def settings_changed(self, changed):
        if "thumbs_bytes" in changed and self._ring is not None:
            self._ring = None  # made again, of the new size, at the next picture
            for rec in self.records:
                rec[_S_OFF] = rec[_P_OFF] = -1
        if "episodes_max" in changed:
            keep = self.app.settings["episodes_max"]
            self._trim_records(keep)
            if not keep:
                self._ring = self._shot = None

    def _trim_records(self, keep):
        while len(self.records) > keep:
            old = self.records.pop(0)
            old[_S_OFF] = old[_P_OFF] = -1  # its pictures are not written to the card now

    # -- routes ----------------------------------------------------------------

    def _picture_of(self, name):
        """(offset, length) in the ring of ``<id>-start``, ``<id>-peak`` or
        ``<id>`` (the peak, else the start); None when it is not held."""
        slots = (_P_OFF, _S_OFF)
        if name.endswith("-start"):
            name, slots = name[:-6], (_S_OFF,)
        elif name.endswith("-peak"):
            name, slots = name[:-5], (_P_OFF,)
        if not name.isdigit() or len(name) > 9:
            return None
        ident = int(name)
        for rec in self.records:
            if rec[_ID] == ident:
                for slot in slots:
                    if rec[slot] >= 0:
                        return rec[slot], rec[slot + 1]
                return None
        return None

    def _url(self, rec, slot):
        if rec[slot] < 0:
            return None
        return "episodes/%d-%s.jpg" % (rec[_ID], "start" if slot == _S_OFF else "peak")

    async def list(self, request):
        out = []
        for rec in reversed(self.records):
            out.append({"id": rec[_ID], "t": rec[_T], "time": rec[_TIME],
                        "duration_ms": None if rec[_DUR] < 0 else rec[_DUR],
                        "active": rec is self._active, "peak_score": rec[_PEAK],
                        "start": self._url(rec, _S_OFF), "peak": self._url(rec, _P_OFF)})
        s = self.app.settings
        return {"episodes": out, "episodes_max": s["episodes_max"],
                "thumbs_bytes": s["thumbs_bytes"], "overwritten": self.overwritten,
                "skipped": self.skipped,
                "sd": {"state": self.sd_state, "written": self.sd_written,
                       "used_bytes": self._sd_used if self._sd_used >= 0 else None,
                       "max_mb": s["sd_max_mb"]}}

    async def picture(self, request, name):
        if not name.endswith(".jpg"):
            return {"error": "not found"}, 404
        found = self._picture_of(name[:-4])
        if found is None:
            return {"error": "no such picture (overwritten, or never taken)"}, 404
        off, n = found
        writer = request.sock[1]
        # head and body written with no await between: what the socket does
        # not take at once is copied by the stream, so a picture taken
        # meanwhile cannot tear this one
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n"
                     b"Cache-Control: no-store\r\nContent-Length: %d\r\n\r\n" % n)
        writer.write(memoryview(self._ring)[off:off + n])
        try:
            await writer.drain()
        except OSError:
            pass
        from microdot import Response

        return Response.already_handled

    # -- the card --------------------------------------------------------------

    async def run(self):
        if self.sd_state == "none":
            return  # no slot
        settings = self.app.settings
        while True:
            if not settings["sd_max_mb"]:
                del self._queue[:]
            elif self.sd is None and (self._sd_retry is None or
                                      time.ticks_diff(self.clock(), self._sd_retry) >= 0):
                self._mount()
            while self.sd is not None and self._queue:
                rec, slot = self._queue.pop(0)
                self._write(rec, slot)
                await asyncio.sleep_ms(0)  # one picture at a time: the loop goes on between
            try:
                await asyncio.wait_for_ms(self._due.wait(), self.retry_ms)
            except asyncio.TimeoutError:
                pass
            self._due.clear()

    def _mount(self):
        try:
            self.sd = self.app.board.sd_mount()
            self._sd_used, self._sd_base = self._count()
        except OSError as exc:
            self._sd_failed("absent", "no microSD card (%r): thumbnails are kept in RAM only"
                            % exc)
            return
        self.sd_state = self._sd_said = "ok"
        self.app.status.report("sd", "microSD card at %s: %d KB of thumbnails on it"
                               % (self.sd, self._sd_used // 1024), {"state": "ok"})

    def _sd_failed(self, state, message):
        """The card is missing, full or failing: unmount it, drop what
        waits for it, say so once, try again in SD_RETRY_S."""
        self.sd_state = state
        self._sd_retry = time.ticks_add(self.clock(), self.retry_ms)
        if self.sd is not None:
            self.sd = None
            try:
                self.app.board.sd_unmount()
            except OSError:
                pass
        del self._queue[:]
        if self._sd_said != state:  # once per state: not every retry
            self._sd_said = state
            self.app.status.report("warning", message + "; tried again every %d s"
                                   % (self.retry_ms // 1000), {"sd": state})

    def _folders(self):
        """Our folder on the card and its day folders, oldest first
        (``undated``, from before the clock was set, counts as oldest)."""
        root = self.sd + "/" + SD_DIR
        try:
            names = sorted(os.listdir(root))
        except OSError:
            return root, []
        if "undated" in names:
            names.remove("undated")
            names.insert(0, "undated")
        return root, names

    def _count(self):
        """(bytes of pictures on the card, the highest undated number)."""
        root, folders = self._folders()
        used = top = 0
        for folder in folders:
            for name in os.listdir(root + "/" + folder):
                used += _size(root + "/" + folder + "/" + name)
                if folder == "undated":
                    number = name.split("-")[0]
                    if number.isdigit():
                        top = max(top, int(number))
        return used, top

    def _write(self, rec, slot):
        """Write one picture to the card (a failure unmounts it)."""
        off, n = rec[slot], rec[slot + 1]
        if off < 0 or self._ring is None:
            return  # overwritten in the ring before its turn
        t = rec[_TIME]
        if t is None:
            folder = "undated"
            name = "%06d" % (self._sd_base + rec[_ID])
        else:
            tm = time.gmtime(t - EPOCH)
            folder = "%04d-%02d-%02d" % tm[:3]
            name = "%02d%02d%02d-%d" % (tm[3], tm[4], tm[5], rec[_ID])
        root = self.sd + "/" + SD_DIR
        path = root + "/" + folder + "/" + name + ("-start.jpg" if slot == _S_OFF else "-peak.jpg")
        limit = self.app.settings["sd_max_mb"] * 1048576
        for attempt in (0, 1):
            try:
                self._trim(limit - n)
                _mkdir(root)
                _mkdir(root + "/" + folder)
                with open(path, "wb") as f:
                    f.write(memoryview(self._ring)[off:off + n])
            except OSError as exc:
                try:
                    os.remove(path)  # what was cut short
                except OSError:
                    pass
                # a full FAT says ENOSPC, or EACCES when a folder cannot be made
                full = exc.args[0] == _ENOSPC or self._free() < n + 4096
                if full and attempt == 0:
                    limit = self._sd_used - 4 * n  # the card is smaller: make room, once more
                    continue
                if full:
                    self._sd_failed("full", "microSD card full: thumbnails are kept in RAM only")
                else:
                    self._sd_failed("failed", "microSD card failed (%r): was it pulled out? "
                                    "Thumbnails are kept in RAM only" % exc)
                return
            self._sd_used += n
            self.sd_written += 1
            return

    def _free(self):
        """Bytes free on the card (a large number when it cannot tell)."""
        try:
            st = os.statvfs(self.sd)
            return st[0] * st[4]
        except OSError:
            return 1 << 30

    def _trim(self, limit):
        """Delete the oldest pictures until at most ``limit`` bytes are on
        the card (folders left empty go too)."""
        if self._sd_used <= limit:
            return
        root, folders = self._folders()
        for folder in folders:
            path = root + "/" + folder
            for name in sorted(os.listdir(path)):
                if self._sd_used <= limit:
                    return
                size = _size(path + "/" + name)
                os.remove(path + "/" + name)
                self._sd_used -= size
            try:
                os.rmdir(path)
            except OSError:  # not ours alone: leave it
                pass
        self._sd_used = max(self._sd_used, 0)


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError as exc:
        if exc.args[0] != 17:  # EEXIST
            raise
