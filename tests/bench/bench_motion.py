# `make bench` on the MicroPython VM: detection and scene rendering.
# Prints "figure: value" lines; measures, asserts nothing.
import array
import gc
import time

from camwatch.board.scenes import SceneCamera
from camwatch.motion import Detector

W, H = 160, 120


def per_frame_us(fn, n):
    t0 = time.ticks_us()
    for i in range(n):
        fn(i)
    return time.ticks_diff(time.ticks_us(), t0) / n


def main():
    gc.collect()
    cam = SceneCamera("walk-and-light")
    us = per_frame_us(lambda i: cam.capture(), 300)
    print("scene render (walk-and-light, 160x120): %.0f us/frame (%.0f fps)" % (us, 1e6 / us))
    frames = [memoryview(array.array("b", cam.capture())) for _ in range(2)]
    cam.close()
    del cam

    results = {}
    for native, n in ((True, 500), (False, 20)):
        det = Detector(W, H, native=native)
        results[native] = per_frame_us(lambda i: det.process(frames[i & 1], i * 100), n)
    print("detect viper: %.0f us/frame (%.0f fps)" % (results[True], 1e6 / results[True]))
    print("detect pure-Python twin: %.0f us/frame (%.0f fps)" % (results[False], 1e6 / results[False]))
    print("detect viper speedup over the twin: %.1fx" % (results[False] / results[True]))

    gc.collect()
    idle = SceneCamera("idle")
    views = [memoryview(array.array("b", idle.capture())) for _ in range(2)]
    idle.close()
    det = Detector(W, H)
    for i in range(20):
        det.process(views[i & 1], i * 100)
    gc.collect()
    a0 = gc.mem_alloc()
    for i in range(500):
        det.process(views[i & 1], 2000 + i * 100)
    print("detect allocation, 500 frames without events: %d bytes" % (gc.mem_alloc() - a0))


main()
