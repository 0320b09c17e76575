# On the MicroPython VM: speed and allocation of detection and scene rendering.
# Prints the figures; asserts only loose floors (10 fps is the product's
# target, so the floors are far below what the x64 VM does).
#
#   cd tests/vm && MICROPYPATH=.frozen:../../build/vboard/fs:../../build/vboard/fs/lib \
#       ../../.venv/bin/micropython -X heapsize=196608 vmrun.py test_motion_bench
import array
import gc
import time

from camwatch.board.scenes import SceneCamera
from camwatch.motion import Detector

W, H = 160, 120


def _fps(frames, ms):
    return frames * 1000 // max(1, ms)


def test_scene_rendering_speed():
    gc.collect()
    cam = SceneCamera("walk-and-light")
    n = 300
    t0 = time.ticks_us()
    for _ in range(n):
        cam.capture()
    us = time.ticks_diff(time.ticks_us(), t0)
    print("scenes: render %d us/frame, %d fps" % (us // n, n * 1000000 // max(1, us)))
    assert n * 1000000 // max(1, us) >= 30


def test_detection_speed_viper_and_pure():
    gc.collect()
    cam = SceneCamera("walk-and-light")
    frames = [memoryview(array.array("b", cam.capture())) for _ in range(2)]
    del cam
    for native, n in ((True, 300), (False, 10)):
        det = Detector(W, H, native=native)
        t0 = time.ticks_us()
        for i in range(n):
            det.process(frames[i & 1], i * 100)
        us = time.ticks_diff(time.ticks_us(), t0)
        print("motion: %s %d us/frame, %d fps" % ("viper" if native else "pure-Python twin",
                                                   us // n, n * 1000000 // max(1, us)))
        if native:
            assert n * 1000000 // max(1, us) >= 30


def test_capture_and_detect_together():
    gc.collect()
    cam = SceneCamera("default")
    det = Detector(W, H)
    n = 300
    events = 0
    gc.collect()
    a0 = gc.mem_alloc()
    t0 = time.ticks_us()
    for _ in range(n):
        events += det.process(cam.capture(), cam.t_ms) is not None
    us = time.ticks_diff(time.ticks_us(), t0)
    used = gc.mem_alloc() - a0
    print("capture+detect: %d us/frame, %d fps, %d events, %d bytes allocated in %d frames"
          % (us // n, n * 1000000 // max(1, us), events, used, n))
    assert events >= 10


def test_detection_allocation_per_frame():
    gc.collect()
    cam = SceneCamera("idle")
    views = [memoryview(array.array("b", cam.capture())) for _ in range(2)]
    del cam
    det = Detector(W, H)
    for i in range(20):
        det.process(views[i & 1], i * 100)
    n = 500
    gc.collect()
    a0 = gc.mem_alloc()
    for i in range(n):
        det.process(views[i & 1], 2000 + i * 100)
    used = gc.mem_alloc() - a0
    print("motion: %d bytes allocated in %d frames without events" % (used, n))
    assert used == 0
