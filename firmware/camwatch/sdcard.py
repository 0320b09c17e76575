"""The microSD card: where motion thumbnails go besides the RAM ring.

Loaded by ``camwatch.episodes`` on a board with a slot
(``board.has_sd()``): a board without one never holds this code.

Every picture the ring keeps is queued here and written, one at a time by
a task of its own (the detection loop never waits for the card), to
``/sd/camwatch/<YYYY-MM-DD>/<HHMMSS>-<id>-start.jpg`` (and ``-peak.jpg``),
or ``/sd/camwatch/undated/<n>-start.jpg`` before the clock is set (``n``
counts on from the highest on the card, so boots never overwrite each
other). Above ``sd_max_mb`` the oldest go first (``undated`` counts as
oldest); when the card itself is full the oldest of ours make room. A
missing, full (of other things) or failing card is a ``warning`` status,
once per state; it is unmounted and tried again every ``RETRY_S``.
"""

import asyncio
import os
import time

from micropython import const

from camwatch.clock import EPOCH
from camwatch.episodes import ID, S_OFF, TIME

RETRY_S = const(60)  # a card that failed (or was missing) is tried again this often
QUEUE = const(16)  # pictures waiting for the card; more are not written
FOLDER = "camwatch"
_ENOSPC = const(28)


class Card:
    """``episodes``: the Episodes capability (its ring, clock and app)."""

    def __init__(self, episodes):
        self.episodes = episodes
        self.app = episodes.app
        self.retry_ms = RETRY_S * 1000  # tests put a shorter wait here
        self.sd = None  # the mount point while the card works
        self.state = "absent"  # absent, ok, full, failed
        self.written = 0  # pictures written since boot
        self.used = -1  # bytes under FOLDER, -1 until counted
        self._said = None  # the state last reported
        self._base = 0  # undated names are numbered from here (above any on the card)
        self._retry = None  # ticks_ms when the card may be tried again; None: now
        self._queue = []  # (record, slot) waiting for the card
        self._due = asyncio.Event()

    def queue(self, rec, slot):
        """Write ``rec``'s picture in ``slot`` (an offset index) soon."""
        if len(self._queue) < QUEUE and self.app.settings["sd_max_mb"]:
            self._queue.append((rec, slot))
            self._due.set()

    def info(self):
        return {"state": self.state, "written": self.written,
                "used_bytes": self.used if self.used >= 0 else None,
                "max_mb": self.app.settings["sd_max_mb"]}

    async def run(self):
        settings = self.app.settings
        while True:
            if not settings["sd_max_mb"]:
                del self._queue[:]
            elif self.sd is None and (self._retry is None or
                                      time.ticks_diff(self.episodes.clock(), self._retry) >= 0):
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
            self.used, self._base = self._count()
        except OSError as exc:
            self._failed("absent", "no microSD card (%r): thumbnails are kept in RAM only" % exc)
            return
        self.state = self._said = "ok"
        self.app.status.report("sd", "microSD card at %s: %d KB of thumbnails on it"
                               % (self.sd, self.used // 1024), {"state": "ok"})

    def _failed(self, state, message):
        """The card is missing, full or failing: unmount it, drop what
        waits for it, say so once, try again in ``retry_ms``."""
        self.state = state
        self._retry = time.ticks_add(self.episodes.clock(), self.retry_ms)
        if self.sd is not None:
            self.sd = None
            try:
                self.app.board.sd_unmount()
            except OSError:
                pass
        del self._queue[:]
        if self._said != state:  # once per state: not every retry
            self._said = state
            self.app.status.report("warning", message + "; tried again every %d s"
                                   % (self.retry_ms // 1000), {"sd": state})

    def _folders(self):
        """Our folder on the card and its day folders, oldest first
        (``undated``, from before the clock was set, counts as oldest)."""
        root = self.sd + "/" + FOLDER
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
        if off < 0 or self.episodes._ring is None:
            return  # overwritten in the ring before its turn
        t = rec[TIME]
        if t is None:
            folder = "undated"
            name = "%06d" % (self._base + rec[ID])
        else:
            tm = time.gmtime(t - EPOCH)
            folder = "%04d-%02d-%02d" % tm[:3]
            name = "%02d%02d%02d-%d" % (tm[3], tm[4], tm[5], rec[ID])
        root = self.sd + "/" + FOLDER
        path = root + "/" + folder + "/" + name + ("-start.jpg" if slot == S_OFF else "-peak.jpg")
        limit = self.app.settings["sd_max_mb"] * 1048576
        for attempt in (0, 1):
            try:
                self._trim(limit - n)
                _mkdir(root)
                _mkdir(root + "/" + folder)
                with open(path, "wb") as f:
                    f.write(memoryview(self.episodes._ring)[off:off + n])
            except OSError as exc:
                try:
                    os.remove(path)  # what was cut short
                except OSError:
                    pass
                # a full FAT says ENOSPC, or EACCES when a folder cannot be made
                full = exc.args[0] == _ENOSPC or self._free() < n + 4096
                if full and attempt == 0:
                    limit = self.used - 4 * n  # the card is smaller: make room, once more
                    continue
                if full:
                    self._failed("full", "microSD card full: thumbnails are kept in RAM only")
                else:
                    self._failed("failed", "microSD card failed (%r): was it pulled out? "
                                           "Thumbnails are kept in RAM only" % exc)
                return
            self.used += n
            self.written += 1
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
        if self.used <= limit:
            return
        root, folders = self._folders()
        for folder in folders:
            path = root + "/" + folder
            for name in sorted(os.listdir(path)):
                if self.used <= limit:
                    return
                size = _size(path + "/" + name)
                os.remove(path + "/" + name)
                self.used -= size
            try:
                os.rmdir(path)
            except OSError:  # not ours alone: leave it
                pass
        self.used = max(self.used, 0)

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
