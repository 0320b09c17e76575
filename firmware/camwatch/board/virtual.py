"""The virtual board: the MicroPython unix port standing in for an ESP32.

Settings that only make sense on the host come from environment variables set
by ``python -m tools run`` / ``tools.vboard.VirtualBoard``:

- ``CAMWATCH_HTTP_PORT``: TCP port to serve on (overrides the settings file).
- ``CAMWATCH_HOST``: address to bind (127.0.0.1 unless the user asked for LAN).
- ``CAMWATCH_SCENE``: the simulated camera's scenario (default "default").
- ``CAMWATCH_ID``: the board's unique id (a real board's is its MAC), so
  several virtual boards on one broker are told apart.

The host can make the fake Wi-Fi drop: while the file ``.vboard/wifi-down``
exists in the flash folder, the station is disconnected. While
``.vboard/ntp-down`` exists, NTP servers do not answer.
"""

import os
import time

WIFI_DOWN_FILE = ".vboard/wifi-down"
NTP_DOWN_FILE = ".vboard/ntp-down"


class WiFi:
    """A fake radio with the shape of the ESP32's ``network.WLAN`` use."""

    def __init__(self, host):
        self.host = host
        self._ssid = None
        self._ap = None

    def mac_suffix(self):
        return "0v1b"

    def _dropped(self):
        try:
            os.stat(WIFI_DOWN_FILE)
            return True
        except OSError:
            return False

    def connect(self, ssid, password, hostname):
        self._ssid = ssid

    def disconnect(self):
        self._ssid = None

    def isconnected(self):
        return self._ssid is not None and not self._dropped()

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


class Board:
    platform = "virtual"
    # the virtual board joins a simulated LAN by default, the common path
    settings_overrides = {"wifi_ssid": "camwatch-lab", "http_port": 8080}

    def __init__(self, info):
        self.info = info
        host = os.getenv("CAMWATCH_HOST") or "127.0.0.1"
        self.host = "127.0.0.1" if host == "0.0.0.0" else host
        self.bind_host = host
        self.wifi = WiFi(self.host)
        self.scene = os.getenv("CAMWATCH_SCENE") or "default"

    def http_bind(self, port):
        """(host, port) the web server listens on; ``port`` is from settings."""
        env_port = os.getenv("CAMWATCH_HTTP_PORT")
        return (self.bind_host, int(env_port) if env_port else port)

    def camera(self):
        """The simulated camera (raises OSError if it cannot start)."""
        from camwatch.board.scenes import SceneCamera

        # real time: a camera created again after an error carries on the
        # same scene timeline instead of starting it over
        return SceneCamera(self.scene, clock=time.ticks_ms)

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
        pass
