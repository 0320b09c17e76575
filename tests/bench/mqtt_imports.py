# `make bench` on the MicroPython VM: what MQTT costs in resident heap, from
# the ROMFS image (CAMWATCH_ROMFS, mounted at /rom as a board's romfs
# partition; the image's own block stands in for mapped flash and is not
# counted). tools/bench.py section_mqtt runs it.
# Prints "resident <what> <bytes>" lines.
import gc
import os
import sys

import vfs

path = os.getenv("CAMWATCH_ROMFS")
img = bytearray(os.stat(path)[6])
with open(path, "rb") as f:
    f.readinto(img)
vfs.mount(vfs.VfsRom(img), "/rom")
sys.path[:] = ["", ".frozen", "/rom", "/rom/lib"]

# what the app holds anyway, loaded first
import asyncio  # noqa: E402,F401
import errno  # noqa: E402,F401
import json  # noqa: E402,F401
import select  # noqa: E402,F401
import socket  # noqa: E402,F401
import struct  # noqa: E402,F401
from collections import deque  # noqa: E402,F401

import camwatch.settings  # noqa: E402,F401


def resident(what, names):
    gc.collect()
    before = gc.mem_alloc()
    for name in names:
        __import__(name)
    gc.collect()
    print("resident", what, gc.mem_alloc() - before)


resident("mqtt_off", ["camwatch.mqtt"])
resident("session", ["camwatch.mqtt_bridge"])
resident("client", ["chumicro_mqtt", "chumicro_mqtt.client"])
resident("discovery", ["camwatch.ha"])
