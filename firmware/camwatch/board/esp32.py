"""The ESP32 board layer: camera, WLAN, watchdog, LEDs on real hardware."""


import esp32
import machine
import network


# network.WLAN.status() codes of a join that failed, by what to tell a
# person (names as the esp32 port defines them; not every build has each)
_FAILURES = (
    ("STAT_WRONG_PASSWORD", "wrong password"),
    ("STAT_NO_AP_FOUND", "network not found"),
    ("STAT_HANDSHAKE_TIMEOUT", "wrong password"),  # what a wrong WPA2 key often gives
    ("STAT_ASSOC_FAIL", "the network refused the board"),
    ("STAT_BEACON_TIMEOUT", "the network stopped answering"),
    ("STAT_CONNECT_FAIL", "could not connect"),
)
# ESP-IDF >= 5.2 reasons WLAN.status() passes through with no STAT_ name;
# MicroPython reports every other reason as STAT_CONNECTING while it retries
_IDF_FAILURES = (
    (210, "network not found (none with a security mode the board supports)"),
    (211, "network not found (none with a security mode the board supports)"),
    (212, "the network's signal is too weak here"),
)


class WiFi:
    """Station and access point through ``network.WLAN``."""

    def __init__(self):
        self.sta = network.WLAN(network.STA_IF)
        self.ap = network.WLAN(network.AP_IF)

    def mac_suffix(self):
        mac = self.sta.config("mac")
        return "%02x%02x" % (mac[-2], mac[-1])

    def connect(self, ssid, password, hostname):
        try:
            network.hostname(hostname)  # mDNS name, answered in station mode
        except (AttributeError, ValueError):
            pass
        self.sta.active(True)
        try:
            self.sta.disconnect()
        except OSError:
            pass
        self.sta.connect(ssid, password)

    def disconnect(self):
        try:
            self.sta.disconnect()
        except OSError:
            pass

    def isconnected(self):
        return self.sta.isconnected()

    def failure(self):
        """Why the last join failed ("wrong password", "network not found",
        ...), or None while it is under way or when it did not fail."""
        try:
            code = self.sta.status()
        except OSError:
            return None
        for name, reason in _FAILURES:
            if code == getattr(network, name, None):
                return reason
        for number, reason in _IDF_FAILURES:
            if code == number:
                return reason
        return None

    def scan(self):
        """Networks in reach: a list of ``(ssid, rssi, secured)``, hidden
        ones left out. Blocks for the scan (about 2 s); the station is
        switched on for it, beside a running access point."""
        self.sta.active(True)
        found = []
        for entry in self.sta.scan():  # (ssid, bssid, channel, rssi, authmode, hidden)
            try:
                name = entry[0].decode()
            except UnicodeError:
                continue
            if name and not entry[5]:
                found.append((name, entry[3], entry[4] != 0))
        return found

    def ip(self):
        return self.sta.ifconfig()[0]

    def rssi(self):
        try:
            return self.sta.status("rssi") if self.sta.isconnected() else None
        except (OSError, ValueError):
            return None

    def start_ap(self, essid, password):
        self.ap.active(True)
        if password:
            self.ap.config(essid=essid, password=password, authmode=network.AUTH_WPA2_PSK)
        else:
            self.ap.config(essid=essid, authmode=network.AUTH_OPEN)
        return self.ap.ifconfig()[0]

    def stop_ap(self):
        self.ap.active(False)

    def ap_active(self):
        return self.ap.active()

    def ap_ip(self):
        return self.ap.ifconfig()[0] if self.ap.active() else None


class Board:
    platform = "esp32"
    claim_window_s = 600  # an unclaimed board takes an admin password this long after boot
    stream_sndbuf = None  # lwIP's own small send buffer (TCP_SND_BUF) is kept

    def __init__(self, info):
        self.info = info
        # Detection decodes a JPEG per frame (ARCHITECTURE.md, "Pictures"):
        # about 41-82 ms at QVGA on the original ESP32, so 5 frames a second
        # by default there; the S3 keeps the app's 10.
        self.settings_overrides = {"fps_max": 5} if info.get("chip") == "esp32" else {}
        self.wifi = WiFi()
        self._wdt = None
        self._sd = None
        self._leds = {}
        for name, led in (info.get("leds") or {}).items():
            self._leds[name] = (machine.Pin(led["pin"], machine.Pin.OUT), led["active_high"])
            self.led(name, False)

    # -- the microSD card (boards.json "sd": the SDMMC slot and bus width) --

    def has_sd(self):
        """Whether the board has a microSD slot."""
        return "sd" in self.info

    def sd_mount(self):
        """Mount the card at /sd and return "/sd"; OSError when there is no
        card or it does not mount. 1-bit mode on the AI-Thinker keeps GPIO4
        (the flash LED, DATA1 in 4-bit mode) and GPIO12/13 free."""
        import os

        sd = self.info["sd"]
        try:
            card = machine.SDCard(slot=sd["slot"], width=sd["width"])
        except (OSError, ValueError) as exc:
            raise OSError(19, "microSD: %s" % exc)  # ENODEV
        try:
            os.mount(card, "/sd")
        except OSError:
            card.deinit()
            raise
        self._sd = card
        return "/sd"

    def sd_unmount(self):
        import os

        try:
            os.umount("/sd")
        finally:
            card, self._sd = self._sd, None
            if card is not None:
                card.deinit()

    def http_bind(self, port):
        return ("0.0.0.0", port)

    def dns_bind(self):
        """(host, port) the captive portal's DNS responder listens on."""
        return ("0.0.0.0", 53)

    def camera(self):
        """The board's camera (raises OSError when it does not answer)."""
        from camwatch.board.esp32_camera import Camera

        return Camera(self.info["camera"])

    def reset_cause(self):
        causes = {
            machine.PWRON_RESET: "power-on",
            machine.HARD_RESET: "hard",
            machine.WDT_RESET: "watchdog",
            machine.DEEPSLEEP_RESET: "deepsleep",
            machine.SOFT_RESET: "soft",
        }
        return causes.get(machine.reset_cause(), "unknown")

    def temperature(self):
        """Chip temperature: degrees C on the S3; the raw sensor value (degrees
        F, uncalibrated) on the original ESP32, where that is all there is."""
        if hasattr(esp32, "mcu_temperature"):
            return esp32.mcu_temperature()
        if hasattr(esp32, "raw_temperature"):
            return esp32.raw_temperature()
        return None

    def heap_largest_free(self):
        """Largest free block of the IDF data heaps (the MicroPython heap has
        no such figure)."""
        try:
            return max(h[2] for h in esp32.idf_heap_info(esp32.HEAP_DATA))
        except (AttributeError, ValueError):
            return None

    def start_watchdog(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed_watchdog(self):
        if self._wdt is not None:
            self._wdt.feed()

    def unique_id(self):
        """The chip's unique id (its MAC) as hex: names the board on a broker."""
        return "".join("%02x" % b for b in machine.unique_id())

    def restart(self):
        """Reset the chip, as the reset button does."""
        machine.reset()

    def set_time(self, server):
        """Set the clock (the RTC, UTC) from the NTP server ``server``, a
        name or an address. Blocks up to a second for the answer; raises
        OSError when there is none (or the name does not resolve)."""
        import ntptime  # frozen into MicroPython's ESP32 firmware

        ntptime.host = server
        ntptime.timeout = 1
        ntptime.settime()

    def led(self, name, on):
        pin = self._leds.get(name)
        if pin is not None:
            pin[0].value(1 if on == pin[1] else 0)
