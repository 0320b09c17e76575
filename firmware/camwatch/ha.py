"""Home Assistant MQTT discovery: what the board is, as retained configs.

Each entity is one retained JSON message on
``homeassistant/<component>/<node_id>/<object_id>/config`` with a
``unique_id``, the ``device`` block (one device per board) and the
``availability_topic``, so Home Assistant builds the device by itself and
greys it out when the broker reports the board gone (its last will).
Imported by camwatch.mqtt only while it announces.
"""

import json

import camwatch

DISCOVERY_PREFIX = "homeassistant"

# (component, object_id, name, fields): topics in fields are relative to the
# board's prefix; templates read the retained JSON topics.
_TELEMETRY = "telemetry"
ENTITIES = (
    ("binary_sensor", "motion", "Motion",
     {"state_topic": "motion", "device_class": "motion", "payload_on": "ON",
      "payload_off": "OFF"}),
    ("sensor", "heap_free", "Free heap",
     {"state_topic": _TELEMETRY, "value_template": "{{ value_json.heap_free }}",
      "unit_of_measurement": "B", "device_class": "data_size", "state_class": "measurement",
      "entity_category": "diagnostic"}),
    ("sensor", "rssi", "Wi-Fi signal",
     {"state_topic": _TELEMETRY, "value_template": "{{ value_json.rssi }}",
      "unit_of_measurement": "dBm", "device_class": "signal_strength",
      "state_class": "measurement", "entity_category": "diagnostic"}),
    ("sensor", "temperature", "Chip temperature",
     {"state_topic": _TELEMETRY, "value_template": "{{ value_json.temperature }}",
      "unit_of_measurement": "\u00b0C", "device_class": "temperature",
      "state_class": "measurement", "entity_category": "diagnostic"}),
    ("sensor", "fps", "Detection rate",
     {"state_topic": _TELEMETRY, "value_template": "{{ value_json.fps }}",
      "unit_of_measurement": "fps", "state_class": "measurement",
      "entity_category": "diagnostic"}),
    ("sensor", "uptime", "Uptime",
     {"state_topic": _TELEMETRY, "value_template": "{{ value_json.uptime_s }}",
      "unit_of_measurement": "s", "device_class": "duration", "state_class": "total_increasing",
      "entity_category": "diagnostic"}),
    ("sensor", "streams", "Open streams",
     {"state_topic": _TELEMETRY, "value_template": "{{ value_json.clients }}",
      "state_class": "measurement", "entity_category": "diagnostic"}),
    ("image", "picture", "Motion picture",
     {"image_topic": "image"}),
    ("number", "sensitivity", "Sensitivity",
     {"state_topic": "state", "value_template": "{{ value_json.sensitivity }}",
      "command_topic": "set/sensitivity", "min": 1, "max": 100, "step": 1, "mode": "slider",
      "entity_category": "config"}),
    ("switch", "flash", "Flash LED",
     {"state_topic": "state", "value_template": "{{ value_json.flash }}",
      "command_topic": "set/flash", "payload_on": "ON", "payload_off": "OFF"}),
    ("switch", "image", "Send motion picture",
     {"state_topic": "state", "value_template": "{{ value_json.image }}",
      "command_topic": "set/image", "payload_on": "ON", "payload_off": "OFF",
      "entity_category": "config"}),
    ("button", "restart", "Restart",
     {"command_topic": "set/restart", "payload_press": "PRESS", "device_class": "restart",
      "entity_category": "config"}),
)
_TOPICS = ("state_topic", "command_topic", "image_topic")


def configs(mqtt, only=None):
    """Yield ``(topic, payload)`` for every entity (or the one whose
    object_id is ``only``), one at a time so only one config is in memory.

    :param mqtt: the camwatch.mqtt.Mqtt capability: its node id, prefix,
        app (board info, settings, dashboard URL) and picture content type.
    """
    app = mqtt.app
    node = mqtt.node
    prefix = mqtt.prefix()
    device = {
        "identifiers": [node],
        "name": app.settings["hostname"],
        "manufacturer": "camwatch",
        "model": app.board.info.get("name") or app.board.info.get("id"),
        "sw_version": camwatch.__version__,
        "configuration_url": app.url(),
    }
    for component, object_id, name, fields in ENTITIES:
        if only is not None and object_id != only:
            continue
        config = {"name": name, "unique_id": node + "_" + object_id,
                  "availability_topic": prefix + "/availability", "device": device}
        for key, value in fields.items():
            config[key] = prefix + "/" + value if key in _TOPICS else value
        if component == "image":
            config["content_type"] = mqtt.image_type
        if component in ("number", "switch", "button"):
            config["qos"] = 1
        yield ("%s/%s/%s/%s/config" % (DISCOVERY_PREFIX, component, node, object_id),
               json.dumps(config))
