"""The MQTT tests' tools: a real broker (tools.mosquitto.Broker, Debian
``mosquitto`` started per test on a free port) and a host client that
records what it sees (paho-mqtt).

Also: the rules a Home Assistant MQTT discovery config must follow, as
``discovery_problems()``, shared by the MQTT tests and the fleet test.
"""

import json
import os
import re
import threading
import time

import paho.mqtt.client as paho

from tools.mosquitto import Broker  # noqa: F401  (the tests import it from here)


class Message:
    def __init__(self, topic, payload, retain, at):
        self.topic, self.payload, self.retain, self.at = topic, payload, retain, at

    def text(self):
        return self.payload.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.payload)

    def __repr__(self):
        return "Message(%r, %r%s)" % (self.topic, self.payload[:80],
                                       ", retained" if self.retain else "")


class Watcher:
    """A host MQTT client subscribed to ``topics`` that keeps every message.

    ``wait(predicate)`` waits until some message satisfies it.
    """

    def __init__(self, broker, topics=("#",), user=None, password=None, name="watcher",
                 session=False):
        self.messages = []
        self._cond = threading.Condition()
        # session: a persistent session (named by ``name``), so the broker
        # queues what comes while this client is away, as for Home Assistant
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id="%s-%d" % (name, os.getpid()),
                                  clean_session=not session)
        if user:
            self.client.username_pw_set(user, password)
        self._topics = topics
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("the watcher could not subscribe")

    def _on_connect(self, client, userdata, flags, reason, properties):
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client, userdata, msg):
        with self._cond:
            self.messages.append(Message(msg.topic, msg.payload, msg.retain, time.monotonic()))
            self._cond.notify_all()

    def publish(self, topic, payload, retain=False):
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def wait(self, predicate, timeout=30, what="a message", start=0):
        """The first message after index ``start`` that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.messages):
                    if predicate(self.messages[i]):
                        return self.messages[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "\n".join(repr(m) for m in self.messages[-15:])
                    raise TimeoutError("%s did not come within %ss; last messages:\n%s"
                                       % (what, timeout, seen or "(none)"))
                self._cond.wait(left)

    def topic(self, topic, timeout=30, start=0, payload=None):
        """The first message on ``topic`` (with ``payload``, if given)."""
        return self.wait(lambda m: m.topic == topic and (payload is None or m.payload == payload),
                         timeout, "%s %s" % (topic, payload or ""), start)

    def on(self, topic):
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def mark(self):
        with self._cond:
            return len(self.messages)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


# -- Home Assistant MQTT discovery ---------------------------------------------

DISCOVERY_TOPIC = re.compile(r"^homeassistant/([a-z_]+)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/config$")
# what each platform cannot do without (Home Assistant's MQTT integration docs)
REQUIRED = {
    "binary_sensor": ["state_topic"],
    "sensor": ["state_topic"],
    "number": ["command_topic"],
    "switch": ["command_topic"],
    "button": ["command_topic"],
    "image": ["image_topic"],
}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "sw_version",
               "hw_version", "configuration_url", "suggested_area", "via_device",
               "model_id", "serial_number"}


def discovery_problems(topic, config, topics_seen, prefix):
    """What is wrong with one discovery config by Home Assistant's rules:
    the topic's shape, required keys, unique_id, a device block that names
    the device, an availability topic, and that every state and
    availability topic it names is one the board publishes (``topics_seen``)
    and every command topic is under ``<prefix>/set/``. [] when valid."""
    problems = []
    m = DISCOVERY_TOPIC.match(topic)
    if not m:
        return ["topic %r is not homeassistant/<component>/<node_id>/<object_id>/config" % topic]
    component = m.group(1)
    if component not in REQUIRED:
        problems.append("unexpected component %r" % component)
    for key in REQUIRED.get(component, []):
        if not config.get(key):
            problems.append("%s: %s is required" % (topic, key))
    if not isinstance(config.get("unique_id"), str) or not config["unique_id"]:
        problems.append("%s: no unique_id" % topic)
    device = config.get("device")
    if not isinstance(device, dict):
        problems.append("%s: no device block" % topic)
    else:
        if not (device.get("identifiers") or device.get("connections")):
            problems.append("%s: the device block needs identifiers or connections" % topic)
        unknown = set(device) - DEVICE_KEYS
        if unknown:
            problems.append("%s: unknown device keys %s" % (topic, sorted(unknown)))
        for key in ("name", "model", "sw_version", "configuration_url"):
            if not device.get(key):
                problems.append("%s: device.%s missing" % (topic, key))
    if not config.get("availability_topic"):
        problems.append("%s: no availability_topic" % topic)
    for key in ("state_topic", "availability_topic", "image_topic"):
        t = config.get(key)
        if t and t not in topics_seen:
            problems.append("%s: %s %r is never published" % (topic, key, t))
    t = config.get("command_topic")
    if t and not t.startswith(prefix + "/set/"):
        problems.append("%s: command_topic %r is not under %s/set/" % (topic, t, prefix))
    return problems
