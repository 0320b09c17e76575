# Run on the MicroPython VM by tests/test_jpeg.py: encode test pictures with
# camwatch.board.jpegenc and write each frame and its JPEG into a folder, so
# the host can decode the JPEG with an independent decoder and compare.
#
# micropython jpeg_frames.py OUTDIR
import gc
import sys

from camwatch.board.jpegenc import Encoder
from camwatch.board.scenes import SceneCamera

out = sys.argv[1]


def pattern(w, h):
    # gradients, hard edges and a checkerboard: smooth and sharp content
    f = bytearray(w * h)
    for y in range(h):
        for x in range(w):
            v = x * 255 // max(1, w - 1)
            if (x // 5 + y // 7) & 1:
                v = 255 - v
            if x > w // 2 and y > h // 2:
                v = 30 if (x + y) & 1 else 220
            f[y * w + x] = v
    return f


buf = bytearray(160 * 120 * 2 + 2048)  # one output buffer for every picture
small = bytearray(600)
cases = []
scene = SceneCamera("default", 160, 120)
for _ in range(15):  # frame 15: the object is in the picture
    frame = scene.capture()
cases.append(("scene", 160, 120, bytes(frame)))
scene.close()
del scene, frame
gc.collect()
for w, h in ((160, 120), (37, 23), (8, 8), (64, 48)):
    cases.append(("pattern", w, h, pattern(w, h)))

for name, w, h, frame in cases:
    for q in (10, 50, 80, 95, 100):
        enc = Encoder(w, h, q)
        n = enc.encode(frame, buf)
        tag = "%s-%dx%d-q%d" % (name, w, h, q)
        with open(out + "/" + tag + ".raw", "wb") as f:
            f.write(frame)
        with open(out + "/" + tag + ".jpg", "wb") as f:
            f.write(memoryview(buf)[:n])
        gc.collect()
        # too small a buffer: -1, not a write past its end
        assert enc.encode(frame, small) == -1 or w * h <= 64
        print(tag, n)
print("done")
