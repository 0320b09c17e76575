"""Telemetry: every few seconds, one `telemetry` event about the board."""

import asyncio
import gc
import time


class Telemetry:
    """Samples the board and publishes ``telemetry`` events.

    :param board: the board layer (rssi, temperature, heap_extra).
    :param hub: the broadcast hub; its stats go into each sample.
    :param settings: ``telemetry_s`` (period) and ``heap_warn_bytes`` (a
                     ``warning`` status when free heap falls below it, once
                     until it recovers).
    :param status: where warnings go.
    :param fps: a callable returning the detection loop's frames per second.
    """

    def __init__(self, board, hub, settings, status, fps):
        self.board = board
        self.hub = hub
        self.settings = settings
        self.status = status
        self.fps = fps
        self.started = time.ticks_ms()
        self.heap_min_free = gc.mem_free()
        self._low = False
        self.sources = []  # callables adding fields of their own to a sample

    def uptime_s(self):
        return time.ticks_diff(time.ticks_ms(), self.started) // 1000

    def heap(self):
        """Free heap after a collection (live data only), tracking the low mark."""
        gc.collect()
        free = gc.mem_free()
        if free < self.heap_min_free:
            self.heap_min_free = free
        return free

    def sample(self):
        free = self.heap()
        stats = self.hub.stats()
        data = {
            "uptime_s": self.uptime_s(),
            "heap_free": free,
            "heap_min_free": self.heap_min_free,
            "heap_largest": self.board.heap_largest_free(),
            "rssi": self.board.wifi.rssi(),
            "temperature": self.board.temperature(),
            "fps": round(self.fps(), 1),
            "clients": stats["clients"],
            "clients_max": stats["clients_max"],
            "published": stats["published"],
            "dropped": stats["dropped"],
            "resyncs": stats["resyncs"],
        }
        for source in self.sources:
            source(data)
        warn = self.settings["heap_warn_bytes"]
        if free < warn and not self._low:
            self._low = True
            self.status.report("warning", "low heap: %d bytes free" % free, {"heap_free": free})
        elif free > warn * 2:
            self._low = False
        return data

    async def run(self):
        while True:
            await asyncio.sleep(self.settings["telemetry_s"])
            self.hub.publish(self.sample(), event="telemetry")
