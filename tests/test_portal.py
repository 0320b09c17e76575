"""A board set up from a phone, over real sockets against the virtual board:
the captive portal (DNS over UDP, the phones' connectivity checks), the Wi-Fi
scan and setup, and claiming a board that has no admin password.

The virtual board's fake radio (camwatch/board/virtual.py) sees the networks
in ``.vboard/wlan.json``: an open "camwatch-lab", "Upstairs" with the password
"correct horse", and a neighbour's; it refuses a wrong password and a name it
does not see, as a real access point would.
"""

import json
import os
import socket
import struct

import pytest

from conftest import board_flash, free_port, write_settings
from hardening import post_settings, raw, request, wait_for
from tools.vboard import VirtualBoard

ADMIN = "a good admin pw"
PROBES = ["/generate_204", "/gen_204", "/hotspot-detect.html", "/library/test/success.html",
          "/connecttest.txt", "/ncsi.txt", "/redirect", "/canonical.html", "/success.txt"]


def start(tmp_path, fresh=True, env=None, **settings):
    flash = tmp_path / "flash"
    rom = board_flash(flash)
    if settings:
        write_settings(flash, **settings)
    dns_port = free_port()
    full_env = {"CAMWATCH_DNS_PORT": str(dns_port)}
    if fresh:
        full_env["CAMWATCH_FRESH"] = "1"
    full_env.update(env or {})
    vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port(), romfs=rom,
                      env=full_env)
    vb.dns_port = dns_port
    vb.start()
    try:
        vb.wait_http(timeout=30)
    except Exception:
        vb.stop()
        raise
    return vb


@pytest.fixture
def fresh(vboard_fs, tmp_path):
    """A board straight from the box: no settings at all (`make run FRESH=1`)."""
    vb = start(tmp_path)
    yield vb
    vb.stop()


def get(vb, path, source="127.0.0.1"):
    s, headers, body = raw(vb, request("GET", path), source)
    return s, headers, (json.loads(body) if body and body[:1] in b"{[" else body)


def post(vb, path, body, source="127.0.0.1"):
    s, headers, data = raw(vb, request("POST", path, body), source)
    return s, (json.loads(data) if data else None)


def dns_query(name, qtype=1, ident=0x2a2a):
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", qtype, 1)


def ask(port, data, timeout=3):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recvfrom(512)[0]
        except socket.timeout:
            return None


def wifi(vb):
    s, _, body = get(vb, "/api/wifi")
    assert s == 200, (s, body)
    return body


def test_a_fresh_board_opens_its_access_point_and_a_captive_portal(fresh):
    # tried: what a phone does on joining the AP: DNS for the connectivity
    # check hosts, then the check URLs; checked: every A query answers the
    # board's address, AAAA gets an empty answer, junk is ignored without
    # stopping the responder, every probe redirects to the setup page
    w = wait_for(lambda: wifi(fresh)["state"] == "ap" and wifi(fresh), 20, "access point")
    assert w["ap"].startswith("camwatch-") and w["admin_password_set"] is False
    fresh.wait_console("captive portal", timeout=20)
    for name in ("connectivitycheck.gstatic.com", "captive.apple.com",
                 "www.msftconnecttest.com", "example.org"):
        reply = ask(fresh.dns_port, dns_query(name, ident=0x1234))
        assert reply is not None, "no DNS answer for " + name
        ident, flags, qd, an = struct.unpack(">HHHH", reply[:8])
        assert (ident, qd, an) == (0x1234, 1, 1) and flags & 0x8000 and flags & 0xF == 0
        assert socket.inet_ntoa(reply[-4:]) == "127.0.0.1"
    aaaa = ask(fresh.dns_port, dns_query("captive.apple.com", qtype=28))
    assert aaaa is not None and struct.unpack(">H", aaaa[6:8])[0] == 0  # no record: use IPv4
    for junk in (b"", b"\x00" * 5, b"\xff" * 40, dns_query("x.y")[:-3]):
        assert ask(fresh.dns_port, junk, timeout=0.5) is None
    assert ask(fresh.dns_port, dns_query("still.there")) is not None
    for path in PROBES:
        s, headers, _ = get(fresh, path)
        assert s == 302, path
        assert headers["location"] == "http://127.0.0.1:%d/setup.html" % fresh.http_port, path
    s, headers, body = get(fresh, "/setup.html")
    assert s == 200 and headers["content-type"].startswith("text/html")


def test_setup_joins_a_network_says_why_when_it_cannot_and_claims_the_board(fresh, tmp_path):
    wait_for(lambda: wifi(fresh)["state"] == "ap", 20, "access point")
    s, body = get(fresh, "/api/wifi/scan")[0::2]
    assert s == 200
    names = [n["ssid"] for n in body["networks"]]
    assert names[:2] == ["camwatch-lab", "Upstairs"]  # strongest first
    assert {n["ssid"]: n["secured"] for n in body["networks"]}["Upstairs"] is True

    # bad input: named field, nothing saved
    for bad, field in (({"ssid": "", "admin_password": ADMIN}, "ssid"),
                       ({"ssid": "x" * 33, "admin_password": ADMIN}, "ssid"),
                       ({"ssid": "Upstairs", "wifi_password": 5, "admin_password": ADMIN},
                        "wifi_password"),
                       ({"ssid": "Upstairs", "admin_password": "short"}, "admin_password")):
        s, answer = post(fresh, "/api/setup", bad)
        assert s == 400 and answer["field"] == field, (bad, answer)
    assert not os.path.exists(os.path.join(fresh.flash, "settings.json"))

    # a wrong Wi-Fi password: saved, tried, the AP comes back with the reason
    s, answer = post(fresh, "/api/setup", {"ssid": "Upstairs", "wifi_password": "wrong one",
                                           "admin_password": ADMIN})
    assert s == 200 and answer["next"] == "http://camwatch.local/"
    w = wait_for(lambda: (lambda w: w["reason"] and w)(wifi(fresh)), 20, "a join result")
    assert (w["state"], w["reason"], w["network"]) == ("ap", "wrong password", "Upstairs")
    assert "cannot join Upstairs (wrong password)" in fresh.console()

    # the admin password was claimed with that save: a second claim is refused,
    # and a new setup needs the password
    s, answer = post(fresh, "/api/claim", {"password": "someone else"})
    assert s == 403 and "already" in answer["error"]
    s, answer = post(fresh, "/api/setup", {"ssid": "Upstairs", "wifi_password": "correct horse"})
    assert s == 401

    # a network not in reach
    s, answer = post(fresh, "/api/setup", {"ssid": "Nowhere", "password": ADMIN})
    assert s == 200
    w = wait_for(lambda: (lambda w: w["reason"] and w)(wifi(fresh)), 20, "a join result")
    assert w["reason"] == "network not found" and w["state"] == "ap"

    # the right one: joined, the AP lingers for the phone, secrets never shown
    s, answer = post(fresh, "/api/setup", {"ssid": "Upstairs", "wifi_password": "correct horse",
                                           "password": ADMIN})
    assert s == 200
    w = wait_for(lambda: (lambda w: w["state"] == "connected" and w)(wifi(fresh)), 20, "joined")
    assert w["ssid"] == "Upstairs" and w["reason"] is None and w["ap"]
    with open(os.path.join(fresh.flash, "settings.json")) as f:
        saved = json.load(f)
    assert saved["wifi_ssid"] == "Upstairs" and saved["wifi_password"] == "correct horse"
    assert len(saved["admin_hash"]) == 64 and ADMIN not in json.dumps(saved)
    s, _, public = get(fresh, "/api/settings")
    assert "correct horse" not in json.dumps(public) and public["admin_password_set"] is True
    # and the admin password works for settings
    s, _, answer = post_settings(fresh, {"password": ADMIN, "settings": {"threshold": 21}})
    assert s == 200 and answer["changed"] == ["threshold"]

    # after a restart it joins the saved network by itself
    fresh.stop()
    fresh.start()
    fresh.wait_http(timeout=30)
    w = wait_for(lambda: (lambda w: w["state"] == "connected" and w)(wifi(fresh)), 20, "rejoined")
    assert w["ssid"] == "Upstairs" and w["ap"] is None


def test_claiming_is_once_and_only_early_after_boot_off_the_access_point(vboard_fs, tmp_path):
    # a board on the LAN (station mode), never given an admin password, whose
    # claim window is 3 s instead of 10 minutes
    vb = start(tmp_path / "a", fresh=False, env={"CAMWATCH_CLAIM_WINDOW_S": "3"})
    try:
        assert wifi(vb)["state"] == "connected" and wifi(vb)["ap"] is None
        vb.wait_console("no admin password is set", timeout=10)
        for path in PROBES[:2]:  # no captive portal on the LAN
            assert get(vb, path)[0] == 404
        s, answer = post(vb, "/api/claim", {"password": "short"})
        assert s == 400 and answer["field"] == "password"
        s, answer = post(vb, "/api/claim", {"password": ADMIN}, source="127.0.0.9")
        assert s == 200, answer
        s, answer = post(vb, "/api/claim", {"password": "takeover attempt"})
        assert s == 403
        s, _, answer = post_settings(vb, {"password": "takeover attempt",
                                          "settings": {"threshold": 22}})
        assert s == 401
        s, _, answer = post_settings(vb, {"password": ADMIN, "settings": {"threshold": 22}})
        assert s == 200
        # a claimed board on the LAN does not scan for strangers
        assert get(vb, "/api/wifi/scan")[0] == 403
    finally:
        vb.stop()

    vb = start(tmp_path / "b", fresh=False, env={"CAMWATCH_CLAIM_WINDOW_S": "2"})
    try:
        wait_for(lambda: get(vb, "/api/status")[2]["uptime_s"] >= 3, 20, "the window to close")
        s, answer = post(vb, "/api/claim", {"password": ADMIN})
        assert s == 403 and "restart the board" in answer["error"]
        assert get(vb, "/api/settings")[2]["admin_password_set"] is False
        assert not os.path.exists(os.path.join(vb.flash, "settings.json"))
    finally:
        vb.stop()
