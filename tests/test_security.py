"""Keeping strangers out, over real sockets against the virtual board:
password guessing, writes without the password, secrets, files outside web/."""

import json
import os
import threading
import time

import pytest

from conftest import board_flash, free_port, write_settings
from hardening import post_settings, raw, request, status
from sse_client import Stream
from tools.vboard import VirtualBoard

PASSWORD = "correct horse"


@pytest.fixture
def board(vboard_fs, tmp_path):
    flash = tmp_path / "flash"
    romfs = board_flash(flash)
    write_settings(flash, admin_password=PASSWORD, telemetry_s=1)
    vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port(), romfs=romfs)
    vb.start()
    try:
        vb.wait_http(timeout=30)
        yield vb
    finally:
        vb.stop()


def test_password_guessing_is_slowed_per_address_without_slowing_others(board):
    # tried: one address (127.0.0.2) guessing as fast as it can for 6 s,
    # while a stream is open and another address (127.0.0.3) uses the right
    # password; checked: 3 free tries, then 429 with a growing Retry-After;
    # the right password from the guesser is refused too while it waits; the
    # other address gets in at once; the stream's telemetry keeps its pace
    guesser, other = "127.0.0.2", "127.0.0.3"
    wrong = {"password": "guess", "settings": {"threshold": 20}}
    answers = [post_settings(board, wrong, guesser) for _ in range(4)]
    assert [a[0] for a in answers] == [401, 401, 401, 401], answers
    code, headers, body = post_settings(board, wrong, guesser)
    assert code == 429 and headers["retry-after"] == "1", (code, headers, body)
    assert body["retry_after"] == 1
    code, _, _ = post_settings(board, {"password": PASSWORD, "settings": {}}, guesser)
    assert code == 429  # while it waits, even the right password is not tried

    gaps = []
    stop = threading.Event()

    def watch():
        with Stream(board.url) as s:
            s.next(timeout=10, event="telemetry")
            last = time.monotonic()
            while not stop.is_set():
                s.next(timeout=10, event="telemetry")
                now = time.monotonic()
                gaps.append(now - last)
                last = now

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    tries, retry_afters, t0 = 0, [], time.monotonic()
    while time.monotonic() - t0 < 6:
        code, headers, _ = post_settings(board, wrong, guesser)
        tries += 1
        assert code in (401, 429), code
        if code == 429:
            retry_afters.append(int(headers["retry-after"]))
    t_other = time.monotonic()
    code, _, body = post_settings(board, {"password": PASSWORD, "settings": {"threshold": 20}},
                                  other)
    other_took = time.monotonic() - t_other
    stop.set()
    watcher.join(15)
    failures = status(board)["password_failures"]
    print("guessing for 6 s: %d tries answered, %d passwords checked; Retry-After seen: %s; "
          "telemetry gaps: %s" % (tries, failures, sorted(set(retry_afters)),
                                  ["%.2f" % g for g in gaps]))
    assert code == 200 and body["changed"] == ["threshold"], body
    assert other_took < 2
    # 4 before, then one each time a wait ran out: 1 + 2 + 4 s fit in 6 s
    assert failures <= 4 + 3, failures
    assert tries > 50  # answered at once, not held
    assert max(retry_afters) >= 4
    assert gaps and max(gaps) < 2.5, gaps  # telemetry_s is 1


def test_writes_without_or_with_a_wrong_password_change_nothing(board):
    # tried: a change with no password, an empty one, a wrong one, one of the
    # wrong type; checked: 401 each time, the file and the live value unchanged
    path = os.path.join(board.flash, "settings.json")
    before = open(path, "rb").read()
    for body in ({"settings": {"threshold": 99}},
                 {"password": "", "settings": {"threshold": 99}},
                 {"password": PASSWORD.upper(), "settings": {"threshold": 99}},
                 {"password": 12345, "settings": {"threshold": 99}}):
        code, _, answer = post_settings(board, body, "127.0.0.9")
        assert code == 401, (body, answer)
    assert open(path, "rb").read() == before
    assert json.loads(raw(board, request("GET", "/api/settings"))[2])["threshold"] == 16


def test_secrets_never_leave_the_board(vboard_fs, tmp_path):
    # tried: a board with every secret set to a value found nowhere else (the
    # admin password, the Wi-Fi password of a WPA2 network it joins, the
    # access-point password, the MQTT password), reporting to a broker that
    # takes that password; with a stream open the whole time: every GET
    # route, a wrong admin password, a settings change, an MQTT password the
    # broker refuses and then the right one again; checked: no secret, nor
    # the admin password's hash or salt, nor the wrong guess, in any answer,
    # any event, any MQTT message (all topics, retained ones too) or on the
    # console
    from mqtt_broker import Watcher
    from tools.mosquitto import Broker

    admin, wifi, ap = "Adm1n-zebra-7731", "W1fi-okapi-4410", "Ap-quokka-9266"
    mqtt, mqtt_bad, guess = "Mqtt-narwhal-5518", "Mqtt-ibex-3309", "Wr0ng-tapir-1234"
    with Broker(tmp_path / "broker", users={"cam": mqtt, "watcher": "w"}) as broker:
        flash = tmp_path / "flash"
        romfs = board_flash(flash)
        os.makedirs(flash / ".vboard")
        with open(flash / ".vboard" / "wlan.json", "w") as f:
            json.dump([{"ssid": "Home", "rssi": -50, "password": wifi}], f)
        path = write_settings(flash, admin_password=admin, wifi_ssid="Home", wifi_password=wifi,
                              ap_password=ap, mqtt_host="127.0.0.1", mqtt_port=broker.port,
                              mqtt_user="cam", mqtt_password=mqtt, telemetry_s=1)
        with open(path) as f:
            stored = json.load(f)
        secrets = [admin, wifi, ap, mqtt, mqtt_bad, guess, stored["admin_hash"],
                   stored["admin_salt"]]
        watch = Watcher(broker, user="watcher", password="w")
        vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port(), romfs=romfs)
        vb.start()
        seen = []
        try:
            vb.wait_http(timeout=30)
            stream = Stream(vb.url)
            online = lambda m: m.topic.endswith("/availability") and m.payload == b"online"
            watch.wait(online, timeout=30, what="the board online")
            for route in ("/", "/index.html", "/settings.js", "/api/status", "/api/settings",
                          "/api/wifi", "/api/wifi/scan", "/snapshot", "/generate_204"):
                seen.append(raw(vb, request("GET", route))[2])
            for body in ({"password": guess, "settings": {"sensitivity": 60}},
                         {"password": admin, "settings": {"sensitivity": 60}},
                         {"password": admin, "settings": {"mqtt_password": mqtt_bad}}):
                seen.append(post_settings(vb, body, "127.0.0.5")[2] or b"")
            vb.wait_console("refused the connection (", timeout=30)
            mark = watch.mark()
            seen.append(post_settings(vb, {"password": admin, "settings":
                                           {"mqtt_password": mqtt}}, "127.0.0.5")[2])
            watch.wait(online, timeout=90, start=mark, what="the board online again")
            for _ in range(3):
                stream.next(timeout=10, event="telemetry")
            seen.append(stream.raw)
            stream.close()
        finally:
            vb.stop()
            watch.close()
    answers = [s if isinstance(s, bytes) else json.dumps(s).encode() for s in seen[:-1]]
    events, console = seen[-1], vb.console().encode()
    messages = [m.topic.encode() + b" " + m.payload for m in watch.messages]
    print("searched %d answers, %d bytes of events, %d MQTT messages, %d bytes of console"
          % (len(answers), len(events), len(messages), len(console)))
    assert b"event: telemetry" in events and messages
    for secret in secrets:
        for text in answers + [events, console] + messages:
            assert secret.encode() not in text, (secret, text[:2000])
