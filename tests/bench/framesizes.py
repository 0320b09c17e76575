# `make bench` on the MicroPython VM (section `live`): bytes per streamed
# frame at each ESP32 `framesize`, for the virtual camera's default scene
# drawn at that size and encoded by our grayscale encoder (jpegenc, what the
# virtual board streams) at the `jpeg_quality` default. The scene is the
# same view at every size: the person, the texture and the furniture scale
# with the frame; the sensor noise stays one pixel. A part of the stream is
# the JPEG and its multipart head. Prints one line a size: "FIGURE <name>
# <w>x<h> <encode ms on the VM> <bytes of each frame>...". Measures,
# asserts nothing.
#
# Run by tools/bench.py with a heap big enough for UXGA (1600x1200 frames)
# and the sizes in FRAMESIZES ("QQVGA:160x120,QVGA:320x240,..."), read from
# the ESP32 camera layer's SIZES (it imports the camera driver, which the VM
# does not have).
import gc
import os
import time

from camwatch.board.jpegenc import Encoder
from camwatch.board.scenes import SceneCamera, scenario
from camwatch.live import _PART

QUALITY = 80  # the jpeg_quality default (camwatch/board/esp32_camera.py CONTROLS)
FRAMES = 11  # frames per size, a second apart over the scene's 10 s loop (odd: a median)


def scaled(spec, k):
    """The scenario ``spec`` with its sizes in pixels multiplied by ``k``
    (the camera reads them as whole pixels)."""
    out = dict(spec)
    out["texture"] = [[s * k, a] for s, a in spec.get("texture", ())]
    events = []
    for ev in spec["events"]:
        ev = dict(ev)
        if "object" in ev:
            o = dict(ev["object"])
            for key in ("w", "h"):
                o[key] = o[key] * k
            for key in ("from", "to"):
                o[key] = [v * k for v in o[key]]
            ev["object"] = o
        events.append(ev)
    out["events"] = events
    return out


def sizes():
    for item in os.getenv("FRAMESIZES").split(","):
        name, wh = item.split(":")
        w, h = wh.split("x")
        yield name, (int(w), int(h))


def main():
    base = scenario("default")
    for name, (w, h) in sizes():
        gc.collect()
        cam = SceneCamera(scaled(base, w / 160), w, h, frame_ms=1000)
        enc = Encoder(w, h, QUALITY)
        out = bytearray(w * h // 2 + 4096)
        lengths = []
        spent = 0
        for _ in range(FRAMES):
            frame = cam.capture()
            t0 = time.ticks_us()
            n = enc.encode(frame, out)
            spent += time.ticks_diff(time.ticks_us(), t0)
            if n < 0:
                raise SystemExit("%s: the JPEG did not fit %d bytes" % (name, len(out)))
            lengths.append(n + len(_PART))
        cam.close()
        lengths.sort()
        print("FIGURE %s %dx%d %.1f %s" % (name, w, h, spent / FRAMES / 1000,
                                          " ".join(str(n) for n in lengths)))
        del cam, enc, out, frame
    print("quality %d, grayscale; a part's head (%d bytes) included" % (QUALITY, len(_PART)))


main()
