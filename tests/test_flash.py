"""`python -m tools flash`: esptool command lines from boards.json, image checks, ports.

The test images are made by esptool itself, offline (tests/esp_images.py).
Nothing here talks to a board or the network; downloads of the pinned
images are tested in test_images.py.
"""

import os
import shlex
import sys
import zipfile

import pytest
from serial.tools.list_ports_common import ListPortInfo

from esp_images import DROM, UNUSED_URL, esp_image, merged_image
from tools import ToolError, boards, flash
from tools import images as imagetool
from tools.cli import main

PY = sys.executable

@pytest.fixture(scope="module")
def images(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("images"))
    return {
        "esp32": merged_image(tmp, "esp32", 0x1000, "esp32-merged"),
        "esp32s3": merged_image(tmp, "esp32s3", 0x0, "esp32s3-merged"),
        "esp32-app": esp_image(tmp, "esp32", DROM["esp32"], "esp32-app-only"),
        "esp32-at-0": merged_image(tmp, "esp32", 0x1000, "esp32-merged-for-0", target_offset=0),
    }


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """The CLI reads BOARD, PORT and FIRMWARE from the environment (the Makefile exports
    them); the download cache is a fresh folder, never the developer's own."""
    for name in ("BOARD", "PORT", "FIRMWARE", "FIRMWARE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(imagetool, "CACHE_DIR", str(tmp_path / "default-cache"))


def run_cli(capfd, *argv):
    rc = main(list(argv))
    out, err = capfd.readouterr()
    return rc, out, err


def esptool_line(*args):
    return "  " + shlex.join([PY, "-m", "esptool"] + list(args))


# ------------------------------------------------------- commands from boards.json

@pytest.mark.parametrize("board, chip, offset", [
    ("esp32cam", "esp32", "0x1000"),
    ("esp-eye", "esp32", "0x1000"),
    ("m5stack-unitcam", "esp32", "0x1000"),
    ("esp32s3-eye", "esp32s3", "0x0"),
    ("xiao-esp32s3-sense", "esp32s3", "0x0"),
])
def test_dry_run_prints_erase_and_write_at_the_boards_offset(capfd, images, board, chip, offset):
    image = images[chip]
    rc, out, err = run_cli(capfd, "flash", "--board", board, "--port", "/dev/ttyUSB0",
                           "--firmware", image, "--dry-run")
    assert rc == 0, err
    base = ("--chip", chip, "--port", "/dev/ttyUSB0", "--baud", "460800")
    lines = out.splitlines()
    assert lines[-2:] == [esptool_line(*base, "erase-flash"),
                          esptool_line(*base, "write-flash", offset, image)]
    assert "checked (%s image" % ("ESP32" if chip == "esp32" else "ESP32-S3") in out
    assert err == ""


def test_baud_and_no_erase(capfd, images):
    rc, out, err = run_cli(capfd, "flash", "--port", "/dev/ttyACM1", "--firmware", images["esp32"],
                           "--baud", "115200", "--no-erase", "--dry-run")
    assert rc == 0, err
    cmds = [line for line in out.splitlines() if "-m esptool" in line]
    assert cmds == [esptool_line("--chip", "esp32", "--port", "/dev/ttyACM1", "--baud", "115200",
                                 "write-flash", "0x1000", images["esp32"])]


def test_makefile_variables_are_the_defaults(capfd, images, monkeypatch):
    """`make flash PORT=... BOARD=... FIRMWARE=...` reaches the tool through the environment."""
    monkeypatch.setenv("BOARD", "esp32s3-eye")
    monkeypatch.setenv("PORT", "/dev/ttyUSB3")
    monkeypatch.setenv("FIRMWARE", images["esp32s3"])
    rc, out, err = run_cli(capfd, "flash", "--dry-run")
    assert rc == 0, err
    assert esptool_line("--chip", "esp32s3", "--port", "/dev/ttyUSB3", "--baud", "460800",
                        "write-flash", "0x0", images["esp32s3"]) in out.splitlines()


def test_help_explains_every_flag(capfd):
    with pytest.raises(SystemExit) as exc:
        main(["flash", "--help"])
    assert exc.value.code == 0
    out = " ".join(capfd.readouterr().out.split())  # argparse wraps lines
    for flag, meaning in [("--board", "boards.json"), ("--port", "serial port"),
                          ("--firmware PATH", "image to write"), ("--firmware-url", "download"),
                          ("--baud", "serial speed"), ("--no-erase", "without erasing"),
                          ("--dry-run", "without running them")]:
        assert flag in out and meaning in out, flag


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("board, image, is_chip, needs", [
    ("esp32cam", "esp32s3", "ESP32-S3", "ESP32"),
    ("esp32s3-eye", "esp32", "ESP32", "ESP32-S3"),
])
def test_refuses_an_image_for_another_chip(capfd, images, board, image, is_chip, needs):
    rc, out, err = run_cli(capfd, "flash", "--board", board, "--port", "/dev/ttyUSB0",
                           "--firmware", images[image], "--dry-run")
    assert rc == 2
    assert err.startswith("error: %s is an %s image, but the board %s" % (images[image], is_chip, board))
    assert "needs an %s image" % needs in err
    assert "leave FIRMWARE unset" in err
    assert "esptool" not in out


def test_refuses_a_missing_file_before_asking_for_a_port(capfd, tmp_path):
    missing = str(tmp_path / "firmware.bin")
    rc, out, err = run_cli(capfd, "flash", "--firmware", missing)
    assert rc == 2
    assert err == ("error: firmware file %s not found; check the path, or leave FIRMWARE unset "
                   "to download the board's camera firmware\n" % missing)


def test_refuses_an_application_image_without_bootloader(capfd, images):
    rc, out, err = run_cli(capfd, "flash", "--port", "/dev/ttyUSB0", "--firmware", images["esp32-app"],
                           "--dry-run")
    assert rc == 2
    assert "is an application image without the bootloader" in err
    assert "Use the merged firmware.bin" in err


def test_refuses_an_image_merged_for_address_zero_on_the_esp32(capfd, images):
    rc, out, err = run_cli(capfd, "flash", "--port", "/dev/ttyUSB0", "--firmware", images["esp32-at-0"],
                           "--dry-run")
    assert rc == 2
    assert "merged to be written at 0x0" in err
    assert "--target-offset 0x1000" in err


def test_refuses_the_zip_itself(capfd, images, tmp_path):
    archive = str(tmp_path / "firmware-AI_THINKER.zip")
    with zipfile.ZipFile(archive, "w") as z:
        z.write(images["esp32"], "firmware.bin")
    rc, out, err = run_cli(capfd, "flash", "--port", "/dev/ttyUSB0", "--firmware", archive)
    assert rc == 2
    assert "is a zip archive; unzip it and pass the firmware.bin inside it" in err


def test_refuses_the_virtual_board(capfd):
    rc, out, err = run_cli(capfd, "flash", "--board", "vboard", "--port", "/dev/ttyUSB0", "--dry-run")
    assert rc == 2
    assert "no flash to write" in err and "make run" in err


# -------------------------------------------------------------------- ports

def port(device, description="n/a", vid=None, pid=None):
    info = ListPortInfo(device, skip_link_detection=True)
    info.description = description
    if vid is not None:
        info.vid, info.pid = vid, pid
        info.hwid = "USB VID:PID=%04X:%04X" % (vid, pid)
    return info


def test_no_port_lists_the_ports_found_and_how_to_pick_one(images):
    ports = [port("/dev/ttyS0"),
             port("/dev/ttyUSB0", "CP2102 USB to UART Bridge Controller", 0x10C4, 0xEA60)]
    with pytest.raises(ToolError) as exc:
        flash.flash("esp32cam", firmware=images["esp32"], list_ports=lambda: ports)
    msg = str(exc.value)
    assert msg.startswith("no serial port given. Serial ports found:\n")
    assert "/dev/ttyUSB0" in msg and "CP2102 USB to UART Bridge Controller" in msg
    assert "USB VID:PID=10C4:EA60" in msg
    assert "/dev/ttyS0" in msg
    assert "make flash BOARD=esp32cam PORT=/dev/ttyUSB0" in msg
    # The USB adapter is listed first.
    assert msg.index("/dev/ttyUSB0") < msg.index("/dev/ttyS0")


def test_no_port_and_none_found_says_what_to_check():
    with pytest.raises(ToolError) as exc:
        flash.flash("esp32s3-eye", list_ports=lambda: [], url=UNUSED_URL)
    msg = str(exc.value)
    assert msg.startswith("no serial port given, and none found on this machine.")
    for what in ("USB cable that carries data", "driver", "dialout", "make flash BOARD=esp32s3-eye PORT="):
        assert what in msg, what


def test_only_builtin_serial_ports_count_as_none():
    with pytest.raises(ToolError) as exc:
        flash.flash("esp32cam", list_ports=lambda: [port("/dev/ttyS0"), port("/dev/ttyS1")],
                    url=UNUSED_URL)
    msg = str(exc.value)
    assert "no USB serial port found (only: /dev/ttyS0, /dev/ttyS1)" in msg
    assert "dialout" in msg


# ------------------------------------------------------------- running esptool

def test_esptool_failure_says_what_to_try(capfd, images, tmp_path):
    """A real esptool run on a port that does not exist: its message, then ours."""
    missing = str(tmp_path / "ttyUSB9")
    rc, out, err = run_cli(capfd, "flash", "--port", missing, "--firmware", images["esp32"])
    assert rc == 2
    assert ("flash: " + shlex.join([PY, "-m", "esptool", "--chip", "esp32", "--port", missing,
                                   "--baud", "460800", "erase-flash"])) in out
    assert "Could not open %s" % missing in out + err  # esptool's own words
    assert "error: esptool erase-flash failed (exit status 2)" in err
    assert "download mode" in err and "--baud 115200" in err
    assert "write-flash" not in out  # nothing is written after a failed erase


# ------------------------------------------------------------------ dry run

def test_dry_run_never_downloads(capfd, tmp_path, monkeypatch):
    monkeypatch.setattr(imagetool, "CACHE_DIR", str(tmp_path))
    rc, out, err = run_cli(capfd, "flash", "--port", "/dev/ttyUSB0", "--dry-run")
    assert rc == 0, err
    fw = boards.get("esp32cam")["firmware"]
    asset = os.path.join(str(tmp_path), "v0.6.2", fw["asset"])
    cached = os.path.join(str(tmp_path), "v0.6.2", fw["asset"][:-4], "firmware.bin")
    assert "would download %s into %s first" % (fw["url"], imagetool.shortpath(asset)) in out
    assert esptool_line("--chip", "esp32", "--port", "/dev/ttyUSB0", "--baud", "460800",
                        "write-flash", "0x1000", cached) in out.splitlines()
    assert not os.path.exists(asset) and not os.path.exists(cached)


def test_dry_run_with_firmware_url_downloads_nothing(capfd, tmp_path, monkeypatch):
    monkeypatch.setattr(imagetool, "CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FIRMWARE_URL", UNUSED_URL)
    rc, out, err = run_cli(capfd, "flash", "--port", "/dev/ttyUSB0", "--dry-run")
    assert rc == 0, err
    assert "would download %s (your build) first" % UNUSED_URL in out
    assert os.listdir(tmp_path) == []
