"""Wi-Fi: station mode with reconnect and backoff, else the board's own AP.

With an SSID configured the board joins it (mDNS hostname from settings). If
it cannot join within ``wifi_timeout_s`` it also opens an access point named
``camwatch-XXXX`` (from the MAC) so a phone can still reach it, and keeps
retrying the station with backoff. Without an SSID it is an access point only.
"""

import asyncio

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
    """

    def __init__(self, board, settings, status, on_change):
        self.radio = board.wifi
        self.settings = settings
        self.status = status
        self.on_change = on_change
        self.state = "down"
        self.ip = None
        self.ssid = None

    def ap_name(self):
        return "camwatch-" + self.radio.mac_suffix()

    def _set(self, state, ip, message):
        if state == self.state and ip == self.ip:
            return
        was_up = self.state != "down"
        self.state, self.ip = state, ip
        self.status.report("wifi", message, {"state": state, "ip": ip, "ssid": self.ssid})
        if was_up != (state != "down"):
            self.on_change(state != "down")

    async def _join(self):
        """Try to join the configured network once; True when joined."""
        s = self.settings
        self.radio.connect(s["wifi_ssid"], s["wifi_password"], s["hostname"])
        for _ in range(s["wifi_timeout_s"] * 4):
            if self.radio.isconnected():
                return True
            await asyncio.sleep_ms(250)
        return False

    async def run(self):
        s = self.settings
        if not s["wifi_ssid"]:
            self.ssid = self.ap_name()
            self._set("ap", self.radio.start_ap(self.ssid, s["ap_password"]),
                      "no Wi-Fi configured: access point " + self.ssid)
            return
        backoff = 1
        while True:
            if not self.radio.isconnected():
                self.ssid = s["wifi_ssid"]
                if await self._join():
                    backoff = 1
                    if self.radio.ap_active():
                        self.radio.stop_ap()
                    self._set("connected", self.radio.ip(),
                              "joined %s as %s.local" % (s["wifi_ssid"], s["hostname"]))
                else:
                    self.radio.disconnect()
                    if not self.radio.ap_active():
                        self.ssid = self.ap_name()
                        ip = self.radio.start_ap(self.ssid, s["ap_password"])
                        self._set("ap", ip, "cannot join %s: access point %s"
                                  % (s["wifi_ssid"], self.ssid))
                    elif self.state != "ap":
                        self._set("down", None, "cannot join " + s["wifi_ssid"])
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    continue
            await asyncio.sleep(1)
            if not self.radio.isconnected():
                self._set("down", None, "lost " + s["wifi_ssid"] + ", reconnecting")
