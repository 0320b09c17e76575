"""Wi-Fi: station mode with reconnect and backoff, else the board's own AP.

With an SSID configured the board joins it (mDNS hostname from settings). If
it cannot join (within ``wifi_timeout_s``, or at once when the radio says why:
a wrong password, no such network) it also opens an access point named
``camwatch-XXXX`` (from the MAC) so a phone can still reach it and set it up,
and keeps retrying the station with backoff. Without an SSID it is an access
point only, until ``rejoin()`` is called with a network saved.
"""

import asyncio
import time

BACKOFF_MAX_S = 60


class WiFi:
    """Keeps the board on a network and reports every change.

    :param board: the board layer; ``board.wifi`` does the radio work.
    :param settings: wifi_ssid, wifi_password, wifi_timeout_s, hostname,
                     ap_password.
    :param status: where ``wifi`` status events go.
    :param on_change: called with True when the board has an address (station
                      or AP), False when it has none; the app starts and
                      stops serving on it.
    :param on_ap: called with True when the access point opens, False when it
                  closes (the captive portal follows it).

    ``state`` is "down", "ap" or "connected"; ``reason`` says why the last
    join failed ("wrong password", "network not found", ...) until one works.
    """

    def __init__(self, board, settings, status, on_change, on_ap=None):
        self.radio = board.wifi
        self.settings = settings
        self.status = status
        self.on_change = on_change
        self.on_ap = on_ap
        self.state = "down"
        self.ip = None
        self.ssid = None
        self.reason = None
        self.joining = False
        self._wake = asyncio.Event()
        self._again = False  # join again even if joined (the network changed)
        self._ap_until = None  # ticks_ms when a lingering access point closes

    def ap_name(self):
        return "camwatch-" + self.radio.mac_suffix()

    def scan(self):
        """Networks in reach, strongest first, each name once:
        ``[{"ssid", "rssi", "secured"}]``. Blocks for the radio's scan."""
        best = {}
        for ssid, rssi, secured in self.radio.scan():
            if ssid not in best or rssi > best[ssid][0]:
                best[ssid] = (rssi, secured)
        found = [{"ssid": k, "rssi": v[0], "secured": v[1]} for k, v in best.items()]
        found.sort(key=lambda n: -n["rssi"])
        return found

    def rejoin(self, linger_s=0):
        """Join the network now in the settings, without waiting for the
        current backoff. With ``linger_s``, a running access point stays up
        that long after the join works, so the phone that did the setup over
        it can still read where the board went."""
        self._ap_until = time.ticks_add(time.ticks_ms(), linger_s * 1000) if linger_s else None
        self.reason = None
        self._again = True
        self._wake.set()

    def _set(self, state, ip, message):
        if state == self.state and ip == self.ip:
            return
        was_up = self.state != "down"
        self.state, self.ip = state, ip
        self.status.report("wifi", message, {"state": state, "ip": ip, "ssid": self.ssid,
                                             "reason": self.reason})
        if was_up != (state != "down"):
            self.on_change(state != "down")

    async def _pause(self, seconds):
        # a sleep that rejoin() cuts short (in steps: asyncio.wait_for would
        # load a module of its own into the heap for this)
        for _ in range(seconds * 4):
            if self._wake.is_set():
                return
            await asyncio.sleep_ms(250)

    async def _join(self):
        """Try to join the configured network once: None when joined, else
        why not."""
        s = self.settings
        self.joining = True
        try:
            self.radio.connect(s["wifi_ssid"], s["wifi_password"], s["hostname"])
            for _ in range(s["wifi_timeout_s"] * 4):
                if self.radio.isconnected():
                    return None
                failure = self.radio.failure()
                if failure:
                    return failure
                await asyncio.sleep_ms(250)
            return "no answer in %d s" % s["wifi_timeout_s"]
        finally:
            self.joining = False

    def _open_ap(self, message):
        self.ssid = self.ap_name()
        ip = self.radio.ap_ip() if self.radio.ap_active() else None
        if ip is None:
            ip = self.radio.start_ap(self.ssid, self.settings["ap_password"])
        self._set("ap", ip, message)
        if self.on_ap:
            self.on_ap(True)

    def _close_lingering_ap(self):
        if self._ap_until is not None and time.ticks_diff(time.ticks_ms(), self._ap_until) < 0:
            return
        self._ap_until = None
        if self.radio.ap_active():
            self.radio.stop_ap()
            if self.on_ap:
                self.on_ap(False)

    async def run(self):
        s = self.settings
        backoff = 1
        while True:
            self._wake.clear()
            if not s["wifi_ssid"]:
                if self.state != "ap":
                    self._open_ap("no Wi-Fi configured: access point " + self.ap_name())
                await self._wake.wait()
                continue
            if self.radio.isconnected() and self.state == "connected" and not self._again:
                self._close_lingering_ap()
                await self._pause(1)
                if not self.radio.isconnected():
                    self._set("down", None, "lost " + s["wifi_ssid"] + ", reconnecting")
                continue
            self._again = False
            reason = await self._join()
            if reason is None:
                backoff = 1
                self.reason = None
                self.ssid = s["wifi_ssid"]
                self._close_lingering_ap()
                self._set("connected", self.radio.ip(),
                          "joined %s as %s.local" % (s["wifi_ssid"], s["hostname"]))
                continue
            self.radio.disconnect()
            told = reason == self.reason
            self.reason = reason
            message = "cannot join %s (%s)" % (s["wifi_ssid"], reason)
            if self.state != "ap":
                self._open_ap(message + ": access point " + self.ap_name())
            elif not told:
                self.status.report("wifi", message, {"state": self.state, "ip": self.ip,
                                                     "ssid": self.ssid, "reason": reason})
            await self._pause(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
