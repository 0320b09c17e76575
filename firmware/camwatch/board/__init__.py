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


def load():
    info = read_info()
    if sys.platform == "linux":
        from camwatch.board.virtual import Board
    else:
        from camwatch.board.esp32 import Board
    return Board(info)
