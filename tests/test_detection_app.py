"""Detection as the app reports it, on the virtual board over real sockets:
a light switch and the automatic mask become `status` events, /api/status
shows the automatic mask, and a settings file from older firmware loads."""

import json
import time
import urllib.request

import pytest

from conftest import board_flash, free_port, romfs_image, write_settings
from sse_client import Stream
from tools.vboard import VirtualBoard

# A lamp lighting the left half of a textured room at 2 s, every 8 s.
LAMP = {"loop_ms": 8000, "noise": 3, "cell": 4, "texture": [[16, 16], [8, 8]],
        "events": [{"at": 2000, "for": 4000,
                    "patch": {"w": 90, "h": 120, "from": [-20, 0], "gain": 1.7, "soft": 30}}]}
# Leaves swaying top right all the time.
LEAVES = {"noise": 4, "cell": 4, "texture": [[16, 16]],
          "events": [{"at": 0, "for": 10 ** 6,
                      "object": {"w": 8, "h": 8, "from": [104 + 12 * k, 8 + 6 * (k % 2)],
                                 "to": [110 + 12 * k, 8 + 6 * (k % 2)], "level": 40 + 150 * (k % 2),
                                 "sway": 700 + 200 * k, "motion": False}}
                     for k in range(4)]}


@pytest.fixture
def flash(vboard_fs, tmp_path):
    """The board's flash folder; its modules and web/ are in the ROMFS image."""
    dst = tmp_path / "flash"
    board_flash(dst)
    return dst


def _boot(flash, tmp_path, scene):
    with open(flash / "scene.json", "w") as f:
        json.dump(scene, f)
    vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port(),
                      env={"CAMWATCH_SCENE": "scene.json"}, romfs=romfs_image())
    vb.start()
    vb.wait_http(timeout=30)
    return vb


def _status(vb):
    with urllib.request.urlopen(vb.url + "api/status", timeout=5) as r:
        return json.loads(r.read())


def _next_status(stream, kind, seconds):
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        ev = stream.next(timeout=max(0.1, deadline - time.monotonic()))
        if ev.event == "status":
            data = json.loads(ev.data)
            if data["kind"] == kind:
                return data, seen
        seen.append((ev.event, ev.data[:80]))
    raise AssertionError("no %s status in %d s; saw %r" % (kind, seconds, seen[-10:]))


def test_a_lamp_switched_on_is_a_light_status_not_motion(flash, tmp_path):
    vb = _boot(flash, tmp_path, LAMP)
    try:
        with Stream(vb.url) as s:
            data, seen = _next_status(s, "light", 20)
            assert data["pause_ms"] == 1000 and data["share"] >= 20, data
            assert "lights changed" in data["message"], data
            assert not [e for e in seen if e[0] == "motion"], seen
        vb.wait_console("camwatch: light: lights changed", timeout=10)
    finally:
        vb.stop()


def test_repetitive_motion_is_masked_and_shown_in_the_status(flash, tmp_path):
    write_settings(flash, auto_mask=True, telemetry_s=2)
    vb = _boot(flash, tmp_path, LEAVES)
    try:
        with Stream(vb.url) as s:
            data, _ = _next_status(s, "mask", 40)
        assert data["blocks"] > 0 and data["frame"] == [160, 120], data
        assert all(x >= 96 and y < 40 for x, y, w, h in data["rects"]), data["rects"]
        mask = _status(vb)["auto_mask"]
        assert mask["frame"] == [160, 120] and mask["rects"], mask
    finally:
        vb.stop()


def test_an_old_settings_file_with_end_frames_boots_without_warnings(flash, tmp_path):
    write_settings(flash, end_frames=25, sensitivity=60)
    vb = _boot(flash, tmp_path, {"noise": 3, "events": []})
    try:
        status = _status(vb)
        assert status["warnings"] == [], status["warnings"]
        assert status["auto_mask"] == {"rects": [], "frame": [160, 120]}
        with urllib.request.urlopen(vb.url + "api/settings", timeout=5) as r:
            settings = json.loads(r.read())
        assert settings["sensitivity"] == 60 and settings["end_s"] == 4
        assert "end_frames" not in settings
    finally:
        vb.stop()
