# `make bench` on the MicroPython VM: resident heap and import time of the
# app and its libraries (tools/bench.py runs this once per process and mode).
#
# CAMWATCH_MODE: "py" or "mpy" (import from the folder CAMWATCH_ROOT and its
# lib/), or "romfs" (mount the image CAMWATCH_ROMFS at /rom as a board's
# romfs partition and import from there; the image is read into a block
# allocated first, which stands in for mapped flash and is not counted).
# Prints one line: "imports <mode> <resident bytes> <import us>".
import gc
import os
import sys
import time

import vfs

mode = os.getenv("CAMWATCH_MODE")
if mode == "romfs":
    path = os.getenv("CAMWATCH_ROMFS")
    img = bytearray(os.stat(path)[6])
    with open(path, "rb") as f:
        f.readinto(img)
    vfs.mount(vfs.VfsRom(img), "/rom")
    sys.path[:] = ["", ".frozen", "/rom", "/rom/lib"]
else:
    root = os.getenv("CAMWATCH_ROOT")
    sys.path[:] = ["", ".frozen", root, root + "/lib"]

# What the VM holds anyway (frozen asyncio, built-in modules) is loaded
# first: the figure is what our modules and Microdot cost.
import asyncio  # noqa: E402
import binascii  # noqa: E402,F401
import hashlib  # noqa: E402,F401
import json  # noqa: E402,F401
import select  # noqa: E402,F401
import socket  # noqa: E402,F401

# Everything the app loads on the virtual board by the time it serves.
MODULES = ("camwatch.app", "camwatch.motion", "camwatch.board.virtual", "camwatch.board.scenes")

gc.collect()
before = gc.mem_alloc()
t0 = time.ticks_us()
for name in MODULES:
    __import__(name)
us = time.ticks_diff(time.ticks_us(), t0)
gc.collect()
print("imports", mode, gc.mem_alloc() - before, us)
