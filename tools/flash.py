"""``python -m tools flash``: put MicroPython firmware on a board with esptool.

The chip, flash offset and baud rate come from the board's boards.json entry.
The image is checked offline with esptool's own image parser before anything
touches the board (right chip, a merged image with its bootloader, fits the
flash), then esptool erases the flash and writes the image, printing its own
progress. Without ``--firmware`` the board's pinned camera-enabled MicroPython
release is downloaded and verified first (see ``tools.images``).
"""

import os
import shlex
import subprocess
import sys

from tools import ToolError, boards, images
from tools import ports as ports_mod
from tools.args import add_board_arg, add_port_arg


def esptool_commands(board, port, image, baud=None, erase=True):
    """The esptool command lines that flash ``image`` onto ``board`` through ``port``.

    baud: serial speed (default: the board's ``flash.baud``). erase: erase
    the whole flash first. Returns a list of argv lists.
    """
    info = images.flash_info(board)
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
    ports found. firmware: the image to write (default: the board's pinned
    camera firmware, downloaded into the cache and verified). baud: serial
    speed (default from boards.json). erase: erase the whole flash first.
    dry_run: print the esptool commands and run nothing (and download
    nothing). url: a user's own build to download instead of the pinned
    asset; cache: where downloads are kept (see ``tools.images.fetch``).
    list_ports: a callable returning the serial ports (default pyserial's).
    """
    board = boards.get(board_id)
    images.flash_info(board)
    if firmware:
        what = images.check_image(firmware, board)
    if not port:
        raise no_port_error(board_id, (list_ports or ports_mod.serial_ports)())
    pending = None
    if not firmware:
        if dry_run and (url or not images.is_cached(board, cache)):
            # A dry run never downloads: show what would be fetched, and where.
            if url:
                pending = (url, "(your build)")
                firmware = "<image from %s>" % url
            else:
                firmware = images.cached_image(board, cache)
                pending = (board["firmware"]["url"],
                           "into " + images.shortpath(images.cached_asset(board, cache)))
        else:
            firmware, what = images.fetch(board, url=url, cache=cache, log=log)
    cmds = esptool_commands(board, port, firmware, baud=baud, erase=erase)
    if dry_run:
        if pending:
            log("dry run: would download %s %s first, verify it and unpack %s"
                % (pending[0], pending[1], images.shortpath(firmware)))
        else:
            log("dry run: %s checked (%s)" % (firmware, what))
        log("dry run: these are the esptool commands `flash` would run:")
        for cmd in cmds:
            log("  " + shlex.join(cmd))
        return cmds
    log("flash: %s (%s): writing %s (%s) at %s through %s at %s baud"
        % (board_id, board["name"], images.shortpath(firmware), what, board["flash"]["offset"],
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
    p = sub.add_parser(
        "flash", help="erase the board and write MicroPython firmware with esptool",
        description="Erase the board's flash and write a MicroPython firmware image with "
                    "esptool, using the chip, flash offset and baud rate from boards.json. "
                    "The image is checked offline first (chip type, bootloader included). "
                    "Without --firmware, the board's camera-enabled MicroPython release "
                    "pinned in boards.json is downloaded into .cache/firmware/<release>/ and "
                    "its sha256 checked (pinned, or trusted on first use).")
    add_board_arg(p)
    add_port_arg(p, help="serial port of the board, e.g. /dev/ttyUSB0 (or PORT); without it "
                         "the serial ports found are listed")
    p.add_argument("--firmware", default=os.environ.get("FIRMWARE") or None, metavar="PATH",
                   help="firmware image to write, a merged .bin with the bootloader (or "
                        "FIRMWARE); default: the board's pinned camera firmware, downloaded once")
    p.add_argument("--firmware-url", default=os.environ.get("FIRMWARE_URL") or None,
                   metavar="URL",
                   help="download your own build (a .zip holding firmware.bin, or a .bin) from "
                        "URL instead of the pinned release asset (or FIRMWARE_URL); checked "
                        "with esptool, no digest")
    p.add_argument("--baud", type=int, metavar="N",
                   help="serial speed for esptool (default: the board's flash.baud in "
                        "boards.json); lower it, e.g. 115200, if writing fails")
    p.add_argument("--no-erase", action="store_true",
                   help="write without erasing the whole flash first (keeps the filesystem "
                        "when the partition layout is unchanged)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the image and print the esptool commands without running them "
                        "(downloads nothing)")
    p.set_defaults(func=cmd_flash)
