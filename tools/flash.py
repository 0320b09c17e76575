"""``python -m tools flash``: put MicroPython firmware on a board with esptool.

The chip, flash offset and baud rate come from the board's boards.json entry.
The image is checked offline with esptool's own image parser before anything
touches the board (right chip, a merged image with its bootloader, fits the
flash), then esptool erases the flash and writes the image, printing its own
progress. Without ``--firmware`` the board's camera-enabled MicroPython
release is downloaded first (see ``tools.firmware``).
"""

import os
import shlex
import subprocess
import sys
import zipfile

from tools import ToolError, boards
from tools import firmware as fwtool
from tools import ports as ports_mod

ESP_IMAGE_MAGIC = 0xE9
_SIZES = {"4MB": 4 << 20, "8MB": 8 << 20, "16MB": 16 << 20}


def _flash_info(board):
    if not board.get("flash"):
        raise ToolError("board %s (%s) has no flash to write: it is the virtual board, "
                        "`make run` starts it" % (board["id"], board["name"]))
    return board["flash"]


def _chip_def(chip):
    from esptool.targets import CHIP_DEFS

    return CHIP_DEFS[chip]


def _chip_name_for_id(chip_id):
    from esptool.targets import CHIP_DEFS

    for rom in CHIP_DEFS.values():
        if getattr(rom, "IMAGE_CHIP_ID", None) == chip_id:
            return rom.CHIP_NAME
    return "unknown chip (image chip id %d)" % chip_id


def check_image(path, board):
    """Check offline, with esptool's image parser, that ``path`` suits ``board``.

    The file must exist, start with an image header for the board's chip,
    be a merged image (bootloader first, as written at the board's flash
    offset) rather than a bare application, and fit the board's flash.
    Returns a short description; raises ToolError saying what to use instead.
    """
    from esptool.bin_image import LoadFirmwareImage

    info = _flash_info(board)
    chip = board["chip"]
    rom = _chip_def(chip)
    what = "%s (%s, %s)" % (board["id"], board["name"], rom.CHIP_NAME)
    fix = ("use a MicroPython firmware.bin built for the %s, or leave FIRMWARE unset to "
           "download the board's camera firmware" % rom.CHIP_NAME)
    if not os.path.exists(path):
        raise ToolError("firmware file %s not found; check the path, or leave FIRMWARE unset "
                        "to download the board's camera firmware" % path)
    if not os.path.isfile(path):
        raise ToolError("firmware %s is a folder, not a file; pass the firmware .bin inside it"
                        % path)
    if zipfile.is_zipfile(path):
        raise ToolError("%s is a zip archive; unzip it and pass the firmware.bin inside it "
                        "(FIRMWARE=path/to/firmware.bin)" % path)
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ToolError("firmware file %s is empty; download or build it again" % path)
    offset = int(info["offset"], 16)
    if (data[0] == 0xFF and offset and len(data) > offset and data[offset] == ESP_IMAGE_MAGIC
            and data[:offset].count(0xFF) == offset):
        raise ToolError(
            "%s starts with %#x bytes of 0xFF padding: it was merged to be written at 0x0, "
            "but the %s takes its firmware at %s. Use an image merged for %s (esptool merge-bin "
            "--target-offset %s) or the release's firmware.bin"
            % (path, offset, what, info["offset"], info["offset"], info["offset"]))
    try:
        image = LoadFirmwareImage(chip, data)
    except Exception as exc:  # esptool raises FatalError, RuntimeError or struct errors
        raise ToolError("esptool cannot read %s as an %s firmware image (%s); %s"
                        % (path, rom.CHIP_NAME, exc, fix))
    if image.chip_id != rom.IMAGE_CHIP_ID:
        raise ToolError("%s is an %s image, but the board %s needs an %s image; %s"
                        % (path, _chip_name_for_id(image.chip_id), what, rom.CHIP_NAME, fix))
    if any(image.is_flash_addr(seg.addr) for seg in image.segments):
        raise ToolError(
            "%s is an application image without the bootloader (e.g. micropython.bin); written at "
            "%s it would leave the board unable to boot. Use the merged firmware.bin (bootloader, "
            "partition table and application in one file)" % (path, info["offset"]))
    size = _SIZES.get(info.get("size"))
    if size and offset + len(data) > size:
        raise ToolError("%s is %d bytes: written at %s it does not fit the %s flash of the %s"
                        % (path, len(data), info["offset"], info["size"], what))
    return "%s image, %d bytes" % (rom.CHIP_NAME, len(data))


def esptool_commands(board, port, image, baud=None, erase=True):
    """The esptool command lines that flash ``image`` onto ``board`` through ``port``.

    baud: serial speed (default: the board's ``flash.baud``). erase: erase
    the whole flash first. Returns a list of argv lists.
    """
    info = _flash_info(board)
    base = [sys.executable, "-m", "esptool", "--chip", board["chip"], "--port", port,
            "--baud", str(baud or info["baud"])]
    cmds = [base + ["erase-flash"]] if erase else []
    cmds.append(base + ["write-flash", info["offset"], image])
    return cmds


def no_port_error(board_id, ports):
    """The ToolError for a flash without a port, given the ports found."""
    return ports_mod.no_port_error("flash BOARD=%s" % board_id, ports)


def _run(cmd, erased):
    proc = subprocess.run(cmd)
    if proc.returncode == 0:
        return
    step = cmd[cmd.index("--baud") + 2]
    msg = ("esptool %s failed (exit status %d); its message is above. If it could not connect: "
           "check PORT (and that you may open it: the dialout group), put the board in download "
           "mode (hold BOOT/IO0 low while pressing reset; on the ESP32-CAM, IO0 to GND), close "
           "any serial monitor on the port, and try a lower speed with FLASH_ARGS=\"--baud "
           "115200\"." % (step, proc.returncode))
    if erased:
        msg += " The flash is already erased: the board will not boot until a write succeeds."
    raise ToolError(msg)


def flash(board_id, port=None, firmware=None, baud=None, erase=True, dry_run=False,
          url=None, cache=None, list_ports=None, log=print):
    """Flash MicroPython onto board ``board_id`` with esptool.

    port: the board's serial port; without one, raises ToolError listing the
    ports found. firmware: the image to write (default: the board's camera
    firmware, downloaded into the cache). baud: serial speed (default from
    boards.json). erase: erase the whole flash first. dry_run: print the
    esptool commands and run nothing. url, cache: where to download the
    firmware from and keep it (see ``tools.firmware.fetch``). list_ports: a
    callable returning the serial ports (default pyserial's list).
    """
    board = boards.get(board_id)
    _flash_info(board)
    if firmware:
        what = check_image(firmware, board)
    if not port:
        raise no_port_error(board_id, (list_ports or ports_mod.serial_ports)())
    download = None
    if not firmware:
        if dry_run and not fwtool.is_cached(board, cache):
            # A dry run never downloads: show where the image would go.
            firmware = download = fwtool.cached_image(board, cache)
        else:
            firmware = fwtool.fetch(board, url=url, cache=cache, log=log)
            try:
                what = check_image(firmware, board)
            except ToolError as exc:
                raise ToolError("%s\n(%s came from the download cache: delete it to download it "
                                "again)" % (exc, fwtool.shortpath(firmware)))
    cmds = esptool_commands(board, port, firmware, baud=baud, erase=erase)
    if dry_run:
        if download:
            where = fwtool.shortpath(os.path.dirname(download)) + os.sep
            log("dry run: would download %s into %s first"
                % (url or board["firmware"]["url"], where))
        else:
            log("dry run: %s checked (%s)" % (firmware, what))
        log("dry run: these are the esptool commands `flash` would run:")
        for cmd in cmds:
            log("  " + shlex.join(cmd))
        return cmds
    log("flash: %s (%s): writing %s (%s) at %s through %s at %s baud"
        % (board_id, board["name"], fwtool.shortpath(firmware), what, board["flash"]["offset"],
           port, baud or board["flash"]["baud"]))
    for i, cmd in enumerate(cmds):
        log("flash: " + shlex.join(cmd))
        _run(cmd, erased=erase and i > 0)
    log("flash: done. Next: make deploy PORT=%s copies the app onto the board" % port)
    return cmds


def cmd_flash(args):
    flash(args.board, port=args.port, firmware=args.firmware, baud=args.baud,
          erase=not args.no_erase, dry_run=args.dry_run, url=args.firmware_url)


def register(sub):
    from tools.cli import add_board_arg

    p = sub.add_parser(
        "flash", help="erase the board and write MicroPython firmware with esptool",
        description="Erase the board's flash and write a MicroPython firmware image with "
                    "esptool, using the chip, flash offset and baud rate from boards.json. "
                    "The image is checked offline first (chip type, bootloader included). "
                    "Without --firmware, the board's camera-enabled MicroPython release is "
                    "downloaded into .cache/firmware/<board>/.")
    add_board_arg(p)
    p.add_argument("--port", default=os.environ.get("PORT") or None,
                   help="serial port of the board, e.g. /dev/ttyUSB0 (or PORT); without it "
                        "the serial ports found are listed")
    p.add_argument("--firmware", default=os.environ.get("FIRMWARE") or None, metavar="PATH",
                   help="firmware image to write, a merged .bin with the bootloader (or "
                        "FIRMWARE); default: the board's camera firmware, downloaded once")
    p.add_argument("--firmware-url", metavar="URL",
                   help="where to download the firmware .zip from when --firmware is not given "
                        "(default: the board's firmware.url in boards.json)")
    p.add_argument("--baud", type=int, metavar="N",
                   help="serial speed for esptool (default: the board's flash.baud in "
                        "boards.json); lower it, e.g. 115200, if writing fails")
    p.add_argument("--no-erase", action="store_true",
                   help="write without erasing the whole flash first (keeps the filesystem "
                        "when the partition layout is unchanged)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the image and print the esptool commands without running them")
    p.set_defaults(func=cmd_flash)
