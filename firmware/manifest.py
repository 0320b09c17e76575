# Frozen-firmware manifest for camwatch: what `make firmware` bakes into the
# MicroPython image on top of the port's own frozen modules (asyncio and co).
#
# MicroPython's build runs this file with its manifest functions (include,
# package, module, ...) and this folder as the current directory.
#
# It freezes ../build/frozen/, which `python -m tools firmware` fills first
# with exactly the modules `make build` ships for the board, as sources:
#   - the app package camwatch/ (with the board's own board layer only),
#   - every module and package of ../lib/,
#   - the Microdot modules the app imports, from the pinned package.
# boot.py and main.py are not frozen: MicroPython runs them by file name
# from the board's filesystem, where the web assets stay too.

import os

include("$(PORT_DIR)/boards/manifest.py")

_STAGE = "../build/frozen"

if not os.path.isdir(_STAGE):
    raise Exception(
        "%s is missing: build with `make firmware` (python -m tools firmware), which puts the "
        "app's modules there first" % os.path.abspath(_STAGE))

for _name in sorted(os.listdir(_STAGE)):
    if os.path.isdir(os.path.join(_STAGE, _name)):
        package(_name, base_path=_STAGE)
    elif _name.endswith(".py"):
        module(_name, base_path=_STAGE)
