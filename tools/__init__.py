"""camwatch host tools: build, flash, deploy, repl and the virtual board.

Run as ``python -m tools <command> --help``; the Makefile only calls this.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ToolError(Exception):
    """An error the user can act on: the message says what to do next."""
