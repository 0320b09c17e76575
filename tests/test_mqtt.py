"""MQTT on the virtual board against a real broker (Debian mosquitto, one per
test on a free port), checked from the host with paho-mqtt: topics and
payloads, retained state and Home Assistant discovery, the last will,
reconnecting, refused credentials, commands, and the board serving its page
whatever the broker does."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import board_flash, free_port, romfs_image, write_settings
from mqtt_broker import Broker, Watcher, discovery_problems
from sse_client import Stream, connect, id_number
from tools import ROOT
from tools.vboard import VirtualBoard

PREFIX = "camwatch/cam1"
PASSWORD = "s3cret"


def get(vb, path):
    try:
        with urllib.request.urlopen(vb.url + path, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def post_settings(vb, settings):
    req = urllib.request.Request(vb.url + "api/settings",
                                 data=json.dumps({"password": PASSWORD,
                                                  "settings": settings}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def start_board(vboard_fs, tmp_path):
    """start_board(**settings): a virtual board with these settings, named
    cam1; stopped after the test."""
    boards = []

    def start(scene=None, **settings):
        flash = tmp_path / ("flash%d" % len(boards))
        board_flash(flash)
        values = dict(admin_password=PASSWORD, hostname="cam1", telemetry_s=1)
        values.update(settings)
        write_settings(flash, **values)
        vb = VirtualBoard(str(flash), str(tmp_path / ("tty%d" % len(boards))),
                          http_port=free_port(), romfs=romfs_image(),
                          env={"CAMWATCH_SCENE": scene} if scene else None)
        boards.append(vb)
        vb.start()
        vb.wait_http(timeout=30)
        return vb

    yield start
    for vb in boards:
        vb.stop()


def mqtt_settings(broker, **more):
    values = dict(mqtt_host="127.0.0.1", mqtt_port=broker.port)
    values.update(more)
    return values


def assert_alive(vb):
    assert get(vb, "api/status")[0] == 200
    console = vb.console()
    assert "Traceback" not in console and "MemoryError" not in console, console[-2000:]


def test_topics_payloads_retained_state_and_discovery(broker, start_board):
    watch = Watcher(broker)
    vb = start_board(**mqtt_settings(broker))
    watch.topic(PREFIX + "/availability", payload=b"online")
    # every event, with the SSE event's JSON plus its id, in order
    boot = watch.wait(lambda m: m.topic == PREFIX + "/event/status" and m.json()["kind"] == "boot",
                      what="the boot status event")
    assert id_number(boot.json()["id"]) == 1  # read from the ring: nothing lost before connecting
    tele = watch.topic(PREFIX + "/event/telemetry").json()
    for key in ("uptime_s", "heap_free", "rssi", "temperature", "fps", "clients", "mqtt",
                "mqtt_dropped"):
        assert key in tele, key
    assert tele["mqtt"] == "connected"
    watch.topic(PREFIX + "/telemetry")
    start = watch.wait(lambda m: m.topic == PREFIX + "/event/motion"
                       and m.json()["phase"] == "start", timeout=30, what="a motion start")
    assert set(start.json()) >= {"id", "phase", "score", "bbox", "blocks", "frame", "t"}
    watch.topic(PREFIX + "/motion", payload=b"ON")
    picture = watch.topic(PREFIX + "/image", timeout=10)
    # the camera's picture as /snapshot serves it: a JPEG of the frame size
    from io import BytesIO

    from PIL import Image

    assert picture.payload[:2] == b"\xff\xd8" and picture.payload[-2:] == b"\xff\xd9"
    assert Image.open(BytesIO(picture.payload)).size == (160, 120)
    watch.wait(lambda m: m.topic == PREFIX + "/event/motion" and m.json()["phase"] == "end",
               timeout=30, what="a motion end")
    watch.topic(PREFIX + "/motion", payload=b"OFF")
    # the same events, in the same order, as an /events stream gets them
    with Stream(vb.url) as stream:
        sse = [stream.next(timeout=10) for _ in range(4)]
    mq = {m.json()["id"]: m for m in watch.messages if "/event/" in m.topic}
    for ev in sse:
        m = watch.wait(lambda m: "/event/" in m.topic and m.json()["id"] == ev.id, timeout=10,
                       what="event %s on MQTT" % ev.id)
        assert m.topic == PREFIX + "/event/" + ev.event
        body = m.json()
        del body["id"]
        assert body == json.loads(ev.data)
    ids = [id_number(m.json()["id"]) for m in watch.messages if "/event/" in m.topic]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "ids out of order or with gaps"
    assert mq
    # a client that subscribes now gets the retained state and discovery
    late = Watcher(broker, name="late")
    try:
        late.topic(PREFIX + "/availability", payload=b"online", timeout=5)
        for topic in (PREFIX + "/availability", PREFIX + "/telemetry", PREFIX + "/motion",
                      PREFIX + "/state", PREFIX + "/image"):
            m = late.topic(topic, timeout=5)
            assert m.retain, topic
        configs = late.wait(lambda m: m.topic.startswith("homeassistant/"), timeout=5)
        assert configs.retain
        time.sleep(0.5)
        discovery = {m.topic: m.json() for m in late.messages
                     if m.topic.startswith("homeassistant/")}
    finally:
        late.close()
    seen = {m.topic for m in watch.messages}
    problems = []
    for topic, config in discovery.items():
        problems += discovery_problems(topic, config, seen, PREFIX)
    assert not problems, "\n".join(problems)
    kinds = sorted(t.split("/")[1] for t in discovery)
    assert kinds.count("sensor") == 6
    for component in ("binary_sensor", "image", "number", "switch", "button"):
        assert component in kinds
    motion = [c for t, c in discovery.items() if t.startswith("homeassistant/binary_sensor/")][0]
    assert motion["device_class"] == "motion"
    assert motion["device"]["model"] == "Virtual board (MicroPython unix VM on this host)"
    assert motion["device"]["configuration_url"] == vb.url
    rssi = [c for t, c in discovery.items() if t.endswith("/rssi/config")][0]
    assert rssi["device_class"] == "signal_strength" and rssi["unit_of_measurement"] == "dBm"
    # discovery turned off: an empty retained config removes each entity
    mark = watch.mark()
    assert post_settings(vb, {"ha_discovery": False})[0] == 200
    for topic in discovery:
        watch.wait(lambda m: m.topic == topic and m.payload == b"", start=mark, timeout=30,
                   what="%s emptied" % topic)
    watch.close()
    late = Watcher(broker, topics=("homeassistant/#", PREFIX + "/availability"), name="later")
    try:
        late.topic(PREFIX + "/availability", timeout=5)  # retained messages have come
        time.sleep(0.5)
        assert not [m for m in late.messages if m.topic.startswith("homeassistant/")]
    finally:
        late.close()
    assert_alive(vb)


def test_last_will_says_offline_when_the_board_dies(broker, start_board):
    watch = Watcher(broker)
    vb = start_board(**mqtt_settings(broker, ha_discovery=False))
    watch.topic(PREFIX + "/availability", payload=b"online")
    mark = watch.mark()
    os.killpg(vb._proc.pid, signal.SIGKILL)  # no goodbye: the broker must say it
    # the broker sees the socket close at once (a board that loses power is
    # given up after 1.5x the 30 s keep-alive); generous for a loaded machine
    watch.topic(PREFIX + "/availability", payload=b"offline", start=mark, timeout=60)
    late = Watcher(broker, name="late")
    try:
        assert late.topic(PREFIX + "/availability", timeout=5).payload == b"offline"
    finally:
        late.close()
    watch.close()


@pytest.fixture
def persistent_broker(tmp_path):
    b = Broker(tmp_path / "broker", persistent=True)
    b.start()
    yield b
    b.stop()


def test_reconnects_after_the_broker_restarts_and_drops_telemetry_first(persistent_broker,
                                                                        start_board):
    # a still scene: what piles up while the broker is away is telemetry
    # (one a second) and the board's own status. The broker keeps the
    # watcher's session across its restart, so the watcher misses nothing
    # the board sends, however fast the board is back.
    broker = persistent_broker
    vb = start_board(scene="idle", **mqtt_settings(broker, ha_discovery=False,
                                                   mqtt_image=False))
    watch = Watcher(broker, session=True)
    watch.topic(PREFIX + "/event/telemetry")
    stream = Stream(vb.url, timeout=10)  # what happened, as the page sees it
    last_before = id_number(watch.topic(PREFIX + "/event/telemetry",
                                        start=watch.mark()).json()["id"])
    watch.close()
    before = list(watch.messages)  # what arrived up to here counts too
    broker.stop()
    vb.wait_console("MQTT: lost the broker", timeout=30)
    # wait until the board has published more than the outbox holds (16)
    sse = {}
    while max(sse, default=0) < last_before + 16 + 8:
        ev = stream.next(timeout=30)
        sse[id_number(ev.id)] = (ev.event, json.loads(ev.data))
    assert get(vb, "api/status")[0] == 200  # the page is served all along
    broker.start()
    watch = Watcher(broker, session=True)
    watch.topic(PREFIX + "/availability", payload=b"online", timeout=90)
    # once connected again, the outbox drains and the drop count stops
    # growing: take the first telemetry that says the same as the one before
    back = watch.wait(lambda m: m.topic == PREFIX + "/event/status"
                      and m.json().get("mqtt") == "connected", timeout=60,
                      what="the board saying it is connected again")
    previous, final, start = None, None, watch.messages.index(back) + 1
    deadline = time.monotonic() + 60
    while final is None:
        m = watch.topic(PREFIX + "/event/telemetry", start=start,
                        timeout=max(1, deadline - time.monotonic()))
        start = watch.messages.index(m) + 1
        body = m.json()
        if previous is not None and body["mqtt_dropped"] == previous["mqtt_dropped"]:
            final = body
        previous = body
    # events flow again; what the outage cost is telemetry, oldest first
    while True:
        ev = stream.next(timeout=10)
        sse[id_number(ev.id)] = (ev.event, json.loads(ev.data))
        if ev.id == final["id"]:
            break
    stream.close()
    got = set(id_number(m.json()["id"]) for m in before + watch.messages if "/event/" in m.topic)
    last = id_number(final["id"])
    missing = [n for n in range(last_before + 1, last) if n not in got]
    assert missing, "nothing was dropped: the outage was too short for the test"
    assert all(sse[n][0] == "telemetry" for n in missing), {n: sse[n] for n in missing[:3]}
    # from the board's "lost the broker" on, events wait in the outbox (what
    # came before may have reached the broker already): the oldest
    # telemetry went first
    down = min(n for n, (event, data) in sse.items()
               if event == "status" and data.get("mqtt") == "down")
    kept = [n for n in range(down + 1, last + 1) if n in got and sse[n][0] == "telemetry"]
    assert min(kept) > max(missing), (kept, missing)
    # and telemetry counts them: every missing event was dropped; the count
    # may be higher by what was in flight when the connection broke (sent,
    # never acknowledged, dropped from the outbox, yet received by the broker)
    assert len(missing) <= final["mqtt_dropped"] <= len(missing) + 8, \
        (final["mqtt_dropped"], missing)  # 8: the bridge's QoS 1 window
    status = [m.json() for m in watch.messages if m.topic == PREFIX + "/event/status"]
    assert any(s.get("mqtt") == "down" for s in status), status  # told while it was away
    watch.close()
    assert_alive(vb)


def test_refused_credentials_warn_retry_slowly_and_a_fix_reconnects_without_restart(
        tmp_path, start_board):
    with Broker(tmp_path / "broker", users={"cam": "s3cret-right", "watcher": "w"}) as broker:
        vb = start_board(**mqtt_settings(broker, mqtt_user="cam", mqtt_password="s3cret-wrong"))
        start = vb.console_offset()
        # mosquitto answers a wrong password with "not authorized" (code 5)
        vb.wait_console("refused the connection (", timeout=30)
        time.sleep(8)
        # one attempt, then a slow retry (60 s): no tight loop
        assert broker.log().count("not authorised") == 1, broker.log()[-2000:]
        assert get(vb, "api/status")[0] == 200
        status, body = get(vb, "api/settings")
        assert b"s3cret-wrong" not in body and "mqtt_password" not in json.loads(body)
        watch = Watcher(broker, user="watcher", password="w")
        code, body = post_settings(vb, {"mqtt_password": "s3cret-right"})
        assert code == 200, body
        assert "s3cret-right" not in json.dumps(body)  # named as changed, never echoed
        watch.topic(PREFIX + "/availability", payload=b"online", timeout=30)
        assert vb.boots == 1  # no restart
        assert "MPY: soft reboot" not in vb.console(), vb.console()[start:][-2000:]
        watch.close()
        assert_alive(vb)


def test_the_page_is_served_while_the_broker_is_unreachable(start_board):
    nobody = free_port()
    vb = start_board(mqtt_host="127.0.0.1", mqtt_port=nobody)
    vb.wait_console("MQTT: cannot reach 127.0.0.1:%d" % nobody, timeout=30)
    for _ in range(5):
        assert get(vb, "")[0] == 200
        status = json.loads(get(vb, "api/status")[1])
        assert status["camera"] == "ok"
        time.sleep(0.5)
    with Stream(vb.url) as stream:
        tele = json.loads(stream.next(timeout=10, event="telemetry").data)
    assert tele["mqtt"] == "down"
    assert tele["fps"] > 5  # detection keeps its pace
    assert_alive(vb)


def test_commands_change_sensitivity_flash_and_restart(broker, start_board):
    watch = Watcher(broker)
    vb = start_board(**mqtt_settings(broker, ha_discovery=False, mqtt_image=False))
    watch.topic(PREFIX + "/availability", payload=b"online")
    state = watch.topic(PREFIX + "/state").json()
    assert state == {"sensitivity": 50, "flash": "OFF", "image": "OFF"}
    time.sleep(3.5)  # past the guard against a retained restart at connect
    mark = watch.mark()
    watch.publish(PREFIX + "/set/sensitivity", "70")
    watch.wait(lambda m: m.topic == PREFIX + "/state" and m.json()["sensitivity"] == 70,
               start=mark, what="state with sensitivity 70")
    assert json.loads(get(vb, "api/settings")[1])["sensitivity"] == 70  # saved, live
    watch.publish(PREFIX + "/set/flash", "ON")
    watch.wait(lambda m: m.topic == PREFIX + "/state" and m.json()["flash"] == "ON",
               start=mark, what="state with the flash on")
    watch.publish(PREFIX + "/set/sensitivity", "500")
    watch.wait(lambda m: m.topic == PREFIX + "/event/status" and m.json()["kind"] == "warning"
               and "sensitivity" in m.json()["message"], start=mark, what="a refusal")
    watch.publish(PREFIX + "/set/mqtt_host", "evil.example")  # not settable over MQTT
    watch.wait(lambda m: m.topic == PREFIX + "/event/status" and m.json()["kind"] == "warning"
               and "mqtt_host" in m.json()["message"], start=mark, what="a refusal")
    assert json.loads(get(vb, "api/settings")[1])["mqtt_host"] == "127.0.0.1"
    mark = watch.mark()
    watch.publish(PREFIX + "/set/restart", "PRESS")
    watch.topic(PREFIX + "/availability", payload=b"offline", start=mark)
    vb.wait_console("MPY: soft reboot", timeout=20)
    watch.wait(lambda m: m.topic == PREFIX + "/event/status" and m.json()["kind"] == "boot",
               start=mark, timeout=30, what="the board booting again")
    watch.topic(PREFIX + "/availability", payload=b"online", start=mark)
    assert vb.boots == 2
    watch.close()


def test_settings_changes_reconnect_live_and_off_unloads(broker, start_board):
    watch = Watcher(broker)
    vb = start_board(**mqtt_settings(broker, ha_discovery=False))
    watch.topic(PREFIX + "/availability", payload=b"online")
    mark = watch.mark()
    code, body = post_settings(vb, {"mqtt_prefix": "site/garage"})
    assert code == 200, body
    watch.topic(PREFIX + "/availability", payload=b"offline", start=mark)
    watch.topic("site/garage/availability", payload=b"online", start=mark)
    watch.topic("site/garage/event/telemetry", start=mark)
    code, body = post_settings(vb, {"mqtt_host": ""})
    assert code == 200, body
    watch.topic("site/garage/availability", payload=b"offline", start=mark)
    with Stream(vb.url) as stream:
        tele = json.loads(stream.next(timeout=10, event="telemetry").data)
    assert "mqtt" not in tele
    assert vb.boots == 1
    watch.close()
    assert_alive(vb)


def test_four_streams_detection_and_mqtt_with_pictures_stay_inside_the_heap(broker, start_board):
    # the heaviest case: four phones, detection, and MQTT sending every event,
    # discovery and the motion picture, on the 192 KB virtual board
    watch = Watcher(broker)
    vb = start_board(**mqtt_settings(broker))
    watch.topic(PREFIX + "/availability", payload=b"online")
    # a phone that comes while discovery goes out may be told busy (low heap)
    # and gets in on its own retry, as EventSource does
    streams = []
    try:
        for _ in range(4):
            s, _, busy = connect(vb.url)
            streams.append(s)
            print("stream %d in after %d busy answers" % (len(streams), busy))
        mark = watch.mark()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for s in streams:
                s.next(timeout=10)
        watch.topic(PREFIX + "/image", start=mark, timeout=30)  # a picture went out meanwhile
        status = json.loads(get(vb, "api/status")[1])
        assert status["clients"] == 4
        assert "MemoryError" not in vb.console(), vb.console()[-2000:]
        tele = watch.topic(PREFIX + "/event/telemetry", start=watch.mark()).json()
        assert tele["mqtt"] == "connected" and tele["mqtt_dropped"] == 0
    finally:
        for s in streams:
            s.close()
        watch.close()
    assert_alive(vb)


def test_make_run_mqtt_connects_the_virtual_board_to_a_broker(broker, tmp_path):
    # what `make run MQTT=127.0.0.1:<port>` runs
    watch = Watcher(broker)
    port = free_port()
    flash = tmp_path / "flash"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools", "run", "--http-port", str(port), "--flash", str(flash),
         "--tty", str(tmp_path / "tty"), "--mqtt", "127.0.0.1:%d" % broker.port],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        online = watch.wait(lambda m: m.topic.endswith("/availability") and m.payload == b"online",
                            timeout=60, what="the board online")
        assert online.topic == "camwatch/camwatch/availability"  # its host name: camwatch
        watch.topic("camwatch/camwatch/event/telemetry", timeout=30)
        with open(flash / "settings.json") as f:
            saved = json.load(f)
        assert (saved["mqtt_host"], saved["mqtt_port"]) == ("127.0.0.1", broker.port)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        watch.close()
    out = proc.stdout.read()
    assert "run: reporting to the MQTT broker at 127.0.0.1:%d" % broker.port in out, out
