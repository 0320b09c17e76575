"""`python -m tools flash`: esptool command lines from boards.json, image checks, ports, download.

The test images are made by esptool itself, offline: a tiny hand-written
Xtensa ELF goes through `esptool --chip <chip> elf2image`, and `esptool
merge-bin` lays bootloader and application out the way a MicroPython
release's merged firmware.bin is. Nothing here talks to a board; the only
network use is a loopback HTTP server and a closed loopback port.
"""

import http.server
import os
import shlex
import socket
import struct
import subprocess
import sys
import threading
import zipfile

import pytest
from serial.tools.list_ports_common import ListPortInfo

from tools import ToolError, boards, firmware, flash
from tools.cli import main

PY = sys.executable

# Load addresses of the tiny test images: IRAM for a bootloader-like image,
# flash-mapped data (DROM) for an application image.
IRAM = {"esp32": 0x40080400, "esp32s3": 0x40378000}
DROM = {"esp32": 0x3F400020, "esp32s3": 0x3C000020}
# Passed wherever a regression could start a download: loopback, nothing listens.
UNUSED_URL = "http://127.0.0.1:9/unused.zip"


def tiny_elf(addr, code=b"\x00" * 16):
    """A minimal 32-bit little-endian Xtensa ELF with one loadable section at ``addr``."""
    names = b"\x00.text\x00.shstrtab\x00"
    text_off = 0x34
    names_off = text_off + len(code)
    sh_off = (names_off + len(names) + 3) & ~3
    header = struct.pack("<16sHHLLLLLHHHHHH", b"\x7fELF\x01\x01\x01" + bytes(9),
                         2, 0x5E, 1, addr, 0, sh_off, 0, 0x34, 0x20, 0, 0x28, 3, 2)
    body = header + code + names
    body += bytes(sh_off - len(body))
    sections = (bytes(0x28)
                + struct.pack("<10L", 1, 1, 6, addr, text_off, len(code), 0, 0, 4, 0)
                + struct.pack("<10L", 7, 3, 0, 0, names_off, len(names), 0, 0, 1, 0))
    return body + sections


def esptool(*args, cwd):
    proc = subprocess.run([PY, "-m", "esptool"] + list(args), cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def esp_image(tmp, chip, addr, name):
    """An image made by `esptool --chip <chip> elf2image` from a tiny ELF."""
    elf = os.path.join(tmp, name + ".elf")
    with open(elf, "wb") as f:
        f.write(tiny_elf(addr))
    out = os.path.join(tmp, name + ".bin")
    esptool("--chip", chip, "elf2image", "-o", out, elf, cwd=tmp)
    return out


def merged_image(tmp, chip, at, name, target_offset=None):
    """A merged image as MicroPython ships it: bootloader at ``at``, app at 0x10000."""
    boot = esp_image(tmp, chip, IRAM[chip], name + "-boot")
    app = esp_image(tmp, chip, DROM[chip], name + "-app")
    out = os.path.join(tmp, name + ".bin")
    esptool("--chip", chip, "merge-bin", "-o", out,
            "--target-offset", hex(at if target_offset is None else target_offset),
            hex(at), boot, "0x10000", app, cwd=tmp)
    return out


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
    for name in ("BOARD", "PORT", "FIRMWARE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(firmware, "CACHE_DIR", str(tmp_path / "default-cache"))


@pytest.fixture
def no_proxy(monkeypatch):
    """Keep loopback downloads on loopback even where a proxy is configured."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


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


# ------------------------------------------------------------------ download

def closed_loopback_url():
    """A loopback URL nothing listens on (the port stays bound, so nobody else takes it)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, "http://127.0.0.1:%d/firmware-AI_THINKER.zip" % s.getsockname()[1]


def test_offline_download_says_what_to_fetch_and_where(no_proxy, tmp_path):
    sock, url = closed_loopback_url()
    with sock:
        with pytest.raises(ToolError) as exc:
            flash.flash("esp32cam", port="/dev/ttyUSB0", url=url, cache=str(tmp_path),
                        log=lambda *a: None)
    msg = str(exc.value)
    assert msg.startswith("could not download the esp32cam firmware (")
    assert "\n  %s\n" % url in msg
    assert "put firmware-AI_THINKER.zip (or the firmware.bin inside it) in" in msg
    assert os.path.join(str(tmp_path), "esp32cam") + os.sep in msg
    assert "FIRMWARE=path/to/firmware.bin" in msg
    assert not os.listdir(tmp_path / "esp32cam")  # no half-written file left behind


def test_offline_message_from_the_cli(capfd, no_proxy, monkeypatch, tmp_path):
    monkeypatch.setattr(firmware, "CACHE_DIR", str(tmp_path))
    sock, url = closed_loopback_url()
    with sock:
        rc, out, err = run_cli(capfd, "flash", "--port", "/dev/ttyUSB0", "--firmware-url", url)
    assert rc == 2
    assert err.startswith("error: could not download the esp32cam firmware")
    assert url in err


def test_dry_run_never_downloads(capfd, tmp_path, monkeypatch):
    monkeypatch.setattr(firmware, "CACHE_DIR", str(tmp_path))
    rc, out, err = run_cli(capfd, "flash", "--port", "/dev/ttyUSB0", "--dry-run",
                           "--firmware-url", "http://127.0.0.1:9/never.zip")
    assert rc == 0, err
    cached = os.path.join(str(tmp_path), "esp32cam", "firmware.bin")
    assert "would download http://127.0.0.1:9/never.zip into" in out
    assert esptool_line("--chip", "esp32", "--port", "/dev/ttyUSB0", "--baud", "460800",
                        "write-flash", "0x1000", cached) in out.splitlines()
    assert not os.path.exists(cached)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_unzips_into_the_cache_and_is_checked(capfd, images, no_proxy, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "firmware-AI_THINKER.zip", "w") as z:
        z.write(images["esp32"], "firmware.bin")
    handler = lambda *a, **k: _Quiet(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = "http://127.0.0.1:%d/firmware-AI_THINKER.zip" % server.server_address[1]
        cache = str(tmp_path / "cache")
        image = firmware.fetch(boards.get("esp32cam"), url=url, cache=cache)
    finally:
        server.shutdown()
        server.server_close()
    assert image == os.path.join(cache, "esp32cam", "firmware.bin")
    with open(image, "rb") as a, open(images["esp32"], "rb") as b:
        assert a.read() == b.read()
    out, err = capfd.readouterr()
    assert "downloading firmware-AI_THINKER.zip" in err  # progress goes to stderr
    assert "downloaded firmware-AI_THINKER.zip" in err

    # Then flash uses (and checks) the cached image: no server runs any more.
    cmds = flash.flash("esp32cam", port="/dev/ttyUSB0", url=url, cache=cache, dry_run=True)
    assert cmds[-1][-3:] == ["write-flash", "0x1000", image]
    out = capfd.readouterr().out
    assert "firmware: using %s (delete it to download the latest again)" % firmware.shortpath(image) in out
    assert "checked (ESP32 image" in out


def test_a_zip_put_in_the_cache_by_hand_is_used(capfd, images, tmp_path):
    where = tmp_path / "esp32s3-eye"
    where.mkdir()
    with zipfile.ZipFile(where / "firmware-ESP32S3_EYE.zip", "w") as z:
        z.write(images["esp32s3"], "ESP32_GENERIC_S3-SPIRAM_OCT/firmware.bin")
    cmds = flash.flash("esp32s3-eye", port="/dev/ttyACM0", cache=str(tmp_path), dry_run=True,
                       url=UNUSED_URL)
    assert cmds[-1][-3:] == ["write-flash", "0x0", str(where / "firmware.bin")]


def test_a_wrong_chip_download_is_refused(images, tmp_path):
    where = tmp_path / "esp32cam"
    where.mkdir()
    with open(images["esp32s3"], "rb") as src, open(where / "firmware.bin", "wb") as dst:
        dst.write(src.read())
    with pytest.raises(ToolError) as exc:
        flash.flash("esp32cam", port="/dev/ttyUSB0", cache=str(tmp_path), dry_run=True,
                    url=UNUSED_URL, log=lambda *a: None)
    assert "is an ESP32-S3 image, but the board esp32cam" in str(exc.value)
    assert "came from the download cache: delete it to download it again" in str(exc.value)
