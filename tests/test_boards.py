"""boards.json: validated against its schema, and true to the reference pin maps."""

import copy
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from tools import ToolError, boards

REFERENCE = os.path.join(os.path.dirname(ROOT), "shared", "reference", "camera-pins.md")
# reference table name -> our board id
REFERENCE_NAMES = {
    "AI-Thinker ESP32-CAM": "esp32cam",
    "ESP-EYE": "esp-eye",
    "ESP32-S3-EYE": "esp32s3-eye",
    "Seeed XIAO ESP32S3 Sense": "xiao-esp32s3-sense",
    "M5Stack Camera (PSRAM / UnitCam)": "m5stack-unitcam",
}


def test_the_repository_file_is_valid():
    data = boards.load()
    assert "esp32cam" in data["boards"] and "vboard" in data["boards"]


@pytest.mark.skipif(not os.path.exists(REFERENCE), reason="shared reference not beside the repo")
def test_camera_pins_and_offsets_match_the_reference():
    rows = {}
    for line in open(REFERENCE):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 12 and cells[0] in REFERENCE_NAMES:
            rows[REFERENCE_NAMES[cells[0]]] = cells
    assert set(rows) == set(REFERENCE_NAMES.values())
    for bid, c in rows.items():
        b = boards.get(bid)
        cam = b["camera"]
        expected = [int(c[i]) for i in (1, 2, 3, 4, 5)]
        assert [cam[k] for k in ("pwdn", "reset", "xclk", "siod", "sioc")] == expected, bid
        assert cam["d"] == [int(x) for x in c[6].split(",")], bid
        assert [cam["vsync"], cam["href"], cam["pclk"]] == [int(c[7]), int(c[8]), int(c[9])], bid
        assert b["chip"] == c[10], bid
        assert int(b["flash"]["offset"], 16) == int(c[11], 16), bid


def _broken(mutate):
    data = copy.deepcopy(boards.load())
    mutate(data["boards"])
    with pytest.raises(ToolError) as err:
        boards.validate(data)
    return str(err.value)


def test_schema_rejects_a_missing_pin():
    msg = _broken(lambda b: b["esp32cam"]["camera"].pop("pclk"))
    assert "boards/esp32cam/camera" in msg and "pclk" in msg


def test_schema_rejects_the_wrong_arch_for_the_chip():
    def wrong(b):
        b["esp32cam"]["arch"] = "x64"
    assert "boards/esp32cam/arch" in _broken(wrong)


def test_schema_rejects_seven_data_pins():
    def short(b):
        b["esp-eye"]["camera"]["d"] = b["esp-eye"]["camera"]["d"][:7]
    assert "boards/esp-eye/camera/d" in _broken(short)


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(ToolError) as err:
        boards.get("esp32-cam")
    msg = str(err.value)
    assert "unknown board 'esp32-cam'" in msg
    for name in boards.names():
        assert name in msg


def test_cli_reports_an_unknown_board_and_exits_2():
    r = subprocess.run([sys.executable, "-m", "tools", "build", "--board", "nope"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error: unknown board 'nope'; known boards: esp-eye, esp32cam")


def test_cli_lists_boards():
    r = subprocess.run([sys.executable, "-m", "tools", "boards"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0
    assert re.search(r"^esp32cam\s+esp32\s+xtensawin\s+0x1000\s+AI-Thinker ESP32-CAM$",
                     r.stdout, re.M)


# Checked against cnadler86/micropython-camera-API at tag v0.6.2 (commit 8df3f70):
# .github/workflows/ESP32.yml builds "<board>-<variant>@<camera model>" and uploads
# mpy_cam-<MicroPython tag>-<camera model> holding firmware.bin; src/camera_pins.h
# gives the pins (M5STACK_PSRAM and M5STACK_UNITCAM share one pin map).
CAMERA_MODELS = {"esp32cam": "AI_THINKER", "esp-eye": "ESP_EYE", "esp32s3-eye": "ESP32S3_EYE",
                 "xiao-esp32s3-sense": "XIAO_ESP32S3", "m5stack-unitcam": "M5STACK_UNITCAM"}


def test_every_camera_board_pins_one_release_asset():
    for bid, model in CAMERA_MODELS.items():
        fw = boards.get(bid)["firmware"]
        assert fw["camera_model"] == model, bid
        assert (fw["release"], fw["micropython"]) == ("v0.6.2", "v1.27.0"), bid
        assert fw["asset"] == "mpy_cam-v1.27.0-%s.zip" % model, bid
        assert fw["file"] == "firmware.bin", bid
        assert fw["url"] == ("https://github.com/cnadler86/micropython-camera-API/releases/"
                             "download/v0.6.2/" + fw["asset"]), bid
        assert fw["sha256"] is None or re.fullmatch("[0-9a-f]{64}", fw["sha256"]), bid


def test_an_unpinned_url_is_refused():
    def latest(b):
        b["esp32cam"]["firmware"]["url"] = ("https://github.com/cnadler86/micropython-camera-API/"
                                            "releases/latest/download/mpy_cam-v1.27.0-AI_THINKER.zip")
    assert "boards/esp32cam/firmware/url" in _broken(latest)


def test_the_url_must_name_the_pinned_release_and_asset():
    def other(b):
        b["esp-eye"]["firmware"]["release"] = "v0.6.1"
    msg = _broken(other)
    assert "boards/esp-eye/firmware/url" in msg
    assert "/releases/download/v0.6.1/mpy_cam-v1.27.0-ESP_EYE.zip" in msg


def test_a_digest_must_be_null_or_sha256_hex():
    def short(b):
        b["esp32cam"]["firmware"]["sha256"] = "abc"
    assert "boards/esp32cam/firmware/sha256" in _broken(short)
