"""MQTT: the board's events on a broker, Home Assistant discovery, commands.

Off while ``mqtt_host`` is empty, and then this small module is all MQTT
costs: the session (camwatch.mqtt_bridge) and the client it runs (PyPI
``chumicro-mqtt``, built into the image like Microdot) are imported only
when a broker is set. Changing a setting starts a new connection; no
restart needed.

Topics, under ``mqtt_prefix`` (default ``camwatch/<hostname>``):

- ``availability``: ``online`` / ``offline`` (retained; ``offline`` is also
  the last will, so the broker says it when the board vanishes);
- ``motion``: ``ON`` / ``OFF`` (retained);
- ``event/<name>``: every event the streams get, the SSE event's JSON with
  its ``id`` added (QoS 1);
- ``telemetry``: the latest telemetry (retained);
- ``image``: the picture at motion start (retained, when ``mqtt_image``);
- ``state``: what can be set over MQTT (retained JSON);
- ``set/<name>``: commands, one of ``COMMANDS``;

plus Home Assistant discovery configs (camwatch.ha) when ``ha_discovery``.
One socket: the "1 MQTT" of the ESP32's 10 (ARCHITECTURE.md).
"""

import asyncio
import gc

from camwatch import settings as settings_module

settings_module.declare({
    "mqtt_host": ("str", 0, 64, ""),
    "mqtt_port": ("int", 1, 65535, 1883),
    "mqtt_user": ("str", 0, 64, ""),
    "mqtt_password": ("str", 0, 64, ""),
    "mqtt_prefix": ("str", 0, 64, ""),
    "ha_discovery": ("bool", 0, 1, True),
    "mqtt_image": ("bool", 0, 1, True),
}, secrets=("mqtt_password",))

# Changing one of these starts a new session (a new connection).
SESSION_KEYS = ("mqtt_host", "mqtt_port", "mqtt_user", "mqtt_password", "mqtt_prefix",
                "hostname")
# What may be set over MQTT (``<prefix>/set/<name>``) without the admin
# password, the broker's ACLs being the guard: detection sensitivity, the
# flash LED, sending pictures, a restart. Nothing that could cut the board
# off its network (Wi-Fi, MQTT, ports, host name) and never a secret.
COMMANDS = ("sensitivity", "flash", "image", "restart")


class Mqtt:
    """The MQTT capability: ``app.add(Mqtt(app))``.

    :param app: the App; the bridge uses its hub, settings, status, board,
        camera and ``apply_settings``; telemetry gets MQTT's counters.
    """

    def __init__(self, app):
        self.app = app
        self.settings = app.settings
        self.node = "camwatch_" + app.board.unique_id()
        self.bridge = None  # camwatch.mqtt_bridge.Bridge while a broker is set
        self._wake = asyncio.Event()
        app.telemetry.sources.append(self.telemetry_fields)

    @property
    def state(self):
        """``off``, or the bridge's: connecting, connected, down, refused, error."""
        return "off" if self.bridge is None else self.bridge.state

    def telemetry_fields(self, data):
        bridge = self.bridge
        if bridge is not None:
            data["mqtt"] = bridge.state
            data["mqtt_sent"] = bridge.sent
            data["mqtt_dropped"] = bridge.dropped()

    def settings_changed(self, changed):
        if self.bridge is not None:
            self.bridge.settings_changed(changed)
        self._wake.set()

    async def run(self):
        while True:
            if not self.settings["mqtt_host"]:
                if self.bridge is not None:
                    self.bridge = None
                    gc.collect()
                    self.app.status.report("mqtt", "MQTT off", {"mqtt": "off"})
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.bridge is None:
                from camwatch.mqtt_bridge import Bridge

                self.bridge = Bridge(self.app, self.node)
            try:
                await self.bridge.session()
            except Exception as exc:  # a bug there must not end MQTT for good
                self.bridge.fault(exc)
                await asyncio.sleep(10)
