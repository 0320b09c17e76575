# MQTT's parts on the MicroPython VM: the outbox's bound and drop order, the
# hub read as a cursor, SSE frames turned into MQTT payloads, discovery
# configs, and MQTT off costing no client.
import json
import sys

from ssehub import Hub, format_event

import camwatch.mqtt  # noqa: F401  (declares the settings, as the app does)
from camwatch.mqtt_bridge import Outbox, split_frame, with_id


def test_mqtt_off_loads_no_client():
    # camwatch.mqtt alone: the client and the session load only with a broker
    for name in ("chumicro_mqtt", "chumicro_mqtt.client", "chumicro_sockets"):
        assert name not in sys.modules, name


def _frame(event, n):
    return format_event({"n": n}, event, "b00t-%d" % n)


def test_outbox_drops_the_oldest_telemetry_first_and_counts():
    box = Outbox(4)
    box.push(_frame("motion", 1), False)
    box.push(_frame("telemetry", 2), True)
    box.push(_frame("status", 3), False)
    box.push(_frame("telemetry", 4), True)
    assert box.count == 4 and box.dropped == 0
    box.push(_frame("motion", 5), False)  # full: telemetry 2 goes
    box.push(_frame("telemetry", 6), True)  # full: telemetry 4 goes
    assert box.dropped == 2
    ids = []
    while box.count:
        ids.append(split_frame(box.pop())[1])
    assert ids == [b"b00t-1", b"b00t-3", b"b00t-5", b"b00t-6"]


def test_outbox_without_telemetry_drops_the_oldest_event():
    box = Outbox(2)
    for n in (1, 2, 3):
        box.push(_frame("motion", n), False)
    assert box.dropped == 1
    assert [split_frame(box.pop())[1], split_frame(box.pop())[1]] == [b"b00t-2", b"b00t-3"]
    assert box.peek() is None


def _id(frame):
    return split_frame(frame)[1]


def test_outbox_keeps_events_in_flight_until_acknowledged_and_resends_after_a_loss():
    box = Outbox(4)
    for n, kind in ((1, "telemetry"), (2, "motion"), (3, "telemetry")):
        box.push(_frame(kind, n), kind == "telemetry")
    sent = []
    for _ in range(2):
        sent.append(_id(box.unsent()))
        box.sent()
    assert sent == [b"b00t-1", b"b00t-2"] and box.inflight == 2
    box.ack()  # the broker has event 1
    assert box.count == 2 and _id(box.peek()) == b"b00t-2"
    box.resend()  # the connection went: event 2 was never acknowledged
    assert _id(box.unsent()) == b"b00t-2"
    box.sent()
    # full while 2 is in flight: the oldest telemetry *not* in flight goes
    box.push(_frame("status", 4), False)
    box.push(_frame("telemetry", 5), True)
    box.push(_frame("status", 6), False)
    assert box.dropped == 1 and box.inflight == 1
    box.ack()
    ids = []
    while box.unsent() is not None:
        ids.append(_id(box.unsent()))
        box.sent()
    assert ids == [b"b00t-4", b"b00t-5", b"b00t-6"]


def test_outbox_stays_bounded():
    box = Outbox(16)
    for n in range(1000):
        box.push(_frame("telemetry" if n % 3 else "motion", n), n % 3 != 0)
    assert box.count == 16
    assert box.dropped == 1000 - 16


def test_the_hub_read_as_a_cursor_with_what_was_lost():
    hub = Hub(size=8, max_clients=1)
    cursor = hub.seq
    assert hub.read(cursor) == (0, None, 0)
    for n in range(1, 4):
        hub.publish({"n": n}, event="motion")
    got = []
    while True:
        cursor, frame, lost = hub.read(cursor)
        if frame is None:
            break
        assert lost == 0
        got.append(json.loads(split_frame(frame)[2])["n"])
    assert got == [1, 2, 3] and cursor == 3
    for n in range(4, 24):  # 20 more in a ring of 8: 12 are gone
        hub.publish({"n": n}, event="motion")
    cursor, frame, lost = hub.read(cursor)
    assert lost == 12
    assert json.loads(split_frame(frame)[2])["n"] == 16
    assert cursor == 16


def test_frames_become_the_sse_json_with_the_id():
    frame = format_event({"phase": "start", "score": 7}, "motion", "a1b2c3-42")
    event, eid, data = split_frame(frame)
    assert (event, eid) == (b"motion", b"a1b2c3-42")
    body = json.loads(with_id(data, eid))
    assert body == {"id": "a1b2c3-42", "phase": "start", "score": 7}
    assert json.loads(with_id(b"{}", b"x-1")) == {"id": "x-1"}
    assert with_id(b"[1, 2]", b"x-1") == b"[1, 2]"  # not an object: as it is
    # a payload that spans lines (not ours, but the hub allows it)
    event, eid, data = split_frame(format_event("a\nb", "note", "x-2"))
    assert (event, eid, data) == (b"note", b"x-2", b"a\nb")
    event, eid, data = split_frame(format_event("plain"))
    assert (event, eid, data) == (b"", b"", b"plain")


class _Board:
    info = {"id": "vboard", "name": "Virtual board"}


class _Settings(dict):
    pass


class _App:
    board = _Board()
    settings = _Settings(hostname="cam1", mqtt_prefix="")

    def url(self):
        return "http://127.0.0.1:8080/"


class _Bridge:
    app = _App()
    node = "camwatch_0000000f1b0a"
    image_type = "image/jpeg"

    def prefix(self):
        return "camwatch/cam1"


def test_discovery_configs_name_the_device_and_its_topics():
    from camwatch.ha import configs

    seen = {}
    for topic, payload in configs(_Bridge()):
        seen[topic] = json.loads(payload)
    assert len(seen) == 12
    motion = seen["homeassistant/binary_sensor/camwatch_0000000f1b0a/motion/config"]
    assert motion["state_topic"] == "camwatch/cam1/motion"
    assert motion["availability_topic"] == "camwatch/cam1/availability"
    assert motion["unique_id"] == "camwatch_0000000f1b0a_motion"
    assert motion["device"]["identifiers"] == ["camwatch_0000000f1b0a"]
    assert motion["device"]["configuration_url"] == "http://127.0.0.1:8080/"
    ids = [c["unique_id"] for c in seen.values()]
    assert len(set(ids)) == len(ids)
    only = list(configs(_Bridge(), only="picture"))
    assert len(only) == 1 and json.loads(only[0][1])["content_type"] == "image/jpeg"
