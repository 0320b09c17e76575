"""Real ESP32 images for the tests, made offline by esptool itself.

A tiny hand-written Xtensa ELF goes through `esptool --chip <chip>
elf2image`, and `esptool merge-bin` lays bootloader and application out the
way a MicroPython release's merged firmware.bin is.
"""

import os
import struct
import subprocess
import sys

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
