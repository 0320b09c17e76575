"""The virtual board: the MicroPython unix port standing in for an ESP32.

Settings that only make sense on the host come from environment variables set
by ``python -m tools vboard``:

- ``CAMWATCH_HTTP_PORT``: TCP port to serve on (overrides the settings file).
- ``CAMWATCH_HOST``: address to bind (127.0.0.1 unless the user asked for LAN).
"""

import os
import time


class Board:
    platform = "virtual"

    def __init__(self, info):
        self.info = info
        self._boot_ms = time.ticks_ms()

    def http_bind(self, port):
        """(host, port) the web server listens on; ``port`` is from settings."""
        env_port = os.getenv("CAMWATCH_HTTP_PORT")
        return (os.getenv("CAMWATCH_HOST") or "127.0.0.1", int(env_port) if env_port else port)

    def address(self):
        """The address a browser uses to reach this board."""
        host = os.getenv("CAMWATCH_HOST") or "127.0.0.1"
        return "127.0.0.1" if host == "0.0.0.0" else host

    def reset_cause(self):
        return "soft"
