"""The virtual board: the MicroPython unix port standing in for an ESP32.

Settings that only make sense on the host come from environment variables set
by ``python -m tools run`` / ``tools.vboard.VirtualBoard``:

- ``CAMWATCH_HTTP_PORT``: TCP port to serve on (overrides the settings file).
- ``CAMWATCH_HOST``: address to bind (127.0.0.1 unless the user asked for LAN).
- ``CAMWATCH_SCENE``: the simulated camera's scenario (default "default").
- ``CAMWATCH_ID``: the board's unique id (a real board's is its MAC), so
  several virtual boards on one broker are told apart.

- ``CAMWATCH_FRESH``: "1" for a board straight from the box: no Wi-Fi
  network preset (``make run FRESH=1``), so it opens its access point.
- ``CAMWATCH_DNS_PORT``: UDP port of the captive portal's DNS responder
  (a real board uses 53, which needs root here; default 5353).
- ``CAMWATCH_SD``: a host file standing in for a microSD card (a FAT image,
  ``camwatch.board.vsd``): set, the board has a slot; the file there is
  the card in it, gone is the card pulled out.
- ``CAMWATCH_CLAIM_WINDOW_S``: how long after boot an unclaimed board takes
  an admin password from any client (default 600, as on a real board).

The host can make the fake Wi-Fi drop: while the file ``.vboard/wifi-down``
exists in the flash folder, the station is disconnected. While
``.vboard/ntp-down`` exists, NTP servers do not answer.

The fake radio's neighbourhood is ``.vboard/wlan.json`` if the host wrote
one (a list of ``{"ssid", "rssi", "password"}``; an empty password is an
open network), else "camwatch-lab" (open), "Upstairs" (password "correct
horse") and "Cafe guest" (open). Joining a network not in the list fails as
"network not found", a wrong password as "wrong password".
"""

import os
import time

WIFI_DOWN_FILE = ".vboard/wifi-down"
NTP_DOWN_FILE = ".vboard/ntp-down"
WLAN_FILE = ".vboard/wlan.json"
JOIN_MS = 300  # how long a join takes before its result is known


class WiFi:
    """A fake radio with the shape of the ESP32's ``network.WLAN`` use."""

    def __init__(self, host):
        self.host = host
        self._ssid = None
        self._ap = None
        self._failure = None
        self._since = 0

    def _networks(self):
        try:
            import json

            with open(WLAN_FILE) as f:
                return json.load(f)
        except (OSError, ValueError):
            # the simulated LAN ("camwatch-lab", open) and two neighbours
            return [
                {"ssid": "camwatch-lab", "rssi": -52, "password": ""},
                {"ssid": "Upstairs", "rssi": -71, "password": "correct horse"},
                {"ssid": "Cafe guest", "rssi": -84, "password": ""},
            ]

    def scan(self):
        """Networks in reach: a list of ``(ssid, rssi, secured)``."""
        return [(n["ssid"], n["rssi"], bool(n["password"])) for n in self._networks()]

    def mac_suffix(self):
        return "0v1b"

    def _dropped(self):
        try:
            os.stat(WIFI_DOWN_FILE)
            return True
        except OSError:
            return False

    def connect(self, ssid, password, hostname):
        self._ssid = None
        self._failure = "network not found"
        for n in self._networks():
            if n["ssid"] == ssid:
                if n["password"] and n["password"] != password:
                    self._failure = "wrong password"
                else:
                    self._ssid = ssid
                    self._failure = None
        self._since = time.ticks_ms()

    def disconnect(self):
        self._ssid = None

    def _settled(self):
        return time.ticks_diff(time.ticks_ms(), self._since) >= JOIN_MS

    def isconnected(self):
        return self._ssid is not None and not self._dropped() and self._settled()

    def failure(self):
        """Why the last join failed ("wrong password", "network not found"),
        or None while it is under way or when it did not fail."""
        return self._failure if self._settled() else None

    def ip(self):
        return self.host if self.isconnected() else None

    def rssi(self):
        if not self.isconnected():
            return None
        # a plausible, slowly wandering signal
        return -55 + (time.ticks_ms() // 7000) % 7 - 3

    def start_ap(self, essid, password):
        self._ap = essid
        return self.host

    def stop_ap(self):
        self._ap = None

    def ap_active(self):
        return self._ap is not None

    def ap_ip(self):
        return self.host if self._ap is not None else None


class Board:
    platform = "virtual"
    # the virtual board joins a simulated LAN by default, the common path
    settings_overrides = {"wifi_ssid": "camwatch-lab", "http_port": 8080}
    # a stream's socket send buffer, about lwIP's on the ESP32 (TCP_SND_BUF
    # 5744 bytes) instead of Linux's, which grows to megabytes: a client
    # that stops reading is noticed after as little data as on a board
    stream_sndbuf = 4096

    def __init__(self, info):
        self.info = info
        host = os.getenv("CAMWATCH_HOST") or "127.0.0.1"
        self.host = "127.0.0.1" if host == "0.0.0.0" else host
        self.bind_host = host
        self.wifi = WiFi(self.host)
        self.scene = os.getenv("CAMWATCH_SCENE") or "default"
        if os.getenv("CAMWATCH_FRESH") == "1":
            self.settings_overrides = {"http_port": 8080}
        self.claim_window_s = int(os.getenv("CAMWATCH_CLAIM_WINDOW_S") or 600)
        self._flash = False  # the flash LED: the virtual camera sees it

    def dns_bind(self):
        """(host, port) the captive portal's DNS responder listens on."""
        return (self.bind_host, int(os.getenv("CAMWATCH_DNS_PORT") or 5353))

    def http_bind(self, port):
        """(host, port) the web server listens on; ``port`` is from settings."""
        env_port = os.getenv("CAMWATCH_HTTP_PORT")
        return (self.bind_host, int(env_port) if env_port else port)

    def camera(self):
        """The simulated camera (raises OSError if it cannot start)."""
        from camwatch.board.scenes import SceneCamera
        from camwatch.board.vcamera import Camera

        # real time: a camera created again after an error carries on the
        # same scene timeline instead of starting it over
        return Camera(SceneCamera(self.scene, clock=time.ticks_ms), lambda: self._flash)

    def has_sd(self):
        """Whether the board has a microSD slot: ``CAMWATCH_SD`` names one."""
        return bool(os.getenv("CAMWATCH_SD"))

    def sd_mount(self):
        """Mount the card (the ``CAMWATCH_SD`` image) at /sd; OSError when
        there is none or it does not mount."""
        from camwatch.board import vsd

        vsd.mount(os.getenv("CAMWATCH_SD"), "/sd")
        return "/sd"

    def sd_unmount(self):
        import vfs

        vfs.umount("/sd")

    def reset_cause(self):
        return "soft"

    def temperature(self):
        """A plausible chip temperature in degrees C that drifts slowly."""
        return 41.0 + ((time.ticks_ms() // 5000) % 9) * 0.25

    def heap_largest_free(self):
        return None  # not measurable on the unix port

    def start_watchdog(self, timeout_ms):
        pass

    def feed_watchdog(self):
        pass

    def unique_id(self):
        return os.getenv("CAMWATCH_ID") or "0000000f1b0a"

    def restart(self):
        """The VM ends (SIGTERM from a shell it starts: $PPID is the VM) and
        the supervisor (tools.vboard) starts it again, as after a reset:
        boot.py, then main.py. SystemExit would only drop into the REPL."""
        os.system("kill -TERM $PPID")
        time.sleep_ms(1000)  # the signal ends the process before this does

    def set_time(self, server):
        """The VM's clock is the host's, which the host keeps right: there
        is nothing to set. Raises OSError, as an unanswered NTP query does,
        while ``.vboard/ntp-down`` exists."""
        try:
            os.stat(NTP_DOWN_FILE)
        except OSError:
            return
        raise OSError(110)  # ETIMEDOUT

    def led(self, name, on):
        if name == "flash":
            self._flash = bool(on)
