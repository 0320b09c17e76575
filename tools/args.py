"""Command-line arguments every command shares: the board and its port.

The Makefile passes ``BOARD=`` and ``PORT=`` through the environment, so
each default reads its variable first.
"""

import os

DEFAULT_BOARD = "esp32cam"


def add_board_arg(parser, default=DEFAULT_BOARD, help=None):
    """Add ``--board`` to ``parser``.

    default: the board id used when neither --board nor BOARD is given;
    None means the command picks one from what the board reports.
    help: the option's help text (default: a generic one).
    """
    parser.add_argument(
        "--board", default=os.environ.get("BOARD") or default,
        help=help or ("board id from boards.json (default: %(default)s, or BOARD; "
                      "`python -m tools boards` lists them)"))


def add_port_arg(parser, help=None):
    """Add ``--port`` (default PORT) to ``parser``; help: the option's help text."""
    parser.add_argument(
        "--port", default=os.environ.get("PORT") or None,
        help=help or ("serial port of the board, e.g. /dev/ttyUSB0 (or PORT); "
                      "build/vboard/tty for the virtual board"))
