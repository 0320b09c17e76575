"""Wall-clock time from NTP, so events say when they happened.

A board powers up with its clock at its epoch. Once it is on a network with
a way out (station mode, not its own access point), ``Clock.run()`` has the
board layer set the clock from ``ntp_server`` (``ntptime`` on the ESP32),
then again every ``RESYNC_S`` as the crystal drifts; a server that does not
answer is asked again with backoff. From the first answer on, ``motion``,
``telemetry`` and ``status`` events carry ``"time"``: Unix seconds, UTC.
Before it (or with ``ntp_server`` empty) they carry none, and the page
places them by the phone's clock.
"""

import asyncio
import time

from micropython import const

from camwatch import settings as settings_module

settings_module.declare({"ntp_server": ("str", 0, 64, "pool.ntp.org")})

RESYNC_S = const(21600)  # six hours
RETRY_S = (10, 30, 60, 300)  # after the 1st, 2nd, 3rd, further failures
CHECK_S = const(2)  # how often the task looks at the network and the deadline
# Unix seconds = time.time() + EPOCH: most boards count from 2000, the unix
# port (the virtual board) from 1970.
EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0


def iso(unix):
    """``YYYY-MM-DD HH:MM:SS`` of Unix seconds, UTC."""
    t = time.gmtime(unix - EPOCH)
    return "%04d-%02d-%02d %02d:%02d:%02d" % t[:6]


class Clock:
    """The capability: ``app.add(Clock(app))``; ``stamp(data)`` adds the time.

    :param app: the App; uses its board (``set_time``), wifi state, settings
        and status; stamps telemetry and status events itself.
    """

    def __init__(self, app):
        self.app = app
        self.synced = False  # the clock has had one answer from NTP
        self.failures = 0  # in a row
        self.server = None  # the server that answered last
        self._due = time.ticks_ms()
        app.telemetry.sources.append(self.stamp)
        app.status.stamp = self.stamp

    def now(self):
        """Unix seconds (UTC), or None while the clock was never set."""
        return time.time() + EPOCH if self.synced else None

    def stamp(self, data):
        """Add ``"time"`` to an event's dict when the clock is known."""
        if self.synced:
            data["time"] = time.time() + EPOCH

    def settings_changed(self, changed):
        if "ntp_server" in changed:
            self.failures = 0
            self._due = time.ticks_ms()

    async def run(self):
        while True:
            await asyncio.sleep(CHECK_S)
            server = self.app.settings["ntp_server"]
            if not server or self.app.wifi.state != "connected":
                continue
            if time.ticks_diff(self._due, time.ticks_ms()) > 0:
                continue
            self.sync(server)

    def sync(self, server):
        """Ask ``server`` once; say what happened; set when to ask again."""
        try:
            # blocks while it waits for the answer: ntptime's timeout, 1 s,
            # and once every few hours
            self.app.board.set_time(server)
        except (OSError, OverflowError) as exc:
            self.failures += 1
            wait = RETRY_S[min(self.failures, len(RETRY_S)) - 1]
            if self.failures == 1:
                self.app.status.report("warning", "clock: no answer from NTP server %s (%r); "
                                       "retrying in %d s%s" % (
                                           server, exc, wait,
                                           "" if self.synced else
                                           "; until then events carry no time"))
        else:
            wait = RESYNC_S
            first = not self.synced or server != self.server
            self.synced = True
            self.failures = 0
            self.server = server
            if first:
                self.app.status.report("clock", "clock set from %s: %s UTC"
                                       % (server, iso(self.now())), {"server": server})
        self._due = time.ticks_add(time.ticks_ms(), wait * 1000)
