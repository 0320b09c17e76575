"""The board layer: everything hardware-specific sits behind ``load()``.

Application code never imports machine, network, esp32 or camera; it asks the
board object returned here. On the ESP32 that is ``board.esp32.Board``; on the
virtual board (the MicroPython unix port) it is ``board.virtual.Board``.
"""

import json
import sys


def read_info(path="/board.json"):
    """The board's boards.json entry, written into the image by the build."""
    with open(path) as f:
        return json.load(f)


# The flash LED as a setting, on boards that have one: off, on, or lit while
# a snapshot is taken.
FLASH = ("choice", ("off", "on", "snapshot"), None, "off")


def controls(info=None):
    """The camera's controls on this board, as settings specs ``{key: (kind,
    low, high, default)}`` (see camwatch.settings): what the sensor has, plus
    ``flash`` when the board has a flash LED. ``info``: the board's
    boards.json entry (read from /board.json when not given)."""
    if info is None:
        try:
            info = read_info()
        except (OSError, ValueError):
            info = {}
    if sys.platform == "linux":
        from camwatch.board.vcamera import CONTROLS
    else:
        from camwatch.board.esp32_camera import CONTROLS
    specs = dict(CONTROLS)
    if "flash" in (info.get("leds") or {}):
        specs["flash"] = FLASH
    return specs


def load():
    info = read_info()
    if sys.platform == "linux":
        from camwatch.board.virtual import Board
    else:
        from camwatch.board.esp32 import Board
    return Board(info)
