# Test-only: load and heap pressure for the virtual board, never on a board.
#
# The hardening tests put this file and a main.py that imports it first on a
# virtual board's flash (tests/hardening.py: hooked_flash). It adds one
# capability to the real app, steered from the host through the file
# .vboard/load.json in the flash folder (as .vboard/wifi-down steers the fake
# Wi-Fi), read when it changes:
#
#   {"rate": 200, "size": 120}  publish 200 `load` events a second, each
#                               {"n": count, "t_us": epoch microseconds when
#                               published, "pad": "x" * size}
#   {"fill_free": 12000}        allocate and hold memory until only about
#                               that many bytes are free after a collection,
#                               in 1 KB holes spread over the heap; absent
#                               or 0: let it go
#
# and it prints "loadhook: ..." on the console when it applies a change.
import asyncio
import gc
import json
import os
import time

import camwatch.app

CONTROL = ".vboard/load.json"


class Load:
    def __init__(self, app):
        self.app = app
        self.rate = 0
        self.pad = ""
        self.held = []
        self.sent = 0
        self._mtime = None

    def _poll(self):
        try:
            mtime = os.stat(CONTROL)[8]
        except OSError:
            mtime = 0
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            with open(CONTROL) as f:
                cfg = json.load(f)
        except (OSError, ValueError):
            cfg = {}
        self.rate = int(cfg.get("rate", 0))
        self.pad = "x" * int(cfg.get("size", 0))
        self._fill(int(cfg.get("fill_free", 0)))
        print("loadhook: rate %d/s, size %d, %d bytes free"
              % (self.rate, len(self.pad), gc.mem_free()))

    def _fill(self, free):
        # fill the heap with 1 KB blocks, then let go of some spread over it:
        # about ``free`` bytes free, in holes of 1 KB and up (a heap that is
        # full, not one shredded into crumbs no request fits in)
        held = self.held = []
        gc.collect()
        if not free:
            return
        try:
            while gc.mem_free() > 1024:
                held.append(bytearray(1024))
        except MemoryError:
            pass
        n = free // 1024
        step = max(1, len(held) // (n + 1))
        for i in range(n):
            held[len(held) - 1 - i * step] = None
        gc.collect()

    async def run(self):
        hub = self.app.hub
        since = time.ticks_ms()
        polled = since
        while True:
            await asyncio.sleep_ms(10)
            now = time.ticks_ms()
            if time.ticks_diff(now, polled) >= 200:
                polled = now
                self._poll()
            if not self.rate:
                since = now
                self.sent = 0
                continue
            due = self.rate * time.ticks_diff(now, since) // 1000
            while self.sent < due:
                self.sent += 1
                hub.publish({"n": self.sent, "t_us": time.time_ns() // 1000, "pad": self.pad},
                            event="load")


_init = camwatch.app.App.__init__


def _hooked_init(self):
    _init(self)
    self.add(Load(self))


camwatch.app.App.__init__ = _hooked_init
